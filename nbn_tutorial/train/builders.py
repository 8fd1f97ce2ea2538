"""The pieces of a run built from its config: datasets, model, loss, SGD parameter groups and optimizer."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.runtime import Runtime
from nbn_tutorial.train.schedule import learning_rate


def build_datasets(config: Config, splits: Sequence[str] = ("train", "test")) -> dict[str, Any]:
    """The config's dataset splits (LTDataset objects) by split name."""
    from nbn_tutorial import data

    return {split: data.build_dataset(config.dataset, root=config.data_root, imbalance_factor=config.imbalance_factor,
                                      profile=config.profile, seed=config.data_seed, split=split,
                                      download=config.download, class_order=config.class_order,
                                      max_per_class=config.max_per_class, list_dir=config.list_dir,
                                      image_size=config.image_size, shot_rule=config.shot_rule,
                                      skip_bad_images=config.skip_bad_images, val_per_class=config.val_per_class)
            for split in splits}


def build_model_for(config: Config, dataset: Any) -> nn.Module:
    """The config's model for ``dataset`` (its classes and image channels), shaped for its ``trainable`` rule
    (LWS scales; see :mod:`~nbn_tutorial.train.stage2`); weights are not loaded from ``init_from`` here."""
    from nbn_tutorial import models
    from nbn_tutorial.train.config import CONFIG_FIELDS
    from nbn_tutorial.train.stage2 import shape_model

    model_options = {key: getattr(config, key) for key in models.MODEL_REGISTRY.get(config.model).options
                     if key in CONFIG_FIELDS}
    return shape_model(models.build_model(config.model, dataset.num_classes, norm=config.norm, head=config.head,
                              in_channels=dataset.spec.channels, nbn_where=config.nbn_where,
                              alpha_init=config.alpha_init, share_alpha=config.share_alpha,
                              nbn_normalize=config.nbn_normalize,
                              norm_options={"components": config.cbn_components,
                                            "shared_affine": config.cbn_shared_affine,
                                            "temperature": config.cbn_temperature, "init": config.cbn_init},
                              **model_options), config)


def build_loss_for_counts(config: Config, class_counts: Sequence[int]) -> nn.Module:
    """The config's loss (with its options) for training classes of ``class_counts`` samples."""
    from nbn_tutorial import losses

    return losses.build_loss(config.loss, class_counts, tau=config.tau, focal_gamma=config.focal_gamma,
                             cb_beta=config.cb_beta, ldam_max_m=config.ldam_max_m, ldam_s=config.ldam_s,
                             drw_epoch=config.drw_epoch, posthoc_tau=config.posthoc_tau,
                             diversity_factor=config.diversity_factor,
                             diversity_temperature=config.diversity_temperature,
                             diversity_reweight_factor=config.diversity_reweight_factor)


def build_loss_for(config: Config, dataset: Any) -> nn.Module:
    """The config's loss for ``dataset``'s long-tailed train counts."""
    return build_loss_for_counts(config, dataset.train_counts)


def parameter_groups(model: nn.Module, config: Config) -> list[dict]:
    """SGD parameter groups of the trainable parameters (frozen ones, e.g. a stage-2 backbone, left out): weight
    decay on everything, except NBN alpha when ``alpha_weight_decay`` is off."""
    from nbn_tutorial import nn as nbn_nn

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
