"""The one look of every figure: the theme, the shot-group colours, and the figure helpers all plots share.

The theme is applied through ``matplotlib.rc_context`` (the :func:`themed` decorator), so importing
the plots changes nothing globally; :func:`set_theme` applies it globally for your own plots.
Figures are built without pyplot (:func:`new_figure`), so they work under any backend, are never
shown implicitly and need no closing.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nbn_tutorial.accuracy import SHOT_NAMES
from nbn_tutorial.diagnosis.compare import stack_runs

THEME: dict = {"style": "whitegrid", "context": "notebook", "palette": "colorblind"}
GROUP_COLORS: dict[str, tuple[float, float, float]] = dict(
    zip(SHOT_NAMES, [sns.color_palette("colorblind")[i] for i in (0, 2, 3)]))  # blue, green, red

Tables = pd.DataFrame | Mapping[str, pd.DataFrame]


def theme_rc() -> dict:
    """Matplotlib rc parameters of :data:`THEME` (seaborn style + context + palette)."""
    palette = sns.color_palette(THEME["palette"])
    return {**sns.axes_style(THEME["style"]), **sns.plotting_context(THEME["context"]),
            "axes.prop_cycle": mpl.cycler(color=palette)}


def set_theme() -> None:
    """Apply :data:`THEME` globally (for figures you draw yourself in a notebook)."""
    sns.set_theme(**THEME)


def themed(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw ``plot`` under the project theme without touching global settings."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs) -> Figure:
        with mpl.rc_context(theme_rc()), warnings.catch_warnings():
            # seaborn 0.13's boxplot still passes `vert`, deprecated since Matplotlib 3.11: not ours to fix.
            warnings.filterwarnings("ignore", message="vert: bool was deprecated", category=DeprecationWarning)
            return plot(*args, **kwargs)

    return wrapper


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Figure with a [nrows, ncols] array of axes (each width x height inches)."""
    figure = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def as_frame(tables: Tables) -> pd.DataFrame:
    """One long table with a ``model`` column, from a table or a mapping of run name to table."""
    if isinstance(tables, pd.DataFrame):
        return tables.assign(model=tables["model"] if "model" in tables else "")
    return stack_runs(tables)


def is_comparison(data: pd.DataFrame) -> bool:
    """Whether a long table holds more than one run (its ``model`` column)."""
    return data["model"].nunique() > 1


def present_groups(data: pd.DataFrame, column: str) -> list[str]:
    """The shot groups that occur in ``column``, in many/medium/few order."""
    return [group for group in SHOT_NAMES if group in set(data[column])]


def legend_outside(ax: Axes) -> None:
    """Move the axes' legend (if any) to its right, where it cannot hide data."""
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small",
                        title_fontsize="small")
