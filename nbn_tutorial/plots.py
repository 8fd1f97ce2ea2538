"""Figures of the diagnosis quantities (:mod:`nbn_tutorial.diagnosis`) and of training metrics.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot's global state, so
it works under any backend (Agg included), is never shown implicitly and needs no closing. In a
notebook, leave the figure as a cell's last expression (or ``display(fig)``); save it with
``fig.savefig(path)``.

One theme (:data:`THEME`) styles every figure, applied through ``matplotlib.rc_context`` so importing
this module changes nothing globally; :func:`set_theme` applies it globally for your own plots.
Shot groups always have the same colours (:data:`GROUP_COLORS`).

Functions that draw per-class or per-channel tables also accept a mapping ``{"BN": table, "NBN":
table}`` and then compare the runs side by side.
"""
from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from nbn_tutorial.diagnosis import GROUP_ORDER, GROUP_TABLE_COLUMNS, ImageExamples, stack_runs
from nbn_tutorial.errors import UserError

THEME: dict = {"style": "whitegrid", "context": "notebook", "palette": "colorblind"}
GROUP_COLORS: dict[str, tuple[float, float, float]] = dict(
    zip(GROUP_ORDER, [sns.color_palette("colorblind")[i] for i in (0, 2, 3)]))  # blue, green, red

Tables = pd.DataFrame | Mapping[str, pd.DataFrame]


def theme_rc() -> dict:
    """Matplotlib rc parameters of :data:`THEME` (seaborn style + context + palette)."""
    palette = sns.color_palette(THEME["palette"])
    return {**sns.axes_style(THEME["style"]), **sns.plotting_context(THEME["context"]),
            "axes.prop_cycle": mpl.cycler(color=palette)}


def set_theme() -> None:
    """Apply :data:`THEME` globally (for figures you draw yourself in a notebook)."""
    sns.set_theme(**THEME)


def _themed(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw ``plot`` under the project theme without touching global settings."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs) -> Figure:
        with mpl.rc_context(theme_rc()), warnings.catch_warnings():
            # seaborn 0.13's boxplot still passes `vert`, deprecated since Matplotlib 3.11: not ours to fix.
            warnings.filterwarnings("ignore", message="vert: bool was deprecated", category=DeprecationWarning)
            return plot(*args, **kwargs)

    return wrapper


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    """A constrained-layout Figure with a [nrows, ncols] array of axes (each width x height inches)."""
    figure = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, axes


def _as_frame(tables: Tables) -> pd.DataFrame:
    """One long table with a ``model`` column, from a table or a mapping of run name to table."""
    if isinstance(tables, pd.DataFrame):
        return tables.assign(model=tables["model"] if "model" in tables else "")
    return stack_runs(tables)


def _is_comparison(data: pd.DataFrame) -> bool:
    return data["model"].nunique() > 1


def _present_groups(data: pd.DataFrame, column: str) -> list[str]:
    return [group for group in GROUP_ORDER if group in set(data[column])]


def _legend_outside(ax: Axes) -> None:
    """Move the axes' legend (if any) to its right, where it cannot hide data."""
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small",
                        title_fontsize="small")


def _log_count_axis(ax: Axes) -> None:
    """Log x axis labelled with plain numbers at 1, 2, 5 x 10^k."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _count_scatter(ax: Axes, data: pd.DataFrame, x: str, y: str, hue: str) -> None:
    """Per-class (or per-channel) values against training count, log x axis, coloured by shot group."""
    sns.scatterplot(data=data, x=x, y=y, hue=hue, hue_order=_present_groups(data, hue), palette=GROUP_COLORS,
                    style="model" if _is_comparison(data) else None, s=50, ax=ax)
    _log_count_axis(ax)
    ax.set_xlabel("training images of the class (log)")
    _legend_outside(ax)


def _group_distribution(ax: Axes, data: pd.DataFrame, x: str, y: str) -> None:
    """Box plot with the individual points over it, per shot group (and per run when comparing)."""
    order = _present_groups(data, x)
    if _is_comparison(data):
        options = dict(hue="model", dodge=True)
        sns.boxplot(data=data, x=x, y=y, order=order, showfliers=False, ax=ax, **options)
        dark = {run: "0.25" for run in data["model"].unique()}
        sns.stripplot(data=data, x=x, y=y, order=order, palette=dark, size=3, legend=False, ax=ax, **options)
    else:
        options = dict(hue=x, hue_order=order, palette=GROUP_COLORS, legend=False)
        sns.boxplot(data=data, x=x, y=y, order=order, showfliers=False, boxprops={"alpha": 0.5}, ax=ax, **options)
        sns.stripplot(data=data, x=x, y=y, order=order, size=4, edgecolor="0.2", linewidth=0.5, ax=ax, **options)
    ax.set_xlabel("shot group")


def _group_bars(ax: Axes, data: pd.DataFrame, x: str, y: str, estimator: str = "mean", fmt: str = "%.2f") -> None:
    """Bars of ``y`` aggregated per shot group (per run when comparing), labelled with their values."""
    order = _present_groups(data, x)
    if _is_comparison(data):
        sns.barplot(data=data, x=x, y=y, order=order, hue="model", estimator=estimator, errorbar=None, ax=ax)
    else:
        sns.barplot(data=data, x=x, y=y, order=order, hue=x, hue_order=order, palette=GROUP_COLORS,
                    estimator=estimator, errorbar=None, legend=False, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt=fmt, fontsize="small")
    ax.set_xlabel("shot group")


@_themed
def plot_accuracy_vs_count(table: Tables) -> Figure:
    """Per-class accuracy against training count (log x), and mean accuracy per shot group."""
    data = _as_frame(table)
    figure, axes = _figure(ncols=2)
    _count_scatter(axes[0, 0], data, "train_count", "accuracy", "group")
    axes[0, 0].set(ylabel="test accuracy", title="per-class accuracy vs training count")
    _group_bars(axes[0, 1], data, "group", "accuracy")
    axes[0, 1].set(ylabel="mean per-class accuracy", title="accuracy by shot group")
    return figure


@_themed
def plot_feature_strength(table: Tables, y: str = "strength") -> Figure:
    """Per-class feature strength against training count, and its distribution per shot group."""
    data = _as_frame(table)
    figure, axes = _figure(ncols=2)
    _count_scatter(axes[0, 0], data, "train_count", y, "group")
    axes[0, 0].set(ylabel=f"feature {y.replace('_', ' ')}", title="penultimate-feature strength per class")
    _group_distribution(axes[0, 1], data, "group", y)
    axes[0, 1].set(ylabel=f"feature {y.replace('_', ' ')}", title="by shot group")
    return figure


@_themed
def plot_channel_strength(table: Tables, y: str = "strength") -> Figure:
    """Strength of class-specific last-stage channels by owner group, and how many channels each group owns."""
    data = _as_frame(table)
    data = data[data["active"]]
    figure, axes = _figure(ncols=2)
    _group_distribution(axes[0, 0], data, "owner_group", y)
    axes[0, 0].set(xlabel="shot group of the owner class", ylabel=f"channel {y.replace('_', ' ')}",
                   title="class-specific channel strength")
    counts = data.groupby(["model", "owner_group"]).size().rename("channels").reset_index()
    _group_bars(axes[0, 1], counts, "owner_group", "channels", estimator="sum", fmt="%g")
    axes[0, 1].set(xlabel="shot group of the owner class", ylabel="channels owned", title="channel ownership")
    return figure


def _short_layer_names(names: pd.Series) -> pd.Series:
    return names.str.removeprefix("backbone.")


@_themed
def plot_bn_parameters(layer_table: pd.DataFrame, channel_table: pd.DataFrame, effective: bool = False) -> Figure:
    """γ and β distributions per BN layer, their norms per layer, and α of the NBN layers.

    ``layer_table`` / ``channel_table`` come from ``bn_parameter_stats`` / ``bn_channel_parameters``.
    ``effective=True`` shows the applied w, b instead of the raw γ, β (identical for plain BN layers).
    """
    channels = channel_table.assign(layer=_short_layer_names(channel_table["layer"]))
    layers = layer_table.assign(layer=_short_layer_names(layer_table["layer"]))
    order = list(layers["layer"])
    types = [kind for kind in ("BN", "NBN") if kind in set(layers["type"])]
    figure, axes = _figure(ncols=2, nrows=2, width=max(5.0, 0.22 * len(order)), height=3.6)
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
    _legend_outside(axes[1, 0])
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


@_themed
def plot_gamma_vs_frequency(table: Tables, y: str = "gamma") -> Figure:
    """A last-stage channel's γ (or ``y="w"``: applied weight) against the training count of its owner class."""
    data = _as_frame(table)
    data = data[data["active"]]
    figure, axes = _figure(ncols=2)
    _count_scatter(axes[0, 0], data, "owner_count", y, "owner_group")
    layer = ", ".join(sorted(set(_short_layer_names(data["layer"]))))
    axes[0, 0].set(xlabel="training images of the owner class (log)", ylabel=y, title=f"{y} of {layer} per channel")
    _group_distribution(axes[0, 1], data, "owner_group", y)
    axes[0, 1].set(xlabel="shot group of the owner class", ylabel=y, title="by owner group")
    return figure


def _by_frequency(data: pd.DataFrame) -> list[str]:
    """Class labels ordered from the most to the least frequent training class."""
    ranked = data.drop_duplicates("class").sort_values(["train_count", "class"], ascending=[False, True])
    return [str(label) for label in ranked["class"]]


@_themed
def plot_classifier_norms(table: Tables) -> Figure:
    """Classifier weight norm of every class, classes ordered by training count (the head bias)."""
    data = _as_frame(table)
    data = data.assign(label=data["class"].astype(str))
    order = _by_frequency(data)
    figure, axes = _figure(width=max(6.0, 0.12 * len(order)))
    ax = axes[0, 0]
    if _is_comparison(data):
        sns.barplot(data=data, x="label", y="weight_norm", order=order, hue="model", ax=ax)
    else:
        sns.barplot(data=data, x="label", y="weight_norm", order=order, hue="group",
                    hue_order=_present_groups(data, "group"), palette=GROUP_COLORS, dodge=False, ax=ax)
    ax.set(xlabel="class (most to least frequent)", ylabel="‖classifier weight‖₂",
           title="classifier weight norms")
    _legend_outside(ax)
    if len(order) > 30:
        ax.set_xticks([])
    return figure


@_themed
def plot_grad_cam(examples: ImageExamples, maps: np.ndarray, predictions: Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> Figure:
    """For head and tail rows: each image, then its Grad-CAM map over it; titles give true (and predicted) class."""
    rows = [row for row in ("head", "tail") if (examples.rows == row).any()]
    columns = max(int((examples.rows == row).sum()) for row in rows)
    figure, axes = _figure(ncols=columns, nrows=2 * len(rows), width=1.8, height=1.9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for row_number, row in enumerate(rows):
        for column, index in enumerate(np.flatnonzero(examples.rows == row)):
            image_ax, overlay_ax = axes[2 * row_number, column], axes[2 * row_number + 1, column]
            _show_image(image_ax, examples.images[index])
            _show_image(overlay_ax, examples.images[index])
            overlay_ax.imshow(maps[index], cmap="jet", alpha=0.5, vmin=0, vmax=1,
                              extent=(-0.5, maps[index].shape[1] - 0.5, maps[index].shape[0] - 0.5, -0.5))
            image_ax.set_title(_example_title(examples.targets[index], predictions, index, class_names),
                               fontsize="small")
        axes[2 * row_number, 0].set_ylabel(f"{row} image")
        axes[2 * row_number + 1, 0].set_ylabel(f"{row} Grad-CAM")
    return figure


def _show_image(ax: Axes, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image)


def _example_title(target: int, predictions: Sequence[int] | None, index: int,
                   class_names: Sequence[str] | None) -> str:
    name = (lambda label: class_names[label] if class_names is not None else str(label))
    title = f"true {name(int(target))}"
    return title if predictions is None else f"{title}\npred {name(int(predictions[index]))}"


@_themed
def plot_tsne(table: Tables) -> Figure:
    """t-SNE of penultimate features coloured by shot group (one panel per run when comparing)."""
    data = _as_frame(table)
    runs = list(dict.fromkeys(data["model"]))
    figure, axes = _figure(ncols=len(runs), width=4.6, height=4.2)
    for ax, run in zip(axes[0], runs):
        subset = data[data["model"] == run]
        sns.scatterplot(data=subset, x="x", y="y", hue="group", hue_order=_present_groups(subset, "group"),
                        palette=GROUP_COLORS, s=12, alpha=0.7, linewidth=0, ax=ax)
        ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", title=f"t-SNE of features {run}".strip())
        _legend_outside(ax)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


@_themed
def plot_confusion(matrix: np.ndarray, class_names: Sequence[str] | None = None,
                   title: str = "confusion matrix") -> Figure:
    """Heat map of a confusion matrix (rows true, columns predicted); annotated when there are few classes."""
    matrix = np.asarray(matrix)
    size = len(matrix)
    labels = list(class_names) if class_names is not None else "auto"
    normalized = np.issubdtype(matrix.dtype, np.floating)
    figure, axes = _figure(width=min(12.0, 2.5 + 0.45 * size), height=min(10.0, 2.0 + 0.4 * size))
    sns.heatmap(matrix, ax=axes[0, 0], cmap="Blues", vmin=0, vmax=1 if normalized else None, square=True,
                annot=size <= 15, fmt=".2f" if normalized else "d", annot_kws={"fontsize": "x-small"},
                xticklabels=labels, yticklabels=labels)
    axes[0, 0].set(xlabel="predicted class", ylabel="true class", title=title)
    return figure


@_themed
def plot_group_comparison(table: pd.DataFrame) -> Figure:
    """Grouped bars of overall / balanced / many / medium / few accuracy per run (from ``group_table``)."""
    long = (table.reset_index().melt(id_vars=table.index.name or "index", value_vars=list(GROUP_TABLE_COLUMNS),
                                     var_name="metric", value_name="accuracy")
            .rename(columns={table.index.name or "index": "model"}))
    figure, axes = _figure(width=7.0)
    sns.barplot(data=long, x="metric", y="accuracy", hue="model", order=list(GROUP_TABLE_COLUMNS), ax=axes[0, 0])
    for container in axes[0, 0].containers:
        axes[0, 0].bar_label(container, fmt="%.2f", fontsize="x-small")
    axes[0, 0].set(xlabel="", ylabel="accuracy", title="accuracy by shot group")
    return figure


def _alpha_values(cell) -> list[float]:
    """The α list of one metrics cell: a list (metrics.jsonl) or its JSON text (metrics.csv)."""
    if isinstance(cell, str):
        cell = json.loads(cell)
    return list(cell) if isinstance(cell, (list, tuple, np.ndarray)) else []


def _alpha_long(data: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, epoch, α index) from a metrics table's ``alpha`` list column."""
    rows = [{"model": run, "epoch": epoch, "alpha": f"α{position}", "value": float(value)}
            for run, epoch, cell in zip(data["model"], data["epoch"], data["alpha"])
            for position, value in enumerate(_alpha_values(cell))]
    return pd.DataFrame(rows, columns=["model", "epoch", "alpha", "value"])


@_themed
def plot_alpha_over_training(metrics: Tables) -> Figure:
    """The NBN α values per epoch, from a training metrics table (``epoch`` and ``alpha`` list columns)."""
    long = _alpha_long(_as_frame(metrics))
    if long.empty:
        raise UserError("these metrics have no NBN α values (a plain BN run); plot α of an NBN run")
    figure, axes = _figure(width=6.0)
    comparison = long["model"].nunique() > 1
    sns.lineplot(data=long, x="epoch", y="value", hue="model" if comparison else "alpha",
                 style="alpha" if comparison else None, marker="o", markersize=4, ax=axes[0, 0])
    axes[0, 0].set(ylabel="α", title="NBN α over training")
    axes[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend_outside(axes[0, 0])
    return figure


_CURVE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("train_loss",)),
    ("accuracy", ("train_acc", "test_acc", "balanced_acc")),
    ("test accuracy by shot group", ("many_acc", "medium_acc", "few_acc")),
)


@_themed
def plot_training_curves(metrics: Tables) -> Figure:
    """Training loss, train/test/balanced accuracy, and many/medium/few accuracy per epoch."""
    data = _as_frame(metrics)
    panels = [(title, [column for column in columns if column in data]) for title, columns in _CURVE_PANELS]
    panels = [(title, columns) for title, columns in panels if columns]
    if not panels or "epoch" not in data:
        raise UserError("the metrics table needs an epoch column and train_loss / *_acc columns; "
                        "read it with train.read_metrics")
    figure, axes = _figure(ncols=len(panels), width=4.6)
    comparison = _is_comparison(data)
    for ax, (title, columns) in zip(axes[0], panels):
        long = data.melt(id_vars=["model", "epoch"], value_vars=columns, var_name="metric", value_name="value")
        sns.lineplot(data=long, x="epoch", y="value", hue="metric", style="model" if comparison else None, ax=ax)
        ax.set(ylabel="", title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_outside(ax)
    return figure


@_themed
def plot_longtail_profiles(num_classes: int = 100, max_per_class: int = 500,
                           imbalance_factors: Sequence[float] = (10, 100)) -> Figure:
    """Class counts of the exp and step profiles (log scale), the picture behind 'long-tailed'."""
    from nbn_tutorial.data import longtail_counts

    figure, axes = _figure(width=6.0)
    ax = axes[0, 0]
    for profile in ("exp", "step"):
        for factor in imbalance_factors:
            ax.plot(range(num_classes), longtail_counts(num_classes, max_per_class, factor, profile),
                    label=f"{profile}, IF={factor:g}", linestyle="-" if profile == "exp" else "--")
    ax.set(yscale="log", xlabel="class (sorted by frequency)", ylabel="training images",
           title=f"long-tailed profiles ({num_classes} classes, {max_per_class} per class at the head)")
    ax.legend(fontsize="small")
    return figure


@_themed
def plot_class_samples(dataset, per_class: int = 6, seed: int = 0) -> Figure:
    """A grid of training images of a tensor dataset: one row per class (most frequent first) with its count."""
    rng = np.random.default_rng(seed)
    counts = dataset.class_counts
    order = np.argsort(-counts, kind="stable")
    figure = Figure(figsize=(1.1 * per_class, 1.1 * len(order)), layout="constrained")
    axes = figure.subplots(len(order), per_class, squeeze=False)
    for row, label in enumerate(order):
        members = np.flatnonzero(dataset.targets == label)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if column < len(chosen):
                image = dataset.images[int(chosen[column])].permute(1, 2, 0).numpy()
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
        axes[row, 0].set_ylabel(f"{dataset.classes[label]}\n{counts[label]}", fontsize="small")
    figure.suptitle("training images per class (row label: class and its training count)")
    return figure
