"""RIDE's losses: the distribution-aware diversity loss over experts, and the router's expert-assignment loss.

Both follow RIDE's public code (frank-xwang/RIDE-LongTailRecognition, ``model/loss.py`` ``RIDELoss`` and the
``EAResNet`` router loss), with its published defaults:

- :class:`RIDELoss`, per expert k: LDAM-DRW cross-entropy on expert k's logits (margins m_j ∝ n_j^(−1/4),
  largest ``ldam_max_m`` = 0.5, subtracted as s·m_j with s = ``ldam_s`` = 30 because RIDE's model already
  multiplies its cosine logits by s; class-balanced weights with β = 0.9999 from ``drw_epoch`` on, RIDE's
  ``reweight_epoch``), plus the diversity term λ·T̄²·KL(softmax(z/T) ‖ softmax(z_k/T)) with the ensemble's
  logits z detached, λ = ``diversity_factor`` = −0.2 (negative: it rewards experts that differ from the
  ensemble) and base temperature T = ``diversity_temperature`` = 1. From ``drw_epoch`` on the temperature
  is per class, T_j = T·w_j with w_j = C·π_j·f + 1 − f scaled to max 1 (f = ``diversity_reweight_factor``,
  0.05; RIDE's ImageNet-LT config uses 0.02), and T̄ is its mean. With λ = 0, as in RIDE's code, the
  cross-entropy is taken on the ensemble's logits once per expert.
- :class:`RouterLoss`: after each expert but the last, the router learns whether a later expert turns a
  wrong ensemble prediction right: binary cross-entropy with ``pos_weight`` 20 (RIDE's default), averaged
  over the E − 1 decisions.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.losses.ltloss import LTLoss
from nbn_tutorial.losses.priors import class_balanced_weights, ldam_margins

ROUTER_POS_WEIGHT = 20.0   # RIDE's default pos_weight of the expert-assignment loss


def _needs(name: str, value: Tensor | None, what: str) -> Tensor:
    if value is None:
        raise UserError(f"the {name!r} loss needs {what}; train a RIDE model (model ride_resnet32 or ride_resnet50"
                        f"{' with expert_router=true' if 'router' in what else ''})")
    return value


def diversity_weights(counts: np.ndarray, reweight_factor: float) -> Tensor:
    """RIDE's per-class diversity temperature factors w_j = C·π_j·f + 1 − f, scaled so the largest is 1."""
    prior = counts / counts.sum()
    weights = counts.size * prior * reweight_factor + 1 - reweight_factor
    weights = weights / weights.max()
    if not np.all(weights > 0):
        raise UserError(f"diversity_reweight_factor={reweight_factor} makes some diversity temperatures zero or "
                        "negative; use a smaller factor (RIDE: 0.05 on CIFAR, 0.02 on ImageNet-LT)")
    return torch.as_tensor(weights, dtype=torch.float32)


class RIDELoss(nn.Module):
    """Per-expert LDAM-DRW cross-entropy plus RIDE's distribution-aware diversity term (see the module docstring)."""

    requires_cosine_head = True   # the margins assume RIDE's scaled cosine logits, as LDAM-DRW's do

    def __init__(self, counts: np.ndarray, *, max_margin: float = 0.5, scale: float = 30.0, cb_beta: float = 0.9999,
                 drw_epoch: int = 160, diversity_factor: float = -0.2, temperature: float = 1.0,
                 reweight_factor: float = 0.05) -> None:
        super().__init__()
        if not (math.isfinite(temperature) and temperature > 0) or not math.isfinite(diversity_factor):
            raise UserError(f"the RIDE loss needs diversity_temperature > 0 and a finite diversity_factor, got "
                            f"{temperature!r} and {diversity_factor!r}")
        self.name = "ride"
        self.base = LTLoss("ride", counts.size, margins=scale * ldam_margins(counts, max_margin), scale=1.0,
                           class_weights=class_balanced_weights(counts, cb_beta), weights_from_epoch=drw_epoch)
        self.register_buffer("diversity_weights", diversity_weights(counts, reweight_factor), persistent=False)
        self.drw_epoch, self.diversity_factor, self.temperature = drw_epoch, diversity_factor, temperature
        self.reweighted = drw_epoch <= 0

    def set_epoch(self, epoch: int) -> None:
        """From ``drw_epoch`` (0-based) on: class-balanced weights and per-class diversity temperatures."""
        self.base.set_epoch(epoch)
        self.reweighted = epoch >= self.drw_epoch

    def forward(self, logits: Tensor, targets: Tensor, expert_logits: Tensor | None = None, **extras: Tensor) -> Tensor:
        """Scalar loss from the ensemble's logits [N, C] and every expert's logits [E, N, C]."""
        expert_logits = _needs("ride", expert_logits, "each expert's logits").float()
        logits = logits.float()
        if self.reweighted:
            temperature = self.temperature * self.diversity_weights.to(logits.device)[None, :]
            mean_temperature = float(temperature.mean())
        else:
            temperature = mean_temperature = self.temperature
        with torch.no_grad():
            ensemble = F.softmax(logits / temperature, dim=1)
        loss = logits.new_zeros(())
        for expert in expert_logits:
            loss = loss + self.base(expert if self.diversity_factor != 0 else logits, targets)
            if self.diversity_factor != 0:
                divergence = F.kl_div(F.log_softmax(expert / temperature, dim=1), ensemble, reduction="batchmean")
                loss = loss + self.diversity_factor * mean_temperature ** 2 * divergence
        return loss

    def adjust_logits(self, logits: Tensor) -> Tensor:
        """Prediction uses the ensemble's logits as they are."""
        return logits

    def extra_repr(self) -> str:
        return f"diversity_factor={self.diversity_factor}, temperature={self.temperature}, drw_epoch={self.drw_epoch}"


def expert_help_targets(expert_logits: Tensor, targets: Tensor) -> Tensor:
    """[N, E-1] floats: 1 where the ensemble of the first i+1 experts is wrong but a larger ensemble is right."""
    running = expert_logits.float().cumsum(0)                  # the mean's argmax is the sum's
    correct = (running.argmax(2) == targets[None, :]).t()      # [N, E]
    steps = correct.shape[1] - 1
    return torch.stack([~correct[:, i] & correct[:, i + 1:].any(1) for i in range(steps)], dim=1).float()


class RouterLoss(nn.Module):
    """RIDE's expert-assignment loss: BCE of the router's decisions against whether a later expert helps."""

    requires_cosine_head = False

    def __init__(self, pos_weight: float = ROUTER_POS_WEIGHT) -> None:
        super().__init__()
        self.name = "ride-router"
        self.pos_weight = float(pos_weight)

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes with the epoch."""

    def forward(self, logits: Tensor, targets: Tensor, expert_logits: Tensor | None = None,
                router_logits: Tensor | None = None, **extras: Tensor) -> Tensor:
        """Mean binary cross-entropy over the batch and the E − 1 routing decisions."""
        expert_logits = _needs("ride-router", expert_logits, "each expert's logits")
        router_logits = _needs("ride-router", router_logits, "the router's decisions").float()
        helps = expert_help_targets(expert_logits.detach(), targets)
        return F.binary_cross_entropy_with_logits(router_logits, helps,
                                                  pos_weight=router_logits.new_tensor(self.pos_weight))

    def adjust_logits(self, logits: Tensor) -> Tensor:
        """Prediction uses the routed ensemble's logits as they are."""
        return logits
