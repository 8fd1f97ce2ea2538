"""Words in messages and computed sentences: counted nouns ("1 image", "2 images"), a change between two numbers,
and :class:`Summary`, the text a notebook shows as Markdown (one rule for every sentence the package prints).

Every claim a notebook makes is such a sentence, computed from the numbers next to it by the function of
the domain that measured them (``nbt.diagnosis``, ``nbt.study``, ``nbt.train``), so a re-run cannot leave
a hand-written claim behind.
"""
from __future__ import annotations

import math


class Summary(str):
    """Text computed from numbers; a notebook shows it as Markdown, elsewhere it is a plain string."""

    def _repr_markdown_(self) -> str:
        return str(self)


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in its plural form unless ``count`` is 1 (``plural_form`` or noun + "s")."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


def percent(fraction: float | None) -> float:
    """A fraction in [0, 1] as percent (NaN for None)."""
    return math.nan if fraction is None else 100.0 * float(fraction)


def accuracy_name(group: str) -> str:
    """"overall accuracy" or "<group>-shot accuracy", as the sentences name a metric."""
    return "overall accuracy" if group == "overall" else f"{group}-shot accuracy"


def change_sentence(subject: str, quantity: str, before: float, after: float, *, unit: str = "%") -> str:
    """A sentence stating how `quantity` moved from `before` to `after` (numbers in percent)."""
    delta = after - before
    values = f"({before:.1f}{unit} → {after:.1f}{unit})"
    if round(abs(delta), 1) == 0:
        return f"{subject} left {quantity} unchanged {values}."
    verb = "improved" if delta > 0 else "lowered"
    return f"{subject} {verb} {quantity} by {abs(delta):.1f} points {values}."


def ratio_sentence(what: str, few: float, many: float) -> str:
    """How much weaker or stronger the few-shot classes' ``what`` is than the many-shot classes'."""
    if not (math.isfinite(few) and math.isfinite(many)) or many == 0:
        return f"{what}: not measurable (a group is empty)."
    ratio = few / many
    direction = "weaker" if ratio < 1 else "stronger"
    size = f"{abs(1 - ratio) * 100:.0f}% {direction}" if round(ratio, 2) != 1 else "as strong"
    return f"{what} of few-shot classes are {size} than those of many-shot classes ({few:.3g} vs {many:.3g})."
