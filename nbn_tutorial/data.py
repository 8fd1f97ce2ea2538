"""Long-tailed data: LDAM-DRW counts and selection, shot groups, the dataset registry and loaders.

Small-image datasets (digits, Fashion-MNIST, CIFAR) are "tensor" datasets: the uint8 images live in one
tensor and `TensorLoader` augments whole batches on the training device. Large-image datasets
(ImageNet-LT, Places-LT, iNaturalist 2018, any ImageFolder tree) are "files" datasets described by list
files (`relative/path label` per line) and are read by a torch DataLoader (`FileLoader`).
"""
from __future__ import annotations

import copy
import dataclasses
import gzip
import math
import os
import shutil
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nbn_tutorial.errors import UserError

PROFILES = ("exp", "step")
SHOT_RULES = ("absolute", "rank")
SHOT_NAMES = ("many", "medium", "few")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OLTR_LISTS = "the OLTR release (github.com/zhmiao/OpenLongTailRecognition-OLTR, README: data links)"
INAT_LISTS = "the classifier-balancing release (github.com/facebookresearch/classifier-balancing, data/iNaturalist18)"
LIST_FOLDER = "lt_lists"


# ----------------------------------------------------------------------------------------------------
# Long-tailed counts, selection and shot groups
# ----------------------------------------------------------------------------------------------------

def parse_imbalance_factor(value: Any) -> float:
    """The imbalance factor (largest / smallest class size) as a float >= 1, from a number or a string."""
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise UserError(f"imbalance factor {value!r} is not a number; pass a number >= 1 such as 100 "
                        "(largest class size / smallest class size)") from None
    if not math.isfinite(factor) or factor < 1:
        raise UserError(f"imbalance factor {value!r} must be a finite number >= 1 "
                        "(largest class size / smallest class size), e.g. 100")
    return factor


def parse_profile(value: Any) -> str:
    """The long-tail profile name, one of PROFILES."""
    if value not in PROFILES:
        raise UserError(f"unknown long-tail profile {value!r}; valid profiles: {', '.join(PROFILES)}")
    return value


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


def longtail_counts(num_classes: int, max_per_class: int, imbalance_factor: float,
                    profile: str = "exp") -> list[int]:
    """Per-class image counts of a long-tailed split, with LDAM-DRW's exp and step formulas."""
    num_classes = _positive_int(num_classes, "number of classes")
    max_per_class = _positive_int(max_per_class, "images per class")
    factor = parse_imbalance_factor(imbalance_factor)
    profile = parse_profile(profile)
    tail_ratio = 1 / factor  # LDAM-DRW passes imb_factor = 1/IF and multiplies by it
    if profile == "exp":
        exponents = [i / (num_classes - 1) for i in range(num_classes)] if num_classes > 1 else [0.0]
        counts = [int(max_per_class * tail_ratio ** exponent) for exponent in exponents]
    else:
        head = num_classes // 2
        counts = [max_per_class] * head + [int(max_per_class * tail_ratio)] * (num_classes - head)
    if min(counts) < 1:
        raise UserError(f"imbalance factor {factor:g} leaves the smallest class with no image "
                        f"(at most {max_per_class} images per class); use an imbalance factor <= {max_per_class}")
    return counts


def select_longtail(targets, counts, seed: int = 0) -> np.ndarray:
    """Indices of the long-tailed subset, selected exactly like LDAM-DRW's IMBALANCECIFAR (seeded once)."""
    targets = np.asarray(targets)
    if targets.ndim != 1:
        raise ValueError(f"targets must be one-dimensional, got shape {targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= len(counts)):
        raise ValueError(f"labels must lie in 0..{len(counts) - 1} to match {len(counts)} counts")
    rng = np.random.RandomState(seed)  # the same stream as np.random.seed(seed), without global state
    selected = []
    for label, count in enumerate(counts):
        indices = np.where(targets == label)[0]
        rng.shuffle(indices)
        selected.append(indices[:count])
    return np.concatenate(selected).astype(np.int64) if selected else np.zeros(0, np.int64)


def shot_groups(train_counts, many: int = 100, few: int = 20, rule: str = "absolute") -> dict[str, np.ndarray]:
    """Class indices of the many/medium/few-shot groups, by absolute thresholds or by frequency thirds."""
    counts = np.asarray(train_counts, dtype=np.int64)
    if rule == "absolute":
        is_many, is_few = counts > many, counts < few
        groups = (np.flatnonzero(is_many), np.flatnonzero(~is_many & ~is_few), np.flatnonzero(is_few))
    elif rule == "rank":
        by_frequency = np.argsort(-counts, kind="stable")
        groups = tuple(np.sort(third) for third in np.array_split(by_frequency, 3))
    else:
        raise UserError(f"unknown shot rule {rule!r}; valid rules: {', '.join(SHOT_RULES)}")
    return {name: group.astype(np.int64) for name, group in zip(SHOT_NAMES, groups)}


def _longtail_indices(targets: np.ndarray, num_classes: int, imbalance_factor: float, profile: str,
                      seed: int) -> np.ndarray:
    """LT selection whose head size is the largest count every class can supply (the smallest class)."""
    available = np.bincount(targets, minlength=num_classes)
    counts = longtail_counts(num_classes, int(available.min()), imbalance_factor, profile)
    return select_longtail(targets, counts, seed)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $NBN_DATA, else ./data."""
    chosen = data_root if data_root not in (None, "") else os.environ.get("NBN_DATA") or "data"
    return Path(chosen).expanduser()


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------

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
    shot_rule: str
    default_imbalance_factor: float | None      # None: fixed by the official list files
    default_profile: str | None
    channels: int = 3
    folder: str = ""                            # list datasets: folder under the data root
    list_files: tuple[tuple[str, str], ...] = ()  # list datasets: (split, file name)
    color_jitter: bool = True                   # files path: ColorJitter(0.4, 0.4, 0.4) when training
    balanced_train_per_class: int | None = None  # full (balanced) train set size per class, when known
    test_per_class: int | None = None
    source: str = ""                            # where the files come from

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names build_dataset accepts for this dataset."""
        return tuple(split for split, _ in self.list_files) if self.list_files else ("train", "test")


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("digits-lt", "scikit-learn 8x8 digits, embedded (always offline): the quick default",
                "tensor", 10, (0.3053,), (0.3759,), 8, 1, False, "rank", 10.0, "exp", channels=1,
                source="scikit-learn (installed with this package)"),
    DatasetSpec("fashion-mnist-lt", "Fashion-MNIST 28x28 grey clothes via torchvision",
                "tensor", 10, (0.2860,), (0.3530,), 28, 2, True, "rank", 100.0, "exp", channels=1,
                balanced_train_per_class=6000, test_per_class=1000,
                source="the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --download"),
    DatasetSpec("cifar10-lt", "CIFAR-10 made long-tailed like LDAM-DRW", "tensor", 10,
                (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 32, 4, True, "absolute", 100.0, "exp",
                balanced_train_per_class=5000, test_per_class=1000,
                source="cifar-10-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html or --download"),
    DatasetSpec("cifar100-lt", "CIFAR-100 made long-tailed like LDAM-DRW", "tensor", 100,
                (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), 32, 4, True, "absolute", 100.0, "exp",
                balanced_train_per_class=500, test_per_class=100,
                source="cifar-100-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html or --download"),
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
                "absolute", 100.0, "exp", source="your own images: <data root>/<class>/<image>"),
)}


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of `name`; unknown names raise a UserError listing the known ones."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


# ----------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------

class LTDataset(torch.utils.data.Dataset):
    """One split of a long-tailed benchmark, with the LT train counts and shot groups it is judged by."""

    def __init__(self, spec: DatasetSpec, split: str, targets, classes: Sequence[str], train_counts) -> None:
        self.spec = spec
        self.split = split
        self.targets = np.asarray(targets, dtype=np.int64)
        self.classes = [str(name) for name in classes]
        self.num_classes = len(self.classes)
        self.train_counts = np.asarray(train_counts, dtype=np.int64)
        self.shot_groups = shot_groups(self.train_counts, rule=spec.shot_rule)

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
    from PIL import Image

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

    def __getitem__(self, item: int | tuple[int, int]):
        """(image, label) for an index, or for an (index, seed) pair whose seed fixes the random transform."""
        from PIL import Image

        index, sample_seed = item if isinstance(item, tuple) else (item, None)
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except FileNotFoundError:
            raise UserError(f"image {path} listed in {self.list_file} not found; put the images under "
                            f"{self.image_root} so that the list's relative paths resolve") from None
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
    from torchvision.transforms import v2

    if train:
        steps = [v2.RandomResizedCrop(spec.image_size), v2.RandomHorizontalFlip()]
        if spec.color_jitter:
            steps.append(v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4))
    else:
        steps = [v2.Resize(round(spec.image_size * 256 / 224)), v2.CenterCrop(spec.image_size)]
    return v2.Compose(steps + [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                               v2.Normalize(list(spec.mean), list(spec.std))])


# ----------------------------------------------------------------------------------------------------
# Tensor datasets: digits, Fashion-MNIST, CIFAR
# ----------------------------------------------------------------------------------------------------

@dataclass
class _Arrays:
    """A full balanced benchmark before the LT selection: uint8 [N, C, H, W] images and labels."""

    train_images: np.ndarray
    train_targets: np.ndarray
    test_images: np.ndarray
    test_targets: np.ndarray
    classes: list[str]


class _MissingFiles(UserError):
    """The dataset's files are not on disk (stats can still show formula counts)."""


DIGITS_TEST_PER_CLASS = 30


def _digits_arrays(root: Path, seed: int, download: bool) -> _Arrays:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    targets = digits.target.astype(np.int64)
    rng = np.random.RandomState(seed)
    is_test = np.zeros(len(targets), dtype=bool)
    for label in range(10):
        members = np.flatnonzero(targets == label)
        is_test[rng.permutation(members)[:DIGITS_TEST_PER_CLASS]] = True
    return _Arrays(images[~is_test], targets[~is_test], images[is_test], targets[is_test],
                   [str(label) for label in range(10)])


def _fashion_arrays(root: Path, seed: int, download: bool) -> _Arrays:
    from torchvision.datasets import FashionMNIST

    raw = root / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name in FASHION_MNIST_FILES):
        if all((DEBIAN_FASHION_MNIST / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES):
            _decompress_into(DEBIAN_FASHION_MNIST, raw)
        elif download:
            _download(lambda: FashionMNIST(root, train=True, download=True), "Fashion-MNIST",
                      f"put {', '.join(FASHION_MNIST_FILES)} (gunzipped) into {raw}")
        else:
            raise _MissingFiles(f"Fashion-MNIST not found: expected {', '.join(FASHION_MNIST_FILES)} in {raw}; "
                                "pass --download, or install the Debian package dataset-fashion-mnist "
                                f"(used automatically from {DEBIAN_FASHION_MNIST})")
    train, test = FashionMNIST(root, train=True), FashionMNIST(root, train=False)
    return _Arrays(train.data.numpy()[:, None], train.targets.numpy(), test.data.numpy()[:, None],
                   test.targets.numpy(), list(train.classes))


def _decompress_into(source: Path, raw: Path) -> None:
    """Gunzip the IDX files into torchvision's raw folder; temp file + rename keeps parallel ranks safe."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for name in FASHION_MNIST_FILES:
            partial = raw / f"{name}.{os.getpid()}.partial"
            with gzip.open(source / f"{name}.gz", "rb") as packed, open(partial, "wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
            os.replace(partial, raw / name)
    except OSError as error:
        raise UserError(f"cannot unpack Fashion-MNIST from {source} into {raw} ({error.strerror}); "
                        "pass a writable --data-root") from None


def _download(fetch: Callable[[], Any], title: str, by_hand: str) -> None:
    try:
        fetch()
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        reason = str(error).replace("\n", " ").strip()
        raise UserError(f"downloading {title} failed ({reason}), perhaps because this machine is offline; "
                        f"{by_hand} by hand instead") from None


def _cifar_arrays(root: Path, seed: int, download: bool, hundred: bool) -> _Arrays:
    from torchvision.datasets import CIFAR10, CIFAR100

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
        raise _MissingFiles(f"{title} files not found or corrupted: expected {expected} and "
                            f"{dataset_class.meta['filename']} in {folder}; pass --download, or {by_hand}") from None
    return _Arrays(train.data.transpose(0, 3, 1, 2), np.asarray(train.targets, np.int64),
                   test.data.transpose(0, 3, 1, 2), np.asarray(test.targets, np.int64), list(train.classes))


_TENSOR_SOURCES: dict[str, Callable[[Path, int, bool], _Arrays]] = {
    "digits-lt": _digits_arrays,
    "fashion-mnist-lt": _fashion_arrays,
    "cifar10-lt": lambda root, seed, download: _cifar_arrays(root, seed, download, hundred=False),
    "cifar100-lt": lambda root, seed, download: _cifar_arrays(root, seed, download, hundred=True),
}


def _tensor_dataset(spec: DatasetSpec, arrays: _Arrays, split: str, imbalance_factor: float, profile: str,
                    seed: int) -> TensorLTDataset:
    num_classes = len(arrays.classes)
    keep = _longtail_indices(arrays.train_targets, num_classes, imbalance_factor, profile, seed)
    train_counts = np.bincount(arrays.train_targets[keep], minlength=num_classes)
    if split == "train":
        images, targets = arrays.train_images[keep], arrays.train_targets[keep]
    else:
        images, targets = arrays.test_images, arrays.test_targets
    return TensorLTDataset(spec, split, torch.from_numpy(np.ascontiguousarray(images)), targets,
                           arrays.classes, train_counts)


# ----------------------------------------------------------------------------------------------------
# List-file datasets: ImageNet-LT, Places-LT, iNaturalist 2018, imagefolder-lt
# ----------------------------------------------------------------------------------------------------

def read_list_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Relative paths and int64 labels of a `relative/path label` list file (no image is opened)."""
    paths, labels = [], []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.rsplit(None, 1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise UserError(f"{path}:{number}: {text!r}: expected 'relative/path label' "
                                "(a path, a space, a non-negative integer label)")
            paths.append(parts[0])
            labels.append(int(parts[1]))
    return paths, np.asarray(labels, dtype=np.int64)


def _list_path(spec: DatasetSpec, list_dir: Path, split: str) -> Path:
    path = list_dir / dict(spec.list_files)[split]
    if not path.is_file():
        raise _MissingFiles(f"list file {path} not found; get the official {spec.name} list files from "
                            f"{spec.source} and put them in {list_dir} (or pass --list-dir)")
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


def _list_counts(spec: DatasetSpec, list_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-class train counts, the given split's counts and class names, from the list files alone."""
    train_paths, train_labels = read_list_file(_list_path(spec, list_dir, "train"))
    num_classes = int(train_labels.max()) + 1 if train_labels.size else 0
    split_list = _list_path(spec, list_dir, split)
    _, labels = read_list_file(split_list)
    _check_labels(labels, num_classes, split_list)
    return (np.bincount(train_labels, minlength=num_classes), np.bincount(labels, minlength=num_classes),
            _class_names(train_paths, train_labels, num_classes))


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and labels.max() >= num_classes:
        raise UserError(f"{path} has label {int(labels.max())} but the train list has only {num_classes} "
                        "classes; the list files do not belong together")


def _list_dataset(spec: DatasetSpec, image_root: Path, list_dir: Path, split: str) -> FileLTDataset:
    train_list = _list_path(spec, list_dir, "train")
    train_paths, train_labels = read_list_file(train_list)
    if not train_paths:
        raise UserError(f"list file {train_list} is empty; it must list the training images")
    num_classes = int(train_labels.max()) + 1
    list_file = _list_path(spec, list_dir, split)
    paths, labels = (train_paths, train_labels) if list_file == train_list else read_list_file(list_file)
    _check_labels(labels, num_classes, list_file)
    samples = [(image_root / path, int(label)) for path, label in zip(paths, labels.tolist())]
    if samples and not samples[0][0].is_file():
        raise UserError(f"image {samples[0][0]} (first line of {list_file}) not found; put the images under "
                        f"{image_root} so that the list's relative paths resolve")
    return FileLTDataset(spec, split, samples, _class_names(train_paths, train_labels, num_classes),
                         np.bincount(train_labels, minlength=num_classes), list_file, image_root)


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


def _imagefolder_split_lines(tree: Path, imbalance_factor: float, profile: str,
                             seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """Class names and the list-file lines of each split of an ImageFolder tree made LT (nothing is written)."""
    if not tree.is_dir():
        raise _MissingFiles(f"ImageFolder tree {tree} not found; pass --data-root pointing at a folder with one "
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
    keep = _longtail_indices(train_labels, len(classes), imbalance_factor, profile, seed)
    lines = {"train": [f"{train_paths[i]} {train_labels[i]}" for i in keep]}
    for split, (paths, labels) in scans.items():
        lines[split] = [f"{path} {label}" for path, label in zip(paths, labels.tolist())]
    return classes, lines


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


def _imagefolder_spec(tree: Path, classes: list[str], split_names: Sequence[str], imbalance_factor: float,
                      profile: str, seed: int) -> DatasetSpec:
    """The imagefolder-lt spec completed for one tree: its class count and its list-file names."""
    stem = f"{tree.resolve().name}_IF{imbalance_factor:g}_{profile}_seed{seed}"
    files = tuple((split, f"{stem}_{split}.txt") for split in ("train", "val", "test") if split in split_names)
    return dataclasses.replace(DATASETS["imagefolder-lt"], num_classes=len(classes), list_files=files,
                               source=f"the ImageFolder tree {tree}")


def _write_or_reuse(path: Path, lines: list[str]) -> None:
    """Write a list file, reuse an identical one, and refuse to overwrite one that differs."""
    content = "".join(f"{line}\n" for line in lines)
    if path.is_file():
        if path.read_text(encoding="utf-8") != content:
            raise UserError(f"list file {path} exists with a different split (did the tree change?); "
                            "delete it, or pass another --list-dir or seed, to write a new one")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(content, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        raise UserError(f"cannot write list file {path} ({error.strerror}); pass a writable --list-dir") from None


def _imagefolder_dataset(tree: Path, list_dir: Path | None, imbalance_factor: float, profile: str, seed: int,
                         split: str) -> FileLTDataset:
    classes, lines = _imagefolder_split_lines(tree, imbalance_factor, profile, seed)
    spec = _imagefolder_spec(tree, classes, list(lines), imbalance_factor, profile, seed)
    _check_split(spec, split)
    list_dir = list_dir if list_dir is not None else tree / LIST_FOLDER
    for split_name, file_name in spec.list_files:
        _write_or_reuse(list_dir / file_name, lines[split_name])
    return _list_dataset(spec, tree, list_dir, split)


# ----------------------------------------------------------------------------------------------------
# build_dataset
# ----------------------------------------------------------------------------------------------------

def _check_split(spec: DatasetSpec, split: str) -> None:
    if split not in spec.splits:
        raise UserError(f"unknown split {split!r} for {spec.name}; valid splits: {', '.join(spec.splits)}")


def _longtail_options(spec: DatasetSpec, imbalance_factor, profile) -> tuple[float | None, str | None]:
    """The validated imbalance factor and profile, with the dataset defaults filling in None."""
    if spec.default_imbalance_factor is None:
        if imbalance_factor is not None or profile is not None:
            raise UserError(f"{spec.name}'s long tail is fixed by its official list files; "
                            "drop the imbalance factor and profile options")
        return None, None
    factor = parse_imbalance_factor(spec.default_imbalance_factor if imbalance_factor is None else imbalance_factor)
    return factor, parse_profile(spec.default_profile if profile is None else profile)


def build_dataset(name: str, root=None, imbalance_factor: float | None = None, profile: str | None = None,
                  seed: int = 0, split: str = "train", download: bool = False, list_dir=None) -> LTDataset:
    """One split of a registered long-tailed benchmark (see DATASETS and data/README.md)."""
    spec = get_spec(name)
    factor, profile = _longtail_options(spec, imbalance_factor, profile)
    data_root = resolve_data_root(root)
    list_dir = Path(list_dir).expanduser() if list_dir not in (None, "") else None
    if name == "imagefolder-lt":
        return _imagefolder_dataset(data_root, list_dir, factor, profile, seed, split)
    _check_split(spec, split)
    if spec.kind == "files":
        folder = data_root / spec.folder
        return _list_dataset(spec, folder, list_dir or folder, split)
    arrays = _TENSOR_SOURCES[name](data_root, seed, download)
    return _tensor_dataset(spec, arrays, split, factor, profile, seed)


# ----------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------

def augment_batch(x_uint8: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad, crop back to HxW at an independent random offset per image, flip each image with p=0.5."""
    batch, channels, height, width = x_uint8.shape
    if pad == 0 and not flip:
        return x_uint8
    device = x_uint8.device
    padded = x_uint8.new_zeros(batch, channels, height + 2 * pad, width + 2 * pad)
    padded[:, :, pad:pad + height, pad:pad + width] = x_uint8
    draw_device = generator.device
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device).to(device)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device).to(device)
    rows = dy[:, None] + torch.arange(height, device=device)                # [B, H]
    cols = dx[:, None] + torch.arange(width, device=device)                 # [B, W]
    if flip:
        flipped = (torch.rand(batch, generator=generator, device=draw_device) < 0.5).to(device)
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    return padded[torch.arange(batch, device=device)[:, None, None, None],
                  torch.arange(channels, device=device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def _check_loader_options(batch_size: int, seed: int, num_replicas: int, rank: int) -> None:
    _positive_int(batch_size, "batch size")
    _positive_int(num_replicas, "number of replicas")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0, got {seed!r}")
    if not 0 <= rank < num_replicas:
        raise UserError(f"rank {rank} must lie in 0..{num_replicas - 1} for {num_replicas} replicas")


def _epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """A CPU generator whose stream depends on (seed, epoch, rank) and nothing else."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class TensorLoader:
    """Batches of a tensor dataset kept on the device, with batched CIFAR-style augmentation when training."""

    def __init__(self, dataset: TensorLTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, channels_last: bool = False) -> None:
        _check_loader_options(batch_size, seed, num_replicas, rank)
        self.dataset = dataset
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.targets = torch.as_tensor(dataset.targets, dtype=torch.int64).to(self.device)
        shape = (1, -1, 1, 1)
        self.scale = (255 * torch.tensor(dataset.spec.std, dtype=torch.float32, device=self.device)).view(shape)
        self.shift = (255 * torch.tensor(dataset.spec.mean, dtype=torch.float32, device=self.device)).view(shape)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.num_replicas, self.rank, self.channels_last = num_replicas, rank, channels_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation the next iteration uses."""
        self.epoch = epoch

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        count = len(self.dataset)
        if self.num_replicas > 1:
            from torch.utils.data import DistributedSampler

            sampler = DistributedSampler(range(count), num_replicas=self.num_replicas, rank=self.rank,
                                         shuffle=self.train, seed=self.seed)
            sampler.set_epoch(self.epoch)
            return torch.tensor(list(sampler), dtype=torch.int64)
        return torch.randperm(count, generator=generator) if self.train else torch.arange(count)

    def __len__(self) -> int:
        count = len(self.dataset)
        per_replica = math.ceil(count / self.num_replicas) if self.num_replicas > 1 else count
        return math.ceil(per_replica / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = _epoch_generator(self.seed, self.epoch, self.rank)
        order = self._order(generator).to(self.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = augment_batch(images, self.dataset.spec.pad, self.dataset.spec.flip, generator)
            x = (images.float() - self.shift) / self.scale
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.targets[index]


class _SampleSeeds(torch.utils.data.Sampler):
    """Yields (index, seed) pairs: the indices of ``order`` with a seed that depends on (seed, epoch, index) only."""

    def __init__(self, order, seed: int) -> None:
        self.order = order
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = (self.seed * 1_000_003 + self.epoch) << 32
        return ((int(index), base + int(index)) for index in self.order)


class FileLoader:
    """A torch DataLoader over a files dataset: workers, pinned memory, distributed sampling, device moves."""

    def __init__(self, dataset: FileLTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                 num_workers: int = 2, num_replicas: int = 1, rank: int = 0, channels_last: bool = False) -> None:
        from torch.utils.data import DataLoader, DistributedSampler

        _check_loader_options(batch_size, seed, num_replicas, rank)
        view = dataset.for_training(train)
        self.device = torch.device(device)
        self.channels_last = channels_last
        # A DistributedSampler (one replica when not distributed) gives a seeded, per-epoch training order.
        self.sampler = (DistributedSampler(view, num_replicas=num_replicas, rank=rank, shuffle=train, seed=seed)
                        if train or num_replicas > 1 else None)
        # Persistent workers keep their RNG streams across epochs, so a resumed run would augment
        # differently; instead each sample's transform is seeded from (seed, epoch, index).
        self.seeded = _SampleSeeds(self.sampler if self.sampler is not None else range(len(view)), seed) if train \
            else None
        self.loader = DataLoader(view, batch_size=batch_size, sampler=self.seeded or self.sampler,
                                 num_workers=num_workers, persistent_workers=num_workers > 0,
                                 pin_memory=self.device.type == "cuda", drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the sampler so every epoch has its own seeded order and augmentation."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        if self.seeded is not None:
            self.seeded.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.loader:
            x = images.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, labels.to(self.device, non_blocking=True)


def _resize_one(job: tuple[str, str, int, int]) -> None:
    """Write one image of the cache: shorter side at most ``short_side`` (never enlarged), JPEG, atomically."""
    from PIL import Image

    source, target, short_side, quality = job
    with Image.open(source) as image:
        # draft() lets libjpeg decode at 1/2, 1/4 or 1/8 scale directly when the target is that much smaller.
        image.draft("RGB", (short_side * image.width // min(image.size), short_side * image.height // min(image.size)))
        rgb = image.convert("RGB")
    scale = short_side / min(rgb.size)
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.BICUBIC, reducing_gap=3.0)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    partial = f"{target}.{os.getpid()}.partial"
    rgb.save(partial, "JPEG", quality=quality)
    os.replace(partial, target)


def build_resized_cache(image_root: str | os.PathLike, list_files: Sequence[str | os.PathLike],
                        cache_root: str | os.PathLike, short_side: int = 256, quality: int = 90,
                        workers: int | None = None) -> Path:
    """Pre-resized copy of every image named in ``list_files`` (shorter side <= ``short_side``), plus the lists.

    Decoding full-size JPEGs is what limits an ImageNet-LT/iNat input pipeline on CPU; the cache makes
    each decode several times cheaper. Resumable: images already in the cache are skipped.
    """
    from concurrent.futures import ProcessPoolExecutor

    image_root, cache_root = Path(image_root).resolve(), Path(cache_root).resolve()
    if cache_root == image_root:
        raise UserError(f"the cache folder {cache_root} is the image folder itself; choose another --out")
    _positive_int(short_side, "short side")
    jobs: dict[str, tuple[str, str, int, int]] = {}
    for list_file in map(Path, list_files):
        relative_paths, _ = read_list_file(list_file)
        for relative in relative_paths:
            target = cache_root / relative
            if not target.is_file():
                jobs[relative] = (str(image_root / relative), str(target), short_side, quality)
        cache_root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(list_file, cache_root / list_file.name)
    missing = [job[0] for job in jobs.values() if not Path(job[0]).is_file()]
    if missing:
        raise UserError(f"{len(missing)} listed images are missing under {image_root} (first: {missing[0]}); "
                        "put the images there so that the list's relative paths resolve")
    with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        list(pool.map(_resize_one, jobs.values(), chunksize=16))
    return cache_root


def cache_dataset(name: str, out: str | os.PathLike, root=None, list_dir=None, short_side: int = 256,
                  workers: int | None = None) -> Path:
    """Pre-resized cache of a list dataset under ``out`` (use ``out`` as the data root afterwards)."""
    spec = get_spec(name)
    if not spec.list_files:
        raise UserError(f"{name} is not a list-file dataset; the cache is for "
                        f"{', '.join(n for n, s in DATASETS.items() if s.list_files)}")
    image_root = resolve_data_root(root) / spec.folder
    lists = Path(list_dir) if list_dir is not None else image_root
    list_files = [_list_path(spec, lists, split) for split in spec.splits if (lists / dict(spec.list_files)[split]).is_file()]
    if not list_files:
        _list_path(spec, lists, "train")  # raises the missing-list-file message
    return build_resized_cache(image_root, list_files, Path(out) / spec.folder, short_side, workers=workers)


def make_loader(dataset: LTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                num_workers: int = 2, num_replicas: int = 1, rank: int = 0, channels_last: bool = False):
    """A TensorLoader for tensor datasets, else a FileLoader; both yield normalized float x and int64 y."""
    options = dict(batch_size=batch_size, train=train, device=device, seed=seed, num_replicas=num_replicas,
                   rank=rank, channels_last=channels_last)
    if dataset.spec.kind == "tensor":
        return TensorLoader(dataset, **options)
    return FileLoader(dataset, num_workers=num_workers, **options)


# ----------------------------------------------------------------------------------------------------
# Text for the CLI
# ----------------------------------------------------------------------------------------------------

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


def _rule_text(rule: str) -> dict[str, str]:
    if rule == "absolute":
        return {"many": "> 100 train images", "medium": "20-100 train images", "few": "< 20 train images"}
    return {"many": "most frequent third", "medium": "middle third", "few": "least frequent third"}


@dataclass
class _Stats:
    train_counts: np.ndarray
    test_counts: np.ndarray
    classes: list[str]
    note: str


def _formula_stats(spec: DatasetSpec, factor: float, profile: str, data_root: Path) -> _Stats:
    counts = longtail_counts(spec.num_classes, spec.balanced_train_per_class, factor, profile)
    return _Stats(np.asarray(counts), np.full(spec.num_classes, spec.test_per_class),
                  [str(label) for label in range(spec.num_classes)],
                  f"files not found under {data_root}: counts computed from the LDAM-DRW formula on the full "
                  f"{spec.balanced_train_per_class}-per-class train set (no files needed)")


def _dataset_stats(name: str, root, imbalance_factor, profile, seed: int,
                   list_dir) -> tuple[DatasetSpec, _Stats, str]:
    spec = get_spec(name)
    factor, profile = _longtail_options(spec, imbalance_factor, profile)
    data_root = resolve_data_root(root)
    if spec.name == "imagefolder-lt":
        classes, lines = _imagefolder_split_lines(data_root, factor, profile, seed)
        train, test = (_line_counts(lines[split], len(classes)) for split in ("train", "test"))
        stats = _Stats(train, test, classes, f"split of the ImageFolder tree {data_root} (no list file written)")
    elif spec.kind == "files":
        folder = Path(list_dir).expanduser() if list_dir not in (None, "") else data_root / spec.folder
        train_counts, test_counts, classes = _list_counts(spec, folder, "test")
        stats = _Stats(train_counts, test_counts, classes, f"counts from the list files in {folder} (no image opened)")
    else:
        try:
            arrays = _TENSOR_SOURCES[name](data_root, seed, False)
        except _MissingFiles:
            if spec.balanced_train_per_class is None:
                raise
            stats = _formula_stats(spec, factor, profile, data_root)
        else:
            train = _tensor_dataset(spec, arrays, "train", factor, profile, seed)
            stats = _Stats(train.train_counts, np.bincount(arrays.test_targets, minlength=len(arrays.classes)),
                           arrays.classes, f"counts from the files under {data_root}" if name != "digits-lt"
                           else "counts from the embedded scikit-learn digits")
    setting = (f"profile {profile}, imbalance factor {factor:g}, seed {seed}" if profile
               else "long tail fixed by the official list files")
    return spec, stats, setting


def _line_counts(lines: list[str], num_classes: int) -> np.ndarray:
    labels = [int(line.rsplit(None, 1)[1]) for line in lines]
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def format_dataset_stats(name: str, root=None, imbalance_factor=None, profile=None, seed: int = 0,
                         list_dir=None) -> str:
    """Per-class train/test counts of a long-tailed benchmark, the achieved imbalance and its shot groups."""
    spec, stats, setting = _dataset_stats(name, root, imbalance_factor, profile, seed, list_dir)
    groups = shot_groups(stats.train_counts, rule=spec.shot_rule)
    group_of = {int(label): group for group, members in groups.items() for label in members}
    rows = [["class", "name", "train", "test", "group"]]
    for label, (train, test) in enumerate(zip(stats.train_counts.tolist(), stats.test_counts.tolist())):
        rows.append([str(label), stats.classes[label], str(train), str(test), group_of[label]])
    rows.append(["total", "", str(int(stats.train_counts.sum())), str(int(stats.test_counts.sum())), ""])
    present = stats.train_counts[stats.train_counts > 0]
    achieved = present.max() / present.min() if present.size else math.nan
    rule_text = _rule_text(spec.shot_rule)
    lines = [f"{spec.name}: {setting}", stats.note, "", _table(rows), "",
             f"achieved imbalance factor (largest / smallest train class): {achieved:.4g}",
             f"shot groups ({spec.shot_rule} rule):"]
    for group, members in groups.items():
        lines.append(f"  {group:<6} ({rule_text[group]}): {len(members)} classes: {_format_ranges(members)}")
    return "\n".join(lines)
