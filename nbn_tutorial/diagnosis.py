"""Feature-bias diagnosis of a trained long-tailed classifier (BN or NBN): the data behind the paper's pictures.

Every function returns data (numpy arrays or pandas DataFrames); :mod:`nbn_tutorial.plots` draws them.

Conventions:

- accuracies are fractions in [0, 1];
- shot groups are the data module's ``"many"``, ``"medium"``, ``"few"`` (head, middle and tail classes);
- per-class tables have the columns ``class``, ``train_count``, ``group`` plus the quantity;
- the *feature strength* of a class is the mean L2 norm of the penultimate feature vectors of its test
  samples (column ``strength``; the mean absolute activation is reported beside it as
  ``mean_abs_activation``);
- a last-stage channel's activation on an image is the spatial mean of the last stage's output map
  (what global average pooling passes on). Its *owner* is the class with the highest class-mean
  activation divided by the channel's mean over classes (the ratio is the channel's ``selectivity``),
  and its *strength* is the owner's class-mean activation on it.

Grad-CAM is implemented here (a forward hook on ``model.last_stage`` plus ``torch.autograd.grad``)
instead of with the ``grad-cam`` package: that package pulls in opencv for resizing and colour maps,
which we do not otherwise need, and the computation is a few lines. Using ``autograd.grad`` rather
than ``backward()`` leaves the parameters' ``.grad`` untouched, so a model in training is not disturbed.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.data import LTDataset, make_loader
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import nbn_layers, normalized_affine

GROUP_ORDER: tuple[str, ...] = ("many", "medium", "few")
GROUP_TABLE_COLUMNS: tuple[str, ...] = ("overall", "balanced", *GROUP_ORDER)
_SHORTCUT_NAMES = ("downsample", "shortcut")


# ----------------------------------------------------------------------------------------------------
# Model outputs
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelOutputs:
    """What a model computes on an evaluation set, one row per image, as numpy arrays."""

    logits: np.ndarray               # [N, C]
    targets: np.ndarray              # [N] int64
    features: np.ndarray             # [N, D] penultimate features
    channel_activations: np.ndarray  # [N, C'] spatial mean of the last-stage feature map

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return self.logits.shape[1]

    @property
    def predictions(self) -> np.ndarray:
        """Predicted class of every image [N]."""
        return self.logits.argmax(axis=1)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode, then give every submodule back its own training flag."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _evaluation_batches(data: LTDataset | Iterable, device: torch.device, batch_size: int) -> Iterable:
    """Batches without augmentation: a loader made from an LTDataset, or the given iterable of (x, y)."""
    if isinstance(data, LTDataset):
        return make_loader(data, batch_size=batch_size, train=False, device=device)
    return data


def collect_outputs(model: nn.Module, data: LTDataset | Iterable, device: str | torch.device | None = None,
                    batch_size: int = 256) -> ModelOutputs:
    """Logits, targets, penultimate features and last-stage channel activations of ``model`` on ``data``.

    ``data`` is an LTDataset (evaluated with ``make_loader(train=False)``: no augmentation) or any
    iterable of (x, y) batches. ``device=None`` uses the model's device; a given device moves the model
    there. The model runs in eval mode under ``torch.inference_mode``; every module's training flag is
    restored afterwards.
    """
    if device is None:
        device = _model_device(model)
    else:
        device = torch.device(device)
        model.to(device)
    pooled: list[torch.Tensor] = []

    def keep_channel_means(module: nn.Module, inputs, output: torch.Tensor) -> None:
        if output.dim() != 4:
            raise ValueError("model.last_stage must output a feature map [N, C, h, w], "
                             f"got shape {tuple(output.shape)}")
        pooled.append(output.float().mean(dim=(2, 3)).cpu())

    logits, targets, features = [], [], []
    handle = model.last_stage.register_forward_hook(keep_channel_means)
    try:
        with _eval_mode(model), torch.inference_mode():
            for x, y in _evaluation_batches(data, device, batch_size):
                batch_features = model.features(x.to(device))
                logits.append(model.head(batch_features).float().cpu())
                features.append(batch_features.float().cpu())
                targets.append(torch.as_tensor(y).cpu())
    finally:
        handle.remove()
    if not logits:
        raise UserError("the evaluation data is empty; pass a dataset or loader with at least one image")
    return ModelOutputs(torch.cat(logits).numpy(), torch.cat(targets).numpy().astype(np.int64),
                        torch.cat(features).numpy(), torch.cat(pooled).numpy())


# ----------------------------------------------------------------------------------------------------
# Per-class tables and accuracy
# ----------------------------------------------------------------------------------------------------

def class_groups(groups: Mapping[str, Sequence[int]], num_classes: int) -> np.ndarray:
    """Shot-group name of every class [C] (``""`` for a class in no group)."""
    names = np.full(num_classes, "", dtype=object)
    for name, members in groups.items():
        names[np.asarray(members, dtype=np.int64)] = name
    return names


def per_class_table(columns: Mapping[str, np.ndarray], train_counts,
                    groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """A DataFrame with one row per class: ``class``, ``train_count``, ``group``, then ``columns``."""
    counts = np.asarray(train_counts, dtype=np.int64)
    table = pd.DataFrame({"class": np.arange(len(counts)), "train_count": counts,
                          "group": class_groups(groups, len(counts)).astype(str)})
    for name, values in columns.items():
        table[name] = np.asarray(values)
    return table


def class_means(values: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean of ``values`` ([N] or [N, K]) over each class's samples: [C] or [C, K]; NaN for an absent class."""
    values = np.asarray(values, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    sums = np.zeros((num_classes, *values.shape[1:]))
    np.add.at(sums, targets, values)
    counts = np.bincount(targets, minlength=num_classes).reshape(-1, *([1] * (values.ndim - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def per_class_accuracy(logits: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of every class [C] (fraction; NaN for a class without test samples)."""
    correct = np.asarray(logits).argmax(axis=1) == np.asarray(targets)
    return class_means(correct, targets, num_classes)


def accuracy_by_count(logits: np.ndarray, targets: np.ndarray, train_counts,
                      groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class table: ``class``, ``train_count``, ``group``, ``accuracy``, ``test_samples``."""
    num_classes = len(train_counts)
    return per_class_table({"accuracy": per_class_accuracy(logits, targets, num_classes),
                            "test_samples": np.bincount(np.asarray(targets), minlength=num_classes)},
                           train_counts, groups)


def group_accuracy(logits: np.ndarray, targets: np.ndarray, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Overall, balanced (mean per-class) and many/medium/few accuracy (mean over the group's classes)."""
    accuracy = per_class_accuracy(logits, targets, np.asarray(logits).shape[1])
    result = {"overall": float(np.mean(np.asarray(logits).argmax(axis=1) == np.asarray(targets))),
              "balanced": float(np.nanmean(accuracy))}
    for name in GROUP_ORDER:
        members = np.asarray(groups.get(name, []), dtype=np.int64)
        present = accuracy[members][~np.isnan(accuracy[members])]
        result[name] = float(present.mean()) if len(present) else float("nan")
    return result


def summarize_by_group(table: pd.DataFrame, column: str, group_column: str = "group") -> pd.Series:
    """Mean of ``column`` per shot group, in many/medium/few order (NaN for an empty group)."""
    return table.groupby(group_column)[column].mean().reindex(list(GROUP_ORDER))


# ----------------------------------------------------------------------------------------------------
# Feature strength and class-specific channels
# ----------------------------------------------------------------------------------------------------

def feature_strength(outputs: ModelOutputs, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class penultimate-feature strength.

    ``strength`` (primary) = mean over the class's test samples of the feature vector's L2 norm;
    ``mean_abs_activation`` = mean over those samples and the D features of |activation|;
    ``relative_strength`` = ``strength`` / its mean over classes (comparable across models).
    """
    num_classes = len(train_counts)
    strength = class_means(np.linalg.norm(outputs.features, axis=1), outputs.targets, num_classes)
    mean_abs = class_means(np.abs(outputs.features).mean(axis=1), outputs.targets, num_classes)
    return per_class_table({"strength": strength, "mean_abs_activation": mean_abs,
                            "relative_strength": strength / np.nanmean(strength),
                            "test_samples": np.bincount(outputs.targets, minlength=num_classes)},
                           train_counts, groups)


def channel_owners(class_mean_activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner class and selectivity of every channel from class-mean activations [C, K].

    selectivity[k] = max over classes of class_mean[c, k] / mean over classes of class_mean[c, k]; the
    owner is the arg max. Dividing by a positive per-channel constant does not move the arg max, so the
    owner is also the class with the highest mean activation; the ratio says how class-specific the
    channel is. Channels whose mean over classes is not positive (dead after the ReLU) get owner -1 and
    selectivity NaN.
    """
    means = np.asarray(class_mean_activations, dtype=np.float64)
    channel_mean = np.nanmean(means, axis=0)
    active = channel_mean > 0
    ratio = np.where(np.isnan(means), -np.inf, means) / np.where(active, channel_mean, 1.0)
    owners = np.where(active, ratio.argmax(axis=0), -1)
    selectivity = np.where(active, ratio.max(axis=0), np.nan)
    return owners.astype(np.int64), selectivity


def class_specific_channels(outputs: ModelOutputs, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """One row per last-stage channel: its owner class, the owner's count and group, and the channel's strength.

    Columns: ``channel``, ``owner`` (class id, -1 for a dead channel), ``owner_count``, ``owner_group``
    (``"none"`` for a dead channel), ``strength`` (the owner's class-mean activation on the channel),
    ``relative_strength`` (strength / mean strength of the active channels), ``selectivity`` (see
    :func:`channel_owners`), ``channel_mean`` (mean over classes of the class-mean activation), ``active``.
    """
    counts = np.asarray(train_counts, dtype=np.int64)
    means = class_means(outputs.channel_activations, outputs.targets, len(counts))
    owners, selectivity = channel_owners(means)
    active = owners >= 0
    channels = np.arange(means.shape[1])
    strength = np.where(active, means[np.maximum(owners, 0), channels], np.nan)
    group_names = class_groups(groups, len(counts))
    return pd.DataFrame({
        "channel": channels,
        "owner": owners,
        "owner_count": np.where(active, counts[np.maximum(owners, 0)], 0),
        "owner_group": np.where(active, group_names[np.maximum(owners, 0)], "none").astype(str),
        "strength": strength,
        "relative_strength": strength / np.nanmean(strength) if active.any() else strength,
        "selectivity": selectivity,
        "channel_mean": np.nanmean(means, axis=0),
        "active": active,
    })


def channel_summary(channel_table: pd.DataFrame, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per owner group (many/medium/few): channels owned, channels per class, mean/median strength, selectivity."""
    active = channel_table[channel_table["active"]]
    by_group = active.groupby("owner_group")
    summary = pd.DataFrame({
        "channels": by_group.size(),
        "mean_strength": by_group["strength"].mean(),
        "median_strength": by_group["strength"].median(),
        "mean_relative_strength": by_group["relative_strength"].mean(),
        "mean_selectivity": by_group["selectivity"].mean(),
    }).reindex(list(GROUP_ORDER))
    summary["channels"] = summary["channels"].fillna(0).astype(np.int64)
    classes = pd.Series({name: len(groups.get(name, [])) for name in GROUP_ORDER})
    summary.insert(1, "channels_per_class", summary["channels"] / classes.where(classes > 0))
    summary.index.name = "owner_group"
    return summary


# ----------------------------------------------------------------------------------------------------
# BN parameters
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _AffineLayer:
    """One affine BatchNorm layer's raw (γ, β) and effective (w, b) parameters as numpy arrays."""

    name: str
    kind: str               # "BN" or "NBN"
    gamma: np.ndarray
    beta: np.ndarray
    weight: np.ndarray      # w actually applied: γ for BN, γ/‖γ‖·α for NBN
    bias: np.ndarray        # b actually applied: β for BN, β/‖β‖·α for NBN
    alpha: float            # NaN for BN


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _affine_layer(name: str, module: _BatchNorm, is_nbn: bool) -> _AffineLayer:
    with torch.no_grad():
        if not is_nbn:
            gamma, beta = _numpy(module.weight), _numpy(module.bias)
            return _AffineLayer(name, "BN", gamma, beta, gamma, beta, float("nan"))
        weight, bias = normalized_affine(module.weight, module.bias, module.alpha)
        return _AffineLayer(name, "NBN", _numpy(module.weight), _numpy(module.bias), _numpy(weight), _numpy(bias),
                            float(module.alpha))


def _affine_layers(model: nn.Module) -> list[_AffineLayer]:
    """Every affine BatchNorm layer (1d/2d/3d, BN or NBN) of ``model``, in model order."""
    nbn = {id(module) for _, module in nbn_layers(model)}
    return [_affine_layer(name, module, id(module) in nbn) for name, module in model.named_modules()
            if isinstance(module, _BatchNorm) and module.affine]


def bn_parameter_stats(model: nn.Module) -> pd.DataFrame:
    """One row per affine BN layer: name, type (BN/NBN), channels, ‖γ‖, ‖β‖, γ/β mean and std, α, ‖w‖, ‖b‖.

    ``w_norm``/``b_norm`` are the norms of the affine parameters actually applied: γ and β for BN,
    ``normalized_affine(γ, β, α)`` for NBN (so about α). ``alpha`` is NaN for BN layers.
    """
    rows = [{"layer": layer.name, "type": layer.kind, "channels": len(layer.gamma),
             "gamma_norm": float(np.linalg.norm(layer.gamma)), "beta_norm": float(np.linalg.norm(layer.beta)),
             "gamma_mean": float(layer.gamma.mean()), "gamma_std": float(layer.gamma.std()),
             "beta_mean": float(layer.beta.mean()), "beta_std": float(layer.beta.std()),
             "alpha": layer.alpha,
             "w_norm": float(np.linalg.norm(layer.weight)), "b_norm": float(np.linalg.norm(layer.bias))}
            for layer in _affine_layers(model)]
    return pd.DataFrame(rows, columns=["layer", "type", "channels", "gamma_norm", "beta_norm", "gamma_mean",
                                       "gamma_std", "beta_mean", "beta_std", "alpha", "w_norm", "b_norm"])


def bn_channel_parameters(model: nn.Module) -> pd.DataFrame:
    """Long form, one row per (affine BN layer, channel): layer, type, channel, γ, β and the applied w, b."""
    frames = [pd.DataFrame({"layer": layer.name, "type": layer.kind, "channel": np.arange(len(layer.gamma)),
                            "gamma": layer.gamma, "beta": layer.beta, "w": layer.weight, "b": layer.bias})
              for layer in _affine_layers(model)]
    if not frames:
        return pd.DataFrame(columns=["layer", "type", "channel", "gamma", "beta", "w", "b"])
    return pd.concat(frames, ignore_index=True)


def _is_shortcut(relative_name: str) -> bool:
    return any(part in _SHORTCUT_NAMES for part in relative_name.split("."))


def last_stage_output_bn(model: nn.Module) -> tuple[str, _BatchNorm]:
    """The BN that shapes the last-stage channels: the last residual-branch BN of the last stage's final block."""
    stage = model.last_stage
    blocks = list(stage.children()) or [stage]
    final_block = blocks[-1]
    residual = [module for name, module in final_block.named_modules()
                if isinstance(module, _BatchNorm) and module.affine and not _is_shortcut(name)]
    if not residual:
        raise UserError("the last stage's final block has no affine BatchNorm layer, so there is no γ per "
                        "last-stage channel to relate to class frequency")
    names = {id(module): name for name, module in model.named_modules()}
    return names[id(residual[-1])], residual[-1]


def gamma_vs_owner_frequency(model: nn.Module, channel_table: pd.DataFrame) -> pd.DataFrame:
    """Per last-stage channel: γ, β (raw) and w, b (applied) of :func:`last_stage_output_bn`, beside its owner.

    ``channel_table`` comes from :func:`class_specific_channels` on the same model. For a BN layer
    ``w == gamma``; for an NBN layer ``w = γ/‖γ‖·α`` is what scales the channel.
    """
    name, module = last_stage_output_bn(model)
    layer = _affine_layer(name, module, id(module) in {id(m) for _, m in nbn_layers(model)})
    if len(layer.gamma) != len(channel_table):
        raise ValueError(f"{name} has {len(layer.gamma)} channels but the channel table has {len(channel_table)} "
                         "rows; compute the table with class_specific_channels on the same model")
    columns = ["channel", "owner", "owner_count", "owner_group", "strength", "selectivity", "active"]
    table = channel_table[columns].reset_index(drop=True).copy()
    table.insert(0, "layer", name)
    table.insert(1, "type", layer.kind)
    for column, values in (("gamma", layer.gamma), ("beta", layer.beta), ("w", layer.weight), ("b", layer.bias)):
        table[column] = values
    return table


# ----------------------------------------------------------------------------------------------------
# Classifier
# ----------------------------------------------------------------------------------------------------

def classifier_weight_norms(model: nn.Module) -> np.ndarray:
    """L2 norm of every class's weight vector in ``model.classifier_weight()`` [C]."""
    with torch.no_grad():
        return _numpy(torch.linalg.vector_norm(model.classifier_weight().float(), dim=1))


def classifier_norm_table(model: nn.Module, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class table with ``weight_norm`` (see :func:`classifier_weight_norms`)."""
    return per_class_table({"weight_norm": classifier_weight_norms(model)}, train_counts, groups)


def confusion(logits: np.ndarray, targets: np.ndarray, num_classes: int, normalize: bool = True) -> np.ndarray:
    """Confusion matrix [C, C] (rows: true class, columns: predicted); ``normalize`` divides each row by its total."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(targets), np.asarray(logits).argmax(axis=1), labels=np.arange(num_classes))
    if not normalize:
        return matrix
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


# ----------------------------------------------------------------------------------------------------
# Grad-CAM
# ----------------------------------------------------------------------------------------------------

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
            raise UserError(f"the {group!r} shot group has no images in the {dataset.split} split; pick another split")
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
    device = _model_device(model)
    targets = torch.as_tensor(np.asarray(target_classes), dtype=torch.int64)
    if len(targets) != len(images):
        raise ValueError(f"got {len(images)} images but {len(targets)} target classes")
    maps = []
    with _eval_mode(model), torch.enable_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device)
            maps.append(_grad_cam_batch(model, batch, targets[start:start + batch_size].to(device)).detach().cpu())
    return torch.cat(maps).float().numpy()


# ----------------------------------------------------------------------------------------------------
# Embeddings and comparisons
# ----------------------------------------------------------------------------------------------------

def tsne_embedding(features: np.ndarray, seed: int = 0, max_points: int = 2000, perplexity: float = 30.0,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of ``features`` [N, D]: (embedding [M, 2], indices [M] of the rows used).

    More than ``max_points`` rows are subsampled uniformly without replacement, deterministically given
    ``seed``; the perplexity is capped below M/3 so that small sets work. ``threads`` caps the OpenMP/BLAS
    threads (``threads=1`` is several times faster on a busy machine with few cores, where t-SNE's
    per-iteration barriers stall); ``None`` keeps the libraries' defaults.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:
        raise UserError(f"t-SNE needs at least 3 points, got {len(features)}")
    indices = np.arange(len(features))
    if len(features) > max_points:
        indices = np.sort(np.random.default_rng(seed).choice(len(features), size=max_points, replace=False))
    perplexity = min(perplexity, (len(indices) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    with threadpool_limits(threads):
        embedding = tsne.fit_transform(features[indices])
    return embedding, indices


def tsne_table(outputs: ModelOutputs, groups: Mapping[str, Sequence[int]], seed: int = 0, max_points: int = 2000,
               threads: int | None = None) -> pd.DataFrame:
    """t-SNE of the penultimate features as a table: ``x``, ``y``, ``index``, ``target``, ``group``."""
    embedding, indices = tsne_embedding(outputs.features, seed=seed, max_points=max_points, threads=threads)
    targets = outputs.targets[indices]
    return pd.DataFrame({"x": embedding[:, 0], "y": embedding[:, 1], "index": indices, "target": targets,
                         "group": class_groups(groups, outputs.num_classes)[targets].astype(str)})


def _metric(metrics: Mapping, name: str, run: str) -> float:
    """``name`` from a group_accuracy dict, or ``name_acc`` (``test_acc`` for overall) from a training metrics row."""
    for key in (name, "test_acc" if name == "overall" else f"{name}_acc"):
        if key in metrics:
            return float("nan") if metrics[key] is None else float(metrics[key])
    raise UserError(f"the metrics of {run!r} have no {name!r} accuracy; pass group_accuracy(...) results or "
                    "training metrics rows (test_acc, balanced_acc, many_acc, medium_acc, few_acc)")


def group_table(metrics_by_name: Mapping[str, Mapping | pd.Series]) -> pd.DataFrame:
    """One row per run (e.g. BN, NBN): overall, balanced, many, medium, few accuracy, in the units given.

    Each run's metrics are a :func:`group_accuracy` dict or a training metrics row (dict or Series with
    ``test_acc``, ``balanced_acc``, ``many_acc``, ...); a missing value (None) becomes NaN.
    """
    rows = {run: {name: _metric(metrics, name, run) for name in GROUP_TABLE_COLUMNS}
            for run, metrics in metrics_by_name.items()}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(GROUP_TABLE_COLUMNS))
    table.index.name = "model"
    return table


def stack_runs(tables_by_name: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-run tables into one long table with a ``model`` column (for side-by-side plots)."""
    if not tables_by_name:
        raise UserError("no runs to compare; pass a mapping like {'BN': table, 'NBN': table}")
    return pd.concat([table.assign(model=name) for name, table in tables_by_name.items()], ignore_index=True)
