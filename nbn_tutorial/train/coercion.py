"""Typed config values: a YAML or ``key=value`` value converted to its field's declared type.

YAML already types most values; this module accepts what fits the field (``7.0`` for an int,
``2e-4`` read by YAML 1.1 as a string for a float, ``off`` read as a bool for a string option) and
turns everything else into a :class:`UserError` naming the key, the expected type and the value.

A key that was renamed is still read under its old name (:data:`LEGACY_KEYS`; ``nbn_where`` is now
``norm_where``, since it places Compound BN too), with a note, wherever a config is read: presets, overrides,
checkpoints (resume, stage 2, evaluation) and the configs recorded in study rows.
"""
from __future__ import annotations

import contextlib
import difflib
import sys
import types
import typing
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import LEGACY_WHERE_KEY
from nbn_tutorial.train.config import CONFIG_FIELDS, Config

_CONFIG_TYPES: dict[str, Any] = typing.get_type_hints(Config)
LEGACY_KEYS: dict[str, str] = {LEGACY_WHERE_KEY: "norm_where"}   # old key -> the key that replaced it
_noted: set[str] = set()   # legacy keys already noted in this process (one note each)


def canonical_key(key: Any, source: str) -> Any:
    """The current name of config key ``key`` (a legacy key is renamed, with one note per process)."""
    if key not in LEGACY_KEYS:
        return key
    if key not in _noted:
        _noted.add(key)
        print(f"note: config key {key!r} (in {source}) is now called {LEGACY_KEYS[key]!r}; it is read as such",
              file=sys.stderr)
    return LEGACY_KEYS[key]


def rename_legacy_keys(values: dict, source: str) -> dict:
    """``values`` with every legacy key renamed; a UserError when the old and the new key disagree."""
    renamed = {}
    for key, value in values.items():
        name = canonical_key(key, source)
        if name in renamed and renamed[name] != value:
            old = next(old for old, new in LEGACY_KEYS.items() if new == name)
            raise UserError(f"{source} sets both {old!r} and {name!r} (its new name) to different values; keep "
                            f"only {name!r}")
        renamed[name] = value
    return renamed


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


def _coerce_union(value: Any, hint: Any, choices: tuple[str, ...]) -> Any:
    """The first member type of ``hint`` that accepts ``value`` (null/none for an optional field)."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if type(None) in typing.get_args(hint):
            return None
    for arg in typing.get_args(hint):
        if arg is not type(None):
            with contextlib.suppress(_Mismatch):
                return _coerce(value, arg, choices)
    raise _Mismatch


def _coerce_scalar(value: Any, hint: Any, choices: tuple[str, ...]) -> Any:
    """``value`` as a bool, int, float or str, else _Mismatch."""
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    if hint is str:
        if isinstance(value, bool) and ("off" if not value else "on") in choices:  # YAML reads off/on as bools
            return "on" if value else "off"
        if isinstance(value, str):
            return value
    if hint not in (bool, int, float, str):
        raise TypeError(f"unsupported config type {hint!r}")
    raise _Mismatch


def _coerce(value: Any, hint: Any, choices: tuple[str, ...]) -> Any:
    """``value`` converted to the type ``hint`` (YAML already typed it), else _Mismatch."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return _coerce_union(value, hint, choices)
    if typing.get_origin(hint) is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_coerce(item, typing.get_args(hint)[0], ()) for item in value]
    return _coerce_scalar(value, hint, choices)


def _unknown_key_message(key: str, source: str) -> str:
    """Names the source and up to three close keys (or every valid key), unlike a one-hint choice check."""
    close = difflib.get_close_matches(key, CONFIG_FIELDS, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(name) for name in close)}?" if close else \
        f"valid keys: {', '.join(CONFIG_FIELDS)}"
    return f"unknown config key {key!r} in {source}; {hint}"


def coerce_entry(key: Any, value: Any, source: str) -> Any:
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


def coerce_values(values: dict, source: str) -> dict[str, Any]:
    """Every entry of ``values`` typed by :func:`coerce_entry` (legacy keys renamed first)."""
    return {key: coerce_entry(key, value, source) for key, value in rename_legacy_keys(values, source).items()}
