"""The run directory: its default name, its files, and the checks before a run starts, resumes or replaces one.

A run directory holds::

    config.yaml     the resolved config
    metrics.jsonl   one JSON row per evaluated epoch (the source of truth; metrics.csv mirrors it)
    metrics.csv     the same rows; per_class_acc and alpha as JSON strings
    nbn_dynamics.jsonl  NBN runs: α and the γ/β norms of every NBN layer after every epoch
    last.pt         the state at the end of the last saved epoch (resume from here)
    best.pt         the state at the epoch with the best ``checkpoint_metric`` on the selection split
                    (a val split; none when the dataset has no val split, see ``select_best_on``)

It is never overwritten without asking, and a run is resumed only with a config that computes the same.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import read_yaml_mapping
from nbn_tutorial.train.checkpoints import checkpoint_config, read_checkpoint
from nbn_tutorial.train.config import RUN_CONTROL_FIELDS, Config, config_to_dict
from nbn_tutorial.train.config_io import config_from_dict
from nbn_tutorial.train.metric_files import read_metric_rows

RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "nbn_dynamics.jsonl", "last.pt", "best.pt")


def default_run_dir(config: Config) -> Path:
    """runs/<dataset>_<model>_<norm>[_<head>]_<loss>_seed<seed>, relative to the working directory."""
    parts = [config.dataset, config.model, config.norm]
    if config.head != "linear":
        parts.append(config.head)
    parts += [config.loss, f"seed{config.seed}"]
    return Path("runs") / "_".join(parts)


def resolve_dataset_defaults(config: Config) -> Config:
    """``config`` with imbalance_factor and profile filled in from the dataset's defaults."""
    from nbn_tutorial import data

    spec = data.DATASETS[config.dataset]
    return dataclasses.replace(
        config,
        imbalance_factor=spec.default_imbalance_factor if config.imbalance_factor is None else config.imbalance_factor,
        profile=spec.default_profile if config.profile is None else config.profile)


def protocol_differences(stored: Config, current: Config) -> list[str]:
    """``key: stored -> current`` for every field that changes what a run computes."""
    old, new = config_to_dict(resolve_dataset_defaults(stored)), config_to_dict(resolve_dataset_defaults(current))
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in old
            if key not in RUN_CONTROL_FIELDS and old[key] != new[key]]


def existing_run_files(run_dir: Path) -> list[str]:
    """The run files (:data:`RUN_FILES`) present in ``run_dir``."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def stored_config(run_dir: Path) -> Config | None:
    """The config of the run in ``run_dir``: from last.pt, else config.yaml (a run without a checkpoint yet)."""
    if (run_dir / "last.pt").exists():
        return checkpoint_config(read_checkpoint(run_dir / "last.pt"), run_dir / "last.pt")
    if (run_dir / "config.yaml").exists():
        path = run_dir / "config.yaml"
        return config_from_dict(read_yaml_mapping(path, "config file"), f"{path}")
    return None


def _resume_state(run_dir: Path, config: Config) -> dict:
    """The last.pt state to resume ``config`` from; UserError if missing or of a different config."""
    last = run_dir / "last.pt"
    if not last.exists():
        raise UserError(f"cannot resume: {str(run_dir)!r} has no last.pt; train it without --resume")
    state = read_checkpoint(last)
    differences = protocol_differences(checkpoint_config(state, last), config)
    if differences:
        raise UserError(f"cannot resume {str(run_dir)!r} with a different config ({'; '.join(differences)}); "
                        "resume with the run's own config.yaml or start a new run with another --out")
    return state


def check_run_dir(run_dir: Path, config: Config, resume: bool, overwrite: bool) -> dict | None:
    """Read-only checks of the run directory; returns the checkpoint to resume from, if resuming."""
    if resume and overwrite:
        raise UserError("choose either --resume (continue the run) or --overwrite (replace it), not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} is a file; choose another --out")
    if resume:
        return _resume_state(run_dir, config)
    existing = existing_run_files(run_dir)
    if existing and not overwrite:
        raise UserError(f"{str(run_dir)!r} already holds a run ({', '.join(existing)}); continue it with --resume, "
                        "replace it with --overwrite, or choose another --out")
    return None


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's files (only those), saying what was replaced."""
    existing = existing_run_files(run_dir)
    if not existing:
        return
    rows = read_metric_rows(run_dir)
    what = f"{len(rows)} evaluated epoch{'s' if len(rows) != 1 else ''}" if rows else "no evaluated epoch"
    for name in existing:
        (run_dir / name).unlink()
    print(f"overwrite: replaced the previous run in {run_dir} ({what}; removed {', '.join(existing)})",
          file=sys.stderr)
