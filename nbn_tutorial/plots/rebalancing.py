"""Figures of notebook 07: accuracy per re-balancing method and norm, and accuracy against τ."""
from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.plots.theme import legend_outside, new_figure, themed


@themed
def plot_rebalancing(table: pd.DataFrame, metrics: tuple[str, ...] = ("balanced", "few")) -> Figure:
    """Bars of each metric (percent) per method (stage 1, cRT, τ-norm, LWS, RIDE), one bar per norm."""
    figure, axes = new_figure(ncols=len(metrics), width=5.5)
    order = list(dict.fromkeys(table["method"]))
    for ax, metric in zip(axes[0], metrics):
        sns.barplot(data=table, x="method", y=metric, hue="norm", order=order, ax=ax)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.1f", fontsize="x-small")
        low = float(table[metric].min())
        ax.set_ylim(max(0.0, 5 * math.floor((low - 3) / 5)), min(100.0, float(table[metric].max()) + 3))
        ax.set(xlabel="", ylabel=f"{metric} accuracy (%)", title=f"{metric} accuracy by method (y axis cut)")
        legend_outside(ax)
    return figure


@themed
def plot_tau_curves(curves: pd.DataFrame) -> Figure:
    """Balanced and few-shot accuracy against τ per run (from ``tau_curves``); the chosen τ marked."""
    figure, axes = new_figure(ncols=2, width=5.0)
    for ax, metric in zip(axes[0], ("balanced", "few")):
        sns.lineplot(data=curves, x="tau", y=metric, hue="model", marker="o", ax=ax)
        chosen = curves[curves["chosen"]]
        ax.scatter(chosen["tau"], chosen[metric], s=160, facecolors="none", edgecolors="black", zorder=3,
                   label="chosen τ")
        split = ", ".join(sorted(set(curves["split"])))
        ax.set(xlabel="τ (class weights divided by ‖w‖^τ)", ylabel=f"{metric} accuracy (%)",
               title=f"{metric} accuracy on the {split} split")
        legend_outside(ax)
    return figure
