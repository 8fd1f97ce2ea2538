"""Small-image benchmarks held in memory: digits, Fashion-MNIST and CIFAR arrays, and their long-tailed split.

Each source returns the full balanced benchmark as uint8 arrays; :func:`tensor_dataset` then keeps the
LDAM-DRW long-tailed subset of the train split (the test split stays balanced).
"""
from __future__ import annotations

import functools
import gzip
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nbn_tutorial.data.datasets import TensorLTDataset
from nbn_tutorial.data.longtail import LongTail
from nbn_tutorial.data.specs import DatasetSpec, MissingFiles
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_bytes
from nbn_tutorial.registry import Registry

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS_TEST_PER_CLASS = 30
# How to allow a download, in the words of every entry point (config key, `train --set`, Python argument).
DOWNLOAD_HINT = "set download=true (train: --set download=true; Python: download=True)"


@dataclass
class TensorArrays:
    """A full balanced benchmark before the LT selection: uint8 [N, C, H, W] images and labels."""

    train_images: np.ndarray
    train_targets: np.ndarray
    test_images: np.ndarray
    test_targets: np.ndarray
    classes: list[str]


TensorSource = Callable[[Path, int, bool], TensorArrays]  # (data root, seed, download) -> arrays
TENSOR_SOURCES: Registry[TensorSource] = Registry("tensor dataset")


def digits_pixels() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ([1797, 8, 8] float pixels 0..16, int64 labels), exactly `load_digits()`'s.

    Read from the CSV that scikit-learn ships, without importing scikit-learn: that import costs every
    process training on digits about 1.3 s (a test compares both ways)."""
    import importlib.util   # deferred: only the digits path needs it

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is None or not csv.is_file():   # another scikit-learn layout: ask it
        from sklearn.datasets import load_digits   # deferred: scikit-learn: heavy, only this fallback needs it

        digits = load_digits()
        return digits.images, digits.target.astype(np.int64)
    data = np.loadtxt(csv, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


@TENSOR_SOURCES.register("digits-lt")
def digits_arrays(root: Path, seed: int, download: bool) -> TensorArrays:
    """scikit-learn's embedded 8x8 digits scaled to 0..255, with a seeded class-balanced test split."""
    pixels, targets = digits_pixels()
    images = np.round(pixels * (255 / 16)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(targets), dtype=bool)
    for label in range(10):
        members = np.flatnonzero(targets == label)
        is_test[rng.permutation(members)[:DIGITS_TEST_PER_CLASS]] = True
    return TensorArrays(images[~is_test], targets[~is_test], images[is_test], targets[is_test],
                        [str(label) for label in range(10)])


@TENSOR_SOURCES.register("fashion-mnist-lt")
def fashion_arrays(root: Path, seed: int, download: bool) -> TensorArrays:
    """Fashion-MNIST from torchvision's raw folder, filled from the Debian copy or a download when needed."""
    from torchvision.datasets import FashionMNIST   # deferred: torchvision: heavy, only this path needs it

    raw = root / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        if all((DEBIAN_FASHION_MNIST / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES):
            _decompress_into(DEBIAN_FASHION_MNIST, raw)
        elif download:
            _download(lambda: FashionMNIST(root, train=True, download=True), "Fashion-MNIST",
                      f"put {', '.join(FASHION_MNIST_FILES)} (gunzipped) into {raw}")
        else:
            raise MissingFiles(f"Fashion-MNIST not found: expected {', '.join(FASHION_MNIST_FILES)} in {raw}; "
                               f"{DOWNLOAD_HINT}, or install the Debian package dataset-fashion-mnist "
                               f"(used automatically from {DEBIAN_FASHION_MNIST})")
    train, test = FashionMNIST(root, train=True), FashionMNIST(root, train=False)
    return TensorArrays(train.data.numpy()[:, None], train.targets.numpy(), test.data.numpy()[:, None],
                        test.targets.numpy(), list(train.classes))


def _decompress_into(source: Path, raw: Path) -> None:
    """Gunzip the IDX files (50 MB at most) into torchvision's raw folder; atomic writes keep parallel ranks safe."""
    for name in FASHION_MNIST_FILES:
        packed = source / f"{name}.gz"
        try:
            payload = gzip.decompress(packed.read_bytes())
        except OSError as error:
            raise UserError(f"cannot unpack Fashion-MNIST file {packed} ({error.strerror or error}); "
                            "reinstall the Debian package dataset-fashion-mnist") from None
        atomic_write_bytes(raw / name, payload)


def _download(fetch: Callable[[], Any], title: str, by_hand: str) -> None:
    try:
        fetch()
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        reason = str(error).replace("\n", " ").strip()
        raise UserError(f"downloading {title} failed ({reason}), perhaps because this machine is offline; "
                        f"{by_hand} by hand instead") from None


def cifar_arrays(root: Path, seed: int, download: bool, hundred: bool) -> TensorArrays:
    """CIFAR-10 or CIFAR-100 (fine labels) from torchvision's extracted python batches."""
    from torchvision.datasets import CIFAR10, CIFAR100   # deferred: torchvision: heavy, only this path needs it

    dataset_class = CIFAR100 if hundred else CIFAR10
    title = "CIFAR-100" if hundred else "CIFAR-10"
    folder = root / dataset_class.base_folder
    expected = ", ".join(name for name, _ in dataset_class.train_list + dataset_class.test_list)
    by_hand = (f"download {dataset_class.filename} from {dataset_class.url} and extract it in {root} "
               f"so that {folder} exists")
    if download:
        _download(lambda: dataset_class(root, train=True, download=True), title, by_hand)
    try:
        train, test = dataset_class(root, train=True), dataset_class(root, train=False)
    except RuntimeError:
        raise MissingFiles(f"{title} files not found or corrupted: expected {expected} and "
                           f"{dataset_class.meta['filename']} in {folder}; {DOWNLOAD_HINT}, or {by_hand}") from None
    return TensorArrays(train.data.transpose(0, 3, 1, 2), np.asarray(train.targets, np.int64),
                        test.data.transpose(0, 3, 1, 2), np.asarray(test.targets, np.int64), list(train.classes))


TENSOR_SOURCES.register("cifar10-lt", functools.partial(cifar_arrays, hundred=False))
TENSOR_SOURCES.register("cifar100-lt", functools.partial(cifar_arrays, hundred=True))


def load_arrays(name: str, root: Path, seed: int, download: bool) -> TensorArrays:
    """The full balanced arrays of the tensor dataset ``name``."""
    return TENSOR_SOURCES.get(name)(root, seed, download)


def tensor_dataset(spec: DatasetSpec, arrays: TensorArrays, split: str, longtail: LongTail,
                   seed: int, val_per_class: int = 0) -> TensorLTDataset:
    """One split of a tensor benchmark: the seeded LT subset of the train arrays (``train``), a class-balanced
    held-out split of ``val_per_class`` images per class from the train images the subset leaves unused
    (``val``; see :func:`~nbn_tutorial.data.longtail.select_held_out`), or the whole test arrays (``test``)."""
    num_classes = len(arrays.classes)
    keep = longtail.select(arrays.train_targets, num_classes, seed)
    train_counts = np.bincount(arrays.train_targets[keep], minlength=num_classes)
    if split == "train":
        images, targets = arrays.train_images[keep], arrays.train_targets[keep]
    elif split == "val":
        held_out = longtail.held_out(arrays.train_targets, num_classes, seed, val_per_class)
        images, targets = arrays.train_images[held_out], arrays.train_targets[held_out]
    else:
        images, targets = arrays.test_images, arrays.test_targets
    return TensorLTDataset(spec, split, torch.from_numpy(np.ascontiguousarray(images)), targets,
                           arrays.classes, train_counts)
