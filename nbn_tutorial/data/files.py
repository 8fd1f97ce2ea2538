"""List files (`relative/path label` per line): reading, writing, counting, and the list-file datasets they describe.

ImageNet-LT, Places-LT and iNaturalist 2018 ship official list files; imagefolder-lt writes its own
(see :mod:`nbn_tutorial.data.imagefolder`). Counting needs only the lists, never an image.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nbn_tutorial.data.datasets import FileLTDataset
from nbn_tutorial.data.specs import DatasetSpec, MissingFiles
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text


def parse_list_lines(lines: Iterable[str], source: object) -> tuple[list[str], np.ndarray]:
    """Relative paths and int64 labels of `relative/path label` lines; errors name ``source`` and the line."""
    paths, labels = [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise UserError(f"{source}:{number}: {text!r}: expected 'relative/path label' "
                            "(a path, a space, a non-negative integer label)")
        paths.append(parts[0])
        labels.append(int(parts[1]))
    return paths, np.asarray(labels, dtype=np.int64)


def read_list_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Relative paths and int64 labels of a `relative/path label` list file (no image is opened)."""
    with open(path, encoding="utf-8") as lines:
        return parse_list_lines(lines, path)


def write_list_file(path: Path, lines: list[str]) -> None:
    """Write a list file, reuse an identical one, and refuse to overwrite one that differs."""
    content = "".join(f"{line}\n" for line in lines)
    if path.is_file():
        if path.read_text(encoding="utf-8") != content:
            raise UserError(f"list file {path} exists with a different split (did the tree change?); "
                            "delete it, or set another list_dir (--list-dir) or seed, to write a new one")
        return
    atomic_write_text(path, content)


def list_path(spec: DatasetSpec, list_dir: Path, split: str) -> Path:
    """The list file of ``split`` in ``list_dir``; MissingFiles says where the official lists come from."""
    path = list_dir / dict(spec.list_files)[split]
    if not path.is_file():
        raise MissingFiles(f"list file {path} not found; get the official {spec.name} list files from "
                           f"{spec.source} and put them in {list_dir} (or set list_dir: --list-dir)")
    return path


def _class_names(paths: list[str], labels: np.ndarray, num_classes: int) -> list[str]:
    """Class names from the folder holding each class's first listed image (wnid, scene, species id)."""
    names = [str(label) for label in range(num_classes)]
    seen: set[int] = set()
    for path, label in zip(paths, labels.tolist()):
        if label not in seen:
            seen.add(label)
            parent = Path(path).parent.name
            names[label] = parent or names[label]
    return names


def _first_line_above(path: Path, limit: int) -> tuple[int, str]:
    """The number and text of the first line of a list file whose label is ``limit`` or more."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.strip().rsplit(None, 1)
            if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) >= limit:
                return number, line.strip()
    raise AssertionError(f"no label >= {limit} in {path}")   # only called when read_list_file found one


def read_train_list(path: Path, limit: int | None = None) -> tuple[list[str], np.ndarray, int]:
    """Paths, labels and class count of a train list; UserErrors for an empty list and for a label outside
    0..C-1, where C is the dataset's class count (``limit``) or, without one, the labels must leave no class empty."""
    paths, labels = read_list_file(path)
    if not paths:
        raise UserError(f"list file {path} is empty; it must list the training images, one `relative/path label` "
                        "line each")
    counts = np.bincount(labels)
    empty = np.flatnonzero(counts == 0)
    if limit is not None and labels.max() >= limit:
        number, text = _first_line_above(path, limit)
        raise UserError(f"{path}:{number}: {text!r}: the label is outside 0..{limit - 1} (this dataset has "
                        f"{limit} classes); fix that line")
    if empty.size:
        number, text = _first_line_above(path, int(empty[0]) + 1)
        raise UserError(f"{path}:{number}: {text!r}: label {int(labels[labels > empty[0]][0])} leaves class "
                        f"{int(empty[0])} without any training image; labels must number the classes 0, 1, 2, ... "
                        "without gaps, so fix that line")
    return paths, labels, len(counts)


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and labels.max() >= num_classes:
        number, text = _first_line_above(path, num_classes)
        raise UserError(f"{path}:{number}: {text!r}: the label is outside 0..{num_classes - 1}, the classes of the "
                        "train list; fix that line (or the list files do not belong together)")


def list_counts(spec: DatasetSpec, list_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-class train counts, the given split's counts and class names, from the list files alone."""
    train_paths, train_labels, num_classes = read_train_list(list_path(spec, list_dir, "train"), spec.num_classes)
    split_list = list_path(spec, list_dir, split)
    _, labels = read_list_file(split_list)
    _check_labels(labels, num_classes, split_list)
    return (np.bincount(train_labels, minlength=num_classes), np.bincount(labels, minlength=num_classes),
            _class_names(train_paths, train_labels, num_classes))


def list_dataset(spec: DatasetSpec, image_root: Path, list_dir: Path, split: str) -> FileLTDataset:
    """One split of a list-file dataset whose relative paths resolve under ``image_root``."""
    train_list = list_path(spec, list_dir, "train")
    train_paths, train_labels, num_classes = read_train_list(train_list, spec.num_classes)
    list_file = list_path(spec, list_dir, split)
    paths, labels = (train_paths, train_labels) if list_file == train_list else read_list_file(list_file)
    _check_labels(labels, num_classes, list_file)
    samples = [(image_root / path, int(label)) for path, label in zip(paths, labels.tolist())]
    if samples and not samples[0][0].is_file():
        raise UserError(f"image {samples[0][0]} (first line of {list_file}) not found; put the images under "
                        f"{image_root} so that the list's relative paths resolve")
    return FileLTDataset(spec, split, samples, _class_names(train_paths, train_labels, num_classes),
                         np.bincount(train_labels, minlength=num_classes), list_file, image_root)
