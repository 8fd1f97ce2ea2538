"""Typed options: a component declares its options once, as a dataclass whose fields carry help and valid words.

A norm (:mod:`nbn_tutorial.nn.options`), a loss (:mod:`nbn_tutorial.losses.options`), a model (RIDE's
:class:`~nbn_tutorial.models.ride.RIDEOptions`) and the dual path each have one such class; the run config
(:class:`nbn_tutorial.train.Config`) is composed of them, so adding an option is one field in its
component's class. A field's ``choices`` are a tuple of words or a registry's ``names`` method (read when
asked, so a name registered later is valid too); its help text names them (:func:`option_help`).

The config key of a field may differ from the argument its component takes (``cbn_components`` is
``components`` of :func:`~nbn_tutorial.nn.convert.convert_to_cbn`): ``arg`` names the argument, and
:func:`option_arguments` builds the keyword arguments.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Choices = tuple[str, ...] | Callable[[], tuple[str, ...]]


def option(default: Any, help: str, choices: Choices = (), *, arg: str | None = None) -> Any:
    """A dataclass field with a help text, its valid words (a tuple or a registry's ``names``) and its argument name."""
    metadata = {"help": help, "choices": choices, "arg": arg}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_choices(field: dataclasses.Field) -> tuple[str, ...]:
    """The valid words of an option (empty when any value of its type is valid)."""
    choices = field.metadata.get("choices", ())
    return tuple(choices() if callable(choices) else choices)


def option_help(field: dataclasses.Field) -> str:
    """An option's help text, ending with its valid words when it has some."""
    choices = option_choices(field)
    text = field.metadata.get("help", "")
    return f"{text} (one of: {', '.join(choices)})" if choices else text


def option_fields(options: type) -> dict[str, dataclasses.Field]:
    """The fields of an options dataclass by name."""
    return {field.name: field for field in dataclasses.fields(options)}


def option_values(options: type, source: Any) -> dict[str, Any]:
    """The values of ``options``' fields read from ``source`` (any object with those attributes, e.g. a run config)."""
    return {name: getattr(source, name) for name in option_fields(options)}


def option_arguments(options: type, source: Any) -> dict[str, Any]:
    """The keyword arguments ``options``' component takes, read from ``source`` (``arg`` renames a field)."""
    return {field.metadata.get("arg") or field.name: getattr(source, field.name)
            for field in dataclasses.fields(options)}
