"""Image figures: Grad-CAM maps over head and tail test images, and a grid of training images per class."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nbn_tutorial.diagnosis.gradcam import ImageExamples
from nbn_tutorial.plots.theme import new_figure, themed
from nbn_tutorial.data import UnreadableImage, read_rgb


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


def _bare(ax: Axes) -> None:
    """No ticks and no grid: the axes only frame an image."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


@themed
def plot_grad_cam(examples: ImageExamples, maps: np.ndarray, predictions: Sequence[int] | None = None,
                  class_names: Sequence[str] | None = None) -> Figure:
    """For head and tail rows: each image, then its Grad-CAM map over it; titles give true (and predicted) class."""
    rows = [row for row in ("head", "tail") if (examples.rows == row).any()]
    columns = max(int((examples.rows == row).sum()) for row in rows)
    figure, axes = new_figure(ncols=columns, nrows=2 * len(rows), width=1.8, height=1.9)
    for ax in axes.flat:
        _bare(ax)
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


def _sample_pixels(dataset, index: int, thumbnail: int = 96) -> np.ndarray | None:
    """Displayable pixels [H, W] or [H, W, 3] of one image of a tensor or files dataset (None: unreadable, skipped)."""
    images = getattr(dataset, "images", None)
    if images is not None:
        image = images[index].permute(1, 2, 0).numpy()
        return image.squeeze(-1) if image.shape[-1] == 1 else image
    path, _ = dataset.samples[index]
    try:
        rgb = read_rgb(path, dataset.list_file, dataset.image_root)
    except UnreadableImage:
        if getattr(dataset, "skip_bad_images", False):
            return None
        raise
    rgb.thumbnail((thumbnail, thumbnail))  # a few hundred full-size photos would make a huge figure
    return np.asarray(rgb)


@themed
def plot_class_samples(dataset, per_class: int = 6, seed: int = 0) -> Figure:
    """A grid of training images (tensor or files dataset): one row per class (most frequent first) with its count."""
    rng = np.random.default_rng(seed)
    counts = dataset.class_counts
    order = np.argsort(-counts, kind="stable")
    figure = Figure(figsize=(1.1 * per_class, 1.1 * len(order)), layout="constrained")
    axes = figure.subplots(len(order), per_class, squeeze=False)
    for row, label in enumerate(order):
        members = np.flatnonzero(dataset.targets == label)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for column, ax in enumerate(axes[row]):
            _bare(ax)
            image = _sample_pixels(dataset, int(chosen[column])) if column < len(chosen) else None
            if image is not None:
                ax.imshow(image, cmap="gray")
        axes[row, 0].set_ylabel(f"{dataset.classes[label]}\n{counts[label]}", fontsize="small")
    figure.suptitle("training images per class (row label: class and its training count)")
    return figure
