"""Training progress as people see it: text bars in a terminal, one compact output per training call in
executed notebooks (never a stderr block there), and the mode chosen from the environment.

The widget bars of JupyterLab are checked in a real browser by tests/test_browser.py.
"""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError
from nbn_tutorial.train import progress

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ONE_EPOCH = ["train", "--config", "quick_digits_bn", "--set", "epochs=2", "--set", "device=cpu"]


def outputs_of(path: Path) -> list:
    return [output for cell in nbformat.read(str(path), as_version=4).cells for output in cell.get("outputs", [])]


def progress_outputs(outputs) -> list[str]:
    """The texts of the compact progress outputs (display_data whose text starts with the training header)."""
    texts = [output.get("data", {}).get("text/plain", "") for output in outputs if output.output_type == "display_data"]
    return [text for text in texts if text.startswith("training ")]


def stderr_outputs(outputs) -> list:
    return [output for output in outputs if output.output_type == "stream" and output.name == "stderr"]


def test_mode_outside_a_kernel_is_text_bars_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    assert progress.progress_mode() == "text"
    for mode in ("compact", "off", "text"):
        monkeypatch.setenv(progress.PROGRESS_ENV, mode)
        assert progress.progress_mode() == mode
    monkeypatch.setenv(progress.PROGRESS_ENV, "widget")   # widgets need a notebook frontend
    assert progress.progress_mode() == "compact"
    monkeypatch.setenv(progress.PROGRESS_ENV, "bars")
    with pytest.raises(UserError, match="unknown progress mode .*'bars'.*valid: widget, text, compact, off"):
        progress.progress_mode()


def test_the_notebook_runner_asks_its_kernels_for_compact_progress():
    assert runner.KERNEL_ENV[progress.PROGRESS_ENV] == "compact"


def _train(tmp_path: Path, env_mode: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != progress.PROGRESS_ENV}
    if env_mode is not None:
        env[progress.PROGRESS_ENV] = env_mode
    return subprocess.run([sys.executable, "-m", "nbn_tutorial", *TRAIN_ONE_EPOCH, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_a_terminal_gets_nested_text_bars_on_stderr(tmp_path):
    result = _train(tmp_path, None)
    assert result.returncode == 0, result.stderr
    assert "training: 100%" in result.stderr and "2/2" in result.stderr       # the epoch bar, finished
    assert "epoch 2:" in result.stderr                                        # the batch bar of the last epoch
    assert "training digits-lt resnet32 bn ce ->" in result.stderr            # the header stays on stderr
    assert "run directory:" in result.stdout


def test_compact_mode_in_a_terminal_prints_lines_not_bars(tmp_path):
    result = _train(tmp_path, "compact")
    assert result.returncode == 0, result.stderr
    assert "trained 2/2 epochs in" in result.stderr and "acc 0." in result.stderr
    assert "%|" not in result.stderr and "\r" not in result.stderr


TRAINING_CELLS = [   # {root}: the test's tmp_path (the runner's kernels start in the current directory)
    "import nbn_tutorial as nbt\n"
    "bn = nbt.notebooks.run_config('quick_digits_bn', epochs=2, warmup_epochs=1, device='cpu')\n"
    "nbn = nbt.notebooks.run_config('quick_digits_nbn', epochs=2, warmup_epochs=1, device='cpu')",
    "bn_run = nbt.train.load_or_train(bn, r'{root}/runs/bn')",
    "nbn_run = nbt.train.load_or_train(nbn, r'{root}/runs/nbn')",
    "again = nbt.train.load_or_train(bn, r'{root}/runs/bn')",   # finished: no training, so no progress output
]


def _training_notebook(path: Path) -> Path:
    cells = [source.replace("{root}", str(path.parent)) for source in TRAINING_CELLS]
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(path))
    return path


def _check_executed(executed: Path) -> None:
    outputs = outputs_of(executed)
    assert stderr_outputs(outputs) == [], [output.text for output in stderr_outputs(outputs)]
    shown = progress_outputs(outputs)
    assert len(shown) == 2, shown                         # one per training call, none for the reused run
    assert all("\ntrained 2/2 epochs in" in text and text.count("\n") == 1 for text in shown), shown
    streams = [output.text for output in outputs if output.output_type == "stream"]
    assert not any("%|" in text or "\r" in text for text in streams), streams   # no tqdm bar text anywhere
    assert sum("last: epoch 2:" in text for text in streams) == 2, streams     # the final accuracy lines


def test_runner_executed_notebook_holds_one_progress_output_per_training_call(tmp_path):
    executed = runner.run_notebook(_training_notebook(tmp_path / "train.ipynb"), tmp_path / "out" / "train.ipynb",
                                   progress=False)
    _check_executed(executed)


def test_plain_papermill_executed_notebook_gets_compact_progress_too(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in (progress.PROGRESS_ENV, "JPY_SESSION_NAME", "TQDM_MININTERVAL")}
    executed = tmp_path / "executed.ipynb"
    result = subprocess.run([sys.executable, "-m", "papermill", str(_training_notebook(tmp_path / "train.ipynb")),
                             str(executed), "--cwd", str(tmp_path)], capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_executed(executed)


def test_executed_baseline_notebook_has_no_stderr_output(tmp_path):
    """Notebook 02, the first one that trains, executed as `make demo` executes it (5 epochs here: with
    fewer the preset's 5 warmup epochs would add a note about the learning rate)."""
    executed = runner.run_notebook(ROOT / "notebooks" / "02_baseline_bn.ipynb", tmp_path / "02.ipynb",
                                   {"epochs": 5, "run_dir": str(tmp_path / "run")}, progress=False)
    outputs = outputs_of(executed)
    assert stderr_outputs(outputs) == [], [output.text for output in stderr_outputs(outputs)]
    assert len(progress_outputs(outputs)) == 1
