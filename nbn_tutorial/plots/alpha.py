"""A study's NBN runs in pictures: does the feature bias track α, and what α does over training."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nbn_tutorial.errors import UserError
from nbn_tutorial.plots.theme import legend_outside, new_figure, themed
from nbn_tutorial.study.tables import by_seed
from nbn_tutorial.study.evidence import nbn_runs
from nbn_tutorial.study.evidence import alpha_correlation, nbn_runs

RATIOS = {"feature_strength_ratio": "few/many penultimate-feature strength",
          "channel_strength_ratio": "few/many class-specific channel strength"}


@themed
def plot_alpha_relation(results: pd.DataFrame, dataset: str, model: str | None = None) -> Figure:
    """Final α against each feature-bias ratio over every NBN run of ``dataset`` (one dot per trained network,
    coloured by arm), with Pearson's r and its 95% interval in each panel's title."""
    runs = nbn_runs(results, dataset, model)
    if runs.empty:
        raise UserError(f"the study has no finished NBN run with an α on {dataset}")
    figure, axes = new_figure(ncols=len(RATIOS), width=4.6)
    for ax, (metric, label) in zip(axes[0], RATIOS.items()):
        sns.scatterplot(data=runs, x="alpha", y=metric, hue="arm", ax=ax, s=40)
        ax.axhline(1, color="0.5", linewidth=1, linestyle="--")
        found = alpha_correlation(results, dataset, metric, model)
        ax.set(xlabel="final α", ylabel=label, title=found.text())
        legend_outside(ax) if ax is axes[0, -1] else ax.get_legend().remove()
    figure.suptitle(f"{dataset}: feature bias against final α over the NBN runs (1 = even)", fontsize="medium")
    return figure


def _symlog(ax, axis: str, values: pd.Series, linear_below: float = 0.05) -> None:
    """A symlog axis (α near 0 stays visible) with ticks at 0 and ±10^k over the values' range only."""
    getattr(ax, f"set_{axis}scale")("symlog", linthresh=linear_below)
    top = max(float(np.nanmax(np.abs(values.to_numpy(dtype=float)))), linear_below)
    decades = [10.0 ** k for k in range(int(np.floor(np.log10(linear_below))) + 1, int(np.ceil(np.log10(top))) + 1)]
    ticks = sorted({0.0, *decades, *(-d for d in decades if -d >= float(np.nanmin(values)))})
    getattr(ax, f"set_{axis}ticks")(ticks, [f"{tick:g}" for tick in ticks])


@themed
def plot_alpha_collapse(results: pd.DataFrame, dynamics: pd.DataFrame, dataset: str, baseline: str = "bn") -> Figure:
    """Left: α after every epoch, one line per NBN run, coloured by arm (symlog scale: α near 0 stays visible).
    Right: each run's final α against its balanced-accuracy difference to ``baseline`` on the same seed."""
    trained = nbn_runs(results, dataset)[["arm", "seed"]].astype({"seed": int})   # each trained network once
    chosen = dynamics[dynamics["dataset"] == dataset].astype({"seed": int}).merge(trained, on=["arm", "seed"])
    figure, axes = new_figure(ncols=2, width=5.0)
    if chosen.empty:   # a study reported before dynamics were recorded: say so in the figure
        for ax in axes[0]:
            ax.text(0.5, 0.5, f"no per-epoch α recorded on {dataset}\n(the study's dynamics.csv has no rows)",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return figure
    sns.lineplot(data=chosen, x="epoch", y="alpha", hue="arm", units="seed", estimator=None, ax=axes[0, 0],
                 linewidth=1)
    _symlog(axes[0, 0], "y", chosen["alpha"])
    axes[0, 0].axhline(0, color="0.3", linewidth=0.8)
    axes[0, 0].set(title="α over training (one line per seed)", ylabel="α (symlog)")
    axes[0, 0].get_legend().remove()
    base = by_seed(results, dataset, baseline, "balanced")
    points = [{"arm": arm, "alpha": alpha, "difference": by_seed(results, dataset, arm, "balanced")[seed] - base[seed]}
              for arm in chosen["arm"].unique()
              for seed, alpha in by_seed(results, dataset, arm, "alpha").items()
              if seed in base and np.isfinite(alpha)]
    sns.scatterplot(data=pd.DataFrame(points), x="alpha", y="difference", hue="arm", ax=axes[0, 1], s=40)
    _symlog(axes[0, 1], "x", pd.Series([point["alpha"] for point in points]))
    axes[0, 1].axhline(0, color="0.3", linewidth=0.8)
    axes[0, 1].set(xlabel="final α (symlog)", ylabel=f"balanced accuracy − {baseline} (points)",
                   title="final α and the accuracy difference, seed by seed")
    legend_outside(axes[0, 1])
    figure.suptitle(f"{dataset}: NBN's α over training", fontsize="medium")
    return figure
