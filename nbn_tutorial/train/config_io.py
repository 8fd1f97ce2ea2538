"""Reading and writing configs: YAML files, preset names (``configs/``), ``key=value`` overrides.

Presets live in :data:`nbn_tutorial.paths.PRESET_DIR` (the checkout's ``configs/``, or the copy a
wheel carries). Every value is typed by :mod:`~nbn_tutorial.train.coercion` and the resulting
config is checked by :func:`~nbn_tutorial.train.validation.validate_config`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text, read_yaml_mapping
from nbn_tutorial.registry import closest
from nbn_tutorial.train.coercion import canonical_key, coerce_entry, coerce_values
from nbn_tutorial.train.config import Config, config_to_dict
from nbn_tutorial.train.validation import validate_config


def list_presets() -> list[str]:
    """Names of the YAML presets in configs/."""
    return sorted(path.stem for path in paths.PRESET_DIR.glob("*.yaml"))


def _resolve_config_path(path: str | os.PathLike) -> Path:
    """A config file path, or a preset name looked up in configs/ (with or without .yaml)."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    if candidate.is_dir():
        inside = candidate / "config.yaml"
        hint = f", e.g. {str(inside)!r}" if inside.is_file() else f" or the name of a preset in {paths.PRESET_DIR}"
        raise UserError(f"config file {str(path)!r} is a folder; give the path of a YAML file{hint}")
    name = candidate.name if candidate.suffix in (".yaml", ".yml") else f"{candidate.name}.yaml"
    preset = paths.PRESET_DIR / name
    if candidate.parent == Path(".") and preset.is_file():
        return preset
    close = closest(Path(name).stem, list_presets()) if candidate.parent == Path(".") else None
    hint = f"did you mean the preset {close!r}? " if close else ""
    raise UserError(f"config file {str(path)!r} does not exist; {hint}give a YAML path or the name of a preset in "
                    f"{paths.PRESET_DIR}")


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


def config_from_dict(values: dict, source: str = "a config dict") -> Config:
    """A validated Config from a plain dict (unknown keys and wrong types are UserErrors)."""
    config = Config(**coerce_values(values, source))
    validate_config(config)
    return config


def checkpoint_config(state: dict, path: str | os.PathLike) -> Config:
    """The validated config stored in ``state``, the checkpoint read from ``path``."""
    return config_from_dict(state["config"], f"checkpoint {path}")


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Config from a YAML file or preset name (None: the defaults), then ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        resolved = _resolve_config_path(path)
        values.update(coerce_values(read_yaml_mapping(resolved, "config file", allow_empty=False),
                                    f"config file {resolved}"))
    for text in overrides:
        key, value = _parse_override(text)
        key = canonical_key(key, f"override {text!r}")
        values[key] = coerce_entry(key, value, f"override {text!r}")
    config = Config(**values)
    validate_config(config)
    return config


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML (every field, in declaration order)."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
