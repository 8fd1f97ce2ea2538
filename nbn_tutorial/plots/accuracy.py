"""Accuracy figures: per-class accuracy against training count, accuracy by shot group, confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.diagnosis.tables import GROUP_TABLE_COLUMNS
from nbn_tutorial.plots.panels import count_scatter, group_bars
from nbn_tutorial.plots.theme import Tables, as_frame, new_figure, themed


@themed
def plot_accuracy_vs_count(table: Tables) -> Figure:
    """Per-class accuracy against training count (log x), and mean accuracy per shot group."""
    data = as_frame(table)
    figure, axes = new_figure(ncols=2)
    count_scatter(axes[0, 0], data, "train_count", "accuracy", "group")
    axes[0, 0].set(ylabel="test accuracy", title="per-class accuracy vs training count")
    group_bars(axes[0, 1], data, "group", "accuracy")
    axes[0, 1].set(ylabel="mean per-class accuracy", title="accuracy by shot group")
    return figure


@themed
def plot_confusion(matrix: np.ndarray, class_names: Sequence[str] | None = None,
                   title: str = "confusion matrix") -> Figure:
    """Heat map of a confusion matrix (rows true, columns predicted); annotated when there are few classes."""
    matrix = np.asarray(matrix)
    size = len(matrix)
    labels = list(class_names) if class_names is not None else "auto"
    normalized = np.issubdtype(matrix.dtype, np.floating)
    figure, axes = new_figure(width=min(12.0, 2.5 + 0.45 * size), height=min(10.0, 2.0 + 0.4 * size))
    sns.heatmap(matrix, ax=axes[0, 0], cmap="Blues", vmin=0, vmax=1 if normalized else None, square=True,
                annot=size <= 15, fmt=".2f" if normalized else "d", annot_kws={"fontsize": "x-small"},
                xticklabels=labels, yticklabels=labels)
    axes[0, 0].set(xlabel="predicted class", ylabel="true class", title=title)
    return figure


@themed
def plot_group_comparison(table: pd.DataFrame) -> Figure:
    """Grouped bars of overall / balanced / many / medium / few accuracy per run (from ``group_table``)."""
    long = (table.reset_index().melt(id_vars=table.index.name or "index", value_vars=list(GROUP_TABLE_COLUMNS),
                                     var_name="metric", value_name="accuracy")
            .rename(columns={table.index.name or "index": "model"}))
    figure, axes = new_figure(width=7.0)
    sns.barplot(data=long, x="metric", y="accuracy", hue="model", order=list(GROUP_TABLE_COLUMNS), ax=axes[0, 0])
    for container in axes[0, 0].containers:
        axes[0, 0].bar_label(container, fmt="%.2f", fontsize="x-small")
    axes[0, 0].set(xlabel="", ylabel="accuracy", title="accuracy by shot group")
    return figure
