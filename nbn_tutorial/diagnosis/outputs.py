"""What a model computes on an evaluation set: logits, targets, penultimate features, last-stage channels."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nbn_tutorial.data import LTDataset, make_loader
from nbn_tutorial.errors import UserError


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


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
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
        device = model_device(model)
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
        with eval_mode(model), torch.inference_mode():
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
