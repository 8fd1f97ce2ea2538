"""Generated image trees in real on-disk formats, shared by the file-dataset and hardening tests.

- :func:`write_image_folder`: an ImageFolder tree ``<root>/<class>/<n>.jpg`` (or inside train/ and val/);
- :func:`write_oltr_tree`: an ImageNet-LT-shaped folder: JPEGs under train/ and val/ plus the
  ``ImageNet_LT_{train,val,test}.txt`` list files in the OLTR format (``relative/path label``);
- :func:`corrupt`: turn an image into a truncated JPEG, an empty file, or text named ``.jpg``.

Images are tiny (16-24 px) noise with a class-dependent colour, so a model can learn the classes.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, label: int, index: int, size: int = 20, fmt: str = "JPEG") -> Path:
    """A small image whose mean colour depends on its class (learnable), with per-image noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1000 * label + index)
    base = np.array([(60 * label) % 256, (110 * label + 40) % 256, (170 * label + 90) % 256], dtype=np.float64)
    pixels = np.clip(base + rng.normal(0, 25, (size, size + 4, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def write_image_folder(root: Path, counts: Sequence[int], part: str = "", prefix: str = "class",
                       size: int = 20) -> Path:
    """``root/[part/]<prefix><i>/<n>.jpg`` with ``counts[i]`` images in class i; returns ``root``."""
    for label, count in enumerate(counts):
        for index in range(count):
            write_image(root / part / f"{prefix}{label}" / f"{index}.jpg", label, index, size)
    return root


def write_oltr_tree(data_root: Path, train_counts: Sequence[int], held_out_per_class: int,
                    folder: str = "ImageNet_LT", prefix: str = "ImageNet_LT", size: int = 20) -> Path:
    """<data_root>/<folder>/{train,val}/n<wnid>/*.JPEG and the OLTR list files; returns the dataset folder."""
    root = data_root / folder
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label, count in enumerate(train_counts):
        wnid = f"n{label:08d}"
        for index in range(count):
            relative = f"train/{wnid}/{wnid}_{index}.JPEG"
            write_image(root / relative, label, index, size)
            lines["train"].append(f"{relative} {label}")
        for index in range(2 * held_out_per_class):
            relative = f"val/{wnid}/ILSVRC2012_val_{label:04d}{index:04d}.JPEG"
            write_image(root / relative, label, 10_000 + index, size)
            lines["val" if index < held_out_per_class else "test"].append(f"{relative} {label}")
    for split, split_lines in lines.items():
        (root / f"{prefix}_{split}.txt").write_text("\n".join(split_lines) + "\n")
    return root


def corrupt(path: Path, how: str) -> Path:
    """Damage an image file in place: ``truncated`` (first half of the JPEG), ``empty`` or ``text``."""
    if how == "truncated":
        payload = path.read_bytes()
        path.write_bytes(payload[:len(payload) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("this is not an image\n")
    else:
        raise ValueError(how)
    return path
