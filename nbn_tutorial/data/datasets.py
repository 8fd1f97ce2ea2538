"""Dataset objects: one split of a long-tailed benchmark, in memory (tensor) or read from image files."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nbn_tutorial.data.images import read_rgb
from nbn_tutorial.data.longtail import resolve_shot_rule, shot_groups
from nbn_tutorial.data.specs import DatasetSpec


class LTDataset(torch.utils.data.Dataset):
    """One split of a long-tailed benchmark, with the LT train counts and shot groups it is judged by."""

    def __init__(self, spec: DatasetSpec, split: str, targets, classes: Sequence[str], train_counts) -> None:
        self.spec = spec
        self.split = split
        self.targets = np.asarray(targets, dtype=np.int64)
        self.classes = [str(name) for name in classes]
        self.num_classes = len(self.classes)
        self.train_counts = np.asarray(train_counts, dtype=np.int64)
        self.shot_rule = resolve_shot_rule(spec.shot_rule, self.train_counts)   # auto decided by the counts
        self.shot_groups = shot_groups(self.train_counts, rule=self.shot_rule)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def class_counts(self) -> np.ndarray:
        """Per-class image counts of this split."""
        return np.bincount(self.targets, minlength=self.num_classes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, split={self.split!r}, images={len(self)})"


class TensorLTDataset(LTDataset):
    """Small-image split held in memory as one uint8 tensor [N, C, H, W]."""

    def __init__(self, spec: DatasetSpec, split: str, images: torch.Tensor, targets, classes: Sequence[str],
                 train_counts) -> None:
        super().__init__(spec, split, targets, classes, train_counts)
        self.images = images
        self.transform: Callable | None = None

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.transform is None:
            return image, int(self.targets[index])
        return self.transform(_to_pil(image)), int(self.targets[index])


def _to_pil(image: torch.Tensor):
    from PIL import Image   # deferred: Pillow: only for images

    array = image.numpy()
    return Image.fromarray(array[0], mode="L") if array.shape[0] == 1 else Image.fromarray(array.transpose(1, 2, 0))


class FileLTDataset(LTDataset):
    """Split read from a list file of `relative/path label` lines; images decoded with PIL on access."""

    def __init__(self, spec: DatasetSpec, split: str, samples: list[tuple[Path, int]], classes: Sequence[str],
                 train_counts, list_file: Path, image_root: Path) -> None:
        super().__init__(spec, split, [label for _, label in samples], classes, train_counts)
        self.samples = samples
        self.list_file = list_file
        self.image_root = image_root
        self.augment = split == "train"
        self.transform: Callable = file_transform(spec, train=self.augment)
        self.skip_bad_images = False   # loaders leave unreadable images out (and report them) instead of stopping

    def __getitem__(self, item: int | tuple[int, int]):
        """(image, label) for an index, or for an (index, seed) pair whose seed fixes the random transform."""
        index, sample_seed = item if isinstance(item, tuple) else (item, None)
        path, label = self.samples[index]
        rgb = read_rgb(path, self.list_file, self.image_root)
        if sample_seed is None:
            return self.transform(rgb), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.transform(rgb), label

    def for_training(self, train: bool) -> FileLTDataset:
        """This split with training augmentation on or off (a shallow copy when that changes)."""
        if train == self.augment:
            return self
        view = copy.copy(self)
        view.augment = train
        view.transform = file_transform(self.spec, train=train)
        return view


def file_transform(spec: DatasetSpec, train: bool) -> Callable:
    """Standard large-image transform (torchvision.transforms.v2 on PIL images), normalized float output."""
    from torchvision.transforms import v2   # deferred: torchvision: heavy, only this path needs it

    if train:
        steps = [v2.RandomResizedCrop(spec.image_size), v2.RandomHorizontalFlip()]
        if spec.color_jitter:
            steps.append(v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4))
    else:
        steps = [v2.Resize(round(spec.image_size * 256 / 224)), v2.CenterCrop(spec.image_size)]
    return v2.Compose(steps + [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                               v2.Normalize(list(spec.mean), list(spec.std))])
