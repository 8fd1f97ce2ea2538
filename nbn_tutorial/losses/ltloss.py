"""LTLoss: the one module behind every built-in loss (weighted focal / cross-entropy on transformed logits)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LTLoss(nn.Module):
    """Weighted focal / cross-entropy on offset, margin-shifted, scaled logits (see :mod:`nbn_tutorial.losses`)."""

    def __init__(self, name: str, num_classes: int, *, offset: Tensor | None = None, margins: Tensor | None = None,
                 scale: float = 1.0, focal_gamma: float = 0.0, class_weights: Tensor | None = None,
                 weights_from_epoch: int = 0, posthoc_offset: Tensor | None = None,
                 requires_cosine_head: bool = False) -> None:
        super().__init__()
        self.name = name
        self.scale = scale
        self.focal_gamma = focal_gamma
        self.weights_from_epoch = weights_from_epoch
        self.requires_cosine_head = requires_cosine_head
        zeros = torch.zeros(num_classes)
        # Non-persistent buffers: they follow .to(device) but stay out of checkpoints (rebuilt from counts).
        self.register_buffer("offset", zeros if offset is None else offset, persistent=False)
        self.register_buffer("margins", zeros if margins is None else margins, persistent=False)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("posthoc_offset", zeros if posthoc_offset is None else posthoc_offset, persistent=False)
        self.weights_active = class_weights is not None and weights_from_epoch <= 0

    def set_epoch(self, epoch: int) -> None:
        """Switch class weights on from epoch ``weights_from_epoch`` (0-based; DRW's deferral)."""
        self.weights_active = self.class_weights is not None and epoch >= self.weights_from_epoch

    def transformed_logits(self, logits: Tensor, targets: Tensor) -> Tensor:
        """s · (logits + offset − margin at the target): the logits the cross-entropy sees."""
        target_margin = F.one_hot(targets, logits.shape[1]).to(logits.dtype) * self.margins[targets, None]
        return self.scale * (logits + self.offset - target_margin)

    def forward(self, logits: Tensor, targets: Tensor, **extras: Tensor) -> Tensor:
        """Scalar training loss (a model's extra training outputs, such as per-expert logits, are not used)."""
        if self.offset.device != logits.device:  # tolerate a loss that was not moved with the model
            self.to(logits.device)
        z = self.transformed_logits(logits.float(), targets)
        weight = self.class_weights if self.weights_active else None
        if self.focal_gamma == 0:
            return F.cross_entropy(z, targets, weight=weight)
        log_p = F.log_softmax(z, dim=1).gather(1, targets[:, None]).squeeze(1)
        per_sample = -((1.0 - log_p.exp()) ** self.focal_gamma) * log_p
        if weight is None:
            return per_sample.mean()
        sample_weight = weight[targets]
        return (sample_weight * per_sample).sum() / sample_weight.sum()

    def adjust_logits(self, logits: Tensor) -> Tensor:
        """Logits for prediction: post-hoc adjusted if built with ``posthoc_tau``, unchanged otherwise."""
        return logits - self.posthoc_offset.to(logits.dtype)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, scale={self.scale}, focal_gamma={self.focal_gamma}"
