"""A finished run's accuracies, read from its metrics, and run directories gathered into one table.

What a notebook compares between runs: :func:`final_metrics` (fractions after the last evaluated epoch) and
:func:`gather_runs` (one row per run directory, its config's key fields and its accuracies in percent).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nbn_tutorial.accuracy import ACCURACY_COLUMNS
from nbn_tutorial.fileio import read_yaml_mapping
from nbn_tutorial.train.metric_files import read_metrics
from nbn_tutorial.wording import percent

RUN_COLUMNS = ("dataset", "model", "norm", "head", "loss", "epochs", "seed")   # a gathered run's config fields
_METRIC_COLUMNS = {name: "test_acc" if name == "overall" else f"{name}_acc" for name in ACCURACY_COLUMNS}


def final_metrics(run: str | os.PathLike) -> dict[str, float]:
    """Accuracies (fractions) after a run's last evaluated epoch: overall, balanced, many, medium, few."""
    last = read_metrics(run).iloc[-1]
    return {name: math.nan if last[column] is None else float(last[column]) for name, column in _METRIC_COLUMNS.items()}


def epochs_done(run: str | os.PathLike) -> int:
    """How many epochs a run has trained (its last metrics row)."""
    return int(read_metrics(run).iloc[-1]["epoch"])


def gather_runs(run_dirs: Iterable[str | os.PathLike]) -> Any:
    """One row per run directory: its config's key fields, epochs done and final accuracies in percent."""
    import pandas as pd   # deferred: read_metrics defers it too (the training engine does not need pandas)

    rows = []
    for run in run_dirs:
        config = read_yaml_mapping(Path(run) / "config.yaml", "run config")
        rows.append({**{key: config[key] for key in RUN_COLUMNS}, "epochs_done": epochs_done(run),
                     **{key: percent(value) for key, value in final_metrics(run).items()}, "run": Path(run).name})
    return pd.DataFrame(rows, columns=[*RUN_COLUMNS, "epochs_done", *ACCURACY_COLUMNS, "run"])
