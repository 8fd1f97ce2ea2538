"""Grad-CAM attention maps of head and tail test images.

Implemented here (a forward hook on ``model.last_stage`` plus ``torch.autograd.grad``) instead of with
the ``grad-cam`` package: that package pulls in opencv for resizing and colour maps, which we do not
otherwise need, and the computation is a few lines. Using ``autograd.grad`` rather than
``backward()`` leaves the parameters' ``.grad`` untouched, so a model in training is not disturbed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nbn_tutorial.data import LTDataset
from nbn_tutorial.diagnosis.outputs import eval_mode, model_device
from nbn_tutorial.errors import UserError
from nbn_tutorial.wording import Summary


@dataclass(frozen=True)
class ImageExamples:
    """Chosen test images: model inputs, displayable pixels, labels and the row (head/tail) they belong to."""

    indices: np.ndarray     # [M] positions in the dataset
    inputs: torch.Tensor    # [M, C, H, W] normalized float, as the model sees them
    images: np.ndarray      # [M, H, W, C] float pixels in [0, 1] for display
    targets: np.ndarray     # [M]
    rows: np.ndarray        # [M] "head" or "tail"


def _normalized_inputs(dataset: LTDataset, indices: np.ndarray) -> torch.Tensor:
    """The evaluation-time model inputs of ``dataset[indices]`` (no augmentation)."""
    if dataset.spec.kind == "tensor":
        shape = (1, -1, 1, 1)
        mean = torch.tensor(dataset.spec.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(dataset.spec.std, dtype=torch.float32).view(shape)
        return (dataset.images[torch.as_tensor(indices)].float() / 255 - mean) / std
    view = dataset.for_training(False)
    return torch.stack([view[int(index)][0] for index in indices])


def _display_pixels(inputs: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    shape = (1, -1, 1, 1)
    pixels = inputs * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    return pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def pick_head_tail_examples(dataset: LTDataset, groups: Mapping[str, Sequence[int]] | None = None, n: int = 4,
                            seed: int = 0) -> ImageExamples:
    """``n`` images of head ("many") classes then ``n`` of tail ("few") classes, cycling over each group's classes.

    ``groups`` defaults to ``dataset.shot_groups``; the choice is deterministic given ``seed``.
    """
    groups = dataset.shot_groups if groups is None else groups
    if n < 1:
        raise UserError(f"n must be at least 1 example per row, got {n}")
    rng = np.random.default_rng(seed)
    indices, rows = [], []
    for row, group in (("head", "many"), ("tail", "few")):
        candidates = [np.flatnonzero(dataset.targets == label) for label in groups.get(group, [])]
        candidates = [members for members in candidates if len(members)]
        if not candidates:
            rule = getattr(dataset, "shot_rule", dataset.spec.shot_rule)
            raise UserError(f"the {group!r} shot group has no images in the {dataset.split} split under the {rule} "
                            "shot rule, which a small dataset can leave empty; set shot_rule: rank (or auto) in the "
                            "config")
        for position in range(n):
            indices.append(int(rng.choice(candidates[position % len(candidates)])))
            rows.append(row)
    indices = np.asarray(indices, dtype=np.int64)
    inputs = _normalized_inputs(dataset, indices)
    return ImageExamples(indices, inputs, _display_pixels(inputs, dataset.spec.mean, dataset.spec.std),
                         dataset.targets[indices], np.asarray(rows))


def _grad_cam_batch(model: nn.Module, inputs: torch.Tensor, target_classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps [B, H, W] in [0, 1] of one batch (model already in eval mode, grads enabled)."""
    feature_maps: list[torch.Tensor] = []
    handle = model.last_stage.register_forward_hook(lambda module, args, output: feature_maps.append(output))
    try:
        # An input that requires grad guarantees a graph even when every parameter is frozen.
        logits = model(inputs.detach().clone().requires_grad_(True))
    finally:
        handle.remove()
    activation = feature_maps[-1]
    score = logits.gather(1, target_classes.view(-1, 1)).sum()
    (gradient,) = torch.autograd.grad(score, activation)
    channel_weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((channel_weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
    low = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (cam - low) / span.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


def grad_cam(model: nn.Module, images: torch.Tensor, target_classes, batch_size: int = 64) -> np.ndarray:
    """Grad-CAM attention maps [N, H, W] in [0, 1] for the given classes, at the input resolution.

    ``images`` are normalized model inputs (e.g. ``ImageExamples.inputs``). The map is
    ReLU(Σ_k ā_k A_k) over the last-stage feature maps A_k, with ā_k the spatial mean of the target
    logit's gradient, upsampled bilinearly and rescaled to [0, 1] per image (all zeros when flat).
    """
    device = model_device(model)
    targets = torch.as_tensor(np.asarray(target_classes), dtype=torch.int64)
    if len(targets) != len(images):
        raise ValueError(f"got {len(images)} images but {len(targets)} target classes")
    maps = []
    with eval_mode(model), torch.enable_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            maps.append(_grad_cam_batch(model, batch, targets[start:start + batch_size].to(device)).detach().cpu())
    return torch.cat(maps).float().numpy()


def feature_map_size(model: nn.Module, images: torch.Tensor) -> tuple[int, int]:
    """Height and width of the last stage's feature map for ``images``: the grid a Grad-CAM map is computed on."""
    feature_maps: list[torch.Tensor] = []
    handle = model.last_stage.register_forward_hook(lambda module, args, output: feature_maps.append(output))
    try:
        with eval_mode(model), torch.no_grad():
            model(images[:1].to(model_device(model)))
    finally:
        handle.remove()
    height, width = feature_maps[-1].shape[-2:]
    return int(height), int(width)


def grad_cam_note(model: nn.Module, images: torch.Tensor) -> Summary:
    """How coarse a Grad-CAM map is: the last-stage grid it is computed on, against the input size."""
    height, width = feature_map_size(model, images)
    image_height, image_width = (int(size) for size in images.shape[-2:])
    cell = f"{image_height / height:.3g}×{image_width / width:.3g}"
    text = (f"These maps are computed on the last stage's {height}×{width} feature maps and upsampled bilinearly to "
            f"the {image_height}×{image_width} input, so each map cell covers a {cell} block of pixels.")
    if height * width <= 16:
        text = (f"**Coarse maps.** {text} A {height}×{width} grid can only say which part of the image drove the "
                "prediction, not which strokes or edges; every gradation in between is bilinear interpolation.")
    return Summary(text)
