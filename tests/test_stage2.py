"""Decoupled stage 2 on real digits-lt runs: cRT, LWS, τ-normalisation, init_from, the router stage, the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nbn_tutorial import data, models, train
from nbn_tutorial.errors import UserError
from nbn_tutorial.train import stage2, tau_norm
import cli_tools
from image_trees import write_oltr_tree

ROOT = Path(__file__).resolve().parents[1]
TINY = ["dataset=digits-lt", "batch_size=64", "warmup_epochs=0", "lr=0.05", "device=cpu", "compile=off",
        "cpu_threads=1", "schedule=cosine"]


def tiny_config(*overrides: str) -> train.Config:
    return train.load_config(None, [*TINY, *overrides])


def stage2_options(stage1: Path, trainable: str, *extra: str) -> list[str]:
    return [f"init_from={stage1 / 'last.pt'}", f"trainable={trainable}", "sampler=class-balanced", *extra]


@pytest.fixture
def stage1(tiny_nbn_run) -> Path:
    """A 2-epoch NBN stage-1 run (BN layers, NBN α and a linear head to re-balance): the session's NBN run."""
    return tiny_nbn_run


def checkpoint_model(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_crt_leaves_every_backbone_parameter_and_bn_buffer_bit_identical_while_the_classifier_changes(stage1, tmp_path):
    config = tiny_config("epochs=2", "norm=nbn", *stage2_options(stage1, "classifier", "reinit_classifier=true"))
    run = train.train(config, tmp_path / "crt", progress=False)
    before, after = checkpoint_model(stage1 / "last.pt"), checkpoint_model(run / "last.pt")
    assert set(before) == set(after)
    backbone = [key for key in before if not key.startswith("head.")]
    assert any("running_mean" in key for key in backbone) and any("nbn_alpha" in key for key in backbone)
    for key in backbone:
        assert torch.equal(before[key], after[key]), key          # parameters, BN running stats, batch counters
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert not torch.equal(before["head.bias"], after["head.bias"])
    assert train.read_metrics(run)["train_acc"].notna().all()


def test_lws_at_its_initial_scales_equals_the_stage1_model_and_trains_only_the_scales(stage1, tmp_path):
    config = tiny_config("epochs=1", "norm=nbn", *stage2_options(stage1, "classifier-scale"))
    test = data.build_dataset("digits-lt", split="test")
    stage1_model, _ = train.load_run(stage1)
    lws = train.build_model_for(config, test)
    stage2.prepare_stage2(lws, config)
    assert torch.equal(lws.head.class_scales, torch.ones(10))
    assert [name for name, p in lws.named_parameters() if p.requires_grad] == ["head.class_scales"]
    lws.train()
    assert not any(module.training for name, module in lws.named_modules() if name and not name.startswith("head"))
    x = next(iter(data.make_loader(test, batch_size=300, train=False)))[0]
    with torch.no_grad():
        assert torch.equal(lws.eval()(x), stage1_model(x))
    run = train.train(config, tmp_path / "lws", progress=False)
    trained = checkpoint_model(run / "last.pt")
    before = checkpoint_model(stage1 / "last.pt")
    assert all(torch.equal(before[key], trained[key]) for key in before)
    assert not torch.equal(trained["head.class_scales"], torch.ones(10))
    assert train.evaluate_checkpoint(run / "last.pt", device="cpu")["balanced_acc"] == \
        train.read_metrics(run).iloc[-1]["balanced_acc"]


def test_tau_zero_leaves_the_logits_unchanged(stage1):
    model, _ = train.load_run(stage1)
    x = next(iter(data.make_loader(data.build_dataset("digits-lt", split="test"), batch_size=300, train=False)))[0]
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(models.tau_normalize(model, 0.0)(x), logits)
        unit = models.tau_normalize(model, 1.0)
        torch.testing.assert_close(unit.head.weight.norm(dim=1), torch.ones(10))
        assert not torch.equal(unit(x), logits)
        assert torch.equal(model(x), logits)   # the original model is unchanged
        with models.tau_normalized(model, 2.0):
            assert not torch.equal(model(x), logits)
        assert torch.equal(model(x), logits)   # restored exactly
    with pytest.raises(UserError, match="cosine"):
        models.tau_normalize(models.build_model("resnet32", 10, head="cosine"), 1.0)


def test_tau_is_searched_on_the_val_split_where_the_dataset_has_one(stage1, tmp_path):
    model, config = train.load_run(stage1)
    on_digits_val = tau_norm.search_tau(model, config)      # digits-lt's held-out split of unused images
    assert on_digits_val.split == "val" and "optimistic" not in on_digits_val.note
    on_test = tau_norm.search_tau(model, config, split="test")   # only when asked, and said
    assert on_test.split == "test" and "optimistic" in on_test.note
    assert list(on_test.table["tau"]) == list(tau_norm.TAU_GRID)
    assert on_test.table.loc[on_test.table["tau"] == on_test.tau, "balanced_acc"].item() == \
        on_test.table["balanced_acc"].max()
    write_oltr_tree(tmp_path, [6, 3, 2], held_out_per_class=2)
    imagenet = train.load_config(None, ["dataset=imagenet-lt", f"data_root={tmp_path}", "image_size=16"])
    on_val = tau_norm.search_tau(models.build_model("resnet32", 3), imagenet, taus=(0.0, 1.0))
    assert on_val.split == "val" and "optimistic" not in on_val.note and len(on_val.table) == 2


def test_init_from_must_exist_fit_the_model_and_share_the_data(stage1, tmp_path):
    with pytest.raises(UserError, match="init_from"):
        tiny_config("trainable=classifier")
    with pytest.raises(UserError, match="does not exist"):
        train.train(tiny_config("epochs=1", f"init_from={tmp_path / 'none.pt'}"), tmp_path / "a", progress=False)
    with pytest.raises(UserError, match="other data"):
        train.train(tiny_config("epochs=1", "norm=nbn", "data_seed=3", *stage2_options(stage1, "classifier")),
                    tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="does not fit|does not match"):
        train.train(tiny_config("epochs=1", "norm=bn", "model=ride_resnet32", *stage2_options(stage1, "classifier")),
                    tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="expert_router"):
        tiny_config("expert_router=true", "model=ride_resnet32")
    with pytest.raises(UserError, match="sampler"):
        tiny_config("sampler=balanced")


def test_the_router_stage_trains_only_the_router(tmp_path):
    ride = ["model=ride_resnet32", "head=cosine", "num_experts=2"]
    first = train.train(tiny_config("epochs=1", "loss=ride", *ride), tmp_path / "ride", progress=False)
    config = tiny_config("epochs=1", "loss=ride-router", "expert_router=true", *ride,
                         *stage2_options(first, "router"))
    routed = train.train(config, tmp_path / "router", progress=False)
    before, after = checkpoint_model(first / "last.pt"), checkpoint_model(routed / "last.pt")
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert {key for key in after if key not in before} == {key for key in after if key.startswith("router.")}
    assert 0 <= train.read_metrics(routed).iloc[-1]["balanced_acc"] <= 1


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return cli_tools.run_cli(*args, cwd=cwd, env={"OMP_NUM_THREADS": "1"}, timeout=600)


def test_two_epoch_ride_and_crt_runs_through_the_cli_on_digits(tmp_path):
    common = ["--set", "epochs=2", "--set", "device=cpu", "--no-progress"]
    ride = run_cli("train", "--config", "quick_digits_ride_nbn", "--out", "ride", *common, cwd=tmp_path)
    assert ride.returncode == 0, ride.stderr
    assert list(train.read_metrics(tmp_path / "ride").epoch) == [1, 2]
    assert len(train.read_metrics(tmp_path / "ride").iloc[-1]["alpha"]) == 3   # one α per expert
    stage1 = run_cli("train", "--config", "quick_digits_bn", "--out", "runs/digits-lt_resnet32_bn_ce_seed0", *common,
                     cwd=tmp_path)
    assert stage1.returncode == 0, stage1.stderr
    crt = run_cli("train", "--config", "quick_digits_bn_crt", "--out", "crt", *common, cwd=tmp_path)  # from stage 1
    assert crt.returncode == 0, crt.stderr
    assert list(train.read_metrics(tmp_path / "crt").epoch) == [1, 2]
    evaluated = run_cli("evaluate", "--checkpoint", "crt/last.pt", "--device", "cpu", "--tau-norm", "auto",
                        cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "chosen by balanced accuracy on the val split" in evaluated.stdout and "optimistic" not in evaluated.stdout
    on_test = run_cli("evaluate", "--checkpoint", "crt/last.pt", "--device", "cpu", "--tau-norm", "auto",
                      "--tau-split", "test", cwd=tmp_path)
    assert on_test.returncode == 0 and "chosen on the test split" in on_test.stdout and "optimistic" in on_test.stdout
    bad = run_cli("evaluate", "--checkpoint", "crt/last.pt", "--tau-norm", "lots", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


@pytest.mark.alone
def test_crt_with_class_balanced_sampling_runs_under_torchrun_with_a_frozen_backbone(stage1, tmp_path):
    out = tmp_path / "ddp-crt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "nbn_tutorial", "train", "--config", "quick_digits_nbn_crt", "--set", f"init_from={stage1 / 'last.pt'}",
               "--set", "epochs=1", "--set", "batch_size=64", "--set", "device=cpu", "--set", "compile=off",
               "--out", str(out), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    before, after = checkpoint_model(stage1 / "last.pt"), checkpoint_model(out / "last.pt")
    assert all(torch.equal(before[key], after[key]) for key in before if not key.startswith("head."))
    assert not torch.equal(before["head.weight"], after["head.weight"])
