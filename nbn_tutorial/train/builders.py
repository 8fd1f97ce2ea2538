"""The pieces of a run built from its config: datasets, model, loss, objective, SGD parameter groups and optimizer.

Each component reads its own typed options from the config (:func:`nbn_tutorial.nn.norm_kwargs`,
:func:`nbn_tutorial.models.model_kwargs`, :class:`nbn_tutorial.losses.LossOptions`), so no builder names
an option of a norm, a model or a loss.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nbn_tutorial import data, losses, models
from nbn_tutorial import nn as nbn_nn
from nbn_tutorial.errors import UserError
from nbn_tutorial.options import option_values
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.dual_path import DualPathObjective
from nbn_tutorial.train.objective import StandardObjective
from nbn_tutorial.train.runtime import Runtime
from nbn_tutorial.train.schedule import learning_rate
from nbn_tutorial.train.trainable import shape_model


def build_datasets(config: Config, splits: Sequence[str] = ("train", "test")) -> dict[str, Any]:
    """The config's dataset splits (LTDataset objects) by split name."""
    return {split: data.build_dataset(config.dataset, root=config.data_root, imbalance_factor=config.imbalance_factor,
                                      profile=config.profile, seed=config.data_seed, split=split,
                                      download=config.download, class_order=config.class_order,
                                      max_per_class=config.max_per_class, list_dir=config.list_dir,
                                      image_size=config.image_size, shot_rule=config.shot_rule,
                                      skip_bad_images=config.skip_bad_images, val_per_class=config.val_per_class)
            for split in splits}


def build_model_for(config: Config, dataset: Any) -> nn.Module:
    """The config's model for ``dataset`` (its classes and image channels), shaped for its ``trainable`` rule
    (LWS scales; see :mod:`~nbn_tutorial.train.trainable`); weights are not loaded from ``init_from`` here."""
    model = models.build_model(config.model, dataset.num_classes, norm=config.norm, head=config.head,
                               in_channels=dataset.spec.channels, norm_where=config.norm_where,
                               norm_kwargs=nbn_nn.norm_kwargs(config.norm, config),
                               **models.model_kwargs(config.model, config))
    return shape_model(model, config.trainable)


def loss_options(config: Config) -> losses.LossOptions:
    """The losses' hyper-parameters of a config."""
    return losses.LossOptions(**option_values(losses.LossOptions, config))


def build_loss_for_counts(config: Config, class_counts: Sequence[int]) -> nn.Module:
    """The config's loss (with its options) for training classes of ``class_counts`` samples."""
    return losses.build_loss(config.loss, class_counts, loss_options(config))


def build_loss_for(config: Config, dataset: Any) -> nn.Module:
    """The config's loss for ``dataset``'s long-tailed train counts."""
    return build_loss_for_counts(config, dataset.train_counts)


def build_objective(config: Config, model: nn.Module, loss_fn: nn.Module, train_set: Any) -> StandardObjective:
    """The config's training objective: the dual path of Compound BN (``cbn_dual_path``) or the standard step."""
    if config.cbn_dual_path:
        return DualPathObjective.from_config(config, model, loss_fn, train_set.train_counts)
    return StandardObjective(model, loss_fn)


def parameter_groups(model: nn.Module, config: Config) -> list[dict]:
    """SGD parameter groups of the trainable parameters (frozen ones, e.g. a stage-2 backbone, left out): weight
    decay on everything, except NBN alpha when ``alpha_weight_decay`` is off."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise UserError(f"trainable={config.trainable} leaves no parameter to train in this model")
    alphas = {id(p) for p in nbn_nn.alpha_parameters(model)}
    if config.alpha_weight_decay or not alphas.intersection(map(id, trainable)):
        return [{"params": trainable, "weight_decay": config.weight_decay}]
    return [{"params": [p for p in trainable if id(p) not in alphas], "weight_decay": config.weight_decay},
            {"params": [p for p in trainable if id(p) in alphas], "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: Config, runtime: Runtime) -> torch.optim.SGD:
    """SGD with the config's momentum/Nesterov/weight decay; fused kernel where enabled, else foreach."""
    kernel = {"fused": True} if runtime.fused_sgd else {"foreach": True}
    return torch.optim.SGD(parameter_groups(model, config), lr=learning_rate(config, 0), momentum=config.momentum,
                           nesterov=config.nesterov, **kernel)
