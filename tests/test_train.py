"""The training engine on real (tiny) digits-lt runs: config parsing, run directory, checkpoints, resume."""
import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tiny_runs import tiny_config

from nbn_tutorial import train
from nbn_tutorial.errors import UserError

# Small, fast digits-lt runs (about a second per epoch on 2 CPU cores).


def rows_without_time(run_dir: Path) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "time_s"}
            for row in train.read_metrics(run_dir).to_dict("records")]


@pytest.fixture
def finished_run(tiny_nbn_run) -> Path:
    """A 2-epoch NBN run trained straight through (the session's, shared by the read-only tests below)."""
    return tiny_nbn_run


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------

def test_every_preset_loads_and_validates():
    names = train.list_presets()
    assert {"quick_digits_bn", "quick_digits_nbn", "quick_fashion_bn", "quick_fashion_nbn"} <= set(names)
    for name in names:
        config = train.load_config(name)
        assert train.load_config(train.PRESET_DIR / f"{name}.yaml") == config


def test_preset_yaml_values_are_literals_for_every_key_they_set():
    for path in train.PRESET_DIR.glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        assert set(raw) <= set(train.CONFIG_FIELDS), path.name
        config = train.load_config(path)
        for key, value in raw.items():
            assert getattr(config, key) == value, (path.name, key)


def test_cifar_preset_follows_the_ldam_drw_protocol():
    config = train.load_config("cifar10-lt_resnet32_bn_ce")
    assert (config.epochs, config.batch_size, config.lr, config.momentum, config.weight_decay) == (200, 128, 0.1, 0.9, 2e-4)
    expected = {0: 0.02, 4: 0.1, 5: 0.1, 159: 0.1, 160: 0.001, 179: 0.001, 180: 1e-5, 199: 1e-5}
    for epoch, lr in expected.items():
        assert train.learning_rate(config, epoch) == pytest.approx(lr, rel=1e-12), epoch
    ldam = train.load_config("cifar100-lt_resnet32_nbn_ldam-drw")
    assert (ldam.head, ldam.loss, ldam.drw_epoch, ldam.norm) == ("cosine", "ldam-drw", 160, "nbn")


def test_imagenet_preset_is_cosine_to_zero_over_90_epochs():
    config = train.load_config("imagenet-lt_resnext50_nbn")
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (90, 512, 0.2, 5e-4)
    lrs = [train.learning_rate(config, epoch) for epoch in range(90)]
    assert lrs[0] == 0.2 and lrs[45] == pytest.approx(0.1)
    assert all(a > b > 0 for a, b in zip(lrs, lrs[1:]))
    assert train.load_config("inat2018_resnet50_bn").weight_decay == 1e-4


def test_overrides_are_yaml_typed_and_coerced():
    config = train.load_config("quick_digits_bn", ["lr=2e-4", "milestones=[3, 4]", "lr_decay=[1, 0.5]",
                                                   "imbalance_factor=null", "compile=off", "channels_last=false",
                                                   "alpha_init=2", "data_root=/some where", "epochs=7.0"])
    assert config.lr == 2e-4 and isinstance(config.lr, float)
    assert config.milestones == [3, 4] and config.lr_decay == [1.0, 0.5]
    assert config.imbalance_factor is None and config.compile == "off" and config.channels_last is False
    assert config.alpha_init == 2.0 and config.data_root == "/some where" and config.epochs == 7


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("weight_decay: 5e-4\ncompile: off\n")
    config = train.load_config(path)
    assert config.weight_decay == 5e-4 and config.compile == "off"


@pytest.mark.parametrize("overrides, fragments", [
    (["epoch=3"], ["'epoch'", "'epochs'"]),
    (["learning_rate=0.1"], ["'learning_rate'", "valid keys"]),
    (["epochs=abc"], ["'epochs'", "whole number", "'abc'"]),
    (["batch_size=1.5"], ["'batch_size'", "whole number", "1.5"]),
    (["lr=fast"], ["'lr'", "number", "'fast'"]),
    (["nesterov=maybe"], ["'nesterov'", "true or false"]),
    (["milestones=5"], ["'milestones'", "list"]),
    (["epochs"], ["key=value"]),
    (["model=resnet33"], ["resnet33", "resnet32", "resnext50_32x4d"]),
    (["loss=ldam"], ["ldam", "ldam-drw", "balanced-softmax"]),
    (["norm=gn"], ["gn", "bn", "nbn"]),
    (["head=mlp"], ["mlp", "linear", "cosine"]),
    (["dataset=cifar11-lt"], ["cifar11-lt", "cifar10-lt", "digits-lt"]),
    (["amp=fp8"], ["fp8", "bf16"]),
    (["loss=ldam-drw"], ["cosine head", "head=cosine"]),
    (["epochs=0"], ["epochs", "at least 1"]),
    (["batch_size=0"], ["batch_size", "at least 1"]),
    (["lr=0"], ["lr", "> 0"]),
    (["lr=-0.1"], ["lr", "> 0"]),
    (["lr=.nan"], ["lr", "finite"]),
    (["momentum=1"], ["momentum", "< 1"]),
    (["weight_decay=-1e-4"], ["weight_decay", ">= 0"]),
    (["schedule=step", "milestones=[10]", "lr_decay=[0.1, 0.01]"], ["one lr_decay multiplier per milestone"]),
    (["schedule=step", "milestones=[20, 10]", "lr_decay=[0.1, 0.01]"], ["increasing"]),
    (["stop_after_epochs=300"], ["stop_after_epochs", "1..epochs"]),
    (["posthoc_tau=1", "loss=balanced-softmax"], ["posthoc_tau"]),
    (["channels_last=sometimes"], ["channels_last", "true, false or auto"]),
    (["imbalance_factor=0.5"], ["imbalance_factor", ">= 1"]),
    (["dataset=imagenet-lt", "imbalance_factor=10"], ["imagenet-lt", "fixed by its official list files"]),
])
def test_bad_overrides_name_the_problem(overrides, fragments):
    with pytest.raises(UserError) as caught:
        train.load_config("quick_digits_bn", overrides)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("text, fragments", [
    ("epochs: 3\nweight_decy: 0.1\n", ["'weight_decy'", "did you mean 'weight_decay'"]),
    ("- a\n- b\n", ["mapping"]),
    ("epochs: [1\n", ["not valid YAML"]),
    ("batch_size: many\n", ["'batch_size'", "whole number", "'many'"]),
])
def test_bad_yaml_files_are_user_errors(tmp_path, text, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        train.load_config(path)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_a_config_built_in_python_is_type_checked_too(tmp_path):
    with pytest.raises(UserError, match="'epochs'.*whole number.*'3'"):
        train.train(train.Config(epochs="3"), tmp_path / "run", progress=False)


def test_missing_config_file_names_where_the_presets_are(tmp_path):
    with pytest.raises(UserError, match=r"nope.yaml.*the name of a preset in .*configs") as caught:
        train.load_config(tmp_path / "nope.yaml")
    assert "quick_digits_bn" not in str(caught.value)   # not a dump of every preset name
    with pytest.raises(UserError, match="did you mean the preset 'quick_fashion_nbn'"):
        train.load_config("quick_fashon_nbn")


def test_runtime_conflicts_are_explained_before_training(tmp_path):
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        train.train(tiny_config("amp=fp16"), tmp_path / "a", progress=False)
    with pytest.raises(UserError, match="CUDA graphs"):
        train.train(tiny_config("compile=reduce-overhead"), tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="unknown compile_backend 'fast'; use inductor"):
        train.train(tiny_config("compile=on", "compile_backend=fast"), tmp_path / "d", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            train.train(tiny_config("device=cuda"), tmp_path / "c", progress=False)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_alpha_weight_decay_switch_builds_the_parameter_groups():
    from nbn_tutorial import nn as nbn_nn

    for exempt in (False, True):
        config = tiny_config("norm=nbn", f"alpha_weight_decay={str(not exempt).lower()}", "weight_decay=0.001")
        model = train.build_model_for(config, train.build_datasets(config, ("test",))["test"])
        groups = train.parameter_groups(model, config)
        grouped = [p for group in groups for p in group["params"]]
        assert len(grouped) == len(list(model.parameters())) == len({id(p) for p in grouped})
        if exempt:
            assert [group["weight_decay"] for group in groups] == [0.001, 0.0]
            assert groups[1]["params"] == nbn_nn.alpha_parameters(model) == [model.nbn_alpha]
        else:
            assert len(groups) == 1 and groups[0]["weight_decay"] == 0.001


def test_accuracy_metrics_from_counts():
    groups = {"many": [0], "medium": [1], "few": [2, 3]}
    metrics = train.accuracy_metrics([9, 5, 1, 0], [10, 10, 2, 0], groups)
    assert metrics["test_acc"] == pytest.approx(15 / 22)
    assert metrics["balanced_acc"] == pytest.approx((0.9 + 0.5 + 0.5) / 3)
    assert (metrics["many_acc"], metrics["medium_acc"], metrics["few_acc"]) == (0.9, 0.5, 0.5)
    assert metrics["per_class_acc"] == [0.9, 0.5, 0.5, None]


def test_accuracy_metrics_report_empty_groups_and_splits_as_none():
    metrics = train.accuracy_metrics([3, 0], [4, 0], {"many": [0], "medium": [], "few": [1]})
    assert (metrics["test_acc"], metrics["balanced_acc"], metrics["many_acc"]) == (0.75, 0.75, 0.75)
    assert metrics["medium_acc"] is None and metrics["few_acc"] is None
    empty = train.accuracy_metrics([0, 0], [0, 0], {"many": [0], "medium": [], "few": [1]})
    assert empty["test_acc"] is None and empty["balanced_acc"] is None and empty["per_class_acc"] == [None, None]


# ----------------------------------------------------------------------------------------------------
# A real run
# ----------------------------------------------------------------------------------------------------

def test_run_directory_holds_config_metrics_and_checkpoints(finished_run):
    # digits-lt's held-out val split selects best.pt (select_best_on=auto); an NBN run records nbn_dynamics.jsonl
    # (skipped_images.txt exists only when a skip_bad_images run left an unreadable image out)
    assert sorted(os.listdir(finished_run)) == sorted(set(train.RUN_FILES) - {"skipped_images.txt"})
    rows = train.read_metrics(finished_run)
    assert list(rows.columns) == list(train.METRIC_COLUMNS) and list(rows.epoch) == [1, 2]
    last = rows.iloc[-1]
    assert last.lr == 0.05 and rows.iloc[0].lr == 0.05  # warmup 1 epoch: lr*(0+1)/1
    assert len(last.per_class_acc) == 10 and len(last.alpha) == 1
    for key in ("train_acc", "test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc"):
        assert 0.0 <= last[key] <= 1.0
    assert math.isfinite(last.train_loss) and last.time_s > 0
    assert last.balanced_acc == pytest.approx(sum(last.per_class_acc) / 10)
    with open(finished_run / "metrics.csv") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [float(row["balanced_acc"]) for row in csv_rows] == list(rows.balanced_acc)
    assert json.loads(csv_rows[-1]["per_class_acc"]) == last.per_class_acc
    stored = train.load_config(finished_run / "config.yaml")
    # the run config records the data root it used as an absolute path (issue 10)
    assert stored == train.resolve_dataset_defaults(tiny_config("epochs=2", "norm=nbn", f"data_root={stored.data_root}"))
    assert Path(stored.data_root).is_absolute()
    assert stored.imbalance_factor == 10.0


def test_checkpoints_load_with_weights_only_and_hold_the_state(finished_run):
    state = torch.load(finished_run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["norm"] == "nbn"
    assert {"model", "optimizer", "scheduler", "scaler", "loss", "loader", "rng", "best"} <= set(state)
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    rows = train.read_metrics(finished_run)
    assert state["best"] == {"metric": "balanced_acc", "split": "val", "value": rows.val_balanced_acc.max(),
                             "epoch": int(rows.epoch[rows.val_balanced_acc.idxmax()])}
    assert set(state["nbn_reference"]) == {f"backbone.layer3.{block}.bn2" for block in range(5)}


def test_selecting_on_test_keeps_the_best_epoch(tmp_path):
    run = train.train(tiny_config("epochs=2", "select_best_on=test"), tmp_path / "run", progress=False)
    best = torch.load(run / "best.pt", weights_only=True)
    rows = train.read_metrics(run)
    assert best["epoch"] == int(rows.epoch[rows.balanced_acc.idxmax()])
    assert best["best"]["value"] == rows.balanced_acc.max()


def test_evaluate_checkpoint_reproduces_the_logged_metrics(finished_run):
    logged = train.read_metrics(finished_run).iloc[-1]
    metrics = train.evaluate_checkpoint(finished_run / "last.pt", device="cpu")
    for key in ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc", "per_class_acc", "alpha"):
        assert metrics[key] == logged[key], key
    assert metrics["epoch"] == 2 and metrics["split"] == "test"
    summary = train.format_metrics(metrics)
    assert summary.startswith("epoch 2: overall ") and all(w in summary for w in ("balanced", "many", "medium", "few"))


def test_load_run_returns_the_model_in_eval_mode(finished_run):
    model, config = train.load_run(finished_run, which="last")
    assert not model.training and config.norm == "nbn"
    state = torch.load(finished_run / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_resume_reproduces_an_uninterrupted_run_exactly(finished_run, tmp_path):
    interrupted = train.train(tiny_config("epochs=2", "norm=nbn", "stop_after_epochs=1"), tmp_path / "r",
                              progress=False)
    assert list(train.read_metrics(interrupted).epoch) == [1]
    train.train(tiny_config("epochs=2", "norm=nbn"), interrupted, resume=True, progress=False)
    assert rows_without_time(interrupted) == rows_without_time(finished_run)
    resumed = torch.load(interrupted / "last.pt", weights_only=True)
    straight = torch.load(finished_run / "last.pt", weights_only=True)
    for part in ("model",):
        assert all(torch.equal(resumed[part][key], straight[part][key]) for key in straight[part])


def test_resume_refuses_another_config_and_a_missing_checkpoint(finished_run, tmp_path):
    with pytest.raises(UserError, match=r"different config \(lr: 0.05 -> 0.1"):
        train.train(tiny_config("epochs=2", "norm=nbn", "lr=0.1"), finished_run, resume=True, progress=False)
    with pytest.raises(UserError, match="no last.pt"):
        train.train(tiny_config("epochs=2"), tmp_path / "empty", resume=True, progress=False)


def test_a_run_directory_is_never_overwritten_without_asking(finished_run, tmp_path, capsys):
    before = (finished_run / "last.pt").read_bytes()
    with pytest.raises(UserError) as caught:
        train.train(tiny_config("epochs=2", "norm=nbn"), finished_run, progress=False)
    for fragment in ("already holds a run", "--resume", "--overwrite", "--out"):
        assert fragment in str(caught.value)
    assert (finished_run / "last.pt").read_bytes() == before
    copy = shutil.copytree(finished_run, tmp_path / "copy")
    train.train(tiny_config("epochs=1"), copy, overwrite=True, progress=False)
    assert "replaced the previous run" in capsys.readouterr().err
    assert list(train.read_metrics(copy).epoch) == [1]


def test_load_or_train_reuses_a_finished_run_and_refuses_another_config(finished_run):
    before = (finished_run / "last.pt").stat().st_mtime_ns
    assert train.load_or_train(tiny_config("epochs=2", "norm=nbn"), finished_run, progress=False) == finished_run
    assert (finished_run / "last.pt").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="another config"):
        train.load_or_train(tiny_config("epochs=2", "norm=bn"), finished_run, progress=False)


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # Epoch 1 trains normally; from epoch 2 on the lr is multiplied by 1e8 and the loss must blow up.
    # max_loss=null: only nan/inf stop (tests/test_hardening.py covers the max_loss threshold)
    config = tiny_config("epochs=3", "milestones=[1]", "lr_decay=[1e8]", "max_loss=null")
    with pytest.raises(UserError) as caught:
        train.train(config, tmp_path / "nan", progress=False)
    message = str(caught.value)
    assert "nan or inf at epoch 2, batch" in message and "lower the learning rate" in message
    assert str(tmp_path / "nan" / "last.pt") in message
    state = train.read_checkpoint(tmp_path / "nan" / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())
    assert list(train.read_metrics(tmp_path / "nan").epoch) == [1]


def test_missing_and_corrupt_checkpoints_are_user_errors(finished_run, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        train.evaluate_checkpoint(tmp_path / "best.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((finished_run / "last.pt").read_bytes()[:5000])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    for path in (truncated, noise):
        with pytest.raises(UserError, match="corrupt or not a PyTorch checkpoint"):
            train.evaluate_checkpoint(path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(UserError, match="not an nbn-tutorial training checkpoint"):
        train.evaluate_checkpoint(foreign)
    with pytest.raises(UserError, match="'best' or 'last'"):
        train.load_run(finished_run, which="final")


def test_fast_path_switches_run_on_cpu(tmp_path):
    config = tiny_config("epochs=1", "amp=bf16", "channels_last=true", "fused_sgd=false", "cudnn_benchmark=true")
    runtime = train.resolve_runtime(config, torch.device("cpu"))
    assert runtime.amp_dtype == torch.bfloat16 and runtime.channels_last and not runtime.fused_sgd
    row = train.read_metrics(train.train(config, tmp_path / "fast", progress=False)).iloc[-1]
    assert math.isfinite(row.train_loss) and 0 <= row.test_acc <= 1


def test_compile_adds_graphs_once_not_every_epoch(tmp_path):
    # The eager backend runs Dynamo's capture and guards (what decides recompiles) without Inductor's codegen.
    from torch._dynamo.utils import counters

    graphs = []
    for epochs in (1, 2):
        torch._dynamo.reset()
        counters.clear()
        config = tiny_config(f"epochs={epochs}", "compile=on", "compile_backend=eager")
        row = train.read_metrics(train.train(config, tmp_path / f"c{epochs}", progress=False)).iloc[-1]
        assert math.isfinite(row.train_loss)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and graphs[1] == graphs[0]


def test_lr_head_refuses_a_last_batch_of_one_sample(tmp_path):
    from nbn_tutorial import data

    train_size = len(data.build_dataset("digits-lt"))
    config = train.load_config("quick_digits_bn", ["head=lr", f"batch_size={train_size - 1}", "epochs=1"])
    with pytest.raises(UserError, match="single sample"):
        train.train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()
