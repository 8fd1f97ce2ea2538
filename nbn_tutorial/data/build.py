"""build_dataset: one split of any registered long-tailed benchmark, by name."""
from __future__ import annotations

from pathlib import Path

from nbn_tutorial.data.datasets import LTDataset
from nbn_tutorial.data.files import list_dataset
from nbn_tutorial.data.imagefolder import imagefolder_dataset
from nbn_tutorial.data.specs import (check_split, get_spec, longtail_options, resolve_data_root, resolve_val_per_class,
                                     spec_with_options)
from nbn_tutorial.data.tensor_sources import load_arrays, tensor_dataset


def build_dataset(name: str, root=None, imbalance_factor: float | None = None, profile: str | None = None,
                  seed: int = 0, split: str = "train", download: bool = False, list_dir=None,
                  class_order: str = "ldam", max_per_class: int | None = None, image_size: int | None = None,
                  shot_rule: str | None = None, skip_bad_images: bool = False,
                  val_per_class: int | None = None) -> LTDataset:
    """One split of a registered long-tailed benchmark (see DATASETS and data/README.md).

    ``class_order`` (``ldam`` or ``permuted``) decides which class gets which long-tail count and
    ``max_per_class`` the head class's size (None: the most every class can supply); see
    :class:`nbn_tutorial.data.longtail.LongTail`. ``seed`` draws the subset (and the permutation).
    ``image_size`` is the input size of a file dataset (None: the dataset's), ``shot_rule`` the
    many/medium/few rule (None or ``auto``: the dataset's), ``skip_bad_images`` makes the loaders leave
    unreadable images out instead of stopping. ``val_per_class`` sizes the held-out val split of an
    in-memory dataset (None: the dataset's default; 0: none), drawn from the training images the long tail
    leaves unused, so it never changes the training subset.
    """
    spec = spec_with_options(get_spec(name), image_size, shot_rule)
    val_per_class = resolve_val_per_class(spec, val_per_class)
    longtail = longtail_options(spec, imbalance_factor, profile, class_order, max_per_class)
    data_root = resolve_data_root(root)
    list_dir = Path(list_dir).expanduser() if list_dir not in (None, "") else None
    if spec.from_tree:
        dataset: LTDataset = imagefolder_dataset(data_root, list_dir, longtail, seed, split, spec)
    elif spec.kind == "files":
        check_split(spec, split)
        folder = data_root / spec.folder
        dataset = list_dataset(spec, folder, list_dir or folder, split)
    else:
        check_split(spec, split)
        return tensor_dataset(spec, load_arrays(name, data_root, seed, download), split, longtail, seed,
                              val_per_class)
    dataset.skip_bad_images = bool(skip_bad_images)
    return dataset
