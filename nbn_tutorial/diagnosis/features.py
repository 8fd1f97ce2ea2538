"""Feature strength per class and class-specific last-stage channels: the feature bias the paper describes.

The *feature strength* of a class is the mean L2 norm of the penultimate feature vectors of its test
samples. A last-stage channel's *owner* is the class with the highest class-mean activation divided by
the channel's mean over classes (the ratio is its ``selectivity``); its *strength* is the owner's
class-mean activation on it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nbn_tutorial.diagnosis.outputs import ModelOutputs
from nbn_tutorial.diagnosis.tables import GROUP_ORDER, class_groups, class_means, per_class_table


def feature_strength(outputs: ModelOutputs, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class penultimate-feature strength.

    ``strength`` (primary) = mean over the class's test samples of the feature vector's L2 norm;
    ``mean_abs_activation`` = mean over those samples and the D features of |activation|;
    ``relative_strength`` = ``strength`` / its mean over classes (comparable across models).
    """
    num_classes = len(train_counts)
    strength = class_means(np.linalg.norm(outputs.features, axis=1), outputs.targets, num_classes)
    mean_abs = class_means(np.abs(outputs.features).mean(axis=1), outputs.targets, num_classes)
    return per_class_table({"strength": strength, "mean_abs_activation": mean_abs,
                            "relative_strength": strength / np.nanmean(strength),
                            "test_samples": np.bincount(outputs.targets, minlength=num_classes)},
                           train_counts, groups)


def channel_owners(class_mean_activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner class and selectivity of every channel from class-mean activations [C, K].

    selectivity[k] = max over classes of class_mean[c, k] / mean over classes of class_mean[c, k]; the
    owner is the arg max. Dividing by a positive per-channel constant does not move the arg max, so the
    owner is also the class with the highest mean activation; the ratio says how class-specific the
    channel is. Channels whose mean over classes is not positive (dead after the ReLU) get owner -1 and
    selectivity NaN.
    """
    means = np.asarray(class_mean_activations, dtype=np.float64)
    channel_mean = np.nanmean(means, axis=0)
    active = channel_mean > 0
    ratio = np.where(np.isnan(means), -np.inf, means) / np.where(active, channel_mean, 1.0)
    owners = np.where(active, ratio.argmax(axis=0), -1)
    selectivity = np.where(active, ratio.max(axis=0), np.nan)
    return owners.astype(np.int64), selectivity


def class_specific_channels(outputs: ModelOutputs, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """One row per last-stage channel: its owner class, the owner's count and group, and the channel's strength.

    Columns: ``channel``, ``owner`` (class id, -1 for a dead channel), ``owner_count``, ``owner_group``
    (``"none"`` for a dead channel), ``strength`` (the owner's class-mean activation on the channel),
    ``relative_strength`` (strength / mean strength of the active channels), ``selectivity`` (see
    :func:`channel_owners`), ``channel_mean`` (mean over classes of the class-mean activation), ``active``.
    """
    counts = np.asarray(train_counts, dtype=np.int64)
    means = class_means(outputs.channel_activations, outputs.targets, len(counts))
    owners, selectivity = channel_owners(means)
    active = owners >= 0
    channels = np.arange(means.shape[1])
    strength = np.where(active, means[np.maximum(owners, 0), channels], np.nan)
    group_names = class_groups(groups, len(counts))
    return pd.DataFrame({
        "channel": channels,
        "owner": owners,
        "owner_count": np.where(active, counts[np.maximum(owners, 0)], 0),
        "owner_group": np.where(active, group_names[np.maximum(owners, 0)], "none").astype(str),
        "strength": strength,
        "relative_strength": strength / np.nanmean(strength) if active.any() else strength,
        "selectivity": selectivity,
        "channel_mean": np.nanmean(means, axis=0),
        "active": active,
    })


def channel_summary(channel_table: pd.DataFrame, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per owner group (many/medium/few): channels owned, channels per class, mean/median strength, selectivity."""
    active = channel_table[channel_table["active"]]
    by_group = active.groupby("owner_group")
    summary = pd.DataFrame({
        "channels": by_group.size(),
        "mean_strength": by_group["strength"].mean(),
        "median_strength": by_group["strength"].median(),
        "mean_relative_strength": by_group["relative_strength"].mean(),
        "mean_selectivity": by_group["selectivity"].mean(),
    }).reindex(list(GROUP_ORDER))
    summary["channels"] = summary["channels"].fillna(0).astype(np.int64)
    classes = pd.Series({name: len(groups.get(name, [])) for name in GROUP_ORDER})
    summary.insert(1, "channels_per_class", summary["channels"] / classes.where(classes > 0))
    summary.index.name = "owner_group"
    return summary
