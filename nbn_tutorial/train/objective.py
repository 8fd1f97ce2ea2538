"""What one training step computes: the network the trainer wraps (DDP, compile) and the loss of a batch.

The trainer asks its objective for both, so a training scheme that needs more than ``loss(model(x), y)``
(Compound BN's dual path, which needs the labels inside the forward pass) plugs in here without the
trainer knowing about it (:func:`~nbn_tutorial.train.builders.build_objective` chooses). The network's
forward takes ``(x)`` in evaluation; in training the objective calls it as it needs (the dual path passes
``(x, y)``).
"""
from __future__ import annotations

from torch import Tensor, nn

from nbn_tutorial.models.outputs import split_output


class StandardObjective:
    """The usual step: logits = network(x), loss = loss_fn(logits, y, **extras).

    A model that returns named extra outputs while training (RIDE's per-expert logits, see
    :mod:`nbn_tutorial.models.outputs`) has them passed to the loss by name.
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module) -> None:
        self.network: nn.Module = model
        self.loss_fn = loss_fn

    def __call__(self, module: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, logits) of one batch; ``module`` is :attr:`network` as the trainer wrapped it."""
        logits, extras = split_output(module(x))
        return self.loss_fn(logits, y, **extras), logits
