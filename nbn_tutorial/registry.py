"""Named choices: one registry type for datasets, models, norms, heads, losses, samplers and trainable rules, one
check for a named option, and one for a count (a whole number >= 1)."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from nbn_tutorial.errors import UserError

T = TypeVar("T")


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1; a UserError naming ``what`` otherwise (bools and floats are refused)."""
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


def closest(value: object, valid: Sequence[str]) -> str | None:
    """The valid word closest to a mistyped ``value`` (None when none is close)."""
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1, cutoff=0.6)
    return close[0] if close else None


def check_choice(kind: str, value: object, valid: Sequence[str], alternative: str = "") -> None:
    """A UserError naming the valid words (and the closest one) unless ``value`` is one of ``valid``.

    ``alternative`` names what else is accepted besides the words (e.g. "a number"); it ends the message.
    """
    if value in valid:
        return
    close = closest(value, valid)
    hint = f" (did you mean {close!r}?)" if close else ""
    other = f" or {alternative}" if alternative else ""
    raise UserError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(map(str, valid))}{other}")


class Registry(Generic[T]):
    """Builders of one kind by name, filled with ``@registry.register("name")`` or ``registry.register("name", f)``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Register ``entry`` under ``name`` (or return a decorator that does); names are unique."""
        def add(item: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = item
            return item

        return add(entry) if entry is not None else add

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a UserError listing the valid names otherwise."""
        check_choice(self.kind, name, self.names())
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in registration order."""
        return list(self._entries.items())

    def values(self) -> list[T]:
        """Registered entries, in registration order."""
        return list(self._entries.values())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
