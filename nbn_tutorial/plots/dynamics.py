"""NBN's mechanism in pictures: its parameters over training, and what the first SGD step does to β."""
from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nbn_tutorial.errors import UserError
from nbn_tutorial.plots.theme import legend_outside, new_figure, themed


def _short(layer: str) -> str:
    return layer.removeprefix("backbone.")


@themed
def plot_nbn_dynamics(dynamics: pd.DataFrame) -> Figure:
    """Three panels over epochs, one line per NBN layer: α (shared: one line), ‖γ‖ and ‖β‖ (log scale), and the
    cosine between β's direction and its direction after the first epoch (from ``diagnosis.nbn_dynamics``)."""
    if dynamics.empty:
        raise UserError("no NBN state recorded; pass diagnosis.nbn_dynamics(run) of an NBN run")
    data = dynamics.assign(layer=dynamics["layer"].map(_short))
    figure, axes = new_figure(ncols=3, width=4.4)
    alpha = data.drop_duplicates(["epoch", "alpha"])
    sns.lineplot(data=alpha, x="epoch", y="alpha", ax=axes[0, 0], errorbar=None, color="0.2")
    axes[0, 0].set(title="α (the per-layer budget ‖w‖ ≈ |α|)", ylabel="α")
    norms = data.melt(id_vars=["epoch", "layer"], value_vars=["gamma_norm", "beta_norm"], var_name="parameter",
                      value_name="norm").replace({"gamma_norm": "‖γ‖", "beta_norm": "‖β‖"})
    sns.lineplot(data=norms, x="epoch", y="norm", hue="layer", style="parameter", ax=axes[0, 1])
    axes[0, 1].set(yscale="log", title="raw parameter norms (log scale)", ylabel="norm")
    sns.lineplot(data=data, x="epoch", y="beta_cos_first", hue="layer", legend=False, ax=axes[0, 2])
    axes[0, 2].set(title="cos(β now, β after epoch 1)", ylabel="cosine", ylim=(min(0.0, data["beta_cos_first"].min()),
                                                                            1.05))
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(axes[0, 1])
    return figure


@themed
def plot_first_step(table: pd.DataFrame) -> Figure:
    """‖β‖ after one SGD step and the gradient reaching β, per layer, BN against NBN (log scale; from
    ``diagnosis.first_step_table``)."""
    if table.empty:
        raise UserError("the first-step table is empty; build it with diagnosis.first_step_table")
    data = table.assign(layer=table["layer"].map(_short))
    figure, axes = new_figure(ncols=2, width=5.0)
    for ax, column, title in ((axes[0, 0], "beta_grad_norm", "gradient reaching β at initialisation"),
                              (axes[0, 1], "beta_norm_after", "‖β‖ after one SGD step")):
        sns.barplot(data=data, x="layer", y=column, hue="model", ax=ax)
        ax.set(yscale="log", title=title, xlabel="", ylabel=column.replace("_", " "))
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    legend_outside(axes[0, 1])
    if axes[0, 0].get_legend() is not None:
        axes[0, 0].get_legend().remove()
    return figure
