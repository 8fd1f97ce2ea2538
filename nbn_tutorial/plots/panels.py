"""Panels several figures share: values against training count, and per-shot-group distributions and bars."""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from nbn_tutorial.plots.theme import GROUP_COLORS, is_comparison, legend_outside, present_groups


def log_count_axis(ax: Axes) -> None:
    """Log x axis labelled with plain numbers at 1, 2, 5 x 10^k."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def count_scatter(ax: Axes, data: pd.DataFrame, x: str, y: str, hue: str) -> None:
    """Per-class (or per-channel) values against training count, log x axis, coloured by shot group."""
    sns.scatterplot(data=data, x=x, y=y, hue=hue, hue_order=present_groups(data, hue), palette=GROUP_COLORS,
                    style="model" if is_comparison(data) else None, s=50, ax=ax)
    log_count_axis(ax)
    ax.set_xlabel("training images of the class (log)")
    legend_outside(ax)


def group_distribution(ax: Axes, data: pd.DataFrame, x: str, y: str) -> None:
    """Box plot with the individual points over it, per shot group (and per run when comparing)."""
    order = present_groups(data, x)
    if is_comparison(data):
        options = dict(hue="model", dodge=True)
        sns.boxplot(data=data, x=x, y=y, order=order, showfliers=False, ax=ax, **options)
        dark = {run: "0.25" for run in data["model"].unique()}
        sns.stripplot(data=data, x=x, y=y, order=order, palette=dark, size=3, legend=False, ax=ax, **options)
    else:
        options = dict(hue=x, hue_order=order, palette=GROUP_COLORS, legend=False)
        sns.boxplot(data=data, x=x, y=y, order=order, showfliers=False, boxprops={"alpha": 0.5}, ax=ax, **options)
        sns.stripplot(data=data, x=x, y=y, order=order, size=4, edgecolor="0.2", linewidth=0.5, ax=ax, **options)
    ax.set_xlabel("shot group")


def group_bars(ax: Axes, data: pd.DataFrame, x: str, y: str, estimator: str = "mean", fmt: str = "%.2f") -> None:
    """Bars of ``y`` aggregated per shot group (per run when comparing), labelled with their values."""
    order = present_groups(data, x)
    if is_comparison(data):
        sns.barplot(data=data, x=x, y=y, order=order, hue="model", estimator=estimator, errorbar=None, ax=ax)
    else:
        sns.barplot(data=data, x=x, y=y, order=order, hue=x, hue_order=order, palette=GROUP_COLORS,
                    estimator=estimator, errorbar=None, legend=False, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt, fontsize="small")
    ax.set_xlabel("shot group")
