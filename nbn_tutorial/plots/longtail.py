"""The long-tailed profiles themselves: class counts of the exp and step profiles (named apart from
:mod:`nbn_tutorial.data`, whose ``longtail_counts`` it draws)."""
from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from nbn_tutorial.plots.theme import new_figure, themed
from nbn_tutorial.data import longtail_counts


@themed
def plot_longtail_profiles(num_classes: int = 100, max_per_class: int = 500,
                           imbalance_factors: Sequence[float] = (10, 100)) -> Figure:
    """Class counts of the exp and step profiles (log scale), the picture behind 'long-tailed'."""
    figure, axes = new_figure(width=6.0)
    ax = axes[0, 0]
    for profile in ("exp", "step"):
        for factor in imbalance_factors:
            ax.plot(range(num_classes), longtail_counts(num_classes, max_per_class, factor, profile),
                    label=f"{profile}, IF={factor:g}", linestyle="-" if profile == "exp" else "--")
    ax.set(yscale="log", xlabel="class (sorted by frequency)", ylabel="training images",
           title=f"long-tailed profiles ({num_classes} classes, {max_per_class} per class at the head)")
    ax.legend(fontsize="small")
    return figure
