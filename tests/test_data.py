"""Long-tailed data on real code paths: counts, LDAM selection, datasets in real on-disk formats, loaders."""
import math
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from nbn_tutorial import data
from nbn_tutorial.errors import UserError

REFERENCE_LISTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "lt_lists"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------------------------------------------
# Independent re-implementation of LDAM-DRW's IMBALANCECIFAR10 (imbalance_cifar.py), global NumPy seeding
# ---------------------------------------------------------------------------------------------------

def ldam_img_num_per_cls(cls_num, img_max, imb_type, imb_factor):
    """IMBALANCECIFAR10.get_img_num_per_cls with imb_factor = 1/IF as LDAM-DRW passes it."""
    img_num_per_cls = []
    if imb_type == "exp":
        for cls_idx in range(cls_num):
            num = img_max * (imb_factor ** (cls_idx / (cls_num - 1.0)))
            img_num_per_cls.append(int(num))
    else:
        for _ in range(cls_num // 2):
            img_num_per_cls.append(int(img_max))
        for _ in range(cls_num - cls_num // 2):
            img_num_per_cls.append(int(img_max * imb_factor))
    return img_num_per_cls


def ldam_gen_imbalanced_data(targets, img_num_per_cls, rand_number):
    """IMBALANCECIFAR10.__init__'s np.random.seed + gen_imbalanced_data, returning the kept indices."""
    saved = np.random.get_state()
    try:
        np.random.seed(rand_number)
        targets_np = np.array(targets, dtype=np.int64)
        classes = np.unique(targets_np)
        kept = []
        for the_class, the_img_num in zip(classes, img_num_per_cls):
            idx = np.where(targets_np == the_class)[0]
            np.random.shuffle(idx)
            kept.append(idx[:the_img_num])
        return np.concatenate(kept)
    finally:
        np.random.set_state(saved)


# ---------------------------------------------------------------------------------------------------
# Counts, selection, shot groups, data root
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_classes, max_per_class, factor, profile, total", [
    (10, 5000, 100, "exp", 12406), (10, 5000, 50, "exp", 13996), (10, 5000, 10, "exp", 20431),
    (100, 500, 100, "exp", 10847), (100, 500, 50, "exp", 12608), (100, 500, 10, "exp", 19573),
    (10, 5000, 100, "step", 25250), (10, 5000, 50, "step", 25500), (10, 5000, 10, "step", 27500),
])
def test_longtail_counts_reproduce_the_cifar_lt_totals(num_classes, max_per_class, factor, profile, total):
    counts = data.longtail_counts(num_classes, max_per_class, factor, profile)
    assert sum(counts) == total
    assert counts == ldam_img_num_per_cls(num_classes, max_per_class, profile, 1 / factor)
    assert counts[0] == max_per_class and counts[-1] == int(max_per_class / factor)


def test_step_profile_gives_odd_class_counts_a_longer_tail():
    assert data.longtail_counts(5, 100, 10, "step") == [100, 100, 10, 10, 10]


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_select_longtail_matches_ldam_drw(seed):
    rng = np.random.default_rng(seed)
    num_classes = 7
    targets = rng.permutation(np.repeat(np.arange(num_classes), 40))
    counts = data.longtail_counts(num_classes, 40, 10)
    before = np.random.get_state()[1].copy()
    chosen = data.select_longtail(targets, counts, seed=seed)
    assert np.array_equal(np.random.get_state()[1], before), "select_longtail must not touch NumPy's global RNG"
    assert np.array_equal(chosen, ldam_gen_imbalanced_data(targets, counts, seed))
    assert np.array_equal(np.bincount(targets[chosen], minlength=num_classes), counts)
    assert np.array_equal(chosen, data.select_longtail(targets, counts, seed=seed))


def test_select_longtail_depends_on_the_seed():
    targets = np.repeat(np.arange(3), 50)
    counts = data.longtail_counts(3, 50, 5)
    assert not np.array_equal(data.select_longtail(targets, counts, 0), data.select_longtail(targets, counts, 1))


def test_absolute_shot_groups_follow_the_oltr_thresholds():
    groups = data.shot_groups([150, 101, 100, 20, 19, 0])
    assert list(groups) == ["many", "medium", "few"]
    assert groups["many"].tolist() == [0, 1]
    assert groups["medium"].tolist() == [2, 3]
    assert groups["few"].tolist() == [4, 5]


def test_rank_shot_groups_split_classes_into_frequency_thirds():
    groups = data.shot_groups([5, 9, 9, 1, 7, 3, 2], rule="rank")
    assert groups["many"].tolist() == [1, 2, 4]
    assert groups["medium"].tolist() == [0, 5]
    assert groups["few"].tolist() == [3, 6]


def test_data_root_prefers_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.delenv("NBN_DATA", raising=False)
    assert data.resolve_data_root() == Path("data")
    monkeypatch.setenv("NBN_DATA", str(tmp_path / "env"))
    assert data.resolve_data_root() == tmp_path / "env"
    assert data.resolve_data_root(tmp_path / "arg") == tmp_path / "arg"


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.5, "0.99", float("nan"), "nan", "inf", "abc", None, -3])
def test_bad_imbalance_factors_are_user_errors(factor):
    with pytest.raises(UserError, match="imbalance factor") as error:
        data.longtail_counts(10, 5000, factor)
    assert "\n" not in str(error.value)


def test_imbalance_factor_strings_from_the_cli_parse():
    assert data.parse_imbalance_factor("100") == 100.0
    assert data.longtail_counts(10, 5000, "100") == data.longtail_counts(10, 5000, 100)


def test_imbalance_too_large_for_the_class_size_is_a_user_error():
    with pytest.raises(UserError, match="no image"):
        data.longtail_counts(10, 50, 100)


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(UserError, match="exp, step"):
        data.longtail_counts(10, 5000, 100, "linear")
    with pytest.raises(UserError, match="exp, step"):
        data.build_dataset("digits-lt", profile="linear")


def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(UserError) as error:
        data.build_dataset("cifar11-lt")
    for name in data.DATASETS:
        assert name in str(error.value)


def test_unknown_split_and_fixed_long_tail_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="train, val, test"):
        data.build_dataset("digits-lt", split="validation")
    with pytest.raises(UserError, match="fixed by its official list files"):
        data.build_dataset("places-lt", root=tmp_path, imbalance_factor=10)


def test_bad_loader_options_are_user_errors():
    digits = data.build_dataset("digits-lt", split="test")
    with pytest.raises(UserError, match="batch size"):
        data.make_loader(digits, batch_size=0, train=True)
    with pytest.raises(UserError, match="rank"):
        data.make_loader(digits, batch_size=8, train=True, num_replicas=2, rank=2)


# ---------------------------------------------------------------------------------------------------
# digits-lt and fashion-mnist-lt
# ---------------------------------------------------------------------------------------------------

def test_digits_are_read_exactly_as_scikit_learn_loads_them():
    from sklearn.datasets import load_digits
    from nbn_tutorial.data.tensor_sources import digits_pixels

    pixels, labels = digits_pixels()
    reference = load_digits()
    assert pixels.shape == (1797, 8, 8) and labels.dtype == np.int64
    assert np.array_equal(pixels, reference.images) and np.array_equal(labels, reference.target)


def test_digits_lt_is_long_tailed_with_a_balanced_test_split():
    train = data.build_dataset("digits-lt", seed=0)
    test = data.build_dataset("digits-lt", split="test", seed=0)
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert int(train.images.max()) == 255
    expected = data.longtail_counts(10, 174 - data.DIGITS_TEST_PER_CLASS, 10)  # smallest digit class: 174 images
    assert train.train_counts.tolist() == expected == train.class_counts.tolist()
    assert test.class_counts.tolist() == [data.DIGITS_TEST_PER_CLASS] * 10
    assert test.train_counts.tolist() == expected
    assert train.shot_groups["many"].tolist() == [0, 1, 2, 3]
    image, label = train[0]
    assert image.shape == (1, 8, 8) and isinstance(label, int)


def test_digits_split_is_deterministic_under_the_seed():
    first = data.build_dataset("digits-lt", split="test", seed=3)
    again = data.build_dataset("digits-lt", split="test", seed=3)
    other = data.build_dataset("digits-lt", split="test", seed=4)
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)


def test_digits_normalization_constants_come_from_the_data():
    from sklearn.datasets import load_digits

    pixels = np.round(load_digits().images * (255 / 16)).astype(np.uint8) / 255
    spec = data.DATASETS["digits-lt"]
    assert spec.mean[0] == pytest.approx(pixels.mean(), abs=1e-4)
    assert spec.std[0] == pytest.approx(pixels.std(), abs=1e-4)


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    if not all((DEBIAN_FASHION / f"{name}.gz").is_file() for name in data.FASHION_MNIST_FILES):
        pytest.skip("the Debian Fashion-MNIST copy (apt-get install dataset-fashion-mnist) is absent")
    return tmp_path_factory.mktemp("fashion")


def test_fashion_mnist_lt_uses_the_debian_copy(fashion_root):
    train = data.build_dataset("fashion-mnist-lt", root=fashion_root)
    test = data.build_dataset("fashion-mnist-lt", root=fashion_root, split="test")
    assert (fashion_root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    assert train.train_counts.tolist() == data.longtail_counts(10, 5000, 100)   # the default head: CIFAR-10-LT's counts
    assert train.class_counts.tolist() == train.train_counts.tolist()
    assert test.class_counts.tolist() == [1000] * 10
    assert train.classes[0] == "T-shirt/top" and train.spec.flip


def test_fashion_mnist_normalization_constants_come_from_the_train_set(fashion_root):
    from torchvision.datasets import FashionMNIST

    data.build_dataset("fashion-mnist-lt", root=fashion_root, split="test")
    pixels = FashionMNIST(fashion_root, train=True).data.double() / 255
    spec = data.DATASETS["fashion-mnist-lt"]
    assert spec.mean[0] == pytest.approx(pixels.mean().item(), abs=1e-4)
    assert spec.std[0] == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-4)


# ---------------------------------------------------------------------------------------------------
# CIFAR in torchvision's on-disk format (pickled batches); only the md5 check is bypassed
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def no_md5(monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def _pickle(path: Path, content: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(content, file, protocol=2)


def write_cifar10(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> dict:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} with random images."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    train_data = rng.integers(0, 256, (len(train_labels), 3072), dtype=np.uint8)
    for number, (rows, labels) in enumerate(zip(np.array_split(train_data, 5), np.array_split(train_labels, 5)), 1):
        _pickle(folder / f"data_batch_{number}", {"batch_label": f"training batch {number} of 5", "data": rows,
                                                  "labels": labels.tolist(), "filenames": ["x.png"] * len(rows)})
    test_labels = np.repeat(np.arange(10), test_per_class)
    test_data = rng.integers(0, 256, (len(test_labels), 3072), dtype=np.uint8)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": test_data,
                                    "labels": test_labels.tolist(), "filenames": ["x.png"] * len(test_labels)})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072})
    return {"train_data": train_data, "train_labels": train_labels, "test_data": test_data,
            "test_labels": test_labels}


def write_cifar100(root: Path, train_per_class: int, test_per_class: int) -> dict:
    """cifar-100-python/{train, test, meta} with fine and coarse labels."""
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        rows = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        _pickle(folder / split, {"filenames": ["x.png"] * len(labels), "batch_label": split, "data": rows,
                                 "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()})
        arrays[split] = (rows, labels)
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return arrays


def test_cifar10_lt_selects_ldam_subset_from_real_format_files(tmp_path, no_md5):
    files = write_cifar10(tmp_path, train_per_class=20, test_per_class=10)
    train = data.build_dataset("cifar10-lt", root=tmp_path, imbalance_factor=10, seed=5)
    counts = data.longtail_counts(10, 20, 10)
    kept = ldam_gen_imbalanced_data(files["train_labels"], counts, 5)
    assert train.images.shape == (sum(counts), 3, 32, 32) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images.numpy().reshape(len(kept), 3072), files["train_data"][kept])
    assert np.array_equal(train.targets, files["train_labels"][kept])
    assert train.train_counts.tolist() == counts
    assert train.classes[0] == "airplane" and train.spec.shot_rule == "absolute"
    test = data.build_dataset("cifar10-lt", root=tmp_path, imbalance_factor=10, seed=5, split="test")
    assert np.array_equal(test.images.numpy().reshape(-1, 3072), files["test_data"])
    assert test.class_counts.tolist() == [10] * 10 and test.train_counts.tolist() == counts
    x, y = next(iter(data.make_loader(train, batch_size=16, train=True)))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_cifar100_lt_reads_fine_labels(tmp_path, no_md5):
    arrays = write_cifar100(tmp_path, train_per_class=5, test_per_class=2)
    train = data.build_dataset("cifar100-lt", root=tmp_path, imbalance_factor=5, profile="step")
    rows, labels = arrays["train"]
    kept = ldam_gen_imbalanced_data(labels, data.longtail_counts(100, 5, 5, "step"), 0)
    assert np.array_equal(train.images.numpy().reshape(len(kept), 3072), rows[kept])
    assert train.train_counts.tolist() == [5] * 50 + [1] * 50
    assert train.classes[:2] == ["fine0", "fine1"]
    assert len(data.build_dataset("cifar100-lt", root=tmp_path, imbalance_factor=5, split="test")) == 200


def test_missing_cifar_files_say_what_is_expected_where(tmp_path):
    with pytest.raises(UserError) as error:
        data.build_dataset("cifar10-lt", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message
    # the option that exists (--set download=true), never the --download flag that does not
    assert "--set download=true" in message and "--download" not in message
    assert "cifar-10-python.tar.gz" in message and "\n" not in message


def test_offline_download_says_how_to_place_the_files(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match="offline") as error:
        data.build_dataset("cifar100-lt", root=tmp_path, download=True)
    assert "by hand" in str(error.value) and "cifar-100-python.tar.gz" in str(error.value)


def test_cifar_stats_without_files_come_from_the_formula(tmp_path):
    text = data.format_dataset_stats("cifar10-lt", root=tmp_path, imbalance_factor="50")
    assert "formula" in text and str(sum(data.longtail_counts(10, 5000, 50))) in text
    assert "achieved imbalance factor (largest / smallest train class): 50" in text


def test_digits_stats_show_counts_and_groups():
    text = data.format_dataset_stats("digits-lt", imbalance_factor=10)
    assert str(sum(data.longtail_counts(10, 144, 10))) in text
    assert "many" in text and "rank rule" in text
    assert "digits-lt" in data.format_dataset_list() and "imagefolder-lt" in data.format_dataset_list()


# ---------------------------------------------------------------------------------------------------
# List-file datasets on generated trees of tiny JPEGs
# ---------------------------------------------------------------------------------------------------

def write_jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


def write_list_dataset(folder: Path, prefix: str, train_counts: list[int], held_out_per_class: int) -> None:
    """<folder>/train/cN/*.jpg, <folder>/val/cN/*.jpg and the <prefix>_{train,val,test}.txt list files."""
    lines = {"train": [], "val": []}
    for label, count in enumerate(train_counts):
        for part, number in (("train", count), ("val", held_out_per_class)):
            for index in range(number):
                relative = f"{part}/c{label:03d}/{index}.jpg"
                write_jpeg(folder / relative, seed=1000 * label + index)
                lines[part].append(f"{relative} {label}")
    for split, part in (("train", "train"), ("val", "val"), ("test", "val")):
        (folder / f"{prefix}_{split}.txt").write_text("\n".join(lines[part]) + "\n")


@pytest.fixture
def imagenet_like(tmp_path):
    write_list_dataset(tmp_path / "ImageNet_LT", "ImageNet_LT", [6, 3, 1], held_out_per_class=2)
    return tmp_path


def test_list_dataset_reads_samples_and_applies_standard_transforms(imagenet_like):
    train = data.build_dataset("imagenet-lt", root=imagenet_like)
    assert len(train) == 10 and train.train_counts.tolist() == [6, 3, 1]
    assert train.classes == ["c000", "c001", "c002"]
    assert train.samples[0] == (imagenet_like / "ImageNet_LT" / "train/c000/0.jpg", 0)
    image, label = train[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32 and label == 0
    names = [type(step).__name__ for step in train.transform.transforms]
    assert names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    test = data.build_dataset("imagenet-lt", root=imagenet_like, split="test")
    assert test.class_counts.tolist() == [2, 2, 2] and test.train_counts.tolist() == [6, 3, 1]
    assert [type(step).__name__ for step in test.transform.transforms][:2] == ["Resize", "CenterCrop"]
    assert torch.equal(test[0][0], test[0][0])


def test_inat_transforms_have_no_color_jitter_and_use_inat_statistics(tmp_path):
    write_list_dataset(tmp_path / "iNaturalist18", "iNaturalist18", [3, 2], held_out_per_class=1)
    train = data.build_dataset("inat2018", root=tmp_path)
    names = [type(step).__name__ for step in train.transform.transforms]
    assert "ColorJitter" not in names and "RandomResizedCrop" in names
    assert train.spec.mean == (0.466, 0.471, 0.380)
    assert len(data.build_dataset("inat2018", root=tmp_path, split="test")) == 2


def test_file_loader_batches_keep_the_last_partial_batch_and_shard(imagenet_like):
    train = data.build_dataset("imagenet-lt", root=imagenet_like)
    loader = data.make_loader(train, batch_size=4, train=False, num_workers=0)
    sizes = [len(y) for _, y in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3
    x, _ = next(iter(loader))
    assert x.shape == (4, 3, 224, 224)
    sharded = [data.make_loader(train, batch_size=4, train=True, num_workers=0, num_replicas=2, rank=rank)
               for rank in (0, 1)]
    for shard in sharded:
        shard.set_epoch(1)
    assert sorted(sum((list(shard.sampler) for shard in sharded), [])) == list(range(10))
    first = data.make_loader(train, batch_size=4, train=True, num_workers=0, seed=3)
    orders = []
    for epoch in (0, 1, 0):
        first.set_epoch(epoch)
        orders.append(list(first.sampler))
    assert orders[0] == orders[2] and orders[0] != orders[1]


def test_file_loader_with_persistent_workers(imagenet_like):
    test = data.build_dataset("imagenet-lt", root=imagenet_like, split="test")
    loader = data.make_loader(test, batch_size=3, train=False, num_workers=1)
    assert loader.loader.persistent_workers
    labels = [y.tolist() for _, y in loader]
    assert labels == [[0, 0, 1], [1, 2, 2]]
    assert [y.tolist() for _, y in loader] == labels


def test_malformed_list_line_names_file_line_and_text(imagenet_like):
    list_file = imagenet_like / "ImageNet_LT" / "ImageNet_LT_train.txt"
    lines = list_file.read_text().splitlines()
    lines[2] = "train/c000/2.jpg"
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as error:
        data.build_dataset("imagenet-lt", root=imagenet_like)
    assert f"{list_file}:3: 'train/c000/2.jpg': expected 'relative/path label'" in str(error.value)


def test_missing_list_file_says_where_and_where_lists_come_from(tmp_path):
    with pytest.raises(UserError) as error:
        data.build_dataset("places-lt", root=tmp_path, split="val")
    assert str(tmp_path / "Places_LT" / "Places_LT_train.txt") in str(error.value)
    assert "OLTR" in str(error.value)
    with pytest.raises(UserError, match="classifier-balancing"):
        data.format_dataset_stats("inat2018", root=tmp_path)


def test_missing_images_are_reported_clearly(imagenet_like):
    (imagenet_like / "ImageNet_LT" / "train" / "c001" / "0.jpg").unlink()
    train = data.build_dataset("imagenet-lt", root=imagenet_like)
    with pytest.raises(UserError, match="c001/0.jpg"):
        train[6]
    (imagenet_like / "ImageNet_LT" / "train" / "c000" / "0.jpg").unlink()
    with pytest.raises(UserError, match="first line"):
        data.build_dataset("imagenet-lt", root=imagenet_like)


def test_list_dir_can_differ_from_the_image_folder(imagenet_like, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    for name in ("train", "val", "test"):
        (imagenet_like / "ImageNet_LT" / f"ImageNet_LT_{name}.txt").rename(lists / f"ImageNet_LT_{name}.txt")
    assert len(data.build_dataset("imagenet-lt", root=imagenet_like, split="val", list_dir=lists)) == 6


# ---------------------------------------------------------------------------------------------------
# The real list files (read only, never copied)
# ---------------------------------------------------------------------------------------------------

def _reference(relative: str) -> Path:
    path = REFERENCE_LISTS / relative
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


@pytest.mark.parametrize("relative, lines, classes, largest, smallest", [
    ("Places_LT/Places_LT_train.txt", 62_500, 365, 4_980, 5),
    ("Places_LT/Places_LT_val.txt", 7_300, 365, 20, 20),
    ("Places_LT/Places_LT_test.txt", 36_500, 365, 100, 100),
    ("ImageNet_LT/ImageNet_LT_val.txt", 20_000, 1_000, 20, 20),
    ("ImageNet_LT/ImageNet_LT_test.txt", 50_000, 1_000, 50, 50),
    ("iNaturalist18/iNaturalist18_val.txt", 24_426, 8_142, 3, 3),
])
def test_real_list_files_parse_with_the_published_sizes(relative, lines, classes, largest, smallest):
    paths, labels = data.read_list_file(_reference(relative))
    counts = np.bincount(labels)
    print(f"{relative}: {len(paths)} lines, {len(counts)} classes, largest {counts.max()}, smallest {counts.min()}")
    assert (len(paths), len(counts), counts.max(), counts.min()) == (lines, classes, largest, smallest)


def test_places_lt_stats_from_the_real_list_files():
    _reference("Places_LT/Places_LT_train.txt")
    text = data.format_dataset_stats("places-lt", root=REFERENCE_LISTS)
    assert "62500" in text and "36500" in text and "airfield" in text
    assert "achieved imbalance factor (largest / smallest train class): 996" in text


# ---------------------------------------------------------------------------------------------------
# imagefolder-lt
# ---------------------------------------------------------------------------------------------------

def write_image_folder(root: Path, classes: int, per_class: int, part: str = "") -> None:
    for label in range(classes):
        for index in range(per_class):
            write_jpeg(root / part / f"class{label}" / f"{index}.png", seed=label * 100 + index)


def test_imagefolder_lt_writes_reuses_and_protects_its_list_files(tmp_path):
    tree = tmp_path / "flowers"
    write_image_folder(tree, classes=4, per_class=12)
    train = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4, seed=0)
    train_list = tree / "lt_lists" / "flowers_IF4_exp_seed0_train.txt"
    test_list = tree / "lt_lists" / "flowers_IF4_exp_seed0_test.txt"
    assert train_list.is_file() and test_list.is_file()
    assert train.train_counts.tolist() == data.longtail_counts(4, 12 - 12 // 5, 4)
    assert train.classes == ["class0", "class1", "class2", "class3"]
    paths, labels = data.read_list_file(train_list)
    assert np.array_equal(labels, train.targets) and paths[0].startswith("class0/")
    test = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4, seed=0, split="test")
    assert test.class_counts.tolist() == [2, 2, 2, 2]
    assert not set(paths) & set(data.read_list_file(test_list)[0])
    stamp = train_list.stat().st_mtime_ns
    again = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4, seed=0)
    assert train_list.stat().st_mtime_ns == stamp and np.array_equal(again.targets, train.targets)
    # Existing list files are the split (issue 10: a changed tree must not break earlier runs): an edited
    # list is read as it is and never rewritten.
    train_list.write_text(train_list.read_text() + "class0/0.png 0\n")
    edited = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4, seed=0)
    assert len(edited) == len(train) + 1 and train_list.read_text().endswith("class0/0.png 0\n")
    data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=4, seed=1)
    assert (tree / "lt_lists" / "flowers_IF4_exp_seed1_train.txt").is_file()


def test_imagefolder_lt_uses_train_and_val_folders(tmp_path):
    tree = tmp_path / "tree"
    write_image_folder(tree, classes=3, per_class=8, part="train")
    write_image_folder(tree, classes=3, per_class=2, part="val")
    lists = tmp_path / "my_lists"
    train = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=8, profile="step", list_dir=lists)
    assert train.train_counts.tolist() == [8, 1, 1]
    val = data.build_dataset("imagefolder-lt", root=tree, imbalance_factor=8, profile="step", list_dir=lists,
                             split="val")
    assert all(path.parts[-3] == "val" for path, _ in val.samples) and len(val) == 6
    assert sorted(p.name for p in lists.iterdir()) == [f"tree_IF8_step_seed0_{s}.txt" for s in ("test", "train", "val")]
    text = data.format_dataset_stats("imagefolder-lt", root=tree, imbalance_factor=8, profile="step")
    assert "class0" in text and "no list file written" in text


def test_imagefolder_lt_without_a_tree_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="ImageFolder tree"):
        data.build_dataset("imagefolder-lt", root=tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------
# Tensor loader and its augmentation
# ---------------------------------------------------------------------------------------------------

def coded_image() -> torch.Tensor:
    """3x32x32 uint8 image whose channels 0 and 1 hold row+1 and column+1, so crops and flips can be read."""
    rows = torch.arange(1, 33, dtype=torch.uint8)[:, None].expand(32, 32)
    cols = torch.arange(1, 33, dtype=torch.uint8)[None, :].expand(32, 32)
    return torch.stack([rows, cols, torch.full((32, 32), 255, dtype=torch.uint8)])


def decode_crops(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flipped) of crops of coded_image() padded by 4; checks every row/column code agrees."""
    images = images.long()
    flipped = images[:, 1, 16, 15] > images[:, 1, 16, 16]
    dy = images[:, 0, 16, 16] - 1 - 12
    dx = torch.where(flipped, images[:, 1, 16, 16] - 1 - 11, images[:, 1, 16, 16] - 1 - 12)
    padded = torch.nn.functional.pad(coded_image().long(), (4, 4, 4, 4))
    for i in range(len(images)):
        crop = padded[:, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        assert torch.equal(images[i, :2], (crop.flip(2) if flipped[i] else crop)[:2])
    return dy, dx, flipped


def cell_counts(dy, dx, flipped) -> np.ndarray:
    return np.bincount((dy * 9 + dx + 81 * flipped.long()).numpy(), minlength=162)


def test_augment_batch_is_torchvision_random_crop_and_flip_in_distribution():
    from torchvision import transforms

    samples = 6480  # 40 per (dy, dx, flip) cell
    ours = data.augment_batch(coded_image().expand(samples, -1, -1, -1), 4, True, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    reference = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()])
    theirs = torch.stack([reference(coded_image()) for _ in range(samples)])
    ours_cells, theirs_cells = cell_counts(*decode_crops(ours)), cell_counts(*decode_crops(theirs))
    assert stats.chisquare(ours_cells).pvalue > 1e-3
    assert stats.chisquare(theirs_cells).pvalue > 1e-3
    assert stats.chi2_contingency(np.stack([ours_cells, theirs_cells])).pvalue > 1e-3
    assert (ours_cells > 0).all()


def test_augmentation_is_independent_per_image_in_a_batch():
    dy, dx, flipped = decode_crops(data.augment_batch(coded_image().expand(400, -1, -1, -1), 4, True,
                                                      torch.Generator().manual_seed(1)))
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 70
    assert 0.4 < flipped.float().mean() < 0.6
    # consecutive images are independent: a contingency test on (dy of image i, dy of image i+1)
    pairs = np.zeros((9, 9))
    np.add.at(pairs, (dy[:-1].numpy(), dy[1:].numpy()), 1)
    assert stats.chi2_contingency(pairs).pvalue > 1e-3


def coded_dataset(count: int) -> data.TensorLTDataset:
    """A CIFAR-spec tensor dataset of coded images whose channel 2 holds the image index."""
    images = coded_image().repeat(count, 1, 1, 1)
    images[:, 2] = torch.arange(count, dtype=torch.uint8)[:, None, None]
    targets = np.arange(count) % 10
    return data.TensorLTDataset(data.DATASETS["cifar10-lt"], "train", images, targets,
                                [str(c) for c in range(10)], np.bincount(targets, minlength=10))


def denormalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(data.DATASETS["cifar10-lt"].mean).view(1, 3, 1, 1)
    std = torch.tensor(data.DATASETS["cifar10-lt"].std).view(1, 3, 1, 1)
    return (x * std + mean).mul(255).round().to(torch.uint8)


def epoch_batches(loader, epoch: int) -> list[torch.Tensor]:
    loader.set_epoch(epoch)
    return [x for x, _ in loader]


def test_tensor_loader_augments_per_image_and_is_deterministic():
    dataset = coded_dataset(200)
    loader = data.make_loader(dataset, batch_size=64, train=True, seed=11)
    assert isinstance(loader, data.TensorLoader) and len(loader) == 4
    first = epoch_batches(loader, 0)
    assert [len(x) for x in first] == [64, 64, 64, 8]
    images = denormalize(torch.cat(first))
    assert sorted(images[:, 2, 16, 16].tolist()) == list(range(200))  # channel 2 stays the index (no padding)
    dy, dx, _ = decode_crops(images)
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 40
    again = data.make_loader(dataset, batch_size=64, train=True, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(first, epoch_batches(again, 0)))
    assert not torch.equal(torch.cat(first), torch.cat(epoch_batches(loader, 1)))
    assert all(torch.equal(a, b) for a, b in zip(first, epoch_batches(loader, 0)))
    other_seed = data.make_loader(dataset, batch_size=64, train=True, seed=12)
    assert not torch.equal(torch.cat(first), torch.cat(epoch_batches(other_seed, 0)))


def test_tensor_loader_eval_mode_is_ordered_and_unaugmented():
    dataset = coded_dataset(10)
    loader = data.make_loader(dataset, batch_size=4, train=False, channels_last=True)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x = torch.cat([x for x, _ in batches])
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(denormalize(x), dataset.images)
    assert torch.cat([y for _, y in batches]).tolist() == dataset.targets.tolist()


def test_tensor_loader_shards_like_distributed_sampler():
    dataset = coded_dataset(10)
    seen = []
    for rank in range(3):
        loader = data.make_loader(dataset, batch_size=3, train=True, seed=2, num_replicas=3, rank=rank)
        batches = epoch_batches(loader, 5)
        indices = denormalize(torch.cat(batches))[:, 2, 16, 16].tolist()
        assert len(indices) == 4 == math.ceil(10 / 3) and len(loader) == 2
        seen += indices
    assert set(seen) == set(range(10))


def test_tensor_dataset_getitem_with_a_pil_transform():
    from torchvision import transforms

    train = data.build_dataset("digits-lt")
    train.transform = transforms.PILToTensor()
    image, label = train[0]
    assert image.shape == (1, 8, 8) and torch.equal(image, train.images[0]) and label == int(train.targets[0])


def test_file_loader_augmentation_depends_on_seed_and_epoch_only(imagenet_like):
    """A resumed run (fresh persistent workers, jumping straight to epoch 1) sees epoch 1's exact batches."""
    train = data.build_dataset("imagenet-lt", root=imagenet_like)

    def epoch_batches(loader, epoch):
        loader.set_epoch(epoch)
        return [x for x, _ in loader]

    straight = data.make_loader(train, batch_size=4, train=True, num_workers=1, seed=5)
    epoch0 = epoch_batches(straight, 0)
    epoch1 = epoch_batches(straight, 1)
    resumed = data.make_loader(train, batch_size=4, train=True, num_workers=1, seed=5)
    for a, b in zip(epoch1, epoch_batches(resumed, 1)):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, epoch1))
    other_seed = data.make_loader(train, batch_size=4, train=True, num_workers=1, seed=6)
    assert not all(torch.equal(a, b) for a, b in zip(epoch1, epoch_batches(other_seed, 1)))


def test_resized_cache_shrinks_images_keeps_lists_and_loads_as_the_dataset(imagenet_like, tmp_path):
    from PIL import Image

    out = tmp_path / "cache_root"
    cache = data.cache_dataset("imagenet-lt", out, root=imagenet_like, short_side=5, workers=1)
    original = data.build_dataset("imagenet-lt", root=imagenet_like)
    cached = data.build_dataset("imagenet-lt", root=out)
    assert cached.targets.tolist() == original.targets.tolist()
    for (source, _), (copy_path, _) in zip(original.samples, cached.samples):
        with Image.open(source) as big, Image.open(copy_path) as small:
            assert min(big.size) == 10 and min(small.size) == 5
    assert cached[0][0].shape == (3, 224, 224)
    assert cache == (out / "ImageNet_LT").resolve()
    with pytest.raises(UserError, match="image folder itself"):
        data.cache_dataset("imagenet-lt", imagenet_like, root=imagenet_like)
    with pytest.raises(UserError, match="not a list-file dataset"):
        data.cache_dataset("digits-lt", out)


# ----------------------------------------------------------------------------------------------------
# Class order and head size of the long-tail recipe
# ----------------------------------------------------------------------------------------------------

def test_ldam_class_order_gives_class_i_the_ith_count():
    counts = data.longtail_counts(10, 144, 10)
    assert data.order_counts(counts, "ldam", seed=5).tolist() == counts


def test_permuted_class_order_is_a_seeded_permutation_of_the_same_counts():
    counts = data.longtail_counts(10, 144, 10)
    orders = {seed: data.order_counts(counts, "permuted", seed).tolist() for seed in range(6)}
    for order in orders.values():
        assert sorted(order, reverse=True) == counts
    assert orders[0] == data.order_counts(counts, "permuted", 0).tolist()
    assert len({tuple(order) for order in orders.values()}) > 1, "the permutation depends on the seed"
    head_classes = {order.index(max(order)) for order in orders.values()}
    assert len(head_classes) > 1, "different seeds give the largest count to different classes"


def test_permuted_digits_split_has_the_permuted_counts_and_matching_shot_groups():
    recipe = data.LongTail(10.0, "exp", "permuted")
    split = data.build_dataset("digits-lt", seed=3, class_order="permuted")
    available = np.bincount(data.build_dataset("digits-lt", imbalance_factor=1, seed=3).targets, minlength=10)
    assert split.class_counts.tolist() == recipe.class_counts(available, 3).tolist()
    assert split.train_counts.tolist() == split.class_counts.tolist()
    most = int(np.argmax(split.class_counts))
    assert most in split.shot_groups["many"]


def test_max_per_class_sets_the_head_size_and_refuses_more_than_the_data_has():
    split = data.build_dataset("digits-lt", max_per_class=50)
    assert split.class_counts.max() == 50 and split.class_counts.min() == 5
    with pytest.raises(UserError, match="max_per_class 10000 exceeds"):
        data.build_dataset("digits-lt", max_per_class=10000)
    with pytest.raises(UserError, match="class order"):
        data.build_dataset("digits-lt", class_order="random")
    with pytest.raises(UserError, match="fixed by its official list files"):
        data.build_dataset("imagenet-lt", class_order="permuted")
