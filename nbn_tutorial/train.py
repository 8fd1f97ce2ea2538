"""Training engine: the run config, training loop, checkpoints, exact resume, DDP, and evaluation.

A run is described by one :class:`Config` (YAML presets in ``configs/``, overrides ``key=value``) and
lives in a run directory::

    config.yaml     the resolved config
    metrics.jsonl   one JSON row per evaluated epoch (the source of truth; metrics.csv mirrors it)
    metrics.csv     the same rows; per_class_acc and alpha as JSON strings
    last.pt         the state at the end of the last saved epoch (resume from here)
    best.pt         the state at the epoch with the best ``checkpoint_metric``

Accuracies are fractions in [0, 1]. ``epoch`` in a metrics row counts completed epochs (1 = after the
first), and ``lr`` is the learning rate used during that epoch.

Checkpoints hold only tensors and plain Python values, so ``torch.load(path, weights_only=True)`` reads
them; every random-number state is in them, so on CPU a resumed run reproduces an uninterrupted one
exactly. Under ``torchrun`` the engine uses DDP (gloo on CPU, NCCL on CUDA); only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import io
import json
import math
import os
import random
import sys
import tempfile
import time
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn

from nbn_tutorial.errors import UserError

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
RUN_FILES = ("config.yaml", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_acc", "balanced_acc", "many_acc", "medium_acc",
                  "few_acc", "per_class_acc", "alpha", "time_s")
CHECKPOINT_METRICS = ("balanced_acc", "test_acc", "many_acc", "medium_acc", "few_acc")
CHECKPOINT_FORMAT = 1
# Fields that may change between an interrupted run and its resumption: they do not change what is computed.
RUN_CONTROL_FIELDS = frozenset({"stop_after_epochs", "num_workers", "cpu_threads", "data_root", "save_every",
                                "download"})
NO_BAD_BATCH = 2**62


# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------

def _option(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:
    """A dataclass field with a help text and, for string options, the valid words."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


AUTO = ("auto",)


@dataclass
class Config:
    """Everything that defines a training run; every field has a default (see configs/*.yaml for presets)."""

    # data
    dataset: str = _option("digits-lt", "registered dataset name (`nbn-tutorial data list`)")
    data_root: str | None = _option(None, "dataset folder; null: $NBN_DATA, else ./data")
    imbalance_factor: float | None = _option(None, "largest/smallest class size; null: the dataset's default")
    profile: str | None = _option(None, "long-tail profile exp or step; null: the dataset's default")
    data_seed: int = _option(0, "seed of the long-tailed subset selection")
    download: bool = _option(False, "allow downloading the dataset (never by default)")
    # model
    model: str = _option("resnet32", "resnet32, resnet50 or resnext50_32x4d")
    norm: str = _option("bn", "bn or nbn")
    head: str = _option("linear", "linear, lr (logit rectification) or cosine")
    nbn_where: str = _option("official", "which BN layers become NBN: official, last-stage or all")
    alpha_init: str | float = _option("official", "initial NBN alpha: official (1.0), unit-gamma (sqrt C) or a number")
    share_alpha: bool = _option(True, "one alpha shared by all NBN layers (the official design)")
    sync_bn: bool = _option(False, "SyncBatchNorm under DDP (NBN-aware conversion)")
    # loss
    loss: str = _option("ce", "ce, balanced-softmax, logit-adjustment, ldam-drw, focal, cb-ce or cb-focal")
    tau: float = _option(1.0, "logit-adjustment temperature")
    focal_gamma: float = _option(1.0, "focal loss gamma")
    cb_beta: float = _option(0.9999, "class-balanced beta (DRW and cb-* losses)")
    ldam_max_m: float = _option(0.5, "largest LDAM margin")
    ldam_s: float = _option(30.0, "LDAM logit scale")
    drw_epoch: int = _option(160, "0-based epoch from which DRW re-weights")
    posthoc_tau: float = _option(0.0, "post-hoc logit adjustment at evaluation (ce only); 0 = off")
    # optimisation
    seed: int = _option(0, "seed of initialisation, shuffling and augmentation")
    epochs: int = _option(200, "number of training epochs")
    batch_size: int = _option(128, "global batch size (split evenly over DDP processes)")
    lr: float = _option(0.1, "base learning rate")
    momentum: float = _option(0.9, "SGD momentum")
    weight_decay: float = _option(2e-4, "SGD weight decay")
    nesterov: bool = _option(False, "Nesterov momentum")
    alpha_weight_decay: bool = _option(True, "apply weight decay to NBN alpha too (the official default)")
    schedule: str = _option("step", "step (warmup + multipliers at milestones) or cosine (to 0)", ("step", "cosine"))
    warmup_epochs: int = _option(5, "linear warmup: lr*(epoch+1)/warmup_epochs for the first epochs")
    milestones: list[int] = _option([160, 180], "0-based epochs where the step schedule's multipliers start")
    lr_decay: list[float] = _option([0.01, 0.0001], "lr multiplier from each milestone on (not cumulative)")
    # evaluation and checkpoints
    eval_every: int = _option(1, "evaluate on the test split every N epochs (and after the last)")
    save_every: int = _option(1, "write last.pt every N epochs (and after the last)")
    checkpoint_metric: str = _option("balanced_acc", "metric that selects best.pt", CHECKPOINT_METRICS)
    stop_after_epochs: int | None = _option(None, "stop this invocation once this many epochs are done "
                                                  "(resume later); null: train to the end")
    # runtime switches (the fast settings are the CUDA defaults)
    device: str = _option("auto", "auto, cpu or cuda", ("auto", "cpu", "cuda"))
    amp: str = _option("auto", "autocast: auto (bf16 on CUDA, off on CPU), bf16, fp16 or off",
                       ("auto", "bf16", "fp16", "off"))
    channels_last: bool | str = _option("auto", "channels_last memory format; auto: on CUDA", AUTO)
    compile: str = _option("auto", "torch.compile: auto (default on CUDA, off on CPU), off, on/default, "
                                   "reduce-overhead (CUDA graphs) or max-autotune",
                           ("auto", "off", "on", "default", "reduce-overhead", "max-autotune"))
    compile_backend: str = _option("inductor", "torch.compile backend (inductor; eager/aot_eager for debugging)")
    cudnn_benchmark: bool | str = _option("auto", "cudnn.benchmark; auto: on CUDA", AUTO)
    fused_sgd: bool | str = _option("auto", "fused SGD kernel; auto: where torch supports it (CUDA, CPU)", AUTO)
    num_workers: int = _option(2, "DataLoader workers for file datasets (tensor datasets need none)")
    cpu_threads: int | None = _option(None, "torch CPU threads during the run (null: torch's default); 1 is "
                                            "fastest for tiny models such as the digits presets")


CONFIG_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Config)}
_CONFIG_TYPES: dict[str, Any] = typing.get_type_hints(Config)


class _Mismatch(Exception):
    """A value that does not fit a type (turned into a UserError naming the key)."""


def _type_words(hint: Any) -> str:
    """How a type is named in error messages."""
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_type_words(typing.get_args(hint)[0]).removeprefix('a ')}s"
    return " or ".join(_type_words(arg) for arg in typing.get_args(hint))


def _coerce(value: Any, hint: Any, choices: tuple[str, ...]) -> Any:
    """``value`` converted to the type ``hint`` (YAML already typed it), else _Mismatch."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in typing.get_args(hint):
                return None
        for arg in typing.get_args(hint):
            if arg is not type(None):
                with contextlib.suppress(_Mismatch):
                    return _coerce(value, arg, choices)
        raise _Mismatch
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_coerce(item, typing.get_args(hint)[0], ()) for item in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, bool) and ("off" if not value else "on") in choices:  # YAML reads off/on as bools
            return "on" if value else "off"
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"unsupported config type {hint!r}")


def _unknown_key_message(key: str, source: str) -> str:
    close = difflib.get_close_matches(key, CONFIG_FIELDS, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(name) for name in close)}?" if close else \
        f"valid keys: {', '.join(CONFIG_FIELDS)}"
    return f"unknown config key {key!r} in {source}; {hint}"


def _coerce_entry(key: Any, value: Any, source: str) -> Any:
    """The typed value of config key ``key``; UserError naming the key for unknown keys or wrong types."""
    if not isinstance(key, str) or key not in CONFIG_FIELDS:
        raise UserError(_unknown_key_message(str(key), source))
    choices = CONFIG_FIELDS[key].metadata["choices"]
    try:
        return _coerce(value, _CONFIG_TYPES[key], choices)
    except _Mismatch:
        expected = _type_words(_CONFIG_TYPES[key])
        if choices:
            expected += f" ({', '.join(choices)})"
        raise UserError(f"config key {key!r} in {source} expects {expected}, got {value!r}") from None


def _parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"override {text!r} must look like key=value, e.g. epochs=10")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. an unbalanced bracket): keep the text, the type check decides
    return key, value


def _resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or a preset name looked up in configs/ (with or without .yaml)."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    preset = PRESET_DIR / (candidate.name if candidate.suffix in (".yaml", ".yml") else f"{candidate.name}.yaml")
    if candidate.parent == Path(".") and preset.is_file():
        return preset
    names = ", ".join(list_presets()) or "none"
    raise UserError(f"config file {str(path)!r} does not exist; give a YAML path or a preset name ({names})")


def list_presets() -> list[str]:
    """Names of the YAML presets in configs/."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def _read_yaml_mapping(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise UserError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must be a YAML mapping of key: value lines")
    return raw


def config_from_dict(values: dict, source: str = "a config dict") -> Config:
    """A validated Config from a plain dict (unknown keys and wrong types are UserErrors)."""
    config = Config(**{key: _coerce_entry(key, value, source) for key, value in values.items()})
    validate_config(config)
    return config


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Config from a YAML file or preset name (None: the defaults), then ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        resolved = _resolve_config_path(path)
        source = f"config file {resolved}"
        values.update({key: _coerce_entry(key, value, source) for key, value in _read_yaml_mapping(resolved).items()})
    for text in overrides:
        key, value = _parse_override(text)
        values[key] = _coerce_entry(key, value, f"override {text!r}")
    config = Config(**values)
    validate_config(config)
    return config


def config_to_dict(config: Config) -> dict:
    """The config as plain YAML/JSON-friendly values."""
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML (every field, in declaration order)."""
    _atomic_write(Path(path), yaml.safe_dump(config_to_dict(config), sort_keys=False).encode())


def _check_choice(key: str, value: Any, valid: Sequence[str]) -> None:
    if value not in valid:
        close = difflib.get_close_matches(str(value), valid, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown {key} {value!r}{hint}; valid: {', '.join(valid)}")


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


def _check_auto_switch(key: str, value: bool | str) -> None:
    if not isinstance(value, bool) and value != "auto":
        raise UserError(f"{key} must be true, false or auto, got {value!r}")


def _validate_names(config: Config) -> None:
    """Names that must exist in the data/model/loss registries."""
    from nbn_tutorial import data, losses, models
    from nbn_tutorial import nn as nbn_nn

    _check_choice("dataset", config.dataset, list(data.DATASETS))
    _check_choice("model", config.model, models.MODELS)
    _check_choice("norm", config.norm, models.NORMS)
    _check_choice("head", config.head, models.HEADS)
    _check_choice("loss", config.loss, losses.LOSSES)
    _check_choice("nbn_where", config.nbn_where, nbn_nn.WHERE_OPTIONS)
    if isinstance(config.alpha_init, str):
        _check_choice("alpha_init", config.alpha_init, nbn_nn.ALPHA_INITS)
    for name in ("schedule", "checkpoint_metric", "device", "amp", "compile"):
        _check_choice(name, getattr(config, name), CONFIG_FIELDS[name].metadata["choices"])
    if config.profile is not None:
        _check_choice("profile", config.profile, data.PROFILES)


def _validate_loss(config: Config) -> None:
    """Loss options, checked by building the loss on two dummy classes (surfaces losses.py's messages)."""
    from nbn_tutorial import losses

    loss = losses.build_loss(config.loss, [2, 1], **_loss_options(config))
    if loss.requires_cosine_head and config.head != "cosine":
        raise UserError(f"loss {config.loss!r} needs the cosine head (its margins assume normalized logits), "
                        f"but head is {config.head!r}; set head=cosine")


def _validate_numbers(config: Config) -> None:
    for key in ("epochs", "batch_size", "eval_every", "save_every"):
        if getattr(config, key) < 1:
            raise UserError(f"{key} must be at least 1, got {getattr(config, key)}")
    if config.cpu_threads is not None and config.cpu_threads < 1:
        raise UserError(f"cpu_threads must be at least 1 (or null for torch's default), got {config.cpu_threads}")
    for key in ("warmup_epochs", "drw_epoch", "num_workers", "seed", "data_seed"):
        if getattr(config, key) < 0:
            raise UserError(f"{key} must be 0 or more, got {getattr(config, key)}")
    _check_number("lr", config.lr, low=0, low_open=True)
    _check_number("momentum", config.momentum, low=0, high=1, high_open=True)
    _check_number("weight_decay", config.weight_decay, low=0)
    for key in ("tau", "posthoc_tau", "ldam_max_m", "ldam_s"):
        _check_number(key, getattr(config, key))
    if config.imbalance_factor is not None:
        _check_number("imbalance_factor", config.imbalance_factor, low=1)
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


def _validate_types(config: Config) -> None:
    """Every field has a value of its declared type (a Config built in Python skips load_config's coercion)."""
    for key, value in config_to_dict(config).items():
        _coerce_entry(key, value, "the config")


def _validate_dataset_options(config: Config) -> None:
    from nbn_tutorial import data

    fixed_tail = data.DATASETS[config.dataset].default_imbalance_factor is None
    if fixed_tail and (config.imbalance_factor is not None or config.profile is not None):
        raise UserError(f"{config.dataset}'s long tail is fixed by its official list files; set imbalance_factor "
                        "and profile to null")


def validate_config(config: Config) -> None:
    """Raise a UserError for wrong types, unknown names, out-of-range numbers, or conflicting options."""
    _validate_types(config)
    for key in ("channels_last", "cudnn_benchmark", "fused_sgd"):
        _check_auto_switch(key, getattr(config, key))
    _validate_names(config)
    _validate_dataset_options(config)
    _validate_numbers(config)
    _validate_schedule(config)
    _validate_loss(config)


def _loss_options(config: Config) -> dict:
    return dict(tau=config.tau, focal_gamma=config.focal_gamma, cb_beta=config.cb_beta, ldam_max_m=config.ldam_max_m,
                ldam_s=config.ldam_s, drw_epoch=config.drw_epoch, posthoc_tau=config.posthoc_tau)


def resolve_dataset_defaults(config: Config) -> Config:
    """``config`` with imbalance_factor and profile filled in from the dataset's defaults."""
    from nbn_tutorial import data

    spec = data.DATASETS[config.dataset]
    return dataclasses.replace(
        config,
        imbalance_factor=spec.default_imbalance_factor if config.imbalance_factor is None else config.imbalance_factor,
        profile=spec.default_profile if config.profile is None else config.profile)


def protocol_differences(stored: Config, current: Config) -> list[str]:
    """``key: stored -> current`` for every field that changes what a run computes."""
    old, new = config_to_dict(resolve_dataset_defaults(stored)), config_to_dict(resolve_dataset_defaults(current))
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in old
            if key not in RUN_CONTROL_FIELDS and old[key] != new[key]]


def default_run_dir(config: Config) -> Path:
    """runs/<dataset>_<model>_<norm>[_<head>]_<loss>_seed<seed>, relative to the working directory."""
    parts = [config.dataset, config.model, config.norm]
    if config.head != "linear":
        parts.append(config.head)
    parts += [config.loss, f"seed{config.seed}"]
    return Path("runs") / "_".join(parts)


# ----------------------------------------------------------------------------------------------------
# Learning-rate schedule
# ----------------------------------------------------------------------------------------------------

def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: linear warmup, then step multipliers or cosine to 0.

    Step (LDAM-DRW's ``adjust_learning_rate``): lr*(epoch+1)/warmup for epoch < warmup, then lr times the
    multiplier of the last milestone reached (not cumulative). Cosine (``CosineAnnealingLR(T_max=epochs,
    eta_min=0)`` stepped per epoch, after the warmup): lr*(1+cos(pi*t/T))/2.
    """
    if epoch < config.warmup_epochs:
        return config.lr * (epoch + 1) / config.warmup_epochs
    if config.schedule == "cosine":
        span = max(1, config.epochs - config.warmup_epochs)
        progress = min(epoch - config.warmup_epochs, span) / span
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    factor = 1.0
    for milestone, multiplier in zip(config.milestones, config.lr_decay):
        if epoch >= milestone:
            factor = multiplier
    return config.lr * factor


# ----------------------------------------------------------------------------------------------------
# Runtime: device, distributed processes and the fast-path switches
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (world_size 1 when not distributed)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes the run directory."""
        return self.rank == 0


def dist_info_from_env() -> DistInfo:
    """WORLD_SIZE, RANK and LOCAL_RANK as torchrun sets them (defaults: a single process)."""
    try:
        info = DistInfo(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers; launch with torchrun") from None
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise UserError(f"RANK={info.rank} does not fit WORLD_SIZE={info.world_size}; launch with torchrun")
    return info


def resolve_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under DDP each process takes GPU ``local_rank``."""
    if choice not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown device {choice!r}; valid: auto, cpu, cuda")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible; use device=cpu or device=auto")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"process LOCAL_RANK={local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                        "use --nproc-per-node <= the number of GPUs")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@dataclass(frozen=True)
class Runtime:
    """The resolved fast-path switches for one device."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile_mode: str | None          # None: eager; "default", "reduce-overhead" or "max-autotune"
    compile_backend: str
    cudnn_benchmark: bool
    fused_sgd: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to ``amp_dtype`` (parameters stay fp32), or nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        """One line naming every switch."""
        amp = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[self.amp_dtype]
        compiled = f"compile {self.compile_mode} ({self.compile_backend})" if self.compile_mode else "eager"
        return (f"device {self.device} · {amp} · {'channels_last' if self.channels_last else 'contiguous'} · "
                f"{compiled} · {'fused' if self.fused_sgd else 'foreach'} SGD"
                + (" · cudnn.benchmark" if self.cudnn_benchmark else ""))


def _auto(value: bool | str, on_cuda: bool) -> bool:
    return on_cuda if value == "auto" else bool(value)


def resolve_runtime(config: Config, device: torch.device) -> Runtime:
    """Turn the config's auto/on/off switches into concrete settings for ``device``."""
    cuda = device.type == "cuda"
    amp = config.amp
    if amp == "auto":
        amp = "bf16" if cuda and torch.cuda.is_bf16_supported() else "off"
    if amp == "fp16" and not cuda:
        raise UserError("amp=fp16 needs a CUDA device (its GradScaler is CUDA-only); use amp=bf16 or amp=off on CPU")
    mode = {"auto": "default" if cuda else None, "off": None, "on": "default"}.get(config.compile, config.compile)
    if mode == "reduce-overhead" and not cuda:
        raise UserError("compile=reduce-overhead uses CUDA graphs and needs a CUDA device; use compile=default or off")
    if mode is not None:
        from torch._dynamo import list_backends

        if config.compile_backend not in list_backends(exclude_tags=()):
            raise UserError(f"unknown compile_backend {config.compile_backend!r}; use inductor (the default), "
                            "or eager or aot_eager to debug compilation")
    return Runtime(device=device, amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp],
                   channels_last=_auto(config.channels_last, cuda), compile_mode=mode,
                   compile_backend=config.compile_backend, cudnn_benchmark=_auto(config.cudnn_benchmark, cuda),
                   fused_sgd=_auto(config.fused_sgd, device.type in ("cuda", "cpu")))


@contextlib.contextmanager
def _process_group(info: DistInfo, device: torch.device) -> Iterator[None]:
    """Initialise the torchrun process group for this run (if not already done) and destroy it after."""
    if not info.enabled or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank, world_size=info.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _cpu_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block (None: leave torch's setting alone)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------
# Checkpoints (weights_only-loadable) and random-number states
# ----------------------------------------------------------------------------------------------------

def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file next to ``path``, then rename it over ``path``."""
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def rng_states(device: torch.device | None = None) -> dict:
    """Every global random state (and ``device``'s, if CUDA) as tensors and plain values (weights_only-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device is not None and device.type == "cuda" else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def set_rng_states(states: dict, device: torch.device | None = None) -> None:
    """Restore what :func:`rng_states` captured (the CUDA state onto ``device``)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"][0], device)
    state = states["numpy"]
    np.random.set_state((state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["cached_gaussian"]))
    state = states["python"]
    random.setstate((state["version"], tuple(int(v) for v in state["state"].tolist()), state["gauss_next"]))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint of this project, read with weights_only=True onto the CPU; UserError if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist; pass the best.pt or last.pt of a run directory")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files (EOF, zip, unpickling)
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise UserError(f"checkpoint {str(path)!r} is corrupt or not a PyTorch checkpoint ({reason}); "
                        "use another checkpoint or train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise UserError(f"checkpoint {str(path)!r} is not an nbn-tutorial training checkpoint (format "
                        f"{CHECKPOINT_FORMAT}); pass the best.pt or last.pt of a run directory")
    return state


def _serialize(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------

def accuracy_metrics(correct: np.ndarray, total: np.ndarray, shot_groups: dict[str, np.ndarray]) -> dict:
    """Overall, balanced (mean per-class) and many/medium/few accuracy from per-class counts.

    A class without test samples has accuracy None and is left out of the means; an empty group is None.
    """
    correct, total = np.asarray(correct, dtype=np.int64), np.asarray(total, dtype=np.int64)
    present = total > 0
    per_class = np.where(present, correct / np.maximum(total, 1), np.nan)

    def mean_of(classes: np.ndarray) -> float | None:
        values = per_class[np.asarray(classes, dtype=np.int64)]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else None

    return {
        "test_acc": float(correct.sum() / total.sum()) if total.sum() else None,
        "balanced_acc": mean_of(np.arange(len(total))),
        **{f"{group}_acc": mean_of(shot_groups[group]) for group in ("many", "medium", "few")},
        "per_class_acc": [None if math.isnan(value) else float(value) for value in per_class],
    }


def _csv_row(row: dict) -> dict:
    """A metrics row for csv: lists as JSON strings, None as an empty cell."""
    return {key: json.dumps(row.get(key)) if isinstance(row.get(key), (list, dict)) else
            ("" if row.get(key) is None else row.get(key)) for key in METRIC_COLUMNS}


def _write_metric_files(run_dir: Path, rows: list[dict]) -> None:
    """(Re)write metrics.jsonl and metrics.csv from ``rows``."""
    _atomic_write(run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_row(row) for row in rows)
    _atomic_write(run_dir / "metrics.csv", text.getvalue().encode())


def _append_metric_row(run_dir: Path, row: dict) -> None:
    """Append one row to metrics.jsonl and metrics.csv (creating them with a header)."""
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")
    csv_path = run_dir / "metrics.csv"
    new = not csv_path.exists()
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(_csv_row(row))


def _read_metric_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821 (pandas imported lazily)
    """The run's metrics.jsonl as a DataFrame, one row per evaluated epoch (list columns stay lists)."""
    import pandas

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{str(path)!r} does not exist; is {str(run_dir)!r} a run directory with a finished epoch?")
    return pandas.DataFrame(_read_metric_rows(Path(run_dir)), columns=list(METRIC_COLUMNS))


def format_metrics(metrics: dict) -> str:
    """One human line: epoch, overall, balanced, many/medium/few accuracy."""

    def percent(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"

    where = f"epoch {metrics['epoch']}: " if metrics.get("epoch") is not None else ""
    return (f"{where}overall {percent('test_acc')} · balanced {percent('balanced_acc')} · many {percent('many_acc')}"
            f" · medium {percent('medium_acc')} · few {percent('few_acc')}")


# ----------------------------------------------------------------------------------------------------
# Building blocks of a run
# ----------------------------------------------------------------------------------------------------

def build_datasets(config: Config, splits: Sequence[str] = ("train", "test")) -> dict[str, Any]:
    """The config's dataset splits (LTDataset objects) by split name."""
    from nbn_tutorial import data

    return {split: data.build_dataset(config.dataset, root=config.data_root, imbalance_factor=config.imbalance_factor,
                                      profile=config.profile, seed=config.data_seed, split=split,
                                      download=config.download)
            for split in splits}


def build_model_for(config: Config, dataset: Any) -> nn.Module:
    """The config's model for ``dataset`` (its classes and image channels)."""
    from nbn_tutorial import models

    return models.build_model(config.model, dataset.num_classes, norm=config.norm, head=config.head,
                              in_channels=dataset.spec.channels, nbn_where=config.nbn_where,
                              alpha_init=config.alpha_init, share_alpha=config.share_alpha)


def build_loss_for(config: Config, dataset: Any) -> nn.Module:
    """The config's loss for ``dataset``'s long-tailed train counts."""
    from nbn_tutorial import losses

    return losses.build_loss(config.loss, dataset.train_counts, **_loss_options(config))


def parameter_groups(model: nn.Module, config: Config) -> list[dict]:
    """SGD parameter groups: weight decay on everything, except NBN alpha when ``alpha_weight_decay`` is off."""
    from nbn_tutorial.nn import alpha_parameters

    alphas = {id(p) for p in alpha_parameters(model)}
    if config.alpha_weight_decay or not alphas:
        return [{"params": list(model.parameters()), "weight_decay": config.weight_decay}]
    return [{"params": [p for p in model.parameters() if id(p) not in alphas], "weight_decay": config.weight_decay},
            {"params": [p for p in model.parameters() if id(p) in alphas], "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: Config, runtime: Runtime) -> torch.optim.SGD:
    """SGD with the config's momentum/Nesterov/weight decay; fused kernel where enabled, else foreach."""
    kernel = {"fused": True} if runtime.fused_sgd else {"foreach": True}
    return torch.optim.SGD(parameter_groups(model, config), lr=learning_rate(config, 0), momentum=config.momentum,
                           nesterov=config.nesterov, **kernel)


def _shard_size(count: int, world_size: int, rank: int) -> int:
    """Real (not padding) samples in ``rank``'s shard of an unshuffled DistributedSampler over ``count`` items."""
    return len(range(rank, count, world_size))


def _alpha_values(model: nn.Module) -> list[float]:
    from nbn_tutorial.nn import alpha_parameters

    return [float(alpha.detach()) for alpha in alpha_parameters(model)]


def _progress_bar(show: bool, **options: Any):
    from tqdm import tqdm

    return tqdm(disable=not show, dynamic_ncols=True, file=sys.stderr, **options)


def evaluate_model(module: nn.Module, loader: Any, loss_fn: Any, num_classes: int, runtime: Runtime,
                   real_samples: int) -> tuple[Tensor, Tensor]:
    """Per-class (correct, total) counts of ``module`` over ``loader``'s first ``real_samples`` samples.

    Predictions use ``loss_fn.adjust_logits`` (post-hoc logit adjustment, identity for most losses).
    Counts are int64 tensors on the runtime device, not yet reduced across processes.
    """
    correct = torch.zeros(num_classes, dtype=torch.int64, device=runtime.device)
    total = torch.zeros_like(correct)
    seen = 0
    module.eval()
    with torch.inference_mode(), runtime.autocast():
        for x, y in loader:
            keep = min(len(y), real_samples - seen)
            seen += len(y)
            if keep <= 0:
                break
            if runtime.compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            predictions = loss_fn.adjust_logits(module(x).float()).argmax(1)[:keep]
            y = y[:keep]
            total += torch.bincount(y, minlength=num_classes)
            correct += torch.bincount(y[predictions == y], minlength=num_classes)
    return correct, total


# ----------------------------------------------------------------------------------------------------
# The run directory
# ----------------------------------------------------------------------------------------------------

def _existing_run_files(run_dir: Path) -> list[str]:
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def _check_run_dir(run_dir: Path, config: Config, resume: bool, overwrite: bool) -> dict | None:
    """Read-only checks of the run directory; returns the checkpoint to resume from, if resuming."""
    if resume and overwrite:
        raise UserError("choose either --resume (continue the run) or --overwrite (replace it), not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} is a file; choose another --out")
    existing = _existing_run_files(run_dir)
    if resume:
        last = run_dir / "last.pt"
        if not last.exists():
            raise UserError(f"cannot resume: {str(run_dir)!r} has no last.pt; train it without --resume")
        state = read_checkpoint(last)
        differences = protocol_differences(config_from_dict(state["config"], f"checkpoint {last}"), config)
        if differences:
            raise UserError(f"cannot resume {str(run_dir)!r} with a different config ({'; '.join(differences)}); "
                            "resume with the run's own config.yaml or start a new run with another --out")
        return state
    if existing and not overwrite:
        raise UserError(f"{str(run_dir)!r} already holds a run ({', '.join(existing)}); continue it with --resume, "
                        "replace it with --overwrite, or choose another --out")
    return None


def _clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's files (only those), saying what was replaced."""
    existing = _existing_run_files(run_dir)
    if not existing:
        return
    rows = _read_metric_rows(run_dir)
    what = f"{len(rows)} evaluated epoch{'s' if len(rows) != 1 else ''}" if rows else "no evaluated epoch"
    for name in existing:
        (run_dir / name).unlink()
    print(f"overwrite: replaced the previous run in {run_dir} ({what}; removed {', '.join(existing)})",
          file=sys.stderr)


# ----------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------

def _check_last_batch(config: Config, last_batch: int) -> None:
    """The LR head normalises logits over the batch, which is impossible for a last batch of one sample."""
    if config.head == "lr" and last_batch == 1:
        raise UserError(f"with head=lr the last training batch would hold a single sample, which batch "
                        f"normalisation of the logits cannot train on; change batch_size (now {config.batch_size})")


class _Trainer:
    """One training run: built from a config, driven epoch by epoch, checkpointed to the run directory."""

    def __init__(self, config: Config, run_dir: Path, info: DistInfo, runtime: Runtime, progress: bool) -> None:
        self.config, self.run_dir, self.info, self.runtime = config, run_dir, info, runtime
        self.show_progress = progress and info.is_main
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.start_epoch = 0
        torch.backends.cudnn.benchmark = runtime.cudnn_benchmark
        _seed_everything(config.seed)
        datasets = build_datasets(config)
        self.train_set, self.test_set = datasets["train"], datasets["test"]
        self.num_classes = self.train_set.num_classes
        self.model = build_model_for(config, self.train_set).to(runtime.device)
        if runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if info.enabled and config.sync_bn:  # before the optimizer sees the parameters
            from nbn_tutorial.nn import convert_sync_batchnorm

            self.model = convert_sync_batchnorm(self.model)
        self.loss_fn = build_loss_for(config, self.train_set).to(runtime.device)
        self.optimizer = build_optimizer(self.model, config, runtime)
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
        self.module = self._wrap(self.model)
        per_process = config.batch_size // info.world_size
        loader_options = dict(batch_size=per_process, device=runtime.device, seed=config.seed,
                              num_workers=config.num_workers, num_replicas=info.world_size, rank=info.rank,
                              channels_last=runtime.channels_last)
        from nbn_tutorial import data

        self.train_loader = data.make_loader(self.train_set, train=True, **loader_options)
        self.test_loader = data.make_loader(self.test_set, train=False, **loader_options)
        self.test_samples = _shard_size(len(self.test_set), info.world_size, info.rank)
        _check_last_batch(config, _shard_size(len(self.train_set), info.world_size, info.rank) % per_process)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP and torch.compile around the model, as configured."""
        module = model
        if self.info.enabled:
            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        if self.runtime.compile_mode is not None:
            mode = None if self.runtime.compile_mode == "default" else self.runtime.compile_mode
            # Static shapes: the last partial batch adds one graph once, not a recompile every epoch.
            module = torch.compile(module, mode=mode, backend=self.runtime.compile_backend, dynamic=False)
        return module

    # -- state -------------------------------------------------------------------------------------

    def state(self, epochs_done: int) -> dict:
        """Everything needed to continue after ``epochs_done`` epochs, as weights_only-safe values."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "epoch": epochs_done,
            "world_size": self.info.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"epoch": epochs_done, "lr": learning_rate(self.config, max(epochs_done - 1, 0))},
            "scaler": self.scaler.state_dict(),
            "loss": {"name": self.config.loss, "epoch": epochs_done},
            "loader": {"epoch": epochs_done, "seed": self.config.seed},
            "best": {"metric": self.config.checkpoint_metric, "value": self.best_value, "epoch": self.best_epoch},
            "rng": rng_states(self.runtime.device),
        }

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint: weights, optimizer, scaler, best so far and random states."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.best_value, self.best_epoch = state["best"]["value"], state["best"]["epoch"]
        self.start_epoch = state["epoch"]
        set_rng_states(state["rng"], self.runtime.device)

    # -- one epoch ---------------------------------------------------------------------------------

    def _step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self.runtime.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        with self.runtime.autocast():
            logits = self.module(x)
            loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach(), logits.detach()

    def train_epoch(self, epoch: int) -> dict:
        """Train one epoch; returns lr, mean train loss and accuracy (over all processes)."""
        lr = learning_rate(self.config, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.loss_fn.set_epoch(epoch)
        self.train_loader.set_epoch(epoch)
        self.module.train()
        device = self.runtime.device
        sums = torch.zeros(2, dtype=torch.float64, device=device)        # sum of loss * n, correct
        first_bad = torch.full((1,), NO_BAD_BATCH, dtype=torch.int64, device=device)
        seen = 0
        batches = len(self.train_loader)
        refresh_every = max(1, batches // 20)  # .item() syncs the GPU: refresh the bar ~20 times an epoch
        with _progress_bar(self.show_progress, total=batches, leave=False, desc=f"epoch {epoch + 1}",
                           unit="batch") as bar:
            for index, (x, y) in enumerate(self.train_loader):
                loss, logits = self._step(x, y)
                with torch.no_grad():
                    sums += torch.stack([loss.double() * len(y), (logits.argmax(1) == y).sum().double()])
                    # Remember the first non-finite batch without a GPU sync; checked once, after the epoch.
                    first_bad = torch.where(torch.isfinite(loss) | (first_bad < NO_BAD_BATCH), first_bad, index)
                seen += len(y)
                bar.update(1)
                if self.show_progress and ((index + 1) % refresh_every == 0 or index + 1 == batches):
                    loss_sum, correct = sums.tolist()
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{lr:.4g}", acc=f"{correct / seen:.3f}",
                                    refresh=False)
        totals = torch.cat([sums, torch.tensor([seen], dtype=torch.float64, device=device)])
        if self.info.enabled:
            dist.all_reduce(totals)
            dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
        bad = int(first_bad.item())
        if bad != NO_BAD_BATCH:
            self._stop_on_bad_loss(epoch, bad, batches)
        loss_sum, correct, seen = totals.tolist()
        return {"lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen}

    def _stop_on_bad_loss(self, epoch: int, batch: int, batches: int) -> None:
        last = self.run_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
        raise UserError(f"the training loss became nan or inf at epoch {epoch + 1}, batch {batch + 1} of {batches}, "
                        f"so training stopped and {kept}; lower the learning rate (lr={self.config.lr:g}) or "
                        "lengthen the warmup, then train again with --overwrite")

    def evaluate(self) -> dict:
        """Test-split metrics; under DDP each process evaluates its shard and the counts are summed."""
        if self.info.enabled:  # evaluate with rank 0's BN statistics, which are what the checkpoint stores
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        correct, total = evaluate_model(self.module, self.test_loader, self.loss_fn, self.num_classes, self.runtime,
                                        self.test_samples)
        if self.info.enabled:
            dist.all_reduce(correct)
            dist.all_reduce(total)
        metrics = accuracy_metrics(correct.cpu().numpy(), total.cpu().numpy(), self.test_set.shot_groups)
        return {**metrics, "alpha": _alpha_values(self.model)}

    # -- the loop ----------------------------------------------------------------------------------

    def _is_better(self, value: float | None) -> bool:
        return value is not None and (self.best_value is None or value > self.best_value)

    def _save(self, epochs_done: int, last: bool, best: bool) -> None:
        if not (last or best):
            return
        payload = _serialize(self.state(epochs_done))
        if last:
            _atomic_write(self.run_dir / "last.pt", payload)
        if best:
            _atomic_write(self.run_dir / "best.pt", payload)

    def run_epoch(self, epoch: int, end: int) -> dict:
        """Train 0-based ``epoch``, evaluate if due, write its metrics row and checkpoints; returns the row."""
        config = self.config
        started = time.perf_counter()
        done = epoch + 1
        row: dict[str, Any] = {"epoch": done, **self.train_epoch(epoch)}
        evaluated = done % config.eval_every == 0 or done == config.epochs
        improved = False
        if evaluated:
            row.update(self.evaluate())
            improved = self._is_better(row[config.checkpoint_metric])
            if improved:
                self.best_value, self.best_epoch = row[config.checkpoint_metric], done
        row["time_s"] = time.perf_counter() - started
        if self.info.is_main:
            if evaluated:
                _append_metric_row(self.run_dir, {key: row.get(key) for key in METRIC_COLUMNS})
            self._save(done, last=done % config.save_every == 0 or done == end, best=improved)
        return row

    def run(self) -> None:
        """Train from ``start_epoch`` to the end (or to ``stop_after_epochs``), evaluating and checkpointing."""
        config = self.config
        end = min(config.epochs, config.stop_after_epochs or config.epochs)
        if self.show_progress:
            print(f"training {config.dataset} {config.model} {config.norm} {config.loss} -> {self.run_dir} "
                  f"({self.runtime.describe()}, {self.info.world_size} process(es))", file=sys.stderr)
        with _progress_bar(self.show_progress, total=config.epochs, initial=self.start_epoch, desc="training",
                           unit="epoch") as bar:
            for epoch in range(self.start_epoch, end):
                row = self.run_epoch(epoch, end)
                bar.update(1)
                if "test_acc" in row:
                    bar.set_postfix(acc=f"{row['test_acc']:.3f}", bal=f"{row['balanced_acc']:.3f}", refresh=False)
        rows = _read_metric_rows(self.run_dir) if self.show_progress else []
        if rows:
            print(f"last: {format_metrics(rows[-1])}", file=sys.stderr)


def _truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Drop metric rows written after the checkpoint being resumed (they will be produced again)."""
    rows = _read_metric_rows(run_dir)
    kept = [row for row in rows if row["epoch"] <= epochs_done]
    if len(kept) != len(rows) or (rows and not (run_dir / "metrics.csv").exists()):
        _write_metric_files(run_dir, kept)


def train(config: Config, out_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> Path:
    """Train ``config`` into the run directory ``out_dir`` and return it (see the module docstring).

    ``resume=True`` continues from ``out_dir/last.pt`` (same config; run-control fields such as
    ``stop_after_epochs`` may differ); ``overwrite=True`` replaces an existing run and says so. Under
    torchrun the processes form a DDP group for the duration of this call.
    """
    validate_config(config)
    run_dir = Path(out_dir)
    info = dist_info_from_env()
    if config.batch_size % info.world_size:
        raise UserError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                        f"({info.world_size}); each process trains on batch_size / processes")
    device = resolve_device(config.device, info.local_rank)
    runtime = resolve_runtime(config, device)
    if config.sync_bn and info.enabled and device.type != "cuda":
        raise UserError("sync_bn needs CUDA devices (torch's SyncBatchNorm does not run on CPU); set sync_bn=false")
    resume_state = _check_run_dir(run_dir, config, resume, overwrite)
    if resume_state is not None and resume_state["epoch"] >= min(config.epochs, config.stop_after_epochs or 10**9):
        if info.is_main and progress:
            print(f"{run_dir} has already trained {resume_state['epoch']} epochs; nothing to resume", file=sys.stderr)
        return run_dir
    with _process_group(info, device), _cpu_threads(config.cpu_threads):
        trainer = _Trainer(config, run_dir, info, runtime, progress)
        if resume_state is not None:
            trainer.restore(resume_state)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if resume_state is None:
                _clear_run_dir(run_dir)
            else:
                _truncate_metrics(run_dir, resume_state["epoch"])
            save_config(resolve_dataset_defaults(config), run_dir / "config.yaml")
        if info.enabled:
            dist.barrier()
        trainer.run()
    return run_dir


# ----------------------------------------------------------------------------------------------------
# Using finished runs
# ----------------------------------------------------------------------------------------------------

def _checkpoint_model(state: dict, source: str, split: str = "test") -> tuple[nn.Module, Config, Any]:
    """(model with the checkpoint's weights on CPU in eval mode, its config, the ``split`` dataset)."""
    config = config_from_dict(state["config"], source)
    dataset = build_datasets(config, (split,))[split]
    model = build_model_for(config, dataset)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise UserError(f"{source} does not match its own config's model ({str(error).splitlines()[0]})") from None
    return model.eval(), config, dataset


def evaluate_checkpoint(path: str | os.PathLike, *, split: str = "test", device: str = "auto") -> dict:
    """Rebuild the model stored in a checkpoint and evaluate it on ``split`` of its dataset.

    Returns the metrics (test_acc = overall accuracy on ``split``, balanced/many/medium/few, per-class,
    alpha) plus ``epoch``, ``split`` and ``checkpoint``.
    """
    from nbn_tutorial import data

    state = read_checkpoint(path)
    model, config, dataset = _checkpoint_model(state, f"checkpoint {path}", split)
    runtime = dataclasses.replace(resolve_runtime(config, resolve_device(device)), compile_mode=None)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss_for(config, dataset).to(runtime.device)
    loader = data.make_loader(dataset, batch_size=config.batch_size, train=False, device=runtime.device,
                              seed=config.seed, num_workers=config.num_workers, channels_last=runtime.channels_last)
    with _cpu_threads(config.cpu_threads):
        correct, total = evaluate_model(model, loader, loss_fn, dataset.num_classes, runtime, len(dataset))
    metrics = accuracy_metrics(correct.cpu().numpy(), total.cpu().numpy(), dataset.shot_groups)
    return {"epoch": state["epoch"], "split": split, "checkpoint": str(path), **metrics, "alpha": _alpha_values(model)}


def load_run(run_dir: str | os.PathLike, which: str = "best") -> tuple[nn.Module, Config]:
    """The model of a run directory (``which``: best or last checkpoint) on CPU in eval mode, and its config."""
    if which not in ("best", "last"):
        raise UserError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.pt"
    model, config, _ = _checkpoint_model(read_checkpoint(path), f"checkpoint {path}")
    return model, config


def _stored_config(run_dir: Path) -> Config | None:
    """The config of the run in ``run_dir``: from last.pt, else config.yaml (a run without a checkpoint yet)."""
    if (run_dir / "last.pt").exists():
        return config_from_dict(read_checkpoint(run_dir / "last.pt")["config"], f"checkpoint {run_dir / 'last.pt'}")
    if (run_dir / "config.yaml").exists():
        return config_from_dict(_read_yaml_mapping(run_dir / "config.yaml"), f"{run_dir / 'config.yaml'}")
    return None


def load_or_train(config: Config, run_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """The notebooks' pattern: reuse a finished run of ``config`` in ``run_dir``, resume an unfinished one,
    or train it; a run of a different config there is a UserError (never silently replaced)."""
    run_dir = Path(run_dir)
    stored = _stored_config(run_dir)
    if stored is not None:
        differences = protocol_differences(stored, config)
        if differences:
            raise UserError(f"{str(run_dir)!r} holds a run of another config ({'; '.join(differences)}); "
                            "choose another run directory or delete that one")
    if (run_dir / "last.pt").exists():
        return train(config, run_dir, resume=True, progress=progress)
    # Files without last.pt: this config's run, stopped before its first checkpoint; start it again.
    return train(config, run_dir, overwrite=bool(_existing_run_files(run_dir)), progress=progress)
