"""The package as course staff install it: a normal (non-editable) wheel, used outside the source tree.

The wheel is built from a copy of the source files (building in place would write build/ and
*.egg-info into the checkout), installed without dependencies into a temporary target, and run from
an unrelated working directory with that target first on PYTHONPATH.
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SOURCE_FOLDERS = ("nbn_tutorial", "configs", "notebooks", "studies", "data")


def _copy_sources(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "_bundled", "*.egg-info", ".ipynb_checkpoints", "*.pyc")
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, target / name)
    for name in SOURCE_FOLDERS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=ignore)
    return target


def _run(command: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(wheel path, environment whose PYTHONPATH starts with the wheel's install target)."""
    base = tmp_path_factory.mktemp("wheel")
    (base / "src").mkdir()
    source = _copy_sources(base / "src")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(base / "dist"), str(source)], cwd=base, env=dict(os.environ))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next((base / "dist").glob("nbn_tutorial-*.whl"))
    installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(base / "site"),
                      str(wheel)], cwd=base, env=dict(os.environ))
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(base / "site"), os.environ.get("PYTHONPATH", "")]),
           "NBN_DATA": str(base / "no-data")}
    return wheel, env, base


def test_the_wheel_carries_presets_profiles_and_notebooks(wheel_env):
    wheel, _, _ = wheel_env
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = "nbn_tutorial/_bundled/"
    for preset in (ROOT / "configs").glob("*.yaml"):
        assert f"{bundled}configs/{preset.name}" in names
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"{bundled}notebooks/{notebook.name}" in names
    for profile in (ROOT / "notebooks" / "params").glob("*.yaml"):
        assert f"{bundled}notebooks/params/{profile.name}" in names


def test_the_installed_package_is_the_wheel_not_the_checkout(wheel_env):
    _, env, base = wheel_env
    result = _run([sys.executable, "-c", "import nbn_tutorial, nbn_tutorial.paths as p; "
                   "print(nbn_tutorial.__file__); print(p.source_root()); print(p.PRESET_DIR)"], base, env)
    assert result.returncode == 0, result.stderr
    module, root, presets = result.stdout.split("\n")[:3]
    assert module.startswith(str(base / "site")) and root == "None"
    assert presets.startswith(str(base / "site"))


def test_train_a_preset_from_an_unrelated_directory(wheel_env, tmp_path):
    _, env, _ = wheel_env
    result = _run([sys.executable, "-m", "nbn_tutorial", "train", "--config", "quick_digits_bn", "--set", "epochs=1",
                   "--no-progress"], tmp_path, env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    runs = list((tmp_path / "runs").glob("*/last.pt"))
    assert len(runs) == 1, "the run directory counts from the current directory"


def test_run_notebook_01_from_an_unrelated_directory(wheel_env, tmp_path):
    _, env, _ = wheel_env
    result = _run([sys.executable, "-m", "nbn_tutorial", "notebooks", "run", "--only", "01"], tmp_path, env, 900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "runs" / "quick" / "01_long_tailed_data.ipynb").is_file()


def test_a_copied_workspace_uses_its_own_edited_presets(wheel_env, tmp_path):
    _, env, _ = wheel_env
    workspace = tmp_path / "course"
    copied = _run([sys.executable, "-m", "nbn_tutorial", "notebooks", "copy", str(workspace)], tmp_path, env)
    assert copied.returncode == 0, copied.stderr
    for folder in ("configs", "notebooks", "notebooks/params"):
        assert any((workspace / folder).iterdir()), folder
    preset = workspace / "configs" / "quick_digits_bn.yaml"
    settings = yaml.safe_load(preset.read_text())
    settings["batch_size"] = 64
    preset.write_text(yaml.safe_dump(settings))
    (workspace / "notebooks").joinpath("scratch").mkdir()
    result = _run([sys.executable, "-m", "nbn_tutorial", "train", "--config", "quick_digits_bn", "--set", "epochs=1",
                   "--no-progress", "--out", "runs/edited"], workspace / "notebooks" / "scratch", env)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = yaml.safe_load((workspace / "notebooks" / "scratch" / "runs" / "edited" / "config.yaml").read_text())
    assert stored["batch_size"] == 64
    again = _run([sys.executable, "-m", "nbn_tutorial", "notebooks", "copy", str(workspace)], tmp_path, env)
    assert again.returncode == 2 and "quick_digits_bn.yaml" in again.stderr and "Traceback" not in again.stderr
    assert yaml.safe_load(preset.read_text())["batch_size"] == 64, "an edited file is never overwritten"
