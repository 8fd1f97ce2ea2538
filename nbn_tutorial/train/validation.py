"""Checking a config before anything runs: types, registered names, number ranges and conflicting options.

Every problem is a one-sentence :class:`UserError` naming the key and what would be valid. The valid words
of a field come from its registry (:func:`~nbn_tutorial.train.config.field_choices`).
"""
from __future__ import annotations

import math

from nbn_tutorial import data, losses, models
from nbn_tutorial.errors import UserError
from nbn_tutorial.options import option_fields, option_values
from nbn_tutorial.registry import check_choice
from nbn_tutorial.train.coercion import coerce_values
from nbn_tutorial.train.config import CONFIG_FIELDS, Config, config_to_dict, field_choices
from nbn_tutorial.train.trainable import TRAINABLE_REGISTRY

_AUTO_SWITCHES = ("channels_last", "cudnn_benchmark", "fused_sgd")


def _check_number(key: str, value: float, low: float | None = None, high: float | None = None,
                  low_open: bool = False, high_open: bool = False) -> None:
    """``value`` must be finite and within [low, high] (or the open variants)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        lower = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        upper = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        bounds = " and ".join(part for part in (lower, upper) if part)
        raise UserError(f"{key} must be a finite number{' ' + bounds if bounds else ''}, got {value!r}")


def _validate_types(config: Config) -> None:
    """Every field has a value of its declared type (a Config built in Python skips load_config's coercion)."""
    coerce_values(config_to_dict(config), "the config")


def _validate_auto_switches(config: Config) -> None:
    for key in _AUTO_SWITCHES:
        value = getattr(config, key)
        if not isinstance(value, bool) and value != "auto":
            raise UserError(f"{key} must be true, false or auto, got {value!r}")


def _validate_choices(config: Config) -> None:
    """Every word-valued field holds one of its valid words (a number where the field also takes one)."""
    for name in CONFIG_FIELDS:
        value, choices = getattr(config, name), field_choices(name)
        if choices and isinstance(value, str):
            takes_number = "float" in str(CONFIG_FIELDS[name].type)
            check_choice(name, value, choices, alternative="a number" if takes_number else "")


def _validate_dataset_options(config: Config) -> None:
    spec = data.get_spec(config.dataset)
    fixed_tail = spec.default_imbalance_factor is None
    recipe = (config.imbalance_factor is not None or config.profile is not None or config.class_order != "ldam"
              or config.max_per_class is not None)
    if fixed_tail and recipe:
        raise UserError(f"{config.dataset}'s long tail is fixed by its official list files; set imbalance_factor, "
                        "profile and max_per_class to null and class_order to ldam")
    if config.max_per_class is not None and config.max_per_class < 1:
        raise UserError(f"max_per_class must be at least 1 (or null for all the data), got {config.max_per_class}")
    spec = data.spec_with_options(spec, config.image_size)          # image_size: files, >= 1
    data.resolve_val_per_class(spec, config.val_per_class)           # tensor datasets, >= 0


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
    loss = losses.build_loss(config.loss, [2, 1], losses.LossOptions(**option_values(losses.LossOptions, config)))
    if loss.requires_cosine_head and config.head != "cosine":
        raise UserError(f"loss {config.loss!r} needs the cosine head (its margins assume normalized logits), "
                        f"but head is {config.head!r}; set head=cosine")


def validate_compound_options(config: Config) -> None:
    """``cbn_*`` fields within their ranges, and none of the dual path's used without Compound BN."""
    if config.cbn_components < 1:
        raise UserError(f"cbn_components must be at least 1, got {config.cbn_components}")
    if config.cbn_min_group < 1:
        raise UserError(f"cbn_min_group must be at least 1, got {config.cbn_min_group}")
    _check_number("cbn_temperature", config.cbn_temperature, low=0, low_open=True)
    _check_number("cbn_kl_weight", config.cbn_kl_weight, low=0)
    if config.cbn_dual_path and config.norm != "cbn":
        raise UserError(f"cbn_dual_path needs Compound BN layers, but norm is {config.norm!r}; set norm=cbn")
    if config.norm == "cbn" and config.sync_bn:
        raise UserError("sync_bn does not synchronise Compound BN layers (their statistics are per process, like "
                        "plain BN's); set sync_bn=false")


def validate_stage2(config: Config) -> None:
    """Stage-2 settings (:mod:`~nbn_tutorial.train.stage2`) that cannot work together."""
    rule = TRAINABLE_REGISTRY.get(config.trainable)
    if rule.needs_init and not config.init_from:
        raise UserError(f"trainable={config.trainable} freezes most of the model, so it must start from a trained one: "
                        "set init_from to a stage-1 checkpoint (a run's last.pt)")
    if config.reinit_classifier and not config.init_from:
        raise UserError("reinit_classifier re-initialises the classifier of a stage-1 checkpoint; set init_from too")
    if config.init_from is not None and not str(config.init_from).strip():
        raise UserError("init_from is empty; give the path of a stage-1 checkpoint (a run's last.pt) or null")
    if config.expert_router != (config.trainable == "router"):
        raise UserError("RIDE's router trains in a stage of its own: set expert_router=true together with "
                        "trainable=router (and loss=ride-router, init_from a RIDE run's last.pt)")


def _model_option_takers(key: str) -> list[str]:
    return [name for name, spec in models.MODEL_REGISTRY.items()
            if spec.settings is not None and key in option_fields(spec.settings)]


def validate_model_outputs(config: Config) -> None:
    """The loss's required model outputs exist, and model options are only set for models that take them."""
    spec = models.MODEL_REGISTRY.get(config.model)
    options = models.model_kwargs(config.model, config)
    if config.num_experts < 1:
        raise UserError(f"num_experts must be at least 1, got {config.num_experts}")
    for key in {key for _, other in models.MODEL_REGISTRY.items() if other.settings is not None
                for key in option_fields(other.settings)}:
        if key not in options and getattr(config, key) != CONFIG_FIELDS[key].default:
            raise UserError(f"{key} applies to {', '.join(_model_option_takers(key))}, not to model "
                            f"{config.model!r}; leave it at {CONFIG_FIELDS[key].default!r}")
    needed = losses.LOSS_REGISTRY.get(config.loss).needs_outputs
    missing = [name for name in needed if name not in spec.outputs(options)]
    if missing:
        takers = [name for name, other in models.MODEL_REGISTRY.items()
                  if set(needed) <= set(other.outputs(models.model_kwargs(name, config)))]
        hint = f"; models that do: {', '.join(takers)}" if takers else ""
        raise UserError(f"loss {config.loss!r} needs a model that returns {' and '.join(missing)} while training, "
                        f"which model {config.model!r} with these settings does not{hint}")


def validate_config(config: Config) -> None:
    """Raise a UserError for wrong types, unknown names, out-of-range numbers, or conflicting options."""
    _validate_types(config)
    _validate_auto_switches(config)
    _validate_choices(config)
    _validate_dataset_options(config)
    _validate_counts(config)
    _validate_numbers(config)
    _validate_schedule(config)
    _validate_loss(config)
    validate_compound_options(config)
    validate_stage2(config)
    validate_model_outputs(config)
