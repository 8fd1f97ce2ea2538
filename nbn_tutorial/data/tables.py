"""Text for the `nbn-tutorial data` commands: the dataset list and one benchmark's counts and shot groups."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbn_tutorial.data.files import list_counts, parse_list_lines
from nbn_tutorial.data.imagefolder import existing_lists, imagefolder_split_lines
from nbn_tutorial.data.longtail import LongTail, resolve_shot_rule, shot_groups, shot_rule_text
from nbn_tutorial.data.specs import (DATASETS, DatasetSpec, MissingFiles, get_spec, longtail_options, resolve_data_root,
                                     resolve_val_per_class, spec_with_options)
from nbn_tutorial.data.tensor_sources import load_arrays, tensor_dataset


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def format_dataset_list() -> str:
    """A table of the registered datasets: kind, classes, long-tail defaults, shot rule, description."""
    rows = [["name", "kind", "classes", "default LT", "shots", "description"]]
    for spec in DATASETS.values():
        long_tail = (f"IF {spec.default_imbalance_factor:g} {spec.default_profile}"
                     if spec.default_imbalance_factor is not None else "list files")
        rows.append([spec.name, spec.kind, str(spec.num_classes or "tree"), long_tail, spec.shot_rule,
                     spec.description])
    return _table(rows)


def _format_ranges(classes: np.ndarray) -> str:
    """Class indices as compact ranges, e.g. '0-3, 7, 9-12'."""
    if len(classes) == 0:
        return "none"
    parts, start, previous = [], int(classes[0]), int(classes[0])
    for value in [int(c) for c in classes[1:]] + [None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ", ".join(parts)


@dataclass
class _Stats:
    train_counts: np.ndarray
    test_counts: np.ndarray
    classes: list[str]
    note: str
    val_counts: np.ndarray | None = None    # None: no val split
    val_note: str = ""


def _formula_stats(spec: DatasetSpec, longtail: LongTail, seed: int, data_root: Path, val_per_class: int) -> _Stats:
    counts = longtail.class_counts(np.full(spec.num_classes, spec.balanced_train_per_class), seed)
    val = np.minimum(spec.balanced_train_per_class - counts, val_per_class)
    return _Stats(counts, np.full(spec.num_classes, spec.test_per_class),
                  [str(label) for label in range(spec.num_classes)],
                  f"files not found under {data_root}: counts computed from the LDAM-DRW formula on the full "
                  f"{spec.balanced_train_per_class}-per-class train set (no files needed)", val if val_per_class else None)


def _line_counts(lines: list[str], num_classes: int) -> np.ndarray:
    _, labels = parse_list_lines(lines, "list")
    return np.bincount(labels, minlength=num_classes)


def _imagefolder_stats(name: str, data_root: Path, longtail: LongTail, seed: int, list_dir) -> _Stats:
    found = existing_lists(data_root, Path(list_dir).expanduser() if list_dir not in (None, "") else None,
                           longtail, seed)
    if found is not None:   # the split training uses: the list files written earlier
        spec, folder = found
        train, test, classes = list_counts(spec, folder, "test")
        return _Stats(train, test, classes, f"the split held by the list files in {folder} (no image opened: "
                      f"`nbn-tutorial data check {name}` opens them all)")
    classes, lines = imagefolder_split_lines(data_root, longtail, seed)
    train, test = (_line_counts(lines[split], len(classes)) for split in ("train", "test"))
    return _Stats(train, test, classes, f"split of the ImageFolder tree {data_root} (no list file written, no image "
                  f"opened: `nbn-tutorial data check {name}` opens them all)")


def _tensor_stats(spec: DatasetSpec, longtail: LongTail, seed: int, data_root: Path, val_per_class: int) -> _Stats:
    try:
        arrays = load_arrays(spec.name, data_root, seed, False)
    except MissingFiles:
        if spec.balanced_train_per_class is None:
            raise
        return _formula_stats(spec, longtail, seed, data_root, val_per_class)
    train = tensor_dataset(spec, arrays, "train", longtail, seed)
    val = tensor_dataset(spec, arrays, "val", longtail, seed, val_per_class).class_counts if val_per_class else None
    return _Stats(train.train_counts, np.bincount(arrays.test_targets, minlength=len(arrays.classes)),
                  arrays.classes, f"counts from the files under {data_root}" if not spec.embedded
                  else f"counts from the embedded images ({spec.source})", val)


def _val_note(spec: DatasetSpec, val_per_class: int, default: bool) -> str:
    """Where a tensor dataset's val split comes from, in one line."""
    if not val_per_class:
        return "val: none (val_per_class 0): best.pt is not selected and τ is not searched without one"
    reason = spec.val_note if default else (f"{val_per_class} per class from the images the long tail leaves "
                                           "unused (fewer where fewer are left)")
    return f"val: {reason}; disjoint from train and test, and it changes no training subset"


def _val_is_test(spec: DatasetSpec) -> bool:
    """Whether a list dataset's val list is its test list (iNaturalist 2018's official val serves as both)."""
    files = dict(spec.list_files)
    return "val" in files and files.get("val") == files.get("test")


def _dataset_stats(name: str, root, imbalance_factor, profile, seed: int, list_dir, class_order: str,
                   max_per_class: int | None, shot_rule: str | None,
                   val_per_class: int | None) -> tuple[DatasetSpec, _Stats, str]:
    spec = spec_with_options(get_spec(name), shot_rule=shot_rule)
    val_size = resolve_val_per_class(spec, val_per_class)
    longtail = longtail_options(spec, imbalance_factor, profile, class_order, max_per_class)
    data_root = resolve_data_root(root)
    if spec.from_tree:
        stats = _imagefolder_stats(spec.name, data_root, longtail, seed, list_dir)
    elif spec.kind == "files":
        folder = Path(list_dir).expanduser() if list_dir not in (None, "") else data_root / spec.folder
        train_counts, test_counts, classes = list_counts(spec, folder, "test")
        val_counts = list_counts(spec, folder, "val")[1] if "val" in spec.splits else None
        stats = _Stats(train_counts, test_counts, classes, f"counts from the list files in {folder} (no image opened: "
                       f"`nbn-tutorial data check {spec.name}` opens them all)", val_counts,
                       "val: the official val list" + (" (the same images as test)" if _val_is_test(spec) else ""))
    else:
        stats = _tensor_stats(spec, longtail, seed, data_root, val_size)
        stats.val_note = _val_note(spec, val_size, val_per_class is None)
    setting = (f"{longtail.describe()}, seed {seed}" if longtail is not None
               else "long tail fixed by the official list files")
    return spec, stats, setting


def format_dataset_stats(name: str, root=None, imbalance_factor=None, profile=None, seed: int = 0,
                         list_dir=None, class_order: str = "ldam", max_per_class: int | None = None,
                         shot_rule: str | None = None, val_per_class: int | None = None) -> str:
    """Per-class train/val/test counts of a long-tailed benchmark, the achieved imbalance and its shot groups."""
    spec, stats, setting = _dataset_stats(name, root, imbalance_factor, profile, seed, list_dir, class_order,
                                          max_per_class, shot_rule, val_per_class)
    rule = resolve_shot_rule(spec.shot_rule, stats.train_counts)
    groups = shot_groups(stats.train_counts, rule=rule)
    group_of = {int(label): group for group, members in groups.items() for label in members}
    columns = {"train": stats.train_counts, **({"val": stats.val_counts} if stats.val_counts is not None else {}),
               "test": stats.test_counts}
    rows = [["class", "name", *columns, "group"]]
    for label in range(len(stats.train_counts)):
        rows.append([str(label), stats.classes[label], *(str(int(counts[label])) for counts in columns.values()),
                     group_of[label]])
    rows.append(["total", "", *(str(int(counts.sum())) for counts in columns.values()), ""])
    present = stats.train_counts[stats.train_counts > 0]
    achieved = present.max() / present.min() if present.size else math.nan
    rule_text = shot_rule_text(rule)
    lines = [f"{spec.name}: {setting}", stats.note, *([stats.val_note] if stats.val_note else []), "", _table(rows), "",
             f"achieved imbalance factor (largest / smallest train class): {achieved:.4g}",
             f"shot groups ({rule} rule{', chosen by auto for this size' if spec.shot_rule == 'auto' else ''}):"]
    for group, members in groups.items():
        lines.append(f"  {group:<6} ({rule_text[group]}): {len(members)} classes: {_format_ranges(members)}")
    return "\n".join(lines)
