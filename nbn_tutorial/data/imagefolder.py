"""imagefolder-lt: any ImageFolder tree (<tree>/<class>/<image>) made long-tailed and stored as list files.

The split is computed from the tree alone (seeded) and written once as list files under
``<tree>/lt_lists`` (or ``list_dir``; a per-user cache folder when the tree is read-only). From then on
the list files ARE the split: they are read back like the official list datasets, so adding images to
the tree later changes nothing for existing runs and checkpoints (a note says so; delete the lists to
split the tree anew).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nbn_tutorial.data.datasets import FileLTDataset
from nbn_tutorial.data.files import list_dataset, read_train_list, write_list_file
from nbn_tutorial.data.longtail import LongTail
from nbn_tutorial.data.specs import DATASETS, DatasetSpec, MissingFiles, check_split
from nbn_tutorial.data.tree_walk import TreeWalk
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import check_utf8_path

LIST_FOLDER = "lt_lists"
SPLIT_NAMES = ("train", "val", "test")
_NOTED: set[str] = set()   # notes already printed in this process (build_datasets builds several splits)


def _note(text: str) -> None:
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"note: {text}", file=sys.stderr)


def _class_folders(folder: Path) -> list[str]:
    names = sorted(entry.name for entry in folder.iterdir()
                   if entry.is_dir() and not entry.name.startswith(".") and entry.name != LIST_FOLDER)
    for name in names:
        check_utf8_path(folder / name, "the class folder")
    return names


def _scan_tree(tree: Path, classes: list[str], part: str = "", walk: TreeWalk | None = None
               ) -> tuple[list[str], np.ndarray]:
    """Relative paths (to the tree) and labels of the images in tree/part/<class>/..., found like ImageFolder
    (symbolic-link loops and files reached twice refused, see :mod:`.tree_walk`; ``walk`` spans several parts)."""
    walk = walk or TreeWalk(tree)
    folder = tree / part
    paths, labels = [], []
    for label, name in enumerate(classes):
        if (folder / name).is_dir():
            found = walk.class_images(folder / name)
            paths += [Path(path).relative_to(tree).as_posix() for path in found]
            labels += [label] * len(found)
    return paths, np.asarray(labels, dtype=np.int64)


def _held_out_parts(tree: Path) -> list[str]:
    """The held-out split folders of a tree with its own splits (train/ plus val/ and/or test/), else []."""
    parts = [part for part in ("val", "test") if (tree / part).is_dir()]
    return parts if (tree / "train").is_dir() and parts else []


def _differing_classes(tree: Path, train: list[str], part: str) -> str | None:
    """How the class folders of train/ and ``part``/ differ, in words (None when they match)."""
    other = _class_folders(tree / part)
    only_train, only_other = sorted(set(train) - set(other)), sorted(set(other) - set(train))
    if not (only_train or only_other):
        return None
    words = [f"only in train/: {', '.join(only_train)}" if only_train else "",
             f"only in {part}/: {', '.join(only_other)}" if only_other else ""]
    return "; ".join(word for word in words if word)


def tree_classes(tree: Path) -> list[str]:
    """The class names of an ImageFolder tree; UserErrors for no or one class, or splits that disagree."""
    parts = _held_out_parts(tree)
    classes = _class_folders(tree / "train") if parts else _class_folders(tree)
    if not classes:
        raise UserError(f"ImageFolder tree {tree} has no class sub-folders; expected <tree>/<class>/<image>")
    for part in parts:
        difference = _differing_classes(tree, classes, part)
        if difference:
            raise UserError(f"the class folders of {tree / 'train'} and {tree / part} differ ({difference}); "
                            "give every split the same class folders")
    if len(classes) < 2:
        inner = tree / (parts and "train" or "") / classes[0]
        hint = (f"; did you mean the data root {inner}?" if any(entry.is_dir() for entry in inner.iterdir())
                else "; add a folder of images for every other class")
        raise UserError(f"ImageFolder tree {tree} holds a single class folder ({classes[0]!r}), and a classifier "
                        f"needs at least 2 classes{hint}")
    return classes


def tree_images(tree: Path) -> list[Path]:
    """Every image file of an ImageFolder tree (in all its split folders), as ImageFolder would find them."""
    if not tree.is_dir():
        imagefolder_split_lines(tree, LongTail(1.0), 0)   # raises the missing-tree message
    classes = tree_classes(tree)
    parts = _held_out_parts(tree)
    folders = ["train", *parts] if parts else [""]
    walk = TreeWalk(tree)
    return [tree / path for part in folders for path in _scan_tree(tree, classes, part, walk)[0]]


def _balanced_holdout(labels: np.ndarray, num_classes: int, seed: int, tree: Path, classes: list[str]) -> np.ndarray:
    """Seeded mask of a class-balanced test split: a fifth of the smallest class, from every class."""
    available = np.bincount(labels, minlength=num_classes)
    if available.min() < 2:
        smallest = classes[int(np.argmin(available))]
        raise UserError(f"every class folder of {tree} needs at least 2 images to hold out a test split, "
                        f"but {smallest!r} has {int(available.min())}; add images or provide train/ and val/ folders")
    per_class = max(1, int(available.min()) // 5)
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for label in range(num_classes):
        is_test[rng.permutation(np.flatnonzero(labels == label))[:per_class]] = True
    return is_test


def _check_every_class_has_images(tree: Path, classes: list[str], labels: np.ndarray, where: str) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 1:
        empty = classes[int(np.argmin(counts))]
        raise UserError(f"class {empty!r} of {tree} has no {where}image; add images to it or remove the class")


def imagefolder_split_lines(tree: Path, longtail: LongTail, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and the list-file lines of each split of an ImageFolder tree made LT (nothing is written)."""
    if not tree.is_dir():
        raise MissingFiles(f"ImageFolder tree {tree} not found; set the data root (--data-root, the data_root "
                           "config key or $NBN_DATA) to a folder with one sub-folder of images per class "
                           "(optionally inside train/ and val/ or test/)")
    classes = tree_classes(tree)
    parts = _held_out_parts(tree)
    if parts:
        walk = TreeWalk(tree)   # one walk: an image linked into two splits is refused
        scans = {part: _scan_tree(tree, classes, part, walk) for part in ("train", *parts)}
        for part in parts:
            _check_every_class_has_images(tree, classes, scans[part][1], f"{part}/ ")
        scans.setdefault("test", scans.get("val"))
        train_paths, train_labels = scans.pop("train")
    else:
        all_paths, all_labels = _scan_tree(tree, classes)
        _check_every_class_has_images(tree, classes, all_labels, "")
        is_test = _balanced_holdout(all_labels, len(classes), seed, tree, classes)
        scans = {"test": ([p for p, t in zip(all_paths, is_test) if t], all_labels[is_test])}
        train_paths, train_labels = [p for p, t in zip(all_paths, is_test) if not t], all_labels[~is_test]
    _check_every_class_has_images(tree, classes, train_labels, "training ")
    keep = longtail.select(train_labels, len(classes), seed)
    lines = {"train": [f"{train_paths[i]} {train_labels[i]}" for i in keep]}
    for split, (paths, labels) in scans.items():
        lines[split] = [f"{path} {label}" for path, label in zip(paths, labels.tolist())]
    return classes, lines


def list_stem(tree: Path, longtail: LongTail, seed: int) -> str:
    """The common start of a tree's list-file names, e.g. ``flowers_IF100_exp_seed0``."""
    return f"{tree.resolve().name}_{longtail.file_tag()}_seed{seed}"


def _imagefolder_spec(spec: DatasetSpec, num_classes: int, stem: str, split_names: Sequence[str],
                      tree: Path) -> DatasetSpec:
    """The imagefolder-lt spec completed for one tree: its class count and its list-file names."""
    files = tuple((split, f"{stem}_{split}.txt") for split in SPLIT_NAMES if split in split_names)
    return dataclasses.replace(spec, num_classes=num_classes, list_files=files, source=f"the ImageFolder tree {tree}")


def user_list_dir(tree: Path) -> Path:
    """Where the list files of a read-only tree go: a per-tree folder in the user's cache ($XDG_CACHE_HOME)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(str(tree.resolve()).encode()).hexdigest()[:8]
    return cache / "nbn-tutorial" / LIST_FOLDER / f"{tree.resolve().name}-{digest}"


def _writable_folder(folder: Path) -> bool:
    """Whether list files can be written into ``folder`` (creating it if needed)."""
    if folder.exists():
        return folder.is_dir() and os.access(folder, os.W_OK)
    return folder.parent.is_dir() and os.access(folder.parent, os.W_OK)


def default_list_dir(tree: Path, stem: str) -> Path:
    """``<tree>/lt_lists``, unless the tree is read-only: then a per-user folder (see :func:`user_list_dir`).

    A folder that already holds this split's train list wins, so earlier lists are always found again.
    """
    inside, outside = tree / LIST_FOLDER, user_list_dir(tree)
    for folder in (inside, outside):
        if (folder / f"{stem}_train.txt").is_file():
            return folder
    if _writable_folder(inside):
        return inside
    _note(f"{inside} cannot be written (read-only tree), so the list files go to {outside}; set list_dir "
          "(--list-dir) to choose another folder")
    return outside


def _existing_splits(folder: Path, stem: str) -> list[str]:
    return [split for split in SPLIT_NAMES if (folder / f"{stem}_{split}.txt").is_file()]


def _note_if_tree_changed(tree: Path, folder: Path, stem: str, splits: Sequence[str], longtail: LongTail,
                          seed: int) -> None:
    """Say so when the tree no longer gives the split its list files hold (the lists still win)."""
    try:
        _, fresh = imagefolder_split_lines(tree, longtail, seed)
    except UserError:
        fresh = {}
    stored = {split: (folder / f"{stem}_{split}.txt").read_text(encoding="utf-8").splitlines() for split in splits}
    if any(fresh.get(split) != lines for split, lines in stored.items()):
        _note(f"the ImageFolder tree {tree} no longer gives the split held by its list files in {folder} (images "
              "were added or removed, or the lists edited); the list files are used as they are, so delete them to "
              "split the tree anew")


def existing_lists(tree: Path, list_dir: Path | None, longtail: LongTail, seed: int,
                   spec: DatasetSpec | None = None) -> tuple[DatasetSpec, Path] | None:
    """(completed spec, list folder) when the list files of this tree, recipe and seed exist, else None."""
    if not tree.is_dir():
        return None
    stem = list_stem(tree, longtail, seed)
    folder = list_dir if list_dir is not None else default_list_dir(tree, stem)
    splits = _existing_splits(folder, stem)
    if not {"train", "test"} <= set(splits):
        return None
    num_classes = read_train_list(folder / f"{stem}_train.txt")[2]
    _note_if_tree_changed(tree, folder, stem, splits, longtail, seed)
    return _imagefolder_spec(spec or DATASETS["imagefolder-lt"], num_classes, stem, splits, tree), folder


def imagefolder_dataset(tree: Path, list_dir: Path | None, longtail: LongTail, seed: int, split: str,
                        spec: DatasetSpec | None = None) -> FileLTDataset:
    """One split of ``tree`` made long-tailed: read from its list files, written first when there are none."""
    spec = spec or DATASETS["imagefolder-lt"]
    found = existing_lists(tree, list_dir, longtail, seed, spec)
    if found is None:
        classes, lines = imagefolder_split_lines(tree, longtail, seed)   # also: the missing-tree message
        stem = list_stem(tree, longtail, seed)
        folder = list_dir if list_dir is not None else default_list_dir(tree, stem)
        for split_name, split_lines in lines.items():
            write_list_file(folder / f"{stem}_{split_name}.txt", split_lines)
        found = _imagefolder_spec(spec, len(classes), stem, list(lines), tree), folder
    spec, folder = found
    check_split(spec, split)
    return list_dataset(spec, tree, folder, split)
