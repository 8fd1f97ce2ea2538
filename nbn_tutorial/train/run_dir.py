"""The run directory: its default name, its files, and the checks before a run starts, resumes or replaces one.

A run directory holds the files listed, each with what it holds, in :data:`RUN_FILE_NOTES` (the one list;
:data:`RUN_FILES` is its names).

It is never overwritten without asking (and --overwrite keeps the previous run until the new one has
written its first checkpoint), and a run is resumed only with a config that computes the same (run-
environment fields such as device, data root and workers may differ; a larger ``epochs`` extends it).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

from nbn_tutorial import data
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import ensure_dir, read_yaml_mapping, write_error
from nbn_tutorial.train.checkpoints import read_checkpoint
from nbn_tutorial.train.config import RUN_CONTROL_FIELDS, Config, config_to_dict
from nbn_tutorial.train.config_io import checkpoint_config, config_from_dict
from nbn_tutorial.train.guards import check_finite_checkpoint
from nbn_tutorial.train.metric_files import read_metric_rows
from nbn_tutorial.train.schedule import learning_rate
from nbn_tutorial.wording import plural

RUN_FILE_NOTES = {   # every file a run directory may hold, and what it holds
    "config.yaml": "the resolved config",
    "metrics.jsonl": "one JSON row per evaluated epoch (the source of truth; metrics.csv mirrors it)",
    "metrics.csv": "the same rows; per_class_acc and alpha as JSON strings",
    "nbn_dynamics.jsonl": "NBN runs: α and the γ/β norms of every NBN layer after every epoch",
    "last.pt": "the state at the end of the last saved epoch (resume from here)",
    "best.pt": "the state at the epoch with the best checkpoint_metric on the selection split (a val split; none "
               "when the dataset has no val split, see select_best_on)",
    "skipped_images.txt": "skip_bad_images runs: the unreadable images left out",
}
RUN_FILES = tuple(RUN_FILE_NOTES)
STAGING_DIR = ".overwrite-new"   # where a run replacing another (--overwrite) writes until its first checkpoint


def default_run_dir(config: Config) -> Path:
    """runs/<dataset>_<model>_<norm>[_<head>]_<loss>[_<trainable>][_<sampler>]_seed<seed>, relative to the working
    directory (a stage-2 run names what it trains and its sampler, so it never lands in its stage-1 run)."""
    parts = [config.dataset, config.model, config.norm]
    if config.head != "linear":
        parts.append(config.head)
    parts.append(config.loss)
    parts += [value for value, default in ((config.trainable, "all"), (config.sampler, "instance")) if value != default]
    parts.append(f"seed{config.seed}")
    return Path("runs") / "_".join(parts)


def resolve_dataset_defaults(config: Config) -> Config:
    """``config`` with imbalance_factor and profile filled in from the dataset's defaults."""
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


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint (last.pt or best.pt)."""
    return any((run_dir / name).exists() for name in ("last.pt", "best.pt"))


def _epochs_change(run_dir: Path, state: dict, stored: Config, config: Config) -> None:
    """Allow resuming with another ``epochs`` (extending a finished run) when it is not below the epochs done."""
    done = state["epoch"]
    if config.epochs < done:
        raise UserError(f"{str(run_dir)!r} has trained {done} epochs, so resuming it needs epochs >= {done}, "
                        f"got {config.epochs}")
    if config.epochs > done:
        print(f"note: resuming {run_dir} with epochs {stored.epochs} -> {config.epochs}: the learning-rate schedule "
              f"now spans {config.epochs} epochs (epoch {done + 1} trains at lr {learning_rate(config, done):.4g}; "
              f"the {stored.epochs}-epoch schedule ended at {learning_rate(stored, stored.epochs - 1):.4g})",
              file=sys.stderr)


def _note_config_file(run_dir: Path, stored: Config) -> None:
    """Say so when a resumed run's config.yaml is damaged or disagrees with its checkpoint (it is rewritten)."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return
    try:
        written = config_from_dict(read_yaml_mapping(path, "config file"), str(path))
    except UserError as error:
        problem = f"cannot be read ({error})"
    else:
        differences = protocol_differences(written, stored)
        problem = f"disagrees with last.pt ({'; '.join(differences)})" if differences else ""
    if problem:
        print(f"note: {path} {problem}; it is rewritten from the checkpoint, which the run continues from",
              file=sys.stderr)


def _resume_state(run_dir: Path, config: Config) -> dict:
    """The last.pt state to resume ``config`` from; UserError if missing, non-finite or of a different config."""
    last = run_dir / "last.pt"
    if not last.exists():
        raise UserError(f"cannot resume: {str(run_dir)!r} holds no run (no last.pt); train it without --resume")
    state = read_checkpoint(last)
    check_finite_checkpoint(state, last, "it cannot be resumed: replace the run with --overwrite (or choose "
                                         "another --out)")
    stored = checkpoint_config(state, last)
    _note_config_file(run_dir, stored)
    differences = [text for text in protocol_differences(stored, config) if not text.startswith("epochs:")]
    if differences:
        raise UserError(f"cannot resume {str(run_dir)!r} with a different config ({'; '.join(differences)}); "
                        "resume with the run's own config.yaml or start a new run with another --out")
    if stored.epochs != config.epochs:
        _epochs_change(run_dir, state, stored, config)
    return state


def check_location(run_dir: Path) -> None:
    """A UserError when the run directory can never be written: a file, under a file, or in a read-only folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} is a file; choose another --out")
    ancestor = next(folder for folder in (run_dir.absolute(), *run_dir.absolute().parents) if folder.exists())
    if not ancestor.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} lies under the file {str(ancestor)!r}; choose another --out")
    if not os.access(ancestor, os.W_OK):
        raise UserError(f"cannot write run directory {str(run_dir)!r} ({str(ancestor)!r} is not writable); choose "
                        "a writable --out")


def _check_unstarted(run_dir: Path, config: Config, overwrite: bool) -> None:
    """A run that stopped before its first checkpoint is restarted, with --resume or without, if it is this
    config's; another config's needs --overwrite."""
    differences = protocol_differences(stored_config(run_dir), config) if (run_dir / "config.yaml").exists() else []
    if differences and not overwrite:
        raise UserError(f"{str(run_dir)!r} holds a run of another config ({'; '.join(differences)}) that stopped "
                        "before its first checkpoint; replace it with --overwrite or choose another --out")


def check_run_dir(run_dir: Path, config: Config, resume: bool, overwrite: bool) -> dict | None:
    """Read-only checks of the run directory; returns the checkpoint to resume from, if resuming.

    Run files without any checkpoint (a run that stopped before its first one) hold nothing to
    continue: training starts again from epoch 1, whether --resume is given or not.
    """
    check_location(run_dir)
    existing = existing_run_files(run_dir)
    if existing and not has_checkpoint(run_dir):
        _check_unstarted(run_dir, config, overwrite)
        return None
    if resume:
        return _resume_state(run_dir, config)
    if existing and not overwrite:
        raise UserError(f"{str(run_dir)!r} already holds a run ({', '.join(existing)}); continue it with --resume, "
                        "replace it with --overwrite, or choose another --out")
    return None


def clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's files (only those), saying what was replaced."""
    existing = existing_run_files(run_dir)
    if not existing:
        return
    if not has_checkpoint(run_dir):
        message = (f"restarting the run in {run_dir} from epoch 1: its earlier attempt stopped before its first "
                   f"checkpoint (removed {', '.join(existing)})")
    else:
        rows = read_metric_rows(run_dir)
        what = plural(len(rows), "evaluated epoch") if rows else "no evaluated epoch"
        message = f"overwrite: replaced the previous run in {run_dir} ({what}; removed {', '.join(existing)})"
    for name in existing:
        (run_dir / name).unlink()
    print(message, file=sys.stderr)


def stage_replacement(run_dir: Path) -> Path:
    """An empty staging folder inside ``run_dir`` where a run replacing it (--overwrite) writes until its
    first checkpoint; the previous run stays untouched until then (see :func:`promote_staged_run`)."""
    staging = run_dir / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging)   # a replacement that stopped before its first checkpoint
    return ensure_dir(staging)


def promote_staged_run(staging: Path, run_dir: Path) -> Path:
    """Replace the previous run in ``run_dir`` by the staged one (which has written its first checkpoint)."""
    clear_run_dir(run_dir)
    try:
        for entry in staging.iterdir():
            os.replace(entry, run_dir / entry.name)
        staging.rmdir()
    except OSError as error:
        raise write_error(run_dir, error) from None
    return run_dir


def discard_staged_run(staging: Path) -> None:
    """Remove a replacement that stopped before its first checkpoint (the previous run was never touched)."""
    shutil.rmtree(staging, ignore_errors=True)


def remove_abandoned_staging(run_dir: Path) -> None:
    """Remove the staging folder of an --overwrite whose process was killed before its first checkpoint."""
    if (run_dir / STAGING_DIR).is_dir():
        discard_staged_run(run_dir / STAGING_DIR)
        print(f"note: removed {run_dir / STAGING_DIR}, the unfinished replacement run of an interrupted --overwrite "
              f"(the run in {run_dir} was never touched)", file=sys.stderr)


def remove_unstarted_run(run_dir: Path) -> None:
    """Remove the run files of an attempt that stopped before its first checkpoint (nothing to resume there)."""
    if not has_checkpoint(run_dir):
        for name in existing_run_files(run_dir):
            (run_dir / name).unlink(missing_ok=True)
