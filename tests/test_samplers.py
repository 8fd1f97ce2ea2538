"""Class-aware samplers on real data: class frequencies (chi-square tests, fixed seeds), determinism, resume, DDP."""
import numpy as np
import pytest
import torch
from scipy import stats

from nbn_tutorial import data
from nbn_tutorial.errors import UserError
from image_trees import write_oltr_tree


@pytest.fixture(scope="module")
def digits():
    return data.build_dataset("digits-lt")   # 585 images, 144 down to 14 per class


def epoch_labels(sampler, labels: np.ndarray, epoch: int) -> np.ndarray:
    sampler.set_epoch(epoch)
    return labels[sampler.indices().numpy()]


def test_class_balanced_frequencies_are_uniform_within_sampling_error(digits):
    sampler = data.make_sampler("class-balanced", digits.targets, seed=0)
    assert len(sampler) == 10 * 144   # C × n_max draws per epoch
    for epoch in range(3):
        counts = np.bincount(epoch_labels(sampler, digits.targets, epoch), minlength=10)
        assert stats.chisquare(counts).pvalue > 1e-3, counts                      # uniform within sampling error
        assert stats.chisquare(counts, digits.class_counts / 585 * counts.sum()).pvalue < 1e-12  # not the LT mix


def test_square_root_sampling_follows_the_square_root_of_the_counts(digits):
    sampler = data.make_sampler("square-root", digits.targets, seed=1)
    counts = np.bincount(epoch_labels(sampler, digits.targets, 0), minlength=10)
    expected = np.sqrt(digits.class_counts) / np.sqrt(digits.class_counts).sum() * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3, counts
    assert stats.chisquare(counts).pvalue < 1e-12


def test_a_class_repeats_its_samples_only_after_drawing_each_once(digits):
    sampler = data.make_sampler("class-balanced", digits.targets, seed=2)
    indices = sampler.indices().numpy()
    for label in range(10):
        drawn = np.bincount(indices[digits.targets[indices] == label], minlength=len(digits.targets))
        members = drawn[digits.targets == label]
        assert members.max() - members.min() <= 1, (label, members)


def test_the_order_depends_on_seed_and_epoch_only_so_a_resumed_run_reads_the_same(digits):
    straight = data.make_sampler("class-balanced", digits.targets, seed=3)
    orders = []
    for epoch in range(3):
        straight.set_epoch(epoch)
        orders.append(list(straight))
    resumed = data.make_sampler("class-balanced", digits.targets, seed=3)
    resumed.set_epoch(2)
    assert list(resumed) == orders[2]
    assert orders[0] != orders[1]
    other = data.make_sampler("class-balanced", digits.targets, seed=4)
    assert list(other) != orders[0]


def test_ranks_read_disjoint_shards_of_one_global_draw(digits):
    global_order = data.make_sampler("square-root", digits.targets, seed=5)
    global_order.set_epoch(7)
    expected = global_order.indices()
    shards = []
    for rank in range(3):
        sampler = data.make_sampler("square-root", digits.targets, seed=5, num_replicas=3, rank=rank)
        sampler.set_epoch(7)
        shard = sampler.indices()
        assert len(shard) == len(sampler) == 480
        shards.append(shard)
    interleaved = torch.stack(shards, dim=1).flatten()
    assert torch.equal(interleaved, expected)   # 1440 = 3 × 480: no padding needed


def test_the_tensor_loader_draws_class_balanced_batches_with_their_labels(digits):
    loader = data.make_loader(digits, batch_size=64, train=True, seed=0, sampler="class-balanced")
    assert len(loader) == 23
    labels = torch.cat([y for _, y in loader]).numpy()
    assert len(labels) == 1440 and stats.chisquare(np.bincount(labels, minlength=10)).pvalue > 1e-3
    loader.sampler.set_epoch(0)
    assert np.array_equal(labels, digits.targets[loader.sampler.indices().numpy()])


def test_the_file_loader_samples_by_class_and_augments_each_repeat_differently(tmp_path):
    write_oltr_tree(tmp_path, [6, 3, 1], held_out_per_class=1)
    train = data.build_dataset("imagenet-lt", root=tmp_path, image_size=16)
    loader = data.make_loader(train, batch_size=6, train=True, seed=0, num_workers=0, sampler="class-balanced")
    loader.set_epoch(0)
    images, labels = map(torch.cat, zip(*loader))
    assert len(labels) == 18 and np.bincount(labels.numpy(), minlength=3).min() >= 2
    rare = images[labels == 2]   # the class with one image, drawn several times
    assert not torch.equal(rare[0], rare[1])
    loader.set_epoch(0)
    assert torch.equal(torch.cat([x for x, _ in loader]), images)


def test_unknown_samplers_and_class_aware_evaluation_are_user_errors(digits):
    with pytest.raises(UserError, match="class-balanced"):
        data.make_loader(digits, batch_size=8, train=True, sampler="class-balancd")
    with pytest.raises(UserError, match="training loaders only"):
        data.make_loader(digits, batch_size=8, train=False, sampler="class-balanced")
