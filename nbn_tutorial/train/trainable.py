"""What a run trains: the ``trainable`` rules of decoupled training, and freezing everything else.

A rule (:data:`TRAINABLE_REGISTRY`) names the parameters that train and may add structure to the model:

- ``all``: everything (stage 1, or fine-tuning from ``init_from``);
- ``classifier``: only the classifier head(s) (cRT when combined with ``reinit_classifier`` and a
  class-balanced ``sampler``);
- ``classifier-scale``: LWS; every head gets one learnable scale per class (initialised to 1) and only
  the scales train;
- ``router``: only a RIDE model's expert-assignment router.

Everything a rule does not train is frozen: its parameters stop requiring gradients and its modules stay
in eval mode whatever ``train()`` is called, so BatchNorm running statistics keep their stage-1 values
bit for bit (the "eval-mode backbone" of cRT). Loading the stage-1 weights is :mod:`.stage2`'s.
"""
from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable

from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import CLASS_SCALES, add_class_scales, classifier_heads
from nbn_tutorial.registry import Registry


@dataclasses.dataclass(frozen=True)
class TrainableRule:
    """What a ``trainable`` value trains: ``trained(model)`` lists the parameters that train (None: all of
    them); ``shape(model)`` adds what the rule needs to the model (LWS scales), also when a finished run is
    rebuilt for evaluation; ``needs_init`` says whether the rule only makes sense from a checkpoint."""

    trained: Callable[[nn.Module], list[nn.Parameter] | None]
    shape: Callable[[nn.Module], None] = lambda model: None
    needs_init: bool = True


TRAINABLE_REGISTRY: Registry[TrainableRule] = Registry("trainable")


def register_trainable(name: str, rule: TrainableRule) -> TrainableRule:
    """Register the ``trainable`` value ``name``."""
    return TRAINABLE_REGISTRY.register(name, rule)


def _head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for head in classifier_heads(model) for p in head.parameters()]


def _add_scales(model: nn.Module) -> None:
    add_class_scales(model)


def _scale_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [getattr(head, CLASS_SCALES) for head in classifier_heads(model)]


def _router_parameters(model: nn.Module) -> list[nn.Parameter]:
    router = getattr(model, "router", None)
    if router is None:
        raise UserError("trainable=router trains a RIDE model's expert router, but this model has none; set "
                        "expert_router=true (with model ride_resnet32 or ride_resnet50)")
    return list(router.parameters())


register_trainable("all", TrainableRule(trained=lambda model: None, needs_init=False))
register_trainable("classifier", TrainableRule(trained=_head_parameters))
register_trainable("classifier-scale", TrainableRule(trained=_scale_parameters, shape=_add_scales))
register_trainable("router", TrainableRule(trained=_router_parameters))

TRAINABLES: tuple[str, ...] = TRAINABLE_REGISTRY.names()


def shape_model(model: nn.Module, trainable: str) -> nn.Module:
    """The structure the ``trainable`` rule adds (LWS scales), applied in place; returns ``model``."""
    TRAINABLE_REGISTRY.get(trainable).shape(model)
    return model


def trained_parameters(model: nn.Module, trainable: str) -> list[nn.Parameter]:
    """The parameters the ``trainable`` rule trains, in model order (LWS: only the class scales)."""
    chosen = TRAINABLE_REGISTRY.get(trainable).trained(model)
    if chosen is None:
        return list(model.parameters())
    ids = {id(p) for p in chosen}
    return [p for p in model.parameters() if id(p) in ids]


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def keep_in_eval_mode(module: nn.Module) -> None:
    """Make ``module`` (and everything in it) stay in eval mode whenever ``train()`` is called on it or a parent."""
    module.train = types.MethodType(_eval_only, module)
    module.eval()


def freeze_untrained(model: nn.Module, trained: list[nn.Parameter]) -> list[str]:
    """Stop gradients to every parameter not in ``trained`` and keep every module holding none of them in eval
    mode (BatchNorm statistics frozen); returns the names of the frozen top-level modules."""
    keep = {id(p) for p in trained}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    frozen = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if any(id(p) in keep for p in child.parameters()):
                visit(full, child)
            else:
                keep_in_eval_mode(child)
                frozen.append(full)

    visit("", model)
    return frozen
