"""Feature figures: per-class feature strength, class-specific channel strength, t-SNE of the features."""
from __future__ import annotations

import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.plots.panels import count_scatter, group_bars, group_distribution
from nbn_tutorial.plots.theme import GROUP_COLORS, Tables, as_frame, legend_outside, new_figure, present_groups, themed


@themed
def plot_feature_strength(table: Tables, y: str = "strength") -> Figure:
    """Per-class feature strength against training count, and its distribution per shot group."""
    data = as_frame(table)
    figure, axes = new_figure(ncols=2)
    count_scatter(axes[0, 0], data, "train_count", y, "group")
    axes[0, 0].set(ylabel=f"feature {y.replace('_', ' ')}", title="penultimate-feature strength per class")
    group_distribution(axes[0, 1], data, "group", y)
    axes[0, 1].set(ylabel=f"feature {y.replace('_', ' ')}", title="by shot group")
    return figure


@themed
def plot_channel_strength(table: Tables, y: str = "strength") -> Figure:
    """Strength of class-specific last-stage channels by owner group, and how many channels each group owns."""
    data = as_frame(table)
    data = data[data["active"]]
    figure, axes = new_figure(ncols=2)
    group_distribution(axes[0, 0], data, "owner_group", y)
    axes[0, 0].set(xlabel="shot group of the owner class", ylabel=f"channel {y.replace('_', ' ')}",
                   title="class-specific channel strength")
    counts = data.groupby(["model", "owner_group"]).size().rename("channels").reset_index()
    group_bars(axes[0, 1], counts, "owner_group", "channels", estimator="sum", fmt="%g")
    axes[0, 1].set(xlabel="shot group of the owner class", ylabel="channels owned", title="channel ownership")
    return figure


@themed
def plot_tsne(table: Tables) -> Figure:
    """t-SNE of penultimate features coloured by shot group (one panel per run when comparing)."""
    data = as_frame(table)
    runs = list(dict.fromkeys(data["model"]))
    figure, axes = new_figure(ncols=len(runs), width=4.6, height=4.2)
    for ax, run in zip(axes[0], runs):
        subset = data[data["model"] == run]
        sns.scatterplot(data=subset, x="x", y="y", hue="group", hue_order=present_groups(subset, "group"),
                        palette=GROUP_COLORS, s=12, alpha=0.7, linewidth=0, ax=ax)
        ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", title=f"t-SNE of features {run}".strip())
        legend_outside(ax)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure
