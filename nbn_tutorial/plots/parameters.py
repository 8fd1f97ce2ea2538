"""Parameter figures: BN/NBN γ, β and α per layer, last-stage γ against owner frequency, classifier norms."""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nbn_tutorial.plots.panels import count_scatter, group_distribution
from nbn_tutorial.plots.theme import (GROUP_COLORS, THEME, Tables, as_frame, is_comparison, legend_outside,
                                      new_figure, present_groups, themed)


def _short_layer_names(names: pd.Series) -> pd.Series:
    return names.str.removeprefix("backbone.")


@themed
def plot_bn_parameters(layer_table: pd.DataFrame, channel_table: pd.DataFrame, effective: bool = False) -> Figure:
    """γ and β distributions per BN layer, their norms per layer, and α of the NBN layers.

    ``layer_table`` / ``channel_table`` come from ``bn_parameter_stats`` / ``bn_channel_parameters``.
    ``effective=True`` shows the applied w, b instead of the raw γ, β (identical for plain BN layers).
    """
    channels = channel_table.assign(layer=_short_layer_names(channel_table["layer"]))
    layers = layer_table.assign(layer=_short_layer_names(layer_table["layer"]))
    order = list(layers["layer"])
    types = [kind for kind in ("BN", "NBN") if kind in set(layers["type"])]
    figure, axes = new_figure(ncols=2, nrows=2, width=max(5.0, 0.22 * len(order)), height=3.6)
    for ax, column, symbol in ((axes[0, 0], "w" if effective else "gamma", "w" if effective else "γ"),
                               (axes[0, 1], "b" if effective else "beta", "b" if effective else "β")):
        sns.boxplot(data=channels, x="layer", y=column, order=order, hue="type", hue_order=types,
                    fliersize=1.5, linewidth=0.7, ax=ax)
        ax.set(xlabel="", ylabel=symbol, title=f"{symbol} per channel, by layer")
        ax.tick_params(axis="x", labelrotation=90, labelsize="x-small")
    norms = layers.melt(id_vars=["layer"], value_vars=["gamma_norm", "beta_norm", "w_norm", "b_norm"],
                        var_name="norm", value_name="value")
    norms["norm"] = norms["norm"].map({"gamma_norm": "‖γ‖", "beta_norm": "‖β‖", "w_norm": "‖w‖ applied",
                                       "b_norm": "‖b‖ applied"})
    sns.pointplot(data=norms, x="layer", y="value", order=order, hue="norm", markersize=3, linewidth=1,
                  ax=axes[1, 0])
    legend_outside(axes[1, 0])
    axes[1, 0].set(xlabel="", ylabel="L2 norm", title="parameter norms per layer")
    axes[1, 0].tick_params(axis="x", labelrotation=90, labelsize="x-small")
    _alpha_bars(axes[1, 1], layers)
    return figure


def _alpha_bars(ax: Axes, layers: pd.DataFrame) -> None:
    """α of each NBN layer, or a note that the model has none."""
    nbn = layers[layers["type"] == "NBN"]
    if nbn.empty:
        ax.text(0.5, 0.5, "no NBN layer: plain BN model", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    sns.barplot(data=nbn, x="layer", y="alpha", color=sns.color_palette(THEME["palette"])[1], ax=ax)
    ax.set(xlabel="", ylabel="α", title="α of the NBN layers")
    ax.tick_params(axis="x", labelrotation=90, labelsize="x-small")


@themed
def plot_gamma_vs_frequency(table: Tables, y: str = "gamma") -> Figure:
    """A last-stage channel's γ (or ``y="w"``: applied weight) against the training count of its owner class."""
    data = as_frame(table)
    data = data[data["active"]]
    figure, axes = new_figure(ncols=2)
    count_scatter(axes[0, 0], data, "owner_count", y, "owner_group")
    layer = ", ".join(sorted(set(_short_layer_names(data["layer"]))))
    axes[0, 0].set(xlabel="training images of the owner class (log)", ylabel=y, title=f"{y} of {layer} per channel")
    group_distribution(axes[0, 1], data, "owner_group", y)
    axes[0, 1].set(xlabel="shot group of the owner class", ylabel=y, title="by owner group")
    return figure


def _by_frequency(data: pd.DataFrame) -> list[str]:
    """Class labels ordered from the most to the least frequent training class."""
    ranked = data.drop_duplicates("class").sort_values(["train_count", "class"], ascending=[False, True])
    return [str(label) for label in ranked["class"]]


@themed
def plot_classifier_norms(table: Tables) -> Figure:
    """Classifier weight norm of every class, classes ordered by training count (the head bias)."""
    data = as_frame(table)
    data = data.assign(label=data["class"].astype(str))
    order = _by_frequency(data)
    figure, axes = new_figure(width=max(6.0, 0.12 * len(order)))
    ax = axes[0, 0]
    if is_comparison(data):
        sns.barplot(data=data, x="label", y="weight_norm", order=order, hue="model", ax=ax)
    else:
        sns.barplot(data=data, x="label", y="weight_norm", order=order, hue="group",
                    hue_order=present_groups(data, "group"), palette=GROUP_COLORS, dodge=False, ax=ax)
    ax.set(xlabel="class (most to least frequent)", ylabel="‖classifier weight‖₂",
           title="classifier weight norms")
    legend_outside(ax)
    if len(order) > 30:
        ax.set_xticks([])
    return figure
