"""Counted nouns in messages: "1 image", "2 images" (one rule for every sentence the package prints)."""
from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, the noun in its plural form unless ``count`` is 1 (``plural_form`` or noun + "s")."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
