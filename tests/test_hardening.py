"""Hardening (issue 10): the failures a new user hit, each reproduced on real runs, trees and commands.

Training runs are tiny digits-lt runs (about a second per epoch) unless a case needs image files;
those use the generated trees of ``tests/image_trees.py``.
"""
import json
import resource
import signal
from pathlib import Path

import pytest
import torch
import yaml
from image_trees import write_oltr_tree
from cli_tools import cli_options, error_line, run_cli, write_notebook
from tiny_runs import TINY_ARGS, tiny_config

from nbn_tutorial import data, train
from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError
from nbn_tutorial.train.checkpoints import write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def rows_without_time(run_dir: Path) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "time_s"}
            for row in train.read_metrics(run_dir).to_dict("records")]


def run_files(run_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(run_dir.iterdir()) if path.is_file()}


@pytest.fixture
def one_epoch_run(tiny_bn_run) -> Path:
    """A finished 1-epoch BN run (the session's, read-only for the tests that use it)."""
    return tiny_bn_run


# ---------------------------------------------------------------------------------------------------
# Messages name only options that exist
# ---------------------------------------------------------------------------------------------------

def _message(call) -> str:
    try:
        call()
    except UserError as error:
        return str(error)
    raise AssertionError("no UserError")


def test_every_option_a_message_names_exists(tmp_path):
    messages = {
        "cifar": _message(lambda: data.build_dataset("cifar10-lt", root=tmp_path)),
        "list file": _message(lambda: data.build_dataset("places-lt", root=tmp_path)),
        "tree": _message(lambda: data.build_dataset("imagefolder-lt", root=tmp_path / "nowhere")),
        "bad image": data.images.SKIP_HINT,
    }
    options = cli_options()
    everywhere = set().union(*options.values())
    for what, message in messages.items():
        for flag in {word.strip("`(),;:.") for word in message.split() if word.startswith(("--", "(--", "`--"))}:
            assert flag in everywhere, f"{what}: {flag} in {message!r}"
    assert "--download" not in messages["cifar"] and "--set download=true" in messages["cifar"]
    # the options these messages point evaluate and train to
    assert {"--data-root", "--list-dir", "--skip-bad-images"} <= options["evaluate"]
    assert {"--data-root", "--list-dir", "--set"} <= options["train"]
    assert {"--data-root", "--list-dir", "--workers"} <= options["data check"]


# ---------------------------------------------------------------------------------------------------
# Data roots: stored absolute, found again after the data moved
# ---------------------------------------------------------------------------------------------------

def test_a_checkpoint_is_evaluated_after_its_data_moved(tmp_path):
    work = tmp_path / "work"
    write_oltr_tree(work / "data", [6, 3, 1], held_out_per_class=2)
    preset = yaml.safe_load((ROOT / "configs" / "imagefolder-lt_resnet32_bn.yaml").read_text())
    preset.update(dataset="imagenet-lt", imbalance_factor=None, profile=None, image_size=16, epochs=1, device="cpu")
    (work / "tiny.yaml").write_text(yaml.safe_dump(preset))
    trained = run_cli("train", "--config", "tiny.yaml", "--data-root", "data", "--out", "run", "--no-progress",
                      cwd=work, drop_env=("NBN_DATA",))
    assert trained.returncode == 0, trained.stderr
    assert yaml.safe_load((work / "run" / "config.yaml").read_text())["data_root"] == str(work / "data")
    reference = run_cli("evaluate", "--checkpoint", str(work / "run" / "last.pt"), "--device", "cpu")
    assert reference.returncode == 0, reference.stderr

    (work / "data").rename(tmp_path / "moved")
    checkpoint = str(work / "run" / "last.pt")
    gone = error_line(run_cli("evaluate", "--checkpoint", checkpoint, "--device", "cpu", drop_env=("NBN_DATA",)))
    assert str(work / "data") in gone and "--data-root" in gone
    flag = run_cli("evaluate", "--checkpoint", checkpoint, "--device", "cpu", "--data-root", str(tmp_path / "moved"))
    environment = run_cli("evaluate", "--checkpoint", checkpoint, "--device", "cpu",
                          env={"NBN_DATA": str(tmp_path / "moved")})
    assert flag.returncode == 0 and environment.returncode == 0, (flag.stderr, environment.stderr)
    assert flag.stdout.splitlines()[0] == environment.stdout.splitlines()[0] == reference.stdout.splitlines()[0]
    assert "using $NBN_DATA" in environment.stderr


# ---------------------------------------------------------------------------------------------------
# Guards: exploding losses and non-finite models
# ---------------------------------------------------------------------------------------------------

def test_lr_1000_stops_before_any_non_finite_checkpoint(tmp_path):
    # the case: warmup from lr=1000 over 20 epochs; BN running variances become inf
    with pytest.raises(UserError, match=r"exceeded max_loss=10000 \(an exploding run\) at epoch 1"):
        train.train(tiny_config("epochs=3", "lr=1000", "warmup_epochs=20"), tmp_path / "a", progress=False)
    with pytest.raises(UserError) as caught:   # without the loss threshold, the model check stops it
        train.train(tiny_config("epochs=3", "lr=1000", "warmup_epochs=20", "max_loss=null"), tmp_path / "b",
                    progress=False)
    assert "holds nan or inf values" in str(caught.value) and "running_var" in str(caught.value)
    assert not (tmp_path / "a" / "last.pt").exists() and not (tmp_path / "b" / "last.pt").exists()


def test_a_loss_above_max_loss_stops_like_nan(tmp_path):
    with pytest.raises(UserError) as caught:
        train.train(tiny_config("epochs=2", "max_loss=0.5"), tmp_path / "run", progress=False)
    message = str(caught.value)
    assert "exceeded max_loss=0.5" in message and "epoch 1, batch 1 of" in message
    assert "lower the learning rate" in message and "\n" not in message
    with pytest.raises(UserError, match="max_loss must be a finite number > 0"):
        tiny_config("max_loss=0")


def test_evaluate_refuses_a_checkpoint_holding_inf(one_epoch_run, tmp_path):
    state = torch.load(one_epoch_run / "last.pt", weights_only=True)
    state["model"]["backbone.layer1.0.bn1.running_var"][0] = float("inf")
    damaged = tmp_path / "last.pt"
    torch.save(state, damaged)
    with pytest.raises(UserError, match=r"holds nan or inf values \(backbone.layer1.0.bn1.running_var\)"):
        train.evaluate_checkpoint(damaged, device="cpu")
    with pytest.raises(UserError, match="holds nan or inf"):
        train.load_run(tmp_path)
    with pytest.raises(UserError, match="refusing to write a checkpoint"):
        write_checkpoint(state, [tmp_path / "never.pt"])
    assert not (tmp_path / "never.pt").exists()


# ---------------------------------------------------------------------------------------------------
# Unwritable output, a full disk, a path under a file
# ---------------------------------------------------------------------------------------------------

def test_unwritable_outputs_are_one_sentence(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    under = blocker / "sub"
    assert "lies under the file" in error_line(run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS,
                                                       "--out", str(under / "run")))
    assert "cannot write" in error_line(run_cli("notebooks", "run", "--only", "01", "--out", str(under / "nb")))
    assert "cannot write" in error_line(run_cli("notebooks", "sweep", "notebooks/params/sweep_example.yaml",
                                                "--out", str(under / "sweep")))
    write_oltr_tree(tmp_path / "data", [2, 1], held_out_per_class=1)
    assert "cannot write" in error_line(run_cli("data", "cache", "imagenet-lt", "--data-root", str(tmp_path / "data"),
                                                "--out", str(under / "cache")))
    done = tmp_path / "done"
    done.mkdir()
    (done / runner.MANIFEST_FILE).write_text(json.dumps({"profile": "x", "parameters": {}, "notebooks": [],
                                                          "run_dir": str(done / "run"), "seconds": {}}))
    (done / "report.md").mkdir()   # the report cannot be written there
    assert "cannot write" in error_line(run_cli("notebooks", "report", str(done)))


def _small_file_limit() -> None:
    """In the child: files may not grow past 256 KiB (a full disk, for the checkpoint), without SIGXFSZ."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_a_full_disk_during_overwrite_loses_nothing(one_epoch_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name, payload in run_files(one_epoch_run).items():
        (run / name).write_bytes(payload)
    before = run_files(run)
    result = run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--set", "epochs=2", "--out", str(run),
                     "--overwrite", "--no-progress", preexec_fn=_small_file_limit)
    line = error_line(result)
    assert "cannot write" in line and "last.pt" in line and "nothing already written there was changed" in line
    assert run_files(run) == before and sorted(p.name for p in run.iterdir()) == sorted(before)


# ---------------------------------------------------------------------------------------------------
# Resume and --overwrite
# ---------------------------------------------------------------------------------------------------

def _crashed_before_first_checkpoint(run: Path, config: train.Config) -> None:
    """What a run that crashed in its first epoch leaves: config.yaml only."""
    from nbn_tutorial.train.data_paths import resolve_run_paths

    run.mkdir(parents=True, exist_ok=True)
    train.save_config(train.resolve_dataset_defaults(resolve_run_paths(config)), run / "config.yaml")


def test_a_run_that_crashed_before_its_first_checkpoint_restarts_with_or_without_resume(tmp_path, capsys):
    config = tiny_config("epochs=1")
    for resume in (False, True):
        run = tmp_path / f"resume={resume}"
        _crashed_before_first_checkpoint(run, config)
        train.train(config, run, resume=resume, progress=False)
        assert list(train.read_metrics(run).epoch) == [1] and (run / "last.pt").exists()
        assert "restarting the run" in capsys.readouterr().err
    other = tmp_path / "other"
    _crashed_before_first_checkpoint(other, tiny_config("epochs=1", "lr=0.2"))
    for resume in (False, True):
        with pytest.raises(UserError, match=r"another config \(lr: 0.2 -> 0.05\).*--overwrite"):
            train.train(config, other, resume=resume, progress=False)
    train.train(config, other, overwrite=True, progress=False)
    with pytest.raises(UserError, match="holds no run"):
        train.train(config, tmp_path / "empty", resume=True, progress=False)


def test_a_larger_epochs_extends_a_finished_run(tmp_path, capsys):
    # constant lr after a 1-epoch warmup: extending 1 -> 2 epochs must equal training 2 epochs straight
    straight = train.train(tiny_config("epochs=2"), tmp_path / "straight", progress=False)
    run = train.train(tiny_config("epochs=1"), tmp_path / "extended", progress=False)
    train.train(tiny_config("epochs=2"), run, resume=True, progress=False)
    assert rows_without_time(run) == rows_without_time(straight)
    assert "epochs 1 -> 2" in capsys.readouterr().err
    assert train.load_config(run / "config.yaml").epochs == 2
    with pytest.raises(UserError, match="has trained 2 epochs, so resuming it needs epochs >= 2"):
        train.train(tiny_config("epochs=1"), run, resume=True, progress=False)


def test_run_environment_keys_never_block_a_resume(tmp_path):
    run = train.train(tiny_config("epochs=2", "stop_after_epochs=1", "device=cpu", "num_workers=1"), tmp_path / "r",
                      progress=False)
    moved = tiny_config("epochs=2", "device=auto", "num_workers=0", f"data_root={tmp_path}", "cpu_threads=2",
                        f"list_dir={tmp_path}", "skip_bad_images=true", "max_loss=null")
    train.train(moved, run, resume=True, progress=False)
    assert list(train.read_metrics(run).epoch) == [1, 2]


def test_overwrite_keeps_the_previous_run_until_the_new_one_has_a_checkpoint(tmp_path, capsys):
    run = train.train(tiny_config("epochs=1", "select_best_on=test"), tmp_path / "run", progress=False)
    before = run_files(run)
    assert {"best.pt", "last.pt"} <= set(before)
    with pytest.raises(UserError) as caught:   # stops at the first batch: no checkpoint of the new run
        train.train(tiny_config("epochs=1", "max_loss=0.5"), run, overwrite=True, progress=False)
    assert f"the previous run in {run} is kept unchanged" in str(caught.value)
    assert run_files(run) == before and not (run / train.run_dir.STAGING_DIR).exists()
    train.train(tiny_config("epochs=2", "val_per_class=0"), run, overwrite=True, progress=False)
    assert "replaced the previous run" in capsys.readouterr().err
    assert list(train.read_metrics(run).epoch) == [1, 2] and not (run / "best.pt").exists()
    assert not (run / train.run_dir.STAGING_DIR).exists()


# ---------------------------------------------------------------------------------------------------
# The smaller items
# ---------------------------------------------------------------------------------------------------

def test_yaml_syntax_errors_give_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlr: [0.1\nseed: 0\n")
    for args in (["train", "--config", str(bad)], ["notebooks", "run", "-f", str(bad), "--out", str(tmp_path / "o")],
                 ["notebooks", "sweep", str(bad)]):
        line = error_line(run_cli(*args))
        assert "is not valid YAML (line " in line and ", column " in line, line


def test_folders_and_empty_files_are_named_as_such(one_epoch_run, tmp_path):
    assert "is a folder" in error_line(run_cli("train", "--config", str(tmp_path)))
    line = error_line(run_cli("evaluate", "--checkpoint", str(one_epoch_run)))
    assert "is a folder" in line and str(one_epoch_run / "last.pt") in line
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n")
    assert "is empty" in error_line(run_cli("train", "--config", str(empty)))


def test_a_warmup_longer_than_the_run_is_mentioned_and_the_final_line_always_printed(tmp_path):
    result = run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--set", "epochs=1", "--set",
                     "warmup_epochs=4", "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "warmup_epochs=4 is longer than the run (1 epochs)" in result.stderr
    assert "last: epoch 1: overall " in result.stderr + result.stdout   # --no-progress hides bars, not the result


@pytest.fixture
def two_notebooks(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_first.ipynb", "size = 2\nrun_dir = 'runs/x'", "print(size)")
    write_notebook(folder / "02_second.ipynb", "fail = False\nrun_dir = 'runs/x'",
                   "if fail:\n    raise ValueError('stopped on purpose')")
    return folder


def _params(tmp_path: Path, **values) -> Path:
    path = tmp_path / f"p{len(list(tmp_path.glob('p*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_rerunning_one_notebook_merges_into_the_manifest(two_notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    params = _params(tmp_path, size=3)
    runner.run_sequence(params_file=params, out_dir=out, notebook_dir=two_notebooks, progress=False)
    runner.run_sequence(params_file=params, out_dir=out, only=["01"], notebook_dir=two_notebooks, progress=False)
    manifest = json.loads((out / runner.MANIFEST_FILE).read_text())
    assert manifest["notebooks"] == ["01_first.ipynb", "02_second.ipynb"]
    assert set(manifest["seconds"]) == {"01_first.ipynb", "02_second.ipynb"}
    assert "02_second.ipynb" in runner.build_report(out).read_text()
    other = _params(tmp_path, size=4)
    with pytest.raises(UserError, match=r"other parameters \(size: 3 -> 4\).*--overwrite"):   # never mixed into it
        runner.run_sequence(params_file=other, out_dir=out, only=["01"], notebook_dir=two_notebooks, progress=False)
    assert json.loads((out / runner.MANIFEST_FILE).read_text())["parameters"] == {"size": 3}
    runner.run_sequence(params_file=other, out_dir=out, only=["01"], notebook_dir=two_notebooks, progress=False,
                        overwrite=True)   # a fresh sequence: the earlier notebooks and report no longer belong to it
    assert json.loads((out / runner.MANIFEST_FILE).read_text())["notebooks"] == ["01_first.ipynb"]
    assert not (out / "02_second.ipynb").exists() and "size=4" in (out / "report.md").read_text()
    assert "overwrite: removed the previous sequence" in capsys.readouterr().err


def test_report_of_a_failed_sequence_exits_2_with_one_sentence(two_notebooks, tmp_path):
    out = tmp_path / "out"
    params = _params(tmp_path, fail=True)
    with pytest.raises(UserError, match="02_second.ipynb failed in cell"):
        runner.run_sequence(params_file=params, out_dir=out, notebook_dir=two_notebooks, progress=False)
    line = error_line(run_cli("notebooks", "report", str(out)))
    assert "02_second.ipynb failed" in line and "--only 02" in line and not (out / "report.md").exists()
    write_notebook(two_notebooks / "02_second.ipynb", "fail = False\nrun_dir = 'runs/x'", "print('fixed')")
    runner.run_sequence(params_file=_params(tmp_path, fail=True), out_dir=out, only=["02"],
                        notebook_dir=two_notebooks, progress=False)
    assert run_cli("notebooks", "report", str(out)).returncode == 0


def test_a_sweep_validates_the_configs_of_every_set_before_running_any(tmp_path):
    sweep = tmp_path / "sweep_bad.yaml"
    sweep.write_text(yaml.safe_dump({"profile": "quick", "grid": {"imbalance_factor": [10.0, 0.5]}, "only": ["02"]}))
    with pytest.raises(UserError) as caught:
        runner.run_sweep(sweep, tmp_path / "out", progress=False)
    message = str(caught.value)
    assert message.startswith("sweep set imbalance_factor=0.5: 02_baseline_bn.ipynb would train an invalid config")
    assert "imbalance_factor" in message and not (tmp_path / "out").exists()
    sweep.write_text(yaml.safe_dump({"profile": "quick", "grid": {"configs": [["quick_digits_bn"], ["nope"]]},
                                     "only": ["05"]}))
    with pytest.raises(UserError, match="configs=.*nope.*05_full_runs.ipynb would train an invalid config"):
        runner.run_sweep(sweep, tmp_path / "out", progress=False)


def test_notebooks_run_checks_the_implied_configs_before_the_first_notebook(tmp_path):
    line = error_line(run_cli("notebooks", "run", "-f", str(_params(tmp_path, epochs=0)), "--out",
                              str(tmp_path / "out"), "--only", "01,02"))
    assert "02_baseline_bn.ipynb would train an invalid config" in line and "epochs must be at least 1" in line
    assert not list((tmp_path / "out").glob("*.ipynb"))
