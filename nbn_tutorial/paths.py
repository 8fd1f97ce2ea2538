"""Where the project's own files live: a learner's workspace, the source checkout, or the wheel's copies.

Three layouts hold the presets (``configs/``), the notebooks with their profiles (``notebooks/``,
``notebooks/params/``) and the studies (``studies/``):

- a **workspace**: a folder written by ``nbn-tutorial notebooks copy DIR``, marked by the file
  :data:`WORKSPACE_MARKER`; it is used when the current directory is inside it, so a learner's edits win;
- the **source checkout** holding this package (``pyproject.toml`` next to it), as the README shows;
- the **bundled copy** a wheel carries under ``nbn_tutorial/_bundled/`` (see ``setup.py``).

Everything that reads these files asks this module, so all three layouts behave the same.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE_DIR = PACKAGE_DIR / "_bundled"
RESOURCE_FOLDERS = ("configs", "notebooks", "studies")
WORKSPACE_MARKER = "nbn-tutorial-workspace.txt"


def source_root() -> Path | None:
    """The source checkout that holds this package, or None when the package is installed from a wheel."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir() and (root / "notebooks").is_dir():
        return root
    return None


def workspace_root(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current directory) holding :data:`WORKSPACE_MARKER`."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / WORKSPACE_MARKER).is_file():
            return folder
    return None


def project_root() -> Path | None:
    """The folder relative paths count from: the workspace around the current directory, else the checkout."""
    return workspace_root() or source_root()


def resource_root() -> Path:
    """The folder holding ``configs/``, ``notebooks/`` and ``studies/``: workspace, checkout, else the bundled copy."""
    return project_root() or BUNDLE_DIR


PRESET_DIR = resource_root() / "configs"
NOTEBOOK_DIR = resource_root() / "notebooks"
PROFILE_DIR = NOTEBOOK_DIR / "params"
STUDY_DIR = resource_root() / "studies"


def project_path(path: str | os.PathLike) -> Path:
    """An absolute path; relative paths count from :func:`project_root` (workspace or checkout), or from the
    current directory when there is neither (an installed package used elsewhere).

    JupyterLab runs notebooks in ``notebooks/``, papermill in the current directory: anchoring relative
    paths at the checkout makes both find the same checkpoints and data.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return (project_root() or Path.cwd()) / path
