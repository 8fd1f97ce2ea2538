"""Accuracy by shot group from per-class counts: the one definition the engine and the diagnosis share."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nbn_tutorial.data.longtail import SHOT_NAMES

GROUP_METRICS = ("overall", *SHOT_NAMES)                  # the accuracies the notebooks compare between runs
ACCURACY_COLUMNS = ("overall", "balanced", *SHOT_NAMES)   # a run's final accuracies, in this order


def per_class_counts(predictions, targets, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct, total) per class [C] from predicted and true labels."""
    predictions, targets = np.asarray(predictions, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    total = np.bincount(targets, minlength=num_classes)
    correct = np.bincount(targets[predictions == targets], minlength=num_classes)
    return correct, total


def group_accuracy_from_counts(correct, total, groups: Mapping[str, Sequence[int]]) -> dict[str, object]:
    """Overall, balanced (mean per-class), many/medium/few (mean over the group's classes) and per-class accuracy.

    Fractions in [0, 1]. A class without test samples has NaN accuracy and is left out of every mean;
    an empty group (or no sample at all) gives NaN. ``per_class`` is a float array [C].
    """
    correct, total = np.asarray(correct, dtype=np.int64), np.asarray(total, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(total > 0, correct / np.maximum(total, 1), np.nan)

    def mean_of(classes) -> float:
        values = per_class[np.asarray(classes, dtype=np.int64)]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    overall = float(correct.sum() / total.sum()) if total.sum() else float("nan")
    return {"overall": overall, "balanced": mean_of(np.arange(len(total))),
            **{name: mean_of(groups.get(name, [])) for name in SHOT_NAMES}, "per_class": per_class}
