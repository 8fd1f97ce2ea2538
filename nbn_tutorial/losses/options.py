"""The losses' options, one typed class: every hyper-parameter a registered loss reads, with its help text.

A loss builder (:func:`~nbn_tutorial.losses.build.register_loss`) reads what it needs from
``settings.options``; the run config carries these fields under the same keys, so a new hyper-parameter is
one field here (and its use in the builder).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from nbn_tutorial.errors import UserError
from nbn_tutorial.options import option


@dataclass
class LossOptions:
    """The hyper-parameters of the registered losses (each loss reads the ones it uses)."""

    tau: float = option(1.0, "logit-adjustment temperature")
    focal_gamma: float = option(1.0, "focal loss gamma")
    cb_beta: float = option(0.9999, "class-balanced beta (DRW and cb-* losses)")
    ldam_max_m: float = option(0.5, "largest LDAM margin")
    ldam_s: float = option(30.0, "LDAM logit scale")
    drw_epoch: int = option(160, "0-based epoch from which DRW re-weights")
    posthoc_tau: float = option(0.0, "post-hoc logit adjustment at evaluation (ce only); 0 = off")
    diversity_factor: float = option(-0.2, "RIDE loss: weight of the distribution-aware diversity term (RIDE's "
                                           "default -0.2; 0 turns it off)")
    diversity_temperature: float = option(1.0, "RIDE loss: base temperature of the diversity term")
    diversity_reweight_factor: float = option(0.05, "RIDE loss: how far the diversity temperature follows the "
                                                    "class prior from drw_epoch on (RIDE: 0.05 CIFAR, 0.02 "
                                                    "ImageNet-LT)")

    def check(self) -> None:
        """A UserError for a value no loss can use (each builder checks what only it needs)."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{field.name} must be a finite number, got {value!r}")
        if not 0.0 <= self.cb_beta < 1.0:
            raise UserError(f"cb_beta must be in [0, 1), got {self.cb_beta}")
        if self.focal_gamma < 0:
            raise UserError(f"focal_gamma must be >= 0, got {self.focal_gamma}")
