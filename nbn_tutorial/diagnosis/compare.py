"""Runs side by side: one accuracy row per run, and per-run tables stacked with a ``model`` column."""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from nbn_tutorial.diagnosis.tables import GROUP_TABLE_COLUMNS
from nbn_tutorial.errors import UserError


def _metric(metrics: Mapping, name: str, run: str) -> float:
    """``name`` from a group_accuracy dict, or ``name_acc`` (``test_acc`` for overall) from a training metrics row."""
    for key in (name, "test_acc" if name == "overall" else f"{name}_acc"):
        if key in metrics:
            return float("nan") if metrics[key] is None else float(metrics[key])
    raise UserError(f"the metrics of {run!r} have no {name!r} accuracy; pass group_accuracy(...) results or "
                    "training metrics rows (test_acc, balanced_acc, many_acc, medium_acc, few_acc)")


def group_table(metrics_by_name: Mapping[str, Mapping | pd.Series]) -> pd.DataFrame:
    """One row per run (e.g. BN, NBN): overall, balanced, many, medium, few accuracy, in the units given.

    Each run's metrics are a :func:`group_accuracy` dict or a training metrics row (dict or Series with
    ``test_acc``, ``balanced_acc``, ``many_acc``, ...); a missing value (None) becomes NaN.
    """
    rows = {run: {name: _metric(metrics, name, run) for name in GROUP_TABLE_COLUMNS}
            for run, metrics in metrics_by_name.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(GROUP_TABLE_COLUMNS))
    table.index.name = "model"
    return table


def stack_runs(tables_by_name: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-run tables into one long table with a ``model`` column (for side-by-side plots)."""
    if not tables_by_name:
        raise UserError("no runs to compare; pass a mapping like {'BN': table, 'NBN': table}")
    return pd.concat([table.assign(model=name) for name, table in tables_by_name.items()], ignore_index=True)
