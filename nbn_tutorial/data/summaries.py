"""Long-tailed data as tables and sentences: the counts of the profiles, the benchmarks' shot groups, a split.

What notebook 01 shows; the tables are pandas DataFrames (pandas is imported when a table is built, so
``nbn-tutorial data list`` does not pay for it).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbn_tutorial.data.longtail import SHOT_NAMES, class_groups, longtail_counts, shot_groups
from nbn_tutorial.data.specs import DATASETS
from nbn_tutorial.wording import Summary


def longtail_counts_table(num_classes: int = 10, max_per_class: int = 5000,
                          imbalance_factors: Sequence[float] = (10, 50, 100),
                          profiles: Sequence[str] = ("exp", "step")) -> Any:
    """Per-class train counts of the LDAM-DRW formula for several profiles and imbalance factors, with totals."""
    import pandas as pd   # deferred: heavy, and only tables need it

    columns = {f"{profile} IF={factor:g}": longtail_counts(num_classes, max_per_class, factor, profile)
               for profile in profiles for factor in imbalance_factors}
    table = pd.DataFrame(columns)
    table.index.name = "class"
    table.loc["total"] = table.sum()
    return table


def formula_benchmarks() -> list[str]:
    """The registered datasets made long-tailed by the formula from a known balanced set, judged by the absolute
    rule (CIFAR-10-LT and CIFAR-100-LT)."""
    return [name for name, spec in DATASETS.items()
            if spec.balanced_train_per_class and spec.shot_rule == "absolute" and spec.default_profile == "exp"]


def benchmark_shot_groups(imbalance_factor: float = 100, names: Sequence[str] | None = None) -> Any:
    """Classes per many/medium/few group of the formula benchmarks (:func:`formula_benchmarks`, or ``names``)
    under the absolute rule, from the formula's counts."""
    import pandas as pd   # deferred: heavy, and only tables need it

    rows = {}
    for name in names or formula_benchmarks():
        spec = DATASETS.get(name)
        counts = longtail_counts(spec.num_classes, spec.balanced_train_per_class, imbalance_factor, "exp")
        groups = shot_groups(counts, rule=spec.shot_rule)
        rows[f"{name} IF={imbalance_factor:g}"] = {group: len(groups[group]) for group in SHOT_NAMES}
    return pd.DataFrame.from_dict(rows, orient="index")


def split_table(train_split: Any, test_split: Any) -> Any:
    """Per-class table of a long-tailed split: name, train and test images, shot group."""
    import pandas as pd   # deferred: heavy, and only tables need it

    groups = class_groups(train_split.shot_groups, train_split.num_classes)
    table = pd.DataFrame({"name": train_split.classes, "train": train_split.class_counts,
                          "test": test_split.class_counts, "group": groups})
    table.index.name = "class"
    return table


def describe_split(train_split: Any, test_split: Any) -> Summary:
    """Sentences about a long-tailed split, computed from its counts."""
    counts = train_split.class_counts
    groups = train_split.shot_groups
    total = int(counts.sum())
    shares = ", ".join(f"{name} {len(members)} classes / {100 * counts[members].sum() / total:.0f}% of the images"
                       for name, members in groups.items())
    test_counts = test_split.class_counts
    test_text = (f"The test split is balanced: {int(test_counts[0])} images per class."
                 if test_counts.min() == test_counts.max()
                 else f"The test split has {int(test_counts.min())} to {int(test_counts.max())} images per class.")
    return Summary(f"The training split of **{train_split.spec.name}** has {total} images in "
                   f"{train_split.num_classes} classes, from {int(counts.max())} images in the largest class down "
                   f"to {int(counts.min())} in the smallest (measured imbalance factor "
                   f"{counts.max() / counts.min():.1f}). Shot groups ({train_split.shot_rule} rule): "
                   f"{shares}. {test_text}")
