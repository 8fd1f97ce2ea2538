"""Long-tailed classification losses, all as settings of one formula.

Every loss here is a (class-weighted, optionally focal) cross-entropy on transformed logits::

    z = s · (logits + offset − margin_y · onehot(y))
    ℓ_i = (1 − p_{i,y})^γ · (−log p_{i,y}),   p_i = softmax(z_i)
    loss = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}          (w = 1 when unweighted: the plain mean)

The weighted mean is PyTorch's ``cross_entropy(weight=...)`` convention, which LDAM-DRW's reference
code uses for DRW and class-balanced re-weighting.

===================  ================================================================================
name                 setting
===================  ================================================================================
ce                   all defaults
balanced-softmax     offset = log n_j
logit-adjustment     offset = τ · log π_j (π = class prior n_j / Σ n); predictions use raw logits
ldam-drw             margin m_j ∝ n_j^(−1/4) with max ``ldam_max_m``, s = ``ldam_s``, cosine head;
                     w = 1 before epoch ``drw_epoch`` (0-based), class-balanced (β = ``cb_beta``) after
focal                γ = ``focal_gamma``
cb-ce, cb-focal      class-balanced w (Cui et al.) with CE / focal, from the first epoch
===================  ================================================================================

Class-balanced weights are w_j = (1 − β)/(1 − β^{n_j}), rescaled to sum to C.

Post-hoc logit adjustment (Menon et al.) is for models trained with plain CE: ``build_loss("ce", counts,
posthoc_tau=τ)`` makes ``adjust_logits`` return logits − τ · log π at inference (see
:func:`posthoc_logit_adjust`). Losses that already correct for the prior while training refuse it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError

LOSSES: tuple[str, ...] = ("ce", "balanced-softmax", "logit-adjustment", "ldam-drw", "focal", "cb-ce", "cb-focal")

Counts = Sequence[int] | np.ndarray | Tensor


def _as_counts(class_counts: Counts) -> np.ndarray:
    counts = np.asarray(class_counts.tolist() if isinstance(class_counts, Tensor) else class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise UserError("class_counts must be a non-empty list of per-class training counts")
    return counts


def _require_positive(counts: np.ndarray, name: str) -> None:
    empty = np.flatnonzero(counts <= 0)
    if empty.size:
        raise UserError(f"loss {name!r} needs at least one training sample per class, but classes "
                        f"{empty.tolist()} have none; use 'ce' or drop those classes")


def log_prior(class_counts: Counts) -> Tensor:
    """log π_j = log(n_j / Σ n) as a float32 tensor."""
    counts = _as_counts(class_counts)
    return torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def class_balanced_weights(class_counts: Counts, beta: float) -> Tensor:
    """Cui et al.'s weights (1 − β)/(1 − β^{n_j}), rescaled to sum to the number of classes."""
    counts = _as_counts(class_counts)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return torch.as_tensor(weights / weights.sum() * counts.size, dtype=torch.float32)


def ldam_margins(class_counts: Counts, max_margin: float) -> Tensor:
    """LDAM margins m_j ∝ n_j^(−1/4), scaled so the largest (rarest class) is ``max_margin``."""
    margins = 1.0 / np.sqrt(np.sqrt(_as_counts(class_counts)))
    return torch.as_tensor(margins * (max_margin / margins.max()), dtype=torch.float32)


def posthoc_logit_adjust(logits: Tensor, class_counts: Counts, tau: float = 1.0) -> Tensor:
    """Post-hoc logit adjustment: logits − τ · log π (for a model trained with plain CE)."""
    return logits - tau * log_prior(class_counts).to(logits.device, logits.dtype)


class LTLoss(nn.Module):
    """Weighted focal / cross-entropy on offset, margin-shifted, scaled logits (see the module docstring)."""

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

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Scalar training loss."""
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


def build_loss(name: str, class_counts: Counts, *, tau: float = 1.0, focal_gamma: float = 1.0,
               cb_beta: float = 0.9999, ldam_max_m: float = 0.5, ldam_s: float = 30.0, drw_epoch: int = 160,
               posthoc_tau: float = 0.0) -> LTLoss:
    """The loss ``name`` (one of LOSSES) for a training set with ``class_counts`` images per class."""
    if name not in LOSSES:
        raise UserError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    if not 0.0 <= cb_beta < 1.0:
        raise UserError(f"cb_beta must be in [0, 1), got {cb_beta}")
    if focal_gamma < 0:
        raise UserError(f"focal_gamma must be >= 0, got {focal_gamma}")
    if posthoc_tau and name != "ce":
        raise UserError(f"post-hoc logit adjustment (posthoc_tau) applies to models trained with 'ce', not {name!r}, "
                        "whose training already accounts for the class prior; set posthoc_tau=0")
    counts = _as_counts(class_counts)
    if name not in ("ce", "focal"):
        _require_positive(counts, name)
    num_classes = counts.size
    if name == "ce":
        posthoc = posthoc_tau * log_prior(counts) if posthoc_tau else None
        return LTLoss(name, num_classes, posthoc_offset=posthoc)
    if name == "balanced-softmax":
        return LTLoss(name, num_classes, offset=torch.as_tensor(np.log(counts), dtype=torch.float32))
    if name == "logit-adjustment":
        return LTLoss(name, num_classes, offset=tau * log_prior(counts))
    if name == "ldam-drw":
        return LTLoss(name, num_classes, margins=ldam_margins(counts, ldam_max_m), scale=ldam_s,
                      class_weights=class_balanced_weights(counts, cb_beta), weights_from_epoch=drw_epoch,
                      requires_cosine_head=True)
    if name == "focal":
        return LTLoss(name, num_classes, focal_gamma=focal_gamma)
    gamma = focal_gamma if name == "cb-focal" else 0.0
    return LTLoss(name, num_classes, focal_gamma=gamma, class_weights=class_balanced_weights(counts, cb_beta))
