"""Notebook 01's tables: long-tailed class counts, the benchmarks' shot groups, and the split in use."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbn_tutorial.accuracy import SHOT_NAMES


def longtail_counts_table(num_classes: int = 10, max_per_class: int = 5000,
                          imbalance_factors: Sequence[float] = (10, 50, 100),
                          profiles: Sequence[str] = ("exp", "step")):
    """Per-class train counts of the LDAM-DRW formula for several profiles and imbalance factors, with totals."""
    import pandas as pd

    from nbn_tutorial import data

    columns = {f"{profile} IF={factor:g}": data.longtail_counts(num_classes, max_per_class, factor, profile)
               for profile in profiles for factor in imbalance_factors}
    table = pd.DataFrame(columns)
    table.index.name = "class"
    table.loc["total"] = table.sum()
    return table


def benchmark_shot_groups(imbalance_factor: float = 100) -> Any:
    """Classes per many/medium/few group of CIFAR-10-LT and CIFAR-100-LT (absolute rule, formula counts)."""
    import pandas as pd

    from nbn_tutorial import data

    rows = {}
    for name in ("cifar10-lt", "cifar100-lt"):
        spec = data.DATASETS[name]
        counts = data.longtail_counts(spec.num_classes, spec.balanced_train_per_class, imbalance_factor, "exp")
        groups = data.shot_groups(counts, rule=spec.shot_rule)
        rows[f"{name} IF={imbalance_factor:g}"] = {group: len(groups[group]) for group in SHOT_NAMES}
    return pd.DataFrame.from_dict(rows, orient="index")


def split_table(train_split, test_split) -> Any:
    """Per-class table of the data the notebooks use: name, train and test images, shot group."""
    import pandas as pd

    from nbn_tutorial import diagnosis

    groups = diagnosis.class_groups(train_split.shot_groups, train_split.num_classes)
    table = pd.DataFrame({"name": train_split.classes, "train": train_split.class_counts,
                          "test": test_split.class_counts, "group": groups})
    table.index.name = "class"
    return table
