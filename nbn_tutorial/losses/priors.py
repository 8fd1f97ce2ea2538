"""Per-class quantities computed from the training counts: log prior, class-balanced weights, LDAM margins."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from nbn_tutorial.errors import UserError

Counts = Sequence[int] | np.ndarray | Tensor


def as_counts(class_counts: Counts) -> np.ndarray:
    """``class_counts`` as a float64 array; a UserError unless it is a non-empty 1-D sequence."""
    counts = np.asarray(class_counts.tolist() if isinstance(class_counts, Tensor) else class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise UserError("class_counts must be a non-empty list of per-class training counts")
    return counts


def require_positive(counts: np.ndarray, name: str) -> None:
    """A UserError naming the classes without training samples, which the loss ``name`` cannot handle."""
    empty = np.flatnonzero(counts <= 0)
    if empty.size:
        raise UserError(f"loss {name!r} needs at least one training sample per class, but classes "
                        f"{empty.tolist()} have none; use 'ce' or drop those classes")


def log_prior(class_counts: Counts) -> Tensor:
    """log π_j = log(n_j / Σ n) as a float32 tensor."""
    counts = as_counts(class_counts)
    return torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def class_balanced_weights(class_counts: Counts, beta: float) -> Tensor:
    """Cui et al.'s weights (1 − β)/(1 − β^{n_j}), rescaled to sum to the number of classes."""
    counts = as_counts(class_counts)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return torch.as_tensor(weights / weights.sum() * counts.size, dtype=torch.float32)


def ldam_margins(class_counts: Counts, max_margin: float) -> Tensor:
    """LDAM margins m_j ∝ n_j^(−1/4), scaled so the largest (rarest class) is ``max_margin``."""
    margins = 1.0 / np.sqrt(np.sqrt(as_counts(class_counts)))
    return torch.as_tensor(margins * (max_margin / margins.max()), dtype=torch.float32)


def posthoc_logit_adjust(logits: Tensor, class_counts: Counts, tau: float = 1.0) -> Tensor:
    """Post-hoc logit adjustment: logits − τ · log π (for a model trained with plain CE)."""
    return logits - tau * log_prior(class_counts).to(logits.device, logits.dtype)
