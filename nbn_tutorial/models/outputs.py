"""What a model's forward returns: the logits, or in training mode the logits with named extra outputs.

Every model returns the logits tensor [N, C] in eval mode. A model whose loss needs more (RIDE: each
expert's logits) returns, in training mode, a mapping ``{"logits": [N, C], name: tensor, ...}``, as
torchvision's Inception returns its auxiliary logits while training. The trainer splits the output with
:func:`split_output` and calls ``loss(logits, targets, **extras)``; a loss uses the extras it needs
(``LossSpec.needs_outputs``) and ignores the others, so the trainer never asks which model it trains.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

LOGITS_KEY = "logits"


def training_output(logits: Tensor, **extras: Tensor) -> dict[str, Tensor]:
    """A training-mode output: the logits under ``"logits"`` and each extra output under its name."""
    return {LOGITS_KEY: logits, **extras}


def split_output(output: Tensor | Mapping[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """(logits, extras) of a model output: a plain tensor has no extras."""
    if isinstance(output, Mapping):
        extras = dict(output)
        return extras.pop(LOGITS_KEY), extras
    return output, {}
