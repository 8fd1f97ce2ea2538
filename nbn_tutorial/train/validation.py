"""Checking a config before anything runs: types, registered names, number ranges and conflicting options.

Every problem is a one-sentence :class:`UserError` naming the key and what would be valid.
"""
from __future__ import annotations

import math

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import check_choice
from nbn_tutorial.train.builders import build_loss_for_counts
from nbn_tutorial.train.coercion import coerce_values
from nbn_tutorial.train.config import CONFIG_FIELDS, Config, config_to_dict
from nbn_tutorial.train.dual_path import validate_compound_options
from nbn_tutorial.train.stage2 import validate_model_outputs, validate_stage2

_AUTO_SWITCHES = ("channels_last", "cudnn_benchmark", "fused_sgd")
_FIELDS_WITH_CHOICES = ("schedule", "checkpoint_metric", "device", "amp", "compile", "class_order", "nbn_normalize",
                        "select_best_on", "shot_rule")


def _check_number(key: str, value: float, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> None:
    """``value`` must be finite and within [low, high] (or the open variants)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        lower = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        upper = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        bounds = " and ".join(part for part in (lower, upper) if part)
        raise UserError(f"{key} must be a finite number {bounds}, got {value!r}")


def _validate_types(config: Config) -> None:
    """Every field has a value of its declared type (a Config built in Python skips load_config's coercion)."""
    coerce_values(config_to_dict(config), "the config")


def _validate_auto_switches(config: Config) -> None:
    for key in _AUTO_SWITCHES:
        value = getattr(config, key)
        if not isinstance(value, bool) and value != "auto":
            raise UserError(f"{key} must be true, false or auto, got {value!r}")


def _validate_names(config: Config) -> None:
    """Names that must exist in the data/model/loss registries."""
    from nbn_tutorial import data, losses, models
    from nbn_tutorial import nn as nbn_nn

    check_choice("dataset", config.dataset, list(data.DATASETS))
    check_choice("model", config.model, list(models.MODELS))
    check_choice("norm", config.norm, list(models.NORMS))
    check_choice("head", config.head, list(models.HEADS))
    check_choice("loss", config.loss, list(losses.LOSSES))
    check_choice("nbn_where", config.nbn_where, list(nbn_nn.WHERE_OPTIONS))
    if isinstance(config.alpha_init, str):
        check_choice("alpha_init", config.alpha_init, list(nbn_nn.ALPHA_INITS), alternative="a number")
    for name in _FIELDS_WITH_CHOICES:
        check_choice(name, getattr(config, name), CONFIG_FIELDS[name].metadata["choices"])
    if config.profile is not None:
        check_choice("profile", config.profile, list(data.PROFILES))


def _validate_dataset_options(config: Config) -> None:
    from nbn_tutorial import data

    fixed_tail = data.DATASETS[config.dataset].default_imbalance_factor is None
    recipe = (config.imbalance_factor is not None or config.profile is not None or config.class_order != "ldam"
              or config.max_per_class is not None)
    if fixed_tail and recipe:
        raise UserError(f"{config.dataset}'s long tail is fixed by its official list files; set imbalance_factor, "
                        "profile and max_per_class to null and class_order to ldam")
    if config.max_per_class is not None and config.max_per_class < 1:
        raise UserError(f"max_per_class must be at least 1 (or null for all the data), got {config.max_per_class}")
    spec = data.spec_with_options(data.DATASETS[config.dataset], config.image_size)   # image_size: files, >= 1
    data.resolve_val_per_class(spec, config.val_per_class)                              # tensor datasets, >= 0


def _validate_counts(config: Config) -> None:
    """Counts and seeds: at least 1, or at least 0, as each needs."""
    for key in ("epochs", "batch_size", "eval_every", "save_every"):
        if getattr(config, key) < 1:
            raise UserError(f"{key} must be at least 1, got {getattr(config, key)}")
    if config.cpu_threads is not None and config.cpu_threads < 1:
        raise UserError(f"cpu_threads must be at least 1 (or null for torch's default), got {config.cpu_threads}")
    for key in ("warmup_epochs", "drw_epoch", "num_workers", "seed", "data_seed"):
        if getattr(config, key) < 0:
            raise UserError(f"{key} must be 0 or more, got {getattr(config, key)}")


def _validate_numbers(config: Config) -> None:
    """Real-valued fields within their ranges, and options that depend on them."""
    _check_number("lr", config.lr, low=0, low_open=True)
    _check_number("momentum", config.momentum, low=0, high=1, high_open=True)
    _check_number("weight_decay", config.weight_decay, low=0)
    for key in ("tau", "posthoc_tau", "ldam_max_m", "ldam_s"):
        _check_number(key, getattr(config, key))
    if config.imbalance_factor is not None:
        _check_number("imbalance_factor", config.imbalance_factor, low=1)
    if config.max_loss is not None:
        _check_number("max_loss", config.max_loss, low=0, low_open=True)
    if config.nesterov and config.momentum == 0:
        raise UserError("nesterov needs momentum > 0; set momentum (e.g. 0.9) or nesterov=false")
    if config.stop_after_epochs is not None and not 1 <= config.stop_after_epochs <= config.epochs:
        raise UserError(f"stop_after_epochs must lie in 1..epochs ({config.epochs}), got {config.stop_after_epochs}")


def _validate_schedule(config: Config) -> None:
    if config.schedule != "step":
        return
    if len(config.milestones) != len(config.lr_decay):
        raise UserError(f"the step schedule needs one lr_decay multiplier per milestone, got milestones "
                        f"{config.milestones} and lr_decay {config.lr_decay}")
    if any(b <= a for a, b in zip(config.milestones, config.milestones[1:])) or any(m < 0 for m in config.milestones):
        raise UserError(f"milestones must be increasing epochs >= 0, got {config.milestones}")
    for factor in config.lr_decay:
        _check_number("every lr_decay multiplier", factor, low=0, low_open=True)


def _validate_loss(config: Config) -> None:
    """Loss options, checked by building the loss on two dummy classes (surfaces the losses' own messages)."""
    loss = build_loss_for_counts(config, [2, 1])
    if loss.requires_cosine_head and config.head != "cosine":
        raise UserError(f"loss {config.loss!r} needs the cosine head (its margins assume normalized logits), "
                        f"but head is {config.head!r}; set head=cosine")


def validate_config(config: Config) -> None:
    """Raise a UserError for wrong types, unknown names, out-of-range numbers, or conflicting options."""
    _validate_types(config)
    _validate_auto_switches(config)
    _validate_names(config)
    _validate_dataset_options(config)
    _validate_counts(config)
    _validate_numbers(config)
    _validate_schedule(config)
    _validate_loss(config)
    validate_compound_options(config)
    validate_stage2(config)
    validate_model_outputs(config)
