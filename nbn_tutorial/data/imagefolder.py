"""imagefolder-lt: any ImageFolder tree (<tree>/<class>/<image>) made long-tailed and stored as list files.

The split is computed from the tree alone (seeded), written once as list files under ``<tree>/lt_lists``
(or ``--list-dir``) and read back like the official list datasets.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nbn_tutorial.data.datasets import FileLTDataset
from nbn_tutorial.data.files import list_dataset, write_list_file
from nbn_tutorial.data.longtail import LongTail
from nbn_tutorial.data.specs import DATASETS, DatasetSpec, MissingFiles, check_split
from nbn_tutorial.errors import UserError

LIST_FOLDER = "lt_lists"


def _class_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir()
                  if entry.is_dir() and not entry.name.startswith(".") and entry.name != LIST_FOLDER)


def _scan_tree(tree: Path, classes: list[str], part: str = "") -> tuple[list[str], np.ndarray]:
    """Relative paths (to the tree) and labels of the images in tree/part/<class>/..., found like ImageFolder."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    folder = tree / part
    present = {name: label for label, name in enumerate(classes) if (folder / name).is_dir()}
    found = make_dataset(folder, present, extensions=IMG_EXTENSIONS, allow_empty=True) if present else []
    paths = [Path(path).relative_to(tree).as_posix() for path, _ in found]
    return paths, np.asarray([label for _, label in found], dtype=np.int64)


def _balanced_holdout(labels: np.ndarray, num_classes: int, seed: int, tree: Path) -> np.ndarray:
    """Seeded mask of a class-balanced test split: a fifth of the smallest class, from every class."""
    available = np.bincount(labels, minlength=num_classes)
    if available.min() < 2:
        raise UserError(f"every class folder of {tree} needs at least 2 images to hold out a test split, "
                        f"but one has {int(available.min())}; add images or provide train/ and val/ folders")
    per_class = max(1, int(available.min()) // 5)
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in range(num_classes):
        is_test[rng.permutation(np.flatnonzero(labels == label))[:per_class]] = True
    return is_test


def imagefolder_split_lines(tree: Path, longtail: LongTail, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and the list-file lines of each split of an ImageFolder tree made LT (nothing is written)."""
    if not tree.is_dir():
        raise MissingFiles(f"ImageFolder tree {tree} not found; pass --data-root pointing at a folder with one "
                           "sub-folder of images per class (optionally inside train/ and val/ or test/)")
    has_splits = (tree / "train").is_dir() and any((tree / part).is_dir() for part in ("val", "test"))
    classes = _class_folders(tree / "train") if has_splits else _class_folders(tree)
    if not classes:
        raise UserError(f"ImageFolder tree {tree} has no class sub-folders; expected <tree>/<class>/<image>")
    if has_splits:
        scans = {split: _scan_tree(tree, classes, split) for split in ("train", "val", "test")
                 if (tree / split).is_dir()}
        scans.setdefault("test", scans.get("val"))
        train_paths, train_labels = scans.pop("train")
    else:
        all_paths, all_labels = _scan_tree(tree, classes)
        is_test = _balanced_holdout(all_labels, len(classes), seed, tree)
        scans = {"test": ([p for p, t in zip(all_paths, is_test) if t], all_labels[is_test])}
        train_paths, train_labels = [p for p, t in zip(all_paths, is_test) if not t], all_labels[~is_test]
    available = np.bincount(train_labels, minlength=len(classes))
    if available.min() < 1:
        empty = classes[int(np.argmin(available))]
        raise UserError(f"class folder {empty!r} of {tree} has no training image; remove it or add images")
    keep = longtail.select(train_labels, len(classes), seed)
    lines = {"train": [f"{train_paths[i]} {train_labels[i]}" for i in keep]}
    for split, (paths, labels) in scans.items():
        lines[split] = [f"{path} {label}" for path, label in zip(paths, labels.tolist())]
    return classes, lines


def _imagefolder_spec(tree: Path, classes: list[str], split_names: Sequence[str], longtail: LongTail,
                      seed: int) -> DatasetSpec:
    """The imagefolder-lt spec completed for one tree: its class count and its list-file names."""
    stem = f"{tree.resolve().name}_{longtail.file_tag()}_seed{seed}"
    files = tuple((split, f"{stem}_{split}.txt") for split in ("train", "val", "test") if split in split_names)
    return dataclasses.replace(DATASETS["imagefolder-lt"], num_classes=len(classes), list_files=files,
                               source=f"the ImageFolder tree {tree}")


def imagefolder_dataset(tree: Path, list_dir: Path | None, longtail: LongTail, seed: int,
                        split: str) -> FileLTDataset:
    """One split of ``tree`` made long-tailed, writing (or reusing) its list files first."""
    classes, lines = imagefolder_split_lines(tree, longtail, seed)
    spec = _imagefolder_spec(tree, classes, list(lines), longtail, seed)
    check_split(spec, split)
    list_dir = list_dir if list_dir is not None else tree / LIST_FOLDER
    for split_name, file_name in spec.list_files:
        write_list_file(list_dir / file_name, lines[split_name])
    return list_dataset(spec, tree, list_dir, split)
