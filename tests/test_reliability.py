"""Reliability (issue 19): one writer per run folder, nothing left behind, and a sentence instead of a traceback.

Every case runs the real command or function on tiny digits-lt runs (about a second per epoch); the lock
tests start real second processes.
"""
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from cli_tools import cli_options, error_line, run_cli
from tiny_runs import TINY_ARGS, tiny_config

from nbn_tutorial import study, train
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import write_error
from nbn_tutorial.train.lock import LOCK_FILE
from nbn_tutorial.wording import plural

ROOT = Path(__file__).resolve().parents[1]
HOLD_LOCK = ("import sys, time\nfrom nbn_tutorial.train.lock import folder_lock\n"
             "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.fixture
def finished_run(tiny_bn_run) -> Path:
    """A finished 1-epoch BN run (the session's; tests copy it before changing anything)."""
    return tiny_bn_run


def copy_run(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until ``path`` exists (the process must still be running)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """kill -9 a process this test started, and reap it."""
    if process.poll() is None:
        process.kill()
    process.communicate()


def hold_lock(folder: Path) -> subprocess.Popen:
    """A second real process holding ``folder``'s lock until it is stopped."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


# ---------------------------------------------------------------------------------------------------
# One writer per run folder
# ---------------------------------------------------------------------------------------------------

def test_a_second_training_into_a_busy_run_folder_is_refused_and_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "nbn_tutorial", "train", "--config", "quick_digits_bn", *TINY_ARGS,
                              "--set", "epochs=500", "--out", str(run), "--no-progress"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run / "last.pt", first)
        for preset in ("quick_digits_bn", "quick_digits_nbn"):   # the same config, and another one
            line = error_line(run_cli("train", "--config", preset, *TINY_ARGS, "--set", "epochs=500", "--out",
                                      str(run), "--no-progress"))
            assert f"run folder {run} is in use: process {first.pid} is writing there" in line
        line = error_line(run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--set", "epochs=500",
                                  "--out", str(run), "--resume", "--no-progress"))
        assert f"process {first.pid}" in line
        assert yaml.safe_load((run / "config.yaml").read_text())["norm"] == "bn"
    finally:
        stop(first)   # kill -9: the lock file stays, the kernel's lock does not
    epochs = list(train.read_metrics(run).epoch)
    assert epochs == list(range(1, len(epochs) + 1))   # one writer: never 1, 1, 2, 2
    assert (run / LOCK_FILE).read_text().strip() == str(first.pid)
    (run / ".last.pt.ab12cd34.tmp").write_bytes(b"half a checkpoint")   # a write the kill interrupted
    resumed = run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--set", "epochs=500", "--set",
                      "stop_after_epochs=1", "--out", str(run), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the lock of {run} from process {first.pid}" in resumed.stderr
    assert "removed 1 temporary file that an interrupted write left" in resumed.stderr
    assert "nothing to resume (stop_after_epochs=1 is reached" in resumed.stderr   # said even with --no-progress
    assert sorted(path.name for path in run.iterdir() if path.name.startswith(".")) == []


def test_study_runs_and_notebook_sequences_refuse_a_folder_another_process_holds(tmp_path):
    study_file = tmp_path / "s.yaml"
    study_file.write_text(yaml.safe_dump({"description": "tiny", "baseline": "bn", "arms": {"bn": {"norm": "bn"}},
                                          "datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 1}}}))
    for args, what in ((["study", "run", str(study_file)], "study folder"),
                       (["notebooks", "run", "--only", "01"], "notebook output folder")):
        out = tmp_path / what.replace(" ", "_")
        holder = hold_lock(out)
        try:
            line = error_line(run_cli(*args, "--out", str(out)))
        finally:
            stop(holder)
        assert f"{what} {out} is in use: process {holder.pid} is writing there" in line
        assert sorted(path.name for path in out.iterdir()) == [LOCK_FILE]   # the second writer wrote nothing


def test_a_refused_or_failed_start_leaves_no_folder_behind(tmp_path):
    missing_data = run_cli("train", "--config", "imagefolder-lt_resnet32_bn", "--data-root", str(tmp_path / "nowhere"),
                           "--out", str(tmp_path / "new" / "deep" / "run"))
    assert "not found" in error_line(missing_data) and not (tmp_path / "new").exists()
    with pytest.raises(UserError, match="exceeded max_loss=0.5"):   # stops in its first batch
        train.train(tiny_config("epochs=1", "max_loss=0.5"), tmp_path / "fresh", progress=False)
    assert not (tmp_path / "fresh").exists()   # not even a config.yaml without a checkpoint
    bad_study = tmp_path / "bad.yaml"
    bad_study.write_text(yaml.safe_dump({"description": "x", "baseline": "bn", "arms": {"bn": {"norm": "bn"}},
                                         "datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 1,
                                                                    "set": {"epoch": 2}}}}))
    assert "epoch" in error_line(run_cli("study", "run", str(bad_study), "--out", str(tmp_path / "study_out")))
    assert not (tmp_path / "study_out").exists()


def test_a_failed_study_run_keeps_only_its_recorded_failure(tmp_path):
    study_file = tmp_path / "s.yaml"
    study_file.write_text(yaml.safe_dump({
        "description": "one diverging arm", "baseline": "bn", "arms": {"bn": {"norm": "bn", "max_loss": 0.5}},
        "datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 1, "set": {"epochs": 1}}}}))
    out = study.run_study(study_file, tmp_path / "out", progress=False)
    assert sorted(path.name for path in (out / "digits-lt" / "bn" / "seed0").iterdir()) == ["study_row.json"]


# ---------------------------------------------------------------------------------------------------
# Resume: damaged checkpoints, metric files and configs
# ---------------------------------------------------------------------------------------------------

def test_resume_and_init_from_refuse_a_checkpoint_holding_nan_with_advice_that_fits(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    state = torch.load(run / "last.pt", weights_only=True)
    state["model"]["backbone.layer1.0.bn1.running_var"][0] = float("nan")
    torch.save(state, run / "last.pt")
    with pytest.raises(UserError, match=r"holds nan or inf.*cannot be resumed: replace the run with --overwrite"):
        train.train(tiny_config("epochs=2"), run, resume=True, progress=False)
    assert list(train.read_metrics(run).epoch) == [1]   # nothing trained on top of it
    with pytest.raises(UserError) as caught:
        train.train(tiny_config("epochs=1", f"init_from={run / 'last.pt'}"), tmp_path / "stage2", progress=False)
    assert "point init_from at another checkpoint" in str(caught.value) and "learning rate" not in str(caught.value)


def test_a_damaged_metrics_line_is_one_sentence_and_a_torn_last_line_is_dropped(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    train.train(tiny_config("epochs=2"), run, resume=True, progress=False)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(f"{lines[0]}\n{{\"epoch\": 2, \"lr\n{lines[1]}\n")
    resume = ["train", "--config", str(finished_run / "config.yaml"), "--set", "epochs=3", "--out", str(run),
              "--resume", "--no-progress"]
    line = error_line(run_cli(*resume))
    assert f"{run / 'metrics.jsonl'}, line 2, is not a JSON object row" in line
    (run / "metrics.jsonl").write_text(f"{lines[0]}\n{lines[1]}\n{{\"epoch\": 3, \"lr\": 0.0")   # an append cut short
    resumed = run_cli(*resume)
    assert resumed.returncode == 0, resumed.stderr
    assert "dropped the damaged last line" in resumed.stderr and list(train.read_metrics(run).epoch) == [1, 2, 3]


def test_a_damaged_config_yaml_is_named_when_resuming_and_rewritten(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    (run / "config.yaml").write_text("epochs: [1\n")
    resumed = run_cli("train", "--config", str(finished_run / "config.yaml"), "--set", "epochs=2", "--out", str(run),
                      "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{run / 'config.yaml'} cannot be read" in resumed.stderr
    assert "rewritten from the checkpoint" in resumed.stderr
    assert train.load_config(run / "config.yaml").epochs == 2


def test_a_truncated_checkpoint_is_described_in_our_own_words(finished_run, tmp_path):
    damaged = tmp_path / "last.pt"
    damaged.write_bytes((finished_run / "last.pt").read_bytes()[:5000])
    line = error_line(run_cli("evaluate", "--checkpoint", str(damaged), "--device", "cpu"))
    assert "(the file is cut short or damaged, or torch.save did not write it)" in line and "Errno" not in line


# ---------------------------------------------------------------------------------------------------
# Advice names options that exist where the user is; bad values are refused
# ---------------------------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_evaluate_on_cuda_without_a_gpu_names_the_evaluate_flag(finished_run):
    line = error_line(run_cli("evaluate", "--checkpoint", str(finished_run / "last.pt"), "--device", "cuda"))
    assert "use --device cpu or --device auto" in line and "device=cpu" not in line


def test_a_negative_tau_is_refused(finished_run):
    line = error_line(run_cli("evaluate", "--checkpoint", str(finished_run / "last.pt"), "--tau-norm", "-1"))
    assert "--tau-norm takes 'auto' or a number >= 0" in line


def test_an_unknown_preset_gets_the_closest_name_not_all_of_them():
    line = error_line(run_cli("train", "--config", "quick_digit_bn"))
    assert "did you mean the preset 'quick_digits_bn'?" in line and "cifar100-lt" not in line


def test_help_texts_name_study_and_only_the_options_a_command_has():
    assert "study" in run_cli("--help").stdout.split("positional arguments")[0]
    sweep_help = run_cli("notebooks", "sweep", "--help").stdout
    assert "--profile" not in sweep_help and "-f and -p apply in the order given" in sweep_help


def test_the_options_new_advice_names_exist_where_it_is_given():
    from nbn_tutorial.notebooks.runner import FRESH_HINT
    from nbn_tutorial.train.identity import EVALUATE_OVERRIDE, RESUME_REMEDY

    options = cli_options()
    advice = {"notebooks run": FRESH_HINT, "evaluate": EVALUATE_OVERRIDE, "train": RESUME_REMEDY}
    for command, text in advice.items():
        flags = {word.strip("`(),;:.") for word in text.split() if word.startswith(("--", "`--"))}
        assert flags and flags <= options[command], (command, text)
    assert {"--allow-incomplete", "--readme"} <= options["study report"]


def test_write_errors_say_what_to_do_for_each_cause(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    line = error_line(run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--out", str(blocker / "run")))
    assert "lies under the file" in line
    under_file = write_error(blocker / "x", OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))
    read_only = write_error(tmp_path / "x", OSError(errno.EROFS, os.strerror(errno.EROFS)))
    full = write_error(tmp_path / "x", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert "part of that path is a file" in str(under_file) and "disk space" not in str(under_file)
    assert "choose a writable location" in str(read_only) and "disk space" not in str(read_only)
    assert "free some disk space" in str(full)


def test_counted_nouns_agree_with_their_count(tmp_path):
    assert plural(1, "image") == "1 image" and plural(2, "process", "processes") == "2 processes"
    copied = run_cli("notebooks", "copy", str(tmp_path / "ws"))
    assert copied.returncode == 0 and " files" in copied.stdout
    again = run_cli("notebooks", "copy", str(tmp_path / "ws"))
    assert "wrote 0 files" in again.stdout


def test_an_argument_that_is_not_utf8_is_refused_before_anything_is_written(tmp_path):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xff")
    line = error_line(run_cli("train", "--config", "quick_digits_bn", *TINY_ARGS, "--out", out))
    assert "is not valid UTF-8 text" in line and "\\xff" in line
    assert sorted(os.listdir(tmp_path)) == []
