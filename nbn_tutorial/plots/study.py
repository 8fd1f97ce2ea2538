"""A study's results in pictures: paired differences with their confidence intervals, and per-class differences."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.errors import UserError
from nbn_tutorial.plots.panels import log_count_axis
from nbn_tutorial.plots.theme import legend_outside, new_figure, themed
from nbn_tutorial.study import paired_intervals

LABELS = {"balanced": "balanced accuracy (points)", "few": "few-shot accuracy (points)",
          "many": "many-shot accuracy (points)", "overall": "overall accuracy (points)",
          "feature_strength_ratio": "few/many feature strength", "channel_strength_ratio": "few/many channel strength",
          "feature_strength_gap": "|few/many feature strength − 1|", "channel_strength_gap": "|few/many channel strength − 1|"}


def _interval_panel(ax, intervals: dict, metric: str, reference: str, confirmed: dict[str, bool]) -> None:
    """One forest panel: each arm's mean difference with its interval. Green/red: Holm-adjusted p < 0.05; an open
    dark marker: the unadjusted interval excludes 0 but the adjustment does not confirm it; grey: includes 0."""
    arms = list(intervals)
    positions = np.arange(len(arms))
    for position, arm in zip(positions, arms):
        interval = intervals[arm]
        if confirmed.get(arm):
            colour, face = ("tab:green" if interval.mean > 0 else "tab:red"), None
        elif interval.excludes_zero:
            colour, face = "0.25", "white"
        else:
            colour, face = "0.6", None
        ax.errorbar([interval.mean], [position], xerr=[[np.nan_to_num(interval.mean - interval.low)],
                                                       [np.nan_to_num(interval.high - interval.mean)]],
                    fmt="o", color=colour, ecolor=colour, markerfacecolor=face or colour, capsize=3)
    ax.axvline(0, color="0.2", linewidth=1)
    ax.set_yticks(positions, arms)
    ax.invert_yaxis()
    ax.set(title=f"Δ {LABELS.get(metric, metric)}", xlabel=f"arm − {reference}")


def _confirmed(contrasts: pd.DataFrame | None, dataset: str, metric: str, reference: str) -> dict[str, bool]:
    """Per arm, whether its contrast to ``reference`` on ``metric`` survives Holm's adjustment (none without a table)."""
    if contrasts is None:
        return {}
    rows = contrasts[(contrasts["dataset"] == dataset) & (contrasts["metric"] == metric)
                     & (contrasts["against"] == reference)]
    return {row.arm: bool(row.p_holm < 0.05) for row in rows.itertuples()}


@themed
def plot_paired_differences(results: pd.DataFrame, reference: str,
                            metrics: Sequence[str] = ("balanced", "few", "feature_strength_ratio"),
                            datasets: Sequence[str] | None = None, contrasts: pd.DataFrame | None = None) -> Figure:
    """A forest plot per dataset (rows) and metric (columns): each arm's paired difference to ``reference`` on the
    same seeds, with its 95% t-interval. Coloured (green gain, red loss) only where ``contrasts`` (the study's
    contrast table) says the Holm-adjusted p is below 0.05; an open dark marker where the unadjusted interval
    excludes 0 without that; grey where it includes 0."""
    datasets = list(datasets) if datasets is not None else list(results["dataset"].unique())
    missing = [name for name in datasets if name not in set(results["dataset"])]
    if missing or not datasets:
        raise UserError(f"the results hold no runs of {missing or datasets}; datasets: "
                        f"{', '.join(results['dataset'].unique())}")
    arms = results["arm"].nunique()
    figure, axes = new_figure(ncols=len(metrics), nrows=len(datasets), width=4.2, height=0.9 + 0.4 * arms)
    for row, dataset in enumerate(datasets):
        for ax, metric in zip(axes[row], metrics):
            _interval_panel(ax, paired_intervals(results, dataset, metric, reference), metric, reference,
                            _confirmed(contrasts, dataset, metric, reference))
        axes[row, 0].set_ylabel(dataset)
    figure.suptitle(f"Paired differences to `{reference}` (mean, 95% t-interval; colour: Holm-adjusted p < 0.05; "
                    "open: unadjusted only)", fontsize="medium")
    return figure


@themed
def plot_per_class_differences(table: pd.DataFrame, title: str = "") -> Figure:
    """Per-class paired accuracy differences against training count, one line per arm with its 95% interval
    (from ``study.per_class_paired``)."""
    if table.empty:
        raise UserError("the per-class table is empty; build it with study.per_class_paired")
    figure, axes = new_figure(width=6.5)
    ax = axes[0, 0]
    for arm, rows in table.groupby("arm", sort=False):
        rows = rows.sort_values("train_count")
        line = ax.plot(rows["train_count"], rows["difference"], marker="o", label=arm)[0]
        ax.fill_between(rows["train_count"], rows["low"], rows["high"], color=line.get_color(), alpha=0.15)
    ax.axhline(0, color="0.2", linewidth=1)
    log_count_axis(ax)
    ax.set(xlabel="training images of the class (log)", ylabel="accuracy difference (points)", title=title)
    ax.legend(title="arm")
    legend_outside(ax)
    sns.despine(ax=ax)
    return figure
