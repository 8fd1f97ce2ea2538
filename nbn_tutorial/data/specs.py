"""The dataset registry: what each long-tailed benchmark is (DatasetSpec), where its data lives, its options."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from nbn_tutorial.data.longtail import CLASS_ORDERS, LongTail, parse_imbalance_factor, parse_profile
from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import Registry, check_choice, positive_int
from nbn_tutorial.data.longtail import SHOT_RULE_CHOICES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OLTR_LISTS = "the OLTR release (github.com/zhmiao/OpenLongTailRecognition-OLTR, README: data links)"
INAT_LISTS = "the classifier-balancing release (github.com/facebookresearch/classifier-balancing, data/iNaturalist18)"


class MissingFiles(UserError):
    """The dataset's files are not on disk (stats can still show formula counts)."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a registered dataset is: kind, classes, normalization, augmentation and long-tail defaults."""

    name: str
    description: str
    kind: str                                   # "tensor" (in-memory uint8) or "files" (list files)
    num_classes: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int                             # train crop size
    pad: int                                    # tensor path: zero padding before the random crop
    flip: bool                                  # tensor path: random horizontal flip
    shot_rule: str                              # absolute, rank, or auto (decided by the train counts)
    default_imbalance_factor: float | None      # None: fixed by the official list files
    default_profile: str | None
    channels: int = 3
    folder: str = ""                            # list datasets: folder under the data root
    list_files: tuple[tuple[str, str], ...] = ()  # list datasets: (split, file name)
    color_jitter: bool = True                   # files path: ColorJitter(0.4, 0.4, 0.4) when training
    balanced_train_per_class: int | None = None  # full (balanced) train set size per class, when known
    test_per_class: int | None = None
    source: str = ""                            # where the files come from
    default_max_per_class: int | None = None    # tensor path: the head class's size; None: the smallest supply
    default_val_per_class: int = 0              # tensor path: held-out val images per class (from unused ones)
    val_note: str = ""                          # tensor path: why this val size, in words
    from_tree: bool = False                     # files path: the data root is an ImageFolder tree whose split's
                                                # list files the package writes (imagefolder-lt)
    embedded: bool = False                      # tensor path: the images ship with an installed package

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names build_dataset accepts for this dataset."""
        if self.list_files:
            return tuple(split for split, _ in self.list_files)
        return ("train", "val", "test") if self.kind == "tensor" else ("train", "test")


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Register a dataset under its name (:func:`~nbn_tutorial.data.build.build_dataset` builds it by its kind)."""
    return DATASETS.register(spec.name, spec)


for _spec in (
    DatasetSpec("digits-lt", "scikit-learn 8x8 digits, embedded (always offline): the quick default",
                "tensor", 10, (0.3053,), (0.3759,), 8, 1, False, "rank", 10.0, "exp", channels=1,
                source="scikit-learn (installed with this package)", embedded=True, default_val_per_class=30,
                val_note="the images the long tail leaves unused, at most 30 per class (the test split's size); "
                         "the head class has only the few its pool holds beyond the head count"),
    DatasetSpec("fashion-mnist-lt", "Fashion-MNIST 28x28 grey clothes via torchvision",
                "tensor", 10, (0.2860,), (0.3530,), 28, 2, True, "rank", 100.0, "exp", channels=1,
                balanced_train_per_class=6000, test_per_class=1000,
                source="the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), or "
                       "download=true", default_max_per_class=5000, default_val_per_class=1000,
                val_note="1,000 per class from the images the long tail leaves unused: the default head of 5,000 "
                         "(CIFAR-10-LT's counts) leaves at least 1,000 of every class's 6,000"),
    DatasetSpec("cifar10-lt", "CIFAR-10 made long-tailed like LDAM-DRW", "tensor", 10,
                (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 32, 4, True, "absolute", 100.0, "exp",
                balanced_train_per_class=5000, test_per_class=1000,
                source="cifar-10-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html or download=true",
                default_val_per_class=500,
                val_note="500 per class from the images LDAM-DRW's counts leave unused; the head class uses all "
                         "5,000 of its images, so it has none and val accuracies average over the other classes"),
    DatasetSpec("cifar100-lt", "CIFAR-100 made long-tailed like LDAM-DRW", "tensor", 100,
                (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 32, 4, True, "absolute", 100.0, "exp",
                balanced_train_per_class=500, test_per_class=100,
                source="cifar-100-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html or download=true",
                default_val_per_class=50,
                val_note="50 per class from the images LDAM-DRW's counts leave unused; the head class uses all 500 "
                         "of its images, so it has none and val accuracies average over the classes that have some"),
    DatasetSpec("imagenet-lt", "ImageNet-LT (OLTR list files over ImageNet-2012 images)", "files", 1000,
                IMAGENET_MEAN, IMAGENET_STD, 224, 0, True, "absolute", None, None, folder="ImageNet_LT",
                list_files=(("train", "ImageNet_LT_train.txt"), ("val", "ImageNet_LT_val.txt"),
                            ("test", "ImageNet_LT_test.txt")), source=OLTR_LISTS),
    DatasetSpec("places-lt", "Places-LT (OLTR list files over Places365-Standard images)", "files", 365,
                IMAGENET_MEAN, IMAGENET_STD, 224, 0, True, "absolute", None, None, folder="Places_LT",
                list_files=(("train", "Places_LT_train.txt"), ("val", "Places_LT_val.txt"),
                            ("test", "Places_LT_test.txt")), source=OLTR_LISTS),
    DatasetSpec("inat2018", "iNaturalist 2018 (naturally long-tailed; test = the official val list)", "files",
                8142, (0.466, 0.471, 0.380), (0.195, 0.194, 0.192), 224, 0, True, "absolute", None, None,
                folder="iNaturalist18", color_jitter=False,
                list_files=(("train", "iNaturalist18_train.txt"), ("val", "iNaturalist18_val.txt"),
                            ("test", "iNaturalist18_val.txt")), source=INAT_LISTS),
    DatasetSpec("imagefolder-lt", "any ImageFolder tree given as the data root, made long-tailed; "
                "writes reusable list files", "files", None, IMAGENET_MEAN, IMAGENET_STD, 224, 0, True,
                "auto", 100.0, "exp", source="your own images: <data root>/<class>/<image>", from_tree=True),
):
    register_dataset(_spec)


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of `name`; unknown names raise a UserError listing the known ones."""
    return DATASETS.get(name)


def check_split(spec: DatasetSpec, split: str) -> None:
    """A UserError listing the dataset's splits unless ``split`` is one of them."""
    check_choice(f"{spec.name} split", split, spec.splits)


def longtail_options(spec: DatasetSpec, imbalance_factor=None, profile=None, class_order: str = "ldam",
                     max_per_class: int | None = None) -> LongTail | None:
    """The validated long-tail recipe, with the dataset defaults filling in None; None for list-file datasets."""
    if spec.default_imbalance_factor is None:
        if imbalance_factor is not None or profile is not None or class_order != "ldam" or max_per_class is not None:
            raise UserError(f"{spec.name}'s long tail is fixed by its official list files; drop the imbalance "
                            "factor, profile, class order and max_per_class options")
        return None
    check_choice("class order", class_order, CLASS_ORDERS)
    if max_per_class is not None:
        positive_int(max_per_class, "max_per_class")
    factor = parse_imbalance_factor(spec.default_imbalance_factor if imbalance_factor is None else imbalance_factor)
    return LongTail(factor, parse_profile(spec.default_profile if profile is None else profile), class_order,
                    max_per_class, spec.default_max_per_class)


def resolve_val_per_class(spec: DatasetSpec, val_per_class: int | None) -> int:
    """Held-out val images per class of a tensor dataset: ``val_per_class``, or the dataset's default for None."""
    if val_per_class is None:
        return spec.default_val_per_class
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, int) or val_per_class < 0:
        raise UserError(f"val_per_class must be a whole number >= 0 (0: no val split) or null for the dataset's "
                        f"default, got {val_per_class!r}")
    if spec.kind != "tensor" and val_per_class:
        raise UserError(f"val_per_class applies to in-memory datasets (digits, Fashion-MNIST, CIFAR); {spec.name}'s "
                        "val split comes from its files, so set val_per_class to null")
    return val_per_class


def spec_with_options(spec: DatasetSpec, image_size: int | None = None, shot_rule: str | None = None) -> DatasetSpec:
    """``spec`` with a chosen input size (file datasets only) and shot rule; None (and ``auto``) keep its own."""
    changes: dict = {}
    if image_size is not None:
        positive_int(image_size, "image_size")
        if spec.kind != "files":
            raise UserError(f"image_size applies to file datasets only; {spec.name} keeps its {spec.image_size}-pixel "
                            "images, so set image_size to null")
        changes["image_size"] = int(image_size)
    if shot_rule not in (None, "auto"):
        check_choice("shot rule", shot_rule, SHOT_RULE_CHOICES)
        changes["shot_rule"] = shot_rule
    return dataclasses.replace(spec, **changes) if changes else spec


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $NBN_DATA, else ./data."""
    chosen = data_root if data_root not in (None, "") else os.environ.get("NBN_DATA") or "data"
    return Path(chosen).expanduser()
