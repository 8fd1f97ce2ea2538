"""Where the project's own files live: the source checkout, or the copies an installed wheel carries.

A source checkout (``pyproject.toml``, ``configs/`` and ``notebooks/`` next to the package) keeps the
presets, notebook profiles and notebooks at the top level, as the README shows. A wheel carries the
same files as package data under ``nbn_tutorial/_bundled/`` (see ``setup.py``). Everything that reads
them asks this module, so both layouts behave the same.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_DIR = PACKAGE_DIR / "_bundled"
RESOURCE_FOLDERS = ("configs", "notebooks", "studies")


def source_root() -> Path | None:
    """The source checkout that holds this package, or None when the package is installed from a wheel."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir() and (root / "notebooks").is_dir():
        return root
    return None


def resource_root() -> Path:
    """The folder holding ``configs/``, ``notebooks/`` and ``studies/``: the checkout, else the bundled copy."""
    return source_root() or BUNDLE_DIR


PRESET_DIR = resource_root() / "configs"
NOTEBOOK_DIR = resource_root() / "notebooks"
PROFILE_DIR = NOTEBOOK_DIR / "params"
STUDY_DIR = resource_root() / "studies"


def project_path(path: str | os.PathLike) -> Path:
    """An absolute path; relative paths count from the source checkout, or from the current directory
    when the package is installed (there is no project root then).

    JupyterLab runs notebooks in ``notebooks/``, papermill in the current directory: anchoring relative
    paths at the checkout makes both find the same checkpoints and data.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (source_root() or Path.cwd()) / path
