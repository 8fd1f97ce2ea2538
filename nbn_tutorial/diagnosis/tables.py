"""Per-class tables and accuracy by shot group: the shape every diagnosis quantity is reported in.

Accuracy comes from :mod:`nbn_tutorial.accuracy` (the one per-class and by-group rule the training
engine also uses); this module arranges it, and other per-class quantities, into tables.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nbn_tutorial.accuracy import SHOT_NAMES, group_accuracy_from_counts, per_class_counts
from nbn_tutorial.data.longtail import class_groups

GROUP_ORDER: tuple[str, ...] = SHOT_NAMES
GROUP_TABLE_COLUMNS: tuple[str, ...] = ("overall", "balanced", *GROUP_ORDER)


def per_class_table(columns: Mapping[str, np.ndarray], train_counts,
                    groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """A DataFrame with one row per class: ``class``, ``train_count``, ``group``, then ``columns``."""
    counts = np.asarray(train_counts, dtype=np.int64)
    table = pd.DataFrame({"class": np.arange(len(counts)), "train_count": counts,
                          "group": class_groups(groups, len(counts)).astype(str)})
    for name, values in columns.items():
        table[name] = np.asarray(values)
    return table


def class_means(values: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean of ``values`` ([N] or [N, K]) over each class's samples: [C] or [C, K]; NaN for an absent class."""
    values = np.asarray(values, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    sums = np.zeros((num_classes, *values.shape[1:]))
    np.add.at(sums, targets, values)
    counts = np.bincount(targets, minlength=num_classes).reshape(-1, *([1] * (values.ndim - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _top1_counts(logits: np.ndarray, targets: np.ndarray, num_classes: int | None = None):
    """(correct, total) per class of the top-1 predictions of ``logits`` (C defaults to the logits' width)."""
    logits = np.asarray(logits)
    return per_class_counts(logits.argmax(axis=1), targets, logits.shape[1] if num_classes is None else num_classes)


def per_class_accuracy(logits: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-1 accuracy of every class [C] (fraction; NaN for a class without test samples)."""
    return group_accuracy_from_counts(*_top1_counts(logits, targets, num_classes), {})["per_class"]


def accuracy_by_count(logits: np.ndarray, targets: np.ndarray, train_counts,
                      groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class table: ``class``, ``train_count``, ``group``, ``accuracy``, ``test_samples``."""
    correct, total = _top1_counts(logits, targets, len(train_counts))
    accuracy = group_accuracy_from_counts(correct, total, {})["per_class"]
    return per_class_table({"accuracy": accuracy, "test_samples": total}, train_counts, groups)


def group_accuracy(logits: np.ndarray, targets: np.ndarray, groups: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """Overall, balanced (mean per-class) and many/medium/few accuracy (mean over the group's classes)."""
    accuracy = group_accuracy_from_counts(*_top1_counts(logits, targets), groups)
    return {name: float(accuracy[name]) for name in GROUP_TABLE_COLUMNS}


def summarize_by_group(table: pd.DataFrame, column: str, group_column: str = "group") -> pd.Series:
    """Mean of ``column`` per shot group, in many/medium/few order (NaN for an empty group)."""
    return table.groupby(group_column)[column].mean().reindex(list(GROUP_ORDER))


def confusion(logits: np.ndarray, targets: np.ndarray, num_classes: int, normalize: bool = True) -> np.ndarray:
    """Confusion matrix [C, C] (rows: true class, columns: predicted); ``normalize`` divides each row by its total."""
    from sklearn.metrics import confusion_matrix   # deferred: scikit-learn: heavy, only this function needs it

    matrix = confusion_matrix(np.asarray(targets), np.asarray(logits).argmax(axis=1), labels=np.arange(num_classes))
    if not normalize:
        return matrix
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def few_many_ratio(few: float, many: float) -> float:
    """A few-shot quantity over its many-shot counterpart (1 = even); NaN when either is missing or many is 0."""
    return float(few / many) if math.isfinite(few) and math.isfinite(many) and many > 0 else math.nan
