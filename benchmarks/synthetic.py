"""CIFAR-shaped synthetic data for speed benchmarks (pixel content does not change speed).

Two forms: in-memory arrays (`cifar_arrays`, `cifar_lt_dataset`) and a CIFAR-10 folder in torchvision's
real on-disk format (`write_cifar10_folder`: pickled batches), so the project's engine reads it through
its ordinary `build_dataset("cifar10-lt")` path, LT selection included. Only torchvision's md5 check
(which would reject any file but the official ones) is bypassed, by `trust_cifar_files()`.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_PER_CLASS = 5000
CIFAR10_TEST_PER_CLASS = 1000
CIFAR_BATCHES = 5


def cifar_arrays(per_class: int, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images N x 32 x 32 x 3 (CIFAR10.data layout), `per_class` of each class, shuffled labels."""
    rng = np.random.default_rng(seed)
    targets = rng.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), per_class))
    images = rng.integers(0, 256, size=(len(targets), 32, 32, 3), dtype=np.uint8)
    return images, targets


def cifar_lt_arrays(seed: int = 0, imbalance_factor: float = 100.0, train_per_class: int = CIFAR10_TRAIN_PER_CLASS,
                    test_per_class: int = CIFAR10_TEST_PER_CLASS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10-LT-shaped arrays (train HWC uint8, train labels, test images, test labels); IF100: 12406 train."""
    from nbn_tutorial.data import longtail_counts, select_longtail

    train_x, train_y = cifar_arrays(train_per_class, seed=seed)
    test_x, test_y = cifar_arrays(test_per_class, seed=seed + 1)
    keep = select_longtail(train_y, longtail_counts(10, train_per_class, imbalance_factor), seed)
    return train_x[keep], train_y[keep], test_x, test_y


def cifar_tensor_dataset(images_hwc: np.ndarray, targets: np.ndarray, split: str = "train"):
    """The project's in-memory CIFAR-10-LT dataset object (uint8 [N, 3, 32, 32]) around given arrays."""
    from nbn_tutorial.data import DATASETS, TensorLTDataset

    images = torch.from_numpy(np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2)))
    counts = np.bincount(targets, minlength=10)
    return TensorLTDataset(DATASETS["cifar10-lt"], split, images, targets, list(CIFAR10_CLASSES), counts)


def write_cifar10_folder(root: Path, train_per_class: int = CIFAR10_TRAIN_PER_CLASS,
                         test_per_class: int = CIFAR10_TEST_PER_CLASS, seed: int = 0) -> Path:
    """Write `root/cifar-10-batches-py` in torchvision's format (5 train batches, test_batch, batches.meta)."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = cifar_arrays(train_per_class, seed=seed)
    test_x, test_y = cifar_arrays(test_per_class, seed=seed + 1)
    for index, (images, labels) in enumerate(zip(np.array_split(train_x, CIFAR_BATCHES),
                                                 np.array_split(train_y, CIFAR_BATCHES)), start=1):
        _write_batch(folder / f"data_batch_{index}", images, labels, f"training batch {index} of 5")
    _write_batch(folder / "test_batch", test_x, test_y, "testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": len(train_y) // CIFAR_BATCHES,
                     "num_vis": 3072}, file)
    return folder


def _write_batch(path: Path, images_hwc: np.ndarray, labels: np.ndarray, name: str) -> None:
    """One pickled CIFAR batch: rows of 3072 bytes, channel-major (R plane, G plane, B plane)."""
    rows = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)
    batch = {"batch_label": name, "labels": labels.tolist(), "data": rows,
             "filenames": [f"synthetic_{i}.png" for i in range(len(labels))]}
    with open(path, "wb") as file:
        pickle.dump(batch, file, protocol=pickle.HIGHEST_PROTOCOL)


def trust_cifar_files() -> None:
    """Make torchvision accept CIFAR files that are not the official ones: files must exist, md5 is not compared."""
    import os

    from torchvision.datasets import cifar

    cifar.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)
