"""Distributed training as a user launches it: torchrun, 2 CPU processes, gloo, digits-lt, through the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nbn_tutorial import train

pytestmark = pytest.mark.alone   # torchrun with two processes

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    result = run("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "nbn_tutorial", "train",
                 "--config", "configs/quick_digits_nbn.yaml", "--set", "epochs=2", "--set", "device=cpu",
                 "--set", "compile=off", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return out


def test_torchrun_writes_one_run_directory_from_rank_zero(ddp_run):
    # digits-lt has a val split, so best.pt is selected on it (select_best_on=auto); no image was skipped
    assert sorted(os.listdir(ddp_run)) == sorted(set(train.RUN_FILES) - {"skipped_images.txt"})
    rows = train.read_metrics(ddp_run)
    assert list(rows.epoch) == [1, 2]
    for key in ("train_acc", "test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc"):
        assert rows[key].between(0, 1).all(), key
    state = torch.load(ddp_run / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 2
    assert not any(key.startswith("module.") for key in state["model"])


def test_sharded_evaluation_equals_a_single_process_evaluation(ddp_run):
    logged = train.read_metrics(ddp_run).iloc[-1]
    metrics = train.evaluate_checkpoint(ddp_run / "last.pt", device="cpu")
    for key in ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc", "per_class_acc", "alpha"):
        assert metrics[key] == logged[key], key


def test_the_cli_evaluates_the_distributed_checkpoint(ddp_run):
    result = run("-m", "nbn_tutorial", "evaluate", "--checkpoint", str(ddp_run / "last.pt"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "overall" in result.stdout and "balanced" in result.stdout and "few" in result.stdout
