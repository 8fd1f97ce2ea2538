"""The loss registry and ``build_loss``: one small builder per loss name, added with :func:`register_loss`."""
from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.losses.ltloss import LTLoss
from nbn_tutorial.losses.options import LossOptions
from nbn_tutorial.losses.ride import RIDELoss, RouterLoss
from nbn_tutorial.losses.priors import (
    Counts,
    as_counts,
    class_balanced_weights,
    ldam_margins,
    log_prior,
    require_positive,
)
from nbn_tutorial.registry import Registry


@dataclass(frozen=True)
class LossSettings:
    """What a loss builder gets: the loss name, the per-class training counts and the losses' options."""

    name: str
    counts: np.ndarray
    options: LossOptions = dataclasses.field(default_factory=LossOptions)

    @property
    def num_classes(self) -> int:
        """Number of classes (length of ``counts``)."""
        return self.counts.size


LossBuilder = Callable[[LossSettings], nn.Module]


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its builder, whether it needs a training sample in every class, whether it
    accepts post-hoc logit adjustment (``posthoc_tau``, only for losses that ignore the prior while training),
    and the extra training outputs of the model it needs (``expert_logits``: see nbn_tutorial.models.outputs)."""

    build: LossBuilder
    needs_every_class: bool = True
    posthoc: bool = False
    needs_outputs: tuple[str, ...] = ()


LOSS_REGISTRY: Registry[LossSpec] = Registry("loss")


def register_loss(name: str, *, needs_every_class: bool = True, posthoc: bool = False,
                  needs_outputs: tuple[str, ...] = ()) -> Callable[[LossBuilder], LossBuilder]:
    """Decorator registering a loss builder ``build(settings) -> module`` as the loss ``name``.

    The module is called as ``loss(logits, targets, **extras)``, where ``extras`` are the model's extra
    training outputs; ``needs_outputs`` names those it cannot do without (checked against the model).
    """
    def add(build: LossBuilder) -> LossBuilder:
        LOSS_REGISTRY.register(name, LossSpec(build, needs_every_class, posthoc, tuple(needs_outputs)))
        return build

    return add


@register_loss("ce", needs_every_class=False, posthoc=True)
def _cross_entropy(s: LossSettings) -> LTLoss:
    posthoc = s.options.posthoc_tau * log_prior(s.counts) if s.options.posthoc_tau else None
    return LTLoss(s.name, s.num_classes, posthoc_offset=posthoc)


@register_loss("balanced-softmax")
def _balanced_softmax(s: LossSettings) -> LTLoss:
    return LTLoss(s.name, s.num_classes, offset=torch.as_tensor(np.log(s.counts), dtype=torch.float32))


@register_loss("logit-adjustment")
def _logit_adjustment(s: LossSettings) -> LTLoss:
    return LTLoss(s.name, s.num_classes, offset=s.options.tau * log_prior(s.counts))


@register_loss("ldam-drw")
def _ldam_drw(s: LossSettings) -> LTLoss:
    o = s.options
    return LTLoss(s.name, s.num_classes, margins=ldam_margins(s.counts, o.ldam_max_m), scale=o.ldam_s,
                  class_weights=class_balanced_weights(s.counts, o.cb_beta), weights_from_epoch=o.drw_epoch,
                  requires_cosine_head=True)


@register_loss("focal", needs_every_class=False)
def _focal(s: LossSettings) -> LTLoss:
    return LTLoss(s.name, s.num_classes, focal_gamma=s.options.focal_gamma)


@register_loss("cb-ce")
def _class_balanced_ce(s: LossSettings) -> LTLoss:
    return LTLoss(s.name, s.num_classes, focal_gamma=0.0, class_weights=class_balanced_weights(s.counts, s.options.cb_beta))


@register_loss("cb-focal")
def _class_balanced_focal(s: LossSettings) -> LTLoss:
    return LTLoss(s.name, s.num_classes, focal_gamma=s.options.focal_gamma,
                  class_weights=class_balanced_weights(s.counts, s.options.cb_beta))


@register_loss("ride", needs_outputs=("expert_logits",))
def _ride(s: LossSettings) -> RIDELoss:
    o = s.options
    return RIDELoss(s.counts, max_margin=o.ldam_max_m, scale=o.ldam_s, cb_beta=o.cb_beta, drw_epoch=o.drw_epoch,
                    diversity_factor=o.diversity_factor, temperature=o.diversity_temperature,
                    reweight_factor=o.diversity_reweight_factor)


@register_loss("ride-router", needs_every_class=False, needs_outputs=("expert_logits", "router_logits"))
def _ride_router(s: LossSettings) -> RouterLoss:
    return RouterLoss()


LOSSES: tuple[str, ...] = LOSS_REGISTRY.names()


def build_loss(name: str, class_counts: Counts, options: LossOptions | None = None, **overrides: float) -> nn.Module:
    """The loss ``name`` (one of LOSSES) for a training set with ``class_counts`` images per class.

    ``options`` holds the losses' hyper-parameters (:class:`~nbn_tutorial.losses.options.LossOptions`, its
    defaults when None); ``overrides`` change single ones (``build_loss("ldam-drw", counts, ldam_s=16)``).
    """
    spec = LOSS_REGISTRY.get(name)
    options = _with_overrides(options or LossOptions(), overrides)
    options.check()
    if options.posthoc_tau and not spec.posthoc:
        allowed = " or ".join(repr(other) for other in LOSS_REGISTRY if LOSS_REGISTRY.get(other).posthoc)
        raise UserError(f"post-hoc logit adjustment (posthoc_tau) applies to models trained with {allowed}, not "
                        f"{name!r}, whose training already accounts for the class prior; set posthoc_tau=0")
    counts = as_counts(class_counts)
    if spec.needs_every_class:
        require_positive(counts, name)
    return spec.build(LossSettings(name, counts, options))


def _with_overrides(options: LossOptions, overrides: dict[str, float]) -> LossOptions:
    """``options`` with single hyper-parameters replaced; a UserError names an unknown one."""
    known = [field.name for field in dataclasses.fields(LossOptions)]
    unknown = [key for key in overrides if key not in known]
    if unknown:
        raise UserError(f"unknown loss option {unknown[0]!r}; the losses take {', '.join(known)}")
    return dataclasses.replace(options, **overrides)
