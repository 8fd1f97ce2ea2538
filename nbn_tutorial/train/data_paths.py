"""Where a run's data lives: run configs store absolute data roots, and a checkpoint whose data moved finds it again.

A run config records the data root (and list folder) it trained on as absolute paths, so a
checkpoint can be evaluated from any working directory. When the data has moved since, ``evaluate``
takes ``--data-root``/``--list-dir``; without them, a stored root that no longer exists falls back to
``$NBN_DATA``. These are run-environment settings: changing them never blocks a resume.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from nbn_tutorial.train.config import Config
from nbn_tutorial import data


def _absolute(path: str | os.PathLike) -> str:
    return str(Path(path).expanduser().resolve())


def resolve_run_paths(config: Config) -> Config:
    """``config`` with its data root ($NBN_DATA or ./data when null) and list folder as absolute paths."""
    list_dir = _absolute(config.list_dir) if config.list_dir not in (None, "") else None
    return dataclasses.replace(config, data_root=_absolute(data.resolve_data_root(config.data_root)), list_dir=list_dir)


def relocate_data(config: Config, data_root: str | os.PathLike | None = None,
                  list_dir: str | os.PathLike | None = None) -> Config:
    """The config of a stored run, pointed at its data now: ``data_root``/``list_dir`` when given, else the
    stored ones, except that a stored data root that no longer exists gives way to $NBN_DATA when set."""
    changes: dict = {}
    if data_root not in (None, ""):
        changes["data_root"] = _absolute(data_root)
    elif config.data_root and not Path(config.data_root).exists() and os.environ.get("NBN_DATA"):
        changes["data_root"] = _absolute(os.environ["NBN_DATA"])
        print(f"note: the stored data root {config.data_root} does not exist; using $NBN_DATA "
              f"({changes['data_root']})", file=sys.stderr)
    if list_dir not in (None, ""):
        changes["list_dir"] = _absolute(list_dir)
    return dataclasses.replace(config, **changes) if changes else config
