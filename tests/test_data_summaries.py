"""Long-tailed data as tables and sentences (notebook 01's): the profiles' counts, the benchmarks' shot groups,
a real split's table and the sentences describing it."""
from __future__ import annotations

import numpy as np

from nbn_tutorial import data


def test_the_counts_table_is_the_formula_with_totals():
    table = data.longtail_counts_table(num_classes=10, max_per_class=5000, imbalance_factors=(100,))
    assert table["exp IF=100"].iloc[:10].tolist() == data.longtail_counts(10, 5000, 100, "exp")
    assert table["step IF=100"].iloc[:10].tolist() == data.longtail_counts(10, 5000, 100, "step")
    assert table.loc["total", "exp IF=100"] == sum(data.longtail_counts(10, 5000, 100, "exp"))


def test_the_formula_benchmarks_are_found_in_the_registry_not_by_name():
    assert data.formula_benchmarks() == ["cifar10-lt", "cifar100-lt"]
    table = data.benchmark_shot_groups(imbalance_factor=100)
    assert table.loc["cifar10-lt IF=100"].tolist() == [8, 2, 0]
    counts = data.longtail_counts(100, 500, 100, "exp")
    groups = data.shot_groups(counts, rule="absolute")
    assert table.loc["cifar100-lt IF=100"].tolist() == [len(groups[name]) for name in ("many", "medium", "few")]
    assert list(data.benchmark_shot_groups(10, names=["cifar10-lt"]).index) == ["cifar10-lt IF=10"]


def test_the_split_table_and_sentences_describe_the_real_split():
    train_split = data.build_dataset("digits-lt", imbalance_factor=10)
    test_split = data.build_dataset("digits-lt", imbalance_factor=10, split="test")
    table = data.split_table(train_split, test_split)
    assert table["train"].tolist() == train_split.class_counts.tolist()
    assert set(table["group"]) == {"many", "medium", "few"} and table.index.name == "class"
    text = data.describe_split(train_split, test_split)
    counts = train_split.class_counts
    assert f"has {counts.sum()} images in 10 classes" in text
    assert f"measured imbalance factor {counts.max() / counts.min():.1f}" in text
    balanced = test_split.class_counts.min() == test_split.class_counts.max()
    assert ("The test split is balanced" in text) == balanced


def test_class_groups_name_the_group_of_every_class():
    names = data.class_groups({"many": [0], "few": [2]}, 4)
    assert names.tolist() == ["many", "", "few", ""] and names.dtype == np.dtype(object)


def test_sampled_class_counts_count_one_epoch_of_each_sampler():
    train_split = data.build_dataset("digits-lt", imbalance_factor=10)
    counts = data.sampled_class_counts(train_split, seed=0, samplers=("instance", "square-root"))
    assert list(counts.columns) == ["class", "train_count", "instance", "square-root"]
    assert counts["instance"].tolist() == train_split.class_counts.tolist()
    assert counts["square-root"].sum() == 10 * train_split.class_counts.max()
