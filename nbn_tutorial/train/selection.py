"""Which split chooses ``best.pt``: a validation split where the dataset has its own, never the test split silently.

Choosing a checkpoint by its test accuracy and then reporting that accuracy flatters the model. So
``select_best_on: auto`` (the default) selects on the dataset's val split when it has one distinct from
its test split (ImageNet-LT, Places-LT, an ImageFolder tree with both val/ and test/, and the in-memory
datasets' held-out split of unused training images: digits, Fashion-MNIST, CIFAR), and otherwise
writes no ``best.pt`` at all: ``last.pt`` is the result. ``select_best_on: test`` restores the old
behaviour and every message about that checkpoint says it was selected on the test split.
"""
from __future__ import annotations

from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.builders import build_datasets
from nbn_tutorial import data

VAL_COLUMNS = ("val_acc", "val_balanced_acc", "val_many_acc", "val_medium_acc", "val_few_acc")
TEST_SPLIT_NOTE = ("selected on the test split (select_best_on=test), so its test accuracy is optimistic; "
                   "report last.pt, or select on a val split")


def same_samples(first: Any, second: Any) -> bool:
    """True when two splits hold the same images (e.g. iNaturalist's val list is its test list)."""
    if len(first) != len(second):
        return False
    samples = getattr(first, "samples", None)
    return samples == getattr(second, "samples", None) if samples is not None else False


def has_own_val_split(config: Config) -> bool:
    """True when the config's dataset has a non-empty val split that differs from its test split (in-memory
    datasets: the held-out split of ``val_per_class`` images per class; file datasets: their val list)."""
    spec = data.DATASETS[config.dataset]
    if "val" not in spec.splits and not spec.from_tree:   # a tree's split has val when the tree has val/
        return False
    if spec.kind == "tensor" and data.resolve_val_per_class(spec, config.val_per_class) == 0:
        return False
    try:
        splits = build_datasets(config, ("val", "test"))
    except UserError:
        return False
    return len(splits["val"]) > 0 and not same_samples(splits["val"], splits["test"])


def selection_split(config: Config) -> str | None:
    """``val``, ``test`` or None (no best.pt) for the config's ``select_best_on``."""
    choice = config.select_best_on
    if choice in ("none", "test"):
        return None if choice == "none" else "test"
    own_val = has_own_val_split(config)
    if choice == "val" and not own_val:
        raise UserError(f"select_best_on=val, but {config.dataset} has no val split of its own; use "
                        "select_best_on=auto (no best.pt: report last.pt) or test (optimistic, and said so)")
    return "val" if own_val else None


def selection_key(metric: str, split: str) -> str:
    """The metrics-row key of ``metric`` measured on ``split`` (``balanced_acc`` on val is ``val_balanced_acc``)."""
    if split == "test":
        return metric
    return "val_acc" if metric == "test_acc" else f"val_{metric}"


def val_columns(metrics: dict) -> dict:
    """Test-style metric keys of a val evaluation renamed to the val columns (per-class and alpha dropped)."""
    return {selection_key(key, "val"): metrics[key]
            for key in ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc")}


def describe_selection(split: str | None, metric: str) -> str:
    """One phrase for the run's header line."""
    if split is None:
        return "no best.pt (no val split: last.pt is the result)"
    if split == "test":
        return f"best.pt by test {metric}: " + TEST_SPLIT_NOTE
    return f"best.pt by val {metric}"
