"""Compound BN's dual-path training: a main path, an auxiliary class-aware split path, a consistency term.

What is known (the abstract of Cheng et al., ACM MM 2022; its full text was not available to the project):
a dual-path learning framework with class-aware split feature normalisation diversifies the Gaussian
components so they fit rarer classes, at no extra cost at inference. How the two paths are tied is not in
the abstract: the stop-gradient KL consistency term below is the project's own choice, not a documented
part of the paper. Reconstructed here (choices marked (R) are ours and configurable through the run config):

- both paths are the same network with the same weights (R); the main path normalises every CBN layer
  by its mixture, the auxiliary path by class groups (:func:`nbn_tutorial.nn.class_split`: classes
  sorted by training count, K contiguous groups, ``cbn_groups``);
- loss = L(main, y) + L(aux, y) + λ·KL(stop-grad(p_aux) ‖ p_main), with L the run's loss (``ce`` gives the
  issue's CE + CE) and λ = ``cbn_kl_weight`` (R: the term itself, its direction, stop-gradient and weight);
- class-group statistics also update the running mixture (``cbn_group_update``, R): by default those of
  the main path's own input, taken during the main pass (``"main"``: the components are estimated on
  the features they normalise at inference); ``"aux"`` takes the auxiliary pass's input instead, whose
  earlier CBN layers normalised by group, so its features differ from the main path's; ``"none"``
  leaves the mixture to EM alone. Groups with fewer than ``cbn_min_group`` samples in a batch use
  ``cbn_tiny_group`` statistics and do not update (R);
- evaluation and checkpoints see only the main path: the wrapper adds no parameter and no state.

Under DDP both paths run inside one forward of the wrapped network (one DDP forward, one backward).
CBN statistics are per process, like plain BN's (DDP broadcasts rank 0's running buffers).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn.class_split import GROUP_BALANCES, check_group_count, class_split, frequency_groups
from nbn_tutorial.nn.compound import TINY_GROUP_RULES, compound_layers
from nbn_tutorial.options import option
from nbn_tutorial.registry import check_choice
from nbn_tutorial.train.objective import StandardObjective

GROUP_UPDATES: tuple[str, ...] = ("main", "aux", "none")


@dataclass
class DualPathOptions:
    """The dual path's options, as a run config carries them (checked by ``validate_config``)."""

    cbn_dual_path: bool = option(False, "CBN: train with the auxiliary class-aware split path and the KL consistency "
                                        "term (see nbn_tutorial.train.dual_path)")
    cbn_groups: str = option("classes", "CBN dual path: class groups by training frequency with equal numbers of "
                                        "classes or of samples", GROUP_BALANCES)
    cbn_kl_weight: float = option(1.0, "CBN dual path: weight of KL(stop-grad(p_aux) || p_main)")
    cbn_min_group: int = option(4, "CBN dual path: fewest samples of a class group in a batch to take its own "
                                   "statistics from")
    cbn_tiny_group: str = option("running", "CBN dual path: how a smaller group is normalised: running (its "
                                            "component's running statistics) or batch (the whole batch's)",
                                 TINY_GROUP_RULES)
    cbn_group_update: str = option("main", "CBN dual path: whose class-group statistics also update the running "
                                           "mixture: main (the main path's input, in its pass), aux (the auxiliary "
                                           "path's) or none", GROUP_UPDATES)


class DualPathModel(nn.Module):
    """The network of dual-path training: ``forward(x)`` is the main path; ``forward(x, y)`` in training
    returns (main logits, auxiliary logits), the auxiliary pass normalising by the class groups of ``y``."""

    def __init__(self, model: nn.Module, groups_of_classes: Sequence[int], *, min_group_size: int = 4,
                 tiny_group: str = "running", group_update: str = "main") -> None:
        super().__init__()
        if not compound_layers(model):
            raise UserError("the dual path needs Compound BN layers; build the model with norm=cbn")
        check_choice("class-group update", group_update, GROUP_UPDATES)
        self.model = model
        reference = next(model.parameters())
        self.register_buffer("groups_of_classes", torch.as_tensor(groups_of_classes, dtype=torch.long,
                                                                  device=reference.device), persistent=False)
        check_group_count(int(max(groups_of_classes)) + 1, model)
        self.group_update = group_update
        self.split_options = {"min_group_size": min_group_size, "tiny_group": tiny_group, "check_groups": False}

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Main-path logits; in training with labels, (main, auxiliary) logits."""
        if not self.training or y is None:
            return self.model(x)
        groups = self.groups_of_classes[y]
        if self.group_update == "main":
            with class_split(self.model, groups, normalize=False, **self.split_options):
                main = self.model(x)
        else:
            main = self.model(x)
        with class_split(self.model, groups, update_running=self.group_update == "aux", **self.split_options):
            auxiliary = self.model(x)
        return main, auxiliary


def consistency_loss(main: Tensor, auxiliary: Tensor) -> Tensor:
    """KL(stop-grad(p_aux) ‖ p_main), averaged over the batch: the main path learns from the auxiliary one."""
    target = F.log_softmax(auxiliary.detach().float(), dim=1)
    return F.kl_div(F.log_softmax(main.float(), dim=1), target, log_target=True, reduction="batchmean")


class DualPathObjective(StandardObjective):
    """Loss = L(main, y) + L(aux, y) + λ·KL(stop-grad(p_aux) ‖ p_main); the logits reported are the main path's."""

    def __init__(self, network: DualPathModel, loss_fn: nn.Module, kl_weight: float = 1.0) -> None:
        super().__init__(network, loss_fn)
        self.kl_weight = float(kl_weight)

    @classmethod
    def from_config(cls, config: Any, model: nn.Module, loss_fn: nn.Module,
                    train_counts: Sequence[int]) -> DualPathObjective:
        """The dual path of a run: class groups from the training counts, options from ``cbn_*`` fields."""
        groups = frequency_groups(train_counts, config.cbn_components, config.cbn_groups)
        network = DualPathModel(model, groups, min_group_size=config.cbn_min_group, tiny_group=config.cbn_tiny_group,
                                group_update=config.cbn_group_update)
        return cls(network, loss_fn, config.cbn_kl_weight)

    def __call__(self, module: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, main logits) of one batch through both paths."""
        main, auxiliary = module(x, y)
        loss = self.loss_fn(main, y) + self.loss_fn(auxiliary, y)
        if self.kl_weight:
            loss = loss + self.kl_weight * consistency_loss(main, auxiliary)
        return loss, main
