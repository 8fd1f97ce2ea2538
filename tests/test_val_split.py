"""The held-out val split of the in-memory datasets: drawn from the training images the long tail leaves
unused, disjoint from train and test (by index and by content), and never changing a training subset."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
from cli_tools import run_cli
import torch

from nbn_tutorial import data, train
from nbn_tutorial.data.tensor_sources import load_arrays
from nbn_tutorial.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def hashes(images) -> set[str]:
    return {hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() for image in np.asarray(images)}


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    if not all((DEBIAN_FASHION / f"{name}.gz").is_file() for name in data.FASHION_MNIST_FILES):
        pytest.skip("the Debian Fashion-MNIST copy (apt-get install dataset-fashion-mnist) is absent")
    return tmp_path_factory.mktemp("fashion")


def splits(name, root=None, **options):
    return {split: data.build_dataset(name, root=root, split=split, **options) for split in ("train", "val", "test")}


@pytest.mark.parametrize("seed", [0, 3])
def test_digits_val_is_disjoint_from_train_and_test_by_index_and_by_content(seed):
    arrays = load_arrays("digits-lt", Path("unused"), seed, False)
    recipe = data.LongTail(data.DATASETS["digits-lt"].default_imbalance_factor)
    kept = recipe.select(arrays.train_targets, 10, seed)
    held = recipe.held_out(arrays.train_targets, 10, seed, 30)
    assert not set(kept.tolist()) & set(held.tolist())
    parts = splits("digits-lt", seed=seed)
    assert np.array_equal(parts["val"].images.numpy(), arrays.train_images[held])
    assert not hashes(parts["val"].images) & hashes(parts["train"].images)
    assert not hashes(parts["val"].images) & hashes(parts["test"].images)
    leftover = np.bincount(arrays.train_targets, minlength=10) - parts["train"].class_counts
    assert parts["val"].class_counts.tolist() == np.minimum(leftover, 30).tolist()   # the leftovers, at most 30
    assert parts["val"].train_counts.tolist() == parts["train"].train_counts.tolist()


def test_the_val_size_never_changes_the_training_subset():
    reference = data.build_dataset("digits-lt", seed=2, val_per_class=0)
    for size in (None, 1, 30, 1000):
        other = data.build_dataset("digits-lt", seed=2, val_per_class=size)
        assert torch.equal(other.images, reference.images) and np.array_equal(other.targets, reference.targets)
    assert len(data.build_dataset("digits-lt", split="val", val_per_class=0)) == 0
    with pytest.raises(UserError, match="val_per_class"):
        data.build_dataset("digits-lt", split="val", val_per_class=-1)


def test_the_training_subset_is_ldam_drws_selection_with_or_without_val():
    targets = np.repeat(np.arange(10), 50)
    counts = data.longtail_counts(10, 40, 10)
    kept = data.select_longtail(targets, counts, seed=4)
    held = data.select_held_out(targets, counts, 7, seed=4)
    assert not set(kept.tolist()) & set(held.tolist())
    assert np.bincount(targets[held], minlength=10).tolist() == [7] * 10
    # the same seeded order continues: a larger val split extends a smaller one
    assert set(held.tolist()) <= set(data.select_held_out(targets, counts, 10, seed=4).tolist())


def test_fashion_val_is_class_balanced_and_disjoint(fashion_root):
    parts = splits("fashion-mnist-lt", root=fashion_root)
    assert parts["train"].class_counts.tolist() == data.longtail_counts(10, 5000, 100)   # CIFAR-10-LT's counts
    assert parts["val"].class_counts.tolist() == [1000] * 10
    train_hashes, val_hashes = hashes(parts["train"].images), hashes(parts["val"].images)
    assert len(val_hashes) == 10000 and not val_hashes & train_hashes
    assert not val_hashes & hashes(parts["test"].images)
    study_subset = data.build_dataset("fashion-mnist-lt", root=fashion_root, max_per_class=1000,
                                      class_order="permuted", seed=1)
    with_val = data.build_dataset("fashion-mnist-lt", root=fashion_root, max_per_class=1000, class_order="permuted",
                                  seed=1, val_per_class=0)
    assert torch.equal(study_subset.images, with_val.images)   # the committed study's subsets are unchanged


def test_data_stats_shows_the_val_split():
    result = run_cli("data", "stats", "digits-lt")
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("class"))
    assert header.split() == ["class", "name", "train", "val", "test", "group"]
    total = next(line for line in result.stdout.splitlines() if line.startswith("total")).split()
    val = data.build_dataset("digits-lt", split="val")
    assert int(total[2]) == len(val) and "disjoint from train and test" in result.stdout


def test_a_quick_digits_run_selects_best_pt_on_val(tmp_path):
    config = train.load_config("quick_digits_bn", ["epochs=2", "warmup_epochs=1"])
    run = train.train(config, tmp_path / "run", progress=False)
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert state["best"]["split"] == "val"
    metrics = train.read_metrics(run)
    assert metrics["val_balanced_acc"].notna().all()
    assert state["best"]["value"] == pytest.approx(metrics["val_balanced_acc"].max())


def test_tau_is_searched_on_val_and_on_test_only_when_asked(tmp_path):
    config = train.load_config("quick_digits_bn", ["epochs=1", "warmup_epochs=1"])
    run = train.train(config, tmp_path / "run", progress=False)
    on_val = train.evaluate_checkpoint(run / "last.pt", device="cpu", tau_norm="auto")
    assert on_val["tau_split"] == "val" and "val split" in on_val["tau_note"]
    on_test = train.evaluate_checkpoint(run / "last.pt", device="cpu", tau_norm="auto", tau_split="test")
    assert on_test["tau_split"] == "test" and "optimistic" in on_test["tau_note"]
    no_val = train.train(train.load_config("quick_digits_bn", ["epochs=1", "warmup_epochs=1", "val_per_class=0"]),
                         tmp_path / "no-val", progress=False)
    with pytest.raises(UserError, match="--tau-split test"):
        train.evaluate_checkpoint(no_val / "last.pt", device="cpu", tau_norm="auto")
