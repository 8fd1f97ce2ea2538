"""Compound BN's component usage by class-frequency group (:func:`nbn_tutorial.diagnosis.component_usage`)."""
from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.errors import UserError
from nbn_tutorial.plots.theme import Tables, as_frame, new_figure, themed


def _group_labels(groups: int) -> list[str]:
    names = {0: "head"} if groups > 1 else {}
    names[groups - 1] = "tail" if groups > 1 else "all"
    return [f"group {g}" + (f" ({names[g]})" if g in names else "") for g in range(groups)]


@themed
def plot_component_usage(usage: Tables, layer: str | None = None) -> Figure:
    """Stacked bars: for each class-frequency group (0 = most frequent classes), the share of its samples
    that each component takes, in one CBN layer (default: the deepest); one panel per run.

    ``usage`` is a :func:`~nbn_tutorial.diagnosis.component_usage` table or a mapping of run name to one
    (e.g. ``{"CBN": ..., "CBN + dual path": ...}``).
    """
    data = as_frame(usage)
    if data.empty:
        raise UserError("the component-usage table is empty; compute it with nbt.diagnosis.component_usage")
    chosen = layer if layer is not None else data.loc[data["depth"].idxmax(), "layer"]
    data = data[data["layer"] == chosen]
    if data.empty:
        raise UserError(f"no CBN layer named {chosen!r} in the usage table")
    runs = list(dict.fromkeys(data["model"]))
    figure, axes = new_figure(ncols=len(runs), width=4.6, height=3.4)
    colors = sns.color_palette("colorblind", int(data["component"].max()) + 1)
    for ax, run in zip(axes[0], runs):
        shares = data[data["model"] == run].pivot(index="group", columns="component", values="share")
        left = np.zeros(len(shares))
        labels = _group_labels(len(shares))
        for component in shares.columns:
            values = shares[component].to_numpy()
            ax.barh(labels, values, left=left, color=colors[int(component)], label=f"component {component}")
            left += values
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("share of the group's samples")
        ax.set_title(run or chosen, fontsize="medium")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")
    figure.suptitle(f"component usage in {chosen}", fontsize="medium")
    return figure
