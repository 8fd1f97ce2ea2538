"""Training figures from a metrics table: loss and accuracy curves, and the NBN α values over epochs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nbn_tutorial.errors import UserError
from nbn_tutorial.plots.theme import Tables, as_frame, is_comparison, legend_outside, new_figure, themed

_CURVE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("train_loss",)),
    ("accuracy", ("train_acc", "test_acc", "balanced_acc")),
    ("test accuracy by shot group", ("many_acc", "medium_acc", "few_acc")),
)


def _alpha_values(cell) -> list[float]:
    """The α list of one metrics cell: a list (metrics.jsonl) or its JSON text (metrics.csv)."""
    if isinstance(cell, str):
        cell = json.loads(cell)
    return list(cell) if isinstance(cell, (list, tuple, np.ndarray)) else []


def _alpha_long(data: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch, α index) from a metrics table's ``alpha`` list column."""
    rows = [{"model": run, "epoch": epoch, "alpha": f"α{position}", "value": float(value)}
            for run, epoch, cell in zip(data["model"], data["epoch"], data["alpha"])
            for position, value in enumerate(_alpha_values(cell))]
    return pd.DataFrame(rows, columns=["model", "epoch", "alpha", "value"])


@themed
def plot_alpha_over_training(metrics: Tables) -> Figure:
    """The NBN α values per epoch, from a training metrics table (``epoch`` and ``alpha`` list columns)."""
    long = _alpha_long(as_frame(metrics))
    if long.empty:
        raise UserError("these metrics have no NBN α values (a plain BN run); plot α of an NBN run")
    figure, axes = new_figure(width=6.0)
    comparison = long["model"].nunique() > 1
    sns.lineplot(data=long, x="epoch", y="value", hue="model" if comparison else "alpha",
                 style="alpha" if comparison else None, marker="o", markersize=4, ax=axes[0, 0])
    axes[0, 0].set(ylabel="α", title="NBN α over training")
    axes[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(axes[0, 0])
    return figure


@themed
def plot_training_curves(metrics: Tables) -> Figure:
    """Training loss, train/test/balanced accuracy, and many/medium/few accuracy per epoch."""
    data = as_frame(metrics)
    panels = [(title, [column for column in columns if column in data]) for title, columns in _CURVE_PANELS]
    panels = [(title, columns) for title, columns in panels if columns]
    if not panels or "epoch" not in data:
        raise UserError("the metrics table needs an epoch column and train_loss / *_acc columns; "
                        "read it with train.read_metrics")
    figure, axes = new_figure(ncols=len(panels), width=4.6)
    comparison = is_comparison(data)
    for ax, (title, columns) in zip(axes[0], panels):
        long = data.melt(id_vars=["model", "epoch"], value_vars=columns, var_name="metric", value_name="value")
        sns.lineplot(data=long, x="epoch", y="value", hue="metric", style="model" if comparison else None, ax=ax)
        ax.set(ylabel="", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend_outside(ax)
    return figure
