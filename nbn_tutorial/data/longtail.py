"""Long-tailed splits: LDAM-DRW's per-class counts and seeded selection, and the many/medium/few shot groups.

Pure NumPy: nothing here reads files or needs torch.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import check_choice, positive_int

PROFILES = ("exp", "step")
CLASS_ORDERS = ("ldam", "permuted")
SHOT_RULES = ("absolute", "rank")
SHOT_RULE_CHOICES = ("auto", *SHOT_RULES)   # auto: absolute when it fills all three groups, else rank
SHOT_NAMES: tuple[str, ...] = ("many", "medium", "few")
MANY_THRESHOLD = 100  # absolute rule (OLTR): many-shot classes have more than this many train images
FEW_THRESHOLD = 20    # absolute rule (OLTR): few-shot classes have fewer than this many train images


def parse_imbalance_factor(value: Any) -> float:
    """The imbalance factor (largest / smallest class size) as a float >= 1, from a number or a string."""
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise UserError(f"imbalance factor {value!r} is not a number; pass a number >= 1 such as 100 "
                        "(largest class size / smallest class size)") from None
    if not math.isfinite(factor) or factor < 1:
        raise UserError(f"imbalance factor {value!r} must be a finite number >= 1 "
                        "(largest class size / smallest class size), e.g. 100")
    return factor


def parse_profile(value: Any) -> str:
    """The long-tail profile name, one of PROFILES."""
    check_choice("long-tail profile", value, PROFILES)
    return value


def longtail_counts(num_classes: int, max_per_class: int, imbalance_factor: float,
                    profile: str = "exp") -> list[int]:
    """Per-class image counts of a long-tailed split, with LDAM-DRW's exp and step formulas."""
    num_classes = positive_int(num_classes, "number of classes")
    max_per_class = positive_int(max_per_class, "images per class")
    factor = parse_imbalance_factor(imbalance_factor)
    profile = parse_profile(profile)
    tail_ratio = 1 / factor  # LDAM-DRW passes imb_factor = 1/IF and multiplies by it
    if profile == "exp":
        exponents = [i / (num_classes - 1) for i in range(num_classes)] if num_classes > 1 else [0.0]
        counts = [int(max_per_class * tail_ratio ** exponent) for exponent in exponents]
    else:
        head = num_classes // 2
        counts = [max_per_class] * head + [int(max_per_class * tail_ratio)] * (num_classes - head)
    if min(counts) < 1:
        raise UserError(f"imbalance factor {factor:g} leaves the smallest class with no image "
                        f"(at most {max_per_class} images per class); use an imbalance factor <= {max_per_class}")
    return counts


def _shuffled_members(targets, num_classes: int, seed: int) -> list[np.ndarray]:
    """Each class's indices in LDAM-DRW's seeded order (one RandomState, classes shuffled in label order)."""
    targets = np.asarray(targets)
    if targets.ndim != 1:
        raise ValueError(f"targets must be one-dimensional, got shape {targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} to match {num_classes} counts")
    rng = np.random.RandomState(seed)  # the same stream as np.random.seed(seed), without global state
    members = []
    for label in range(num_classes):
        indices = np.where(targets == label)[0]
        rng.shuffle(indices)
        members.append(indices)
    return members


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def select_longtail(targets, counts, seed: int = 0) -> np.ndarray:
    """Indices of the long-tailed subset, selected exactly like LDAM-DRW's IMBALANCECIFAR (seeded once)."""
    members = _shuffled_members(targets, len(counts), seed)
    return _concat([indices[:count] for indices, count in zip(members, counts)])


def select_held_out(targets, counts, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced held-out split drawn from the images the long-tailed subset leaves unused.

    The same seeded order as :func:`select_longtail`: class c's training images are the first ``counts[c]``
    of its shuffled indices and its held-out images the next ``per_class`` (fewer when fewer are left), so
    the two are disjoint by construction and adding this split changes no training subset.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    members = _shuffled_members(targets, len(counts), seed)
    return _concat([indices[count:count + per_class] for indices, count in zip(members, counts)])


def order_counts(counts, class_order: str, seed: int) -> np.ndarray:
    """Which class gets which count: ``ldam`` gives class i the i-th count (LDAM-DRW); ``permuted`` a seeded
    permutation, so that class difficulty and class frequency are not tied together across seeds."""
    check_choice("class order", class_order, CLASS_ORDERS)
    counts = np.asarray(counts, dtype=np.int64)
    if class_order == "ldam":
        return counts
    permutation = np.random.default_rng([seed, 1]).permutation(len(counts))  # its own stream, not the selection's
    ordered = np.empty_like(counts)
    ordered[permutation] = counts
    return ordered


@dataclass(frozen=True)
class LongTail:
    """How a balanced training set is thinned: imbalance factor, profile, class order and head size."""

    imbalance_factor: float
    profile: str = "exp"
    class_order: str = "ldam"
    max_per_class: int | None = None  # the head class's size; None: default_head, else the most every class can supply
    default_head: int | None = None   # the dataset's default head size (capped at the supply when it is smaller)

    def class_counts(self, available, seed: int) -> np.ndarray:
        """Per-class training counts [C] for a balanced set with ``available`` images per class."""
        available = np.asarray(available, dtype=np.int64)
        supply = int(available.min())
        if self.max_per_class is None:
            head = supply if self.default_head is None else min(self.default_head, supply)
        else:
            head = positive_int(self.max_per_class, "max_per_class")
        if head > supply:
            raise UserError(f"max_per_class {head} exceeds the {supply} training images of the smallest class; "
                            f"use max_per_class <= {supply} (or null for {supply})")
        counts = longtail_counts(len(available), head, self.imbalance_factor, self.profile)
        return order_counts(counts, self.class_order, seed)

    def select(self, targets, num_classes: int, seed: int) -> np.ndarray:
        """Indices of the long-tailed subset of ``targets`` (LDAM-DRW's seeded selection)."""
        targets = np.asarray(targets, dtype=np.int64)
        return select_longtail(targets, self.class_counts(np.bincount(targets, minlength=num_classes), seed), seed)

    def held_out(self, targets, num_classes: int, seed: int, per_class: int) -> np.ndarray:
        """Indices of up to ``per_class`` images per class that the long-tailed subset leaves unused (a val split)."""
        targets = np.asarray(targets, dtype=np.int64)
        counts = self.class_counts(np.bincount(targets, minlength=num_classes), seed)
        return select_held_out(targets, counts, per_class, seed)

    def describe(self) -> str:
        """``profile exp, imbalance factor 100`` plus the class order and head size when not the defaults."""
        parts = [f"profile {self.profile}", f"imbalance factor {self.imbalance_factor:g}"]
        if self.class_order != "ldam":
            parts.append(f"class order {self.class_order}")
        if self.head is not None:
            parts.append(f"largest class {self.head}")
        return ", ".join(parts)

    @property
    def head(self) -> int | None:
        """The head size asked for (explicitly or by the dataset's default); None: the smallest class's supply."""
        return self.max_per_class if self.max_per_class is not None else self.default_head

    def file_tag(self) -> str:
        """A file-name-safe tag of the recipe, e.g. ``IF100_exp`` or ``IF100_exp_permuted_max500``."""
        tag = f"IF{self.imbalance_factor:g}_{self.profile}"
        if self.class_order != "ldam":
            tag += f"_{self.class_order}"
        return tag + (f"_max{self.head}" if self.head is not None else "")


def shot_groups(train_counts, many: int = MANY_THRESHOLD, few: int = FEW_THRESHOLD,
                rule: str = "absolute") -> dict[str, np.ndarray]:
    """Class indices of the many/medium/few-shot groups, by absolute thresholds or by frequency thirds."""
    check_choice("shot rule", rule, SHOT_RULES)
    counts = np.asarray(train_counts, dtype=np.int64)
    if rule == "absolute":
        is_many, is_few = counts > many, counts < few
        groups = (np.flatnonzero(is_many), np.flatnonzero(~is_many & ~is_few), np.flatnonzero(is_few))
    else:
        by_frequency = np.argsort(-counts, kind="stable")
        groups = tuple(np.sort(third) for third in np.array_split(by_frequency, 3))
    return {name: group.astype(np.int64) for name, group in zip(SHOT_NAMES, groups)}


def resolve_shot_rule(rule: str, train_counts, many: int = MANY_THRESHOLD, few: int = FEW_THRESHOLD) -> str:
    """``rule`` itself, or for ``auto``: absolute when it leaves no group empty (a tree of ImageNet-LT's size),
    else rank (a small tree, whose classes all hold fewer than ``many`` or more than ``few`` images)."""
    check_choice("shot rule", rule, SHOT_RULE_CHOICES)
    if rule != "auto":
        return rule
    groups = shot_groups(train_counts, many, few, rule="absolute")
    return "absolute" if all(len(members) for members in groups.values()) else "rank"


def shot_rule_text(rule: str, many: int = MANY_THRESHOLD, few: int = FEW_THRESHOLD) -> dict[str, str]:
    """What puts a class in each shot group under ``rule``, in words (the same thresholds as shot_groups)."""
    check_choice("shot rule", rule, SHOT_RULES)
    if rule == "absolute":
        return {"many": f"> {many} train images", "medium": f"{few}-{many} train images",
                "few": f"< {few} train images"}
    return {"many": "most frequent third", "medium": "middle third", "few": "least frequent third"}


def class_groups(groups: Mapping[str, Sequence[int]], num_classes: int) -> np.ndarray:
    """Shot-group name of every class [C] (``""`` for a class in no group)."""
    names = np.full(num_classes, "", dtype=object)
    for name, members in groups.items():
        names[np.asarray(members, dtype=np.int64)] = name
    return names
