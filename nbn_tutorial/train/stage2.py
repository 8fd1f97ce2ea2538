"""Decoupled training (Kang et al., ICLR 2020): a stage-2 run starts from a stage-1 checkpoint and trains a part.

Config keys:

- ``init_from``: the checkpoint whose weights the run starts from (a stage-1 run's ``last.pt``; the data
  settings must be the stage-1 run's, since stage 2 re-balances the classifier on the same training set);
- ``trainable``: a registered rule naming what trains (:mod:`.trainable`: ``all``, ``classifier``,
  ``classifier-scale``, ``router``);
- ``reinit_classifier``: re-initialise the head(s) before training (PyTorch's default init, as
  classifier-balancing's re-trained classifier).

Everything a rule does not train is frozen and kept in eval mode (:func:`~.trainable.freeze_untrained`), so
BatchNorm running statistics keep their stage-1 values bit for bit. The checks of these keys are
:func:`~.validation.validate_stage2`'s.
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import reset_classifier
from nbn_tutorial.train.checkpoints import read_checkpoint, state_mismatch
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.config import config_to_dict
from nbn_tutorial.train.config_io import checkpoint_config, config_from_dict, load_config
from nbn_tutorial.train.guards import check_finite_checkpoint
from nbn_tutorial.train.identity import TRAIN_OVERRIDE, check_training_set
from nbn_tutorial.train.run_dir import resolve_dataset_defaults
from nbn_tutorial.train.trainable import (TRAINABLE_REGISTRY, TRAINABLES, TrainableRule, freeze_untrained,
                                          register_trainable)

__all__ = ["DATA_FIELDS", "INIT_REMEDY", "STAGE2_FIELDS", "TRAINABLES", "TRAINABLE_REGISTRY", "TrainableRule",
           "load_initial_weights", "prepare_stage2", "register_trainable", "stage2_config"]

# Fields that decide the training set: a stage-2 run must use the stage-1 run's.
DATA_FIELDS = ("dataset", "imbalance_factor", "profile", "data_seed", "class_order", "max_per_class")

# What a stage-2 preset decides; everything else (data, model, seed, device) is the stage-1 run's.
STAGE2_FIELDS = ("sampler", "trainable", "reinit_classifier", "loss", "epochs", "batch_size", "lr", "momentum",
                 "weight_decay", "nesterov", "schedule", "warmup_epochs", "milestones", "lr_decay", "eval_every",
                 "checkpoint_metric")

INIT_REMEDY = ("training from it cannot work: point init_from at another checkpoint (such as the stage-1 run's "
               "best.pt) or train stage 1 again")


def _data_differences(stored: Config, current: Config) -> list[str]:
    old, new = resolve_dataset_defaults(stored), resolve_dataset_defaults(current)
    return [f"{key}: {getattr(old, key)!r} -> {getattr(new, key)!r}" for key in DATA_FIELDS
            if getattr(old, key) != getattr(new, key)]


def _check_fits(model: nn.Module, state: dict, stored: Config, config: Config, path: Path) -> None:
    """A UserError naming the first tensor of ``state`` whose shape does not fit ``model``."""
    expected = model.state_dict()
    if any(key in state["model"] and tuple(state["model"][key].shape) != tuple(value.shape)
           for key, value in expected.items()):
        raise UserError(f"init_from {str(path)!r} holds a {stored.model} {stored.norm} model with a {stored.head} "
                        f"head that does not fit this run's {config.model} {config.norm} {config.head} "
                        f"({state_mismatch(expected, state['model'])}); use the stage-1 model settings")


def load_initial_weights(model: nn.Module, config: Config, allowed_missing: set[str],
                         data: dict | None = None) -> dict:
    """Load ``config.init_from`` into ``model``; only ``allowed_missing`` keys may lack. Returns the checkpoint.

    ``data`` is this run's training-data identity (:func:`~.identity.data_identity`): the checkpoint must have
    been trained on the same classes and training set unless ``config.allow_other_data``.
    """
    path = Path(config.init_from).expanduser()   # relative to the working directory, like --out
    state = read_checkpoint(path)
    check_finite_checkpoint(state, path, INIT_REMEDY)
    stored = checkpoint_config(state, path)
    differences = _data_differences(stored, config)
    if differences and not config.allow_other_data:
        raise UserError(f"init_from {str(path)!r} was trained on other data ({'; '.join(differences)}); stage 2 "
                        "re-balances the classifier on the stage-1 training set, so use the stage-1 data settings, or "
                        f"{TRAIN_OVERRIDE}")
    if data is not None and not config.allow_other_data:
        check_training_set(state, data, f"init_from {str(path)!r}")
    _check_fits(model, state, stored, config, path)
    result = model.load_state_dict(state["model"], strict=False)
    missing = sorted(set(result.missing_keys) - allowed_missing)
    if result.unexpected_keys or missing:
        extra = result.unexpected_keys[:3] or missing[:3]
        raise UserError(f"init_from {str(path)!r} does not match this run's model (keys {', '.join(extra)}); "
                        f"it holds a {stored.model} {stored.norm} model: use its model settings")
    return state


def prepare_stage2(model: nn.Module, config: Config, data: dict | None = None) -> list[str]:
    """Apply the config's stage-2 settings to a freshly built model in place: load ``init_from`` (checked against
    ``data``, the run's training-data identity), re-initialise the classifier, freeze what the ``trainable`` rule
    does not train. Returns the frozen modules' names."""
    chosen = TRAINABLE_REGISTRY.get(config.trainable).trained(model)   # None: everything trains
    if config.init_from:
        # Parameters a partial rule trains may be new (LWS scales, the router): the checkpoint need not hold them.
        names = {id(p): name for name, p in model.named_parameters()}
        load_initial_weights(model, config, set() if chosen is None else {names[id(p)] for p in chosen}, data)
    if config.reinit_classifier:
        reset_classifier(model)
    return [] if chosen is None else freeze_untrained(model, chosen)


def stage2_config(preset: str, stage1_config: Config, stage1_run: str | os.PathLike, *,
                  epochs: int | None = None) -> Config:
    """The stage-2 preset's training settings (:data:`STAGE2_FIELDS`) on the stage-1 run's data and model, starting
    from that run's ``last.pt`` (``epochs`` None keeps the preset's): how a cRT or LWS run is made from a run."""
    schedule = config_to_dict(load_config(preset))
    values = {**config_to_dict(stage1_config), **{key: schedule[key] for key in STAGE2_FIELDS},
              "init_from": str(Path(stage1_run).resolve() / "last.pt")}
    if epochs is not None:
        values["epochs"] = epochs
    return config_from_dict(values, f"stage-2 preset {preset!r} on the stage-1 run {stage1_run}")
