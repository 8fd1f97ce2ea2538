"""Long-tailed data: LDAM-DRW counts and selection, shot groups, the dataset registry and loaders.

Small-image datasets (digits, Fashion-MNIST, CIFAR) are "tensor" datasets: the uint8 images live in one
tensor and `TensorLoader` augments whole batches on the training device. Large-image datasets
(ImageNet-LT, Places-LT, iNaturalist 2018, any ImageFolder tree) are "files" datasets described by list
files (`relative/path label` per line) and are read by a torch DataLoader (`FileLoader`).

Modules: ``longtail`` (counts, selection, shot groups), ``specs`` (the registry), ``datasets`` (dataset
objects), ``tensor_sources`` (digits/Fashion-MNIST/CIFAR arrays), ``files`` and ``imagefolder`` (list-file
datasets; ``tree_walk`` finds a tree's images without loops or double counts), ``build`` (build_dataset),
``samplers`` (per-epoch sample order), ``loaders``, ``cache`` (pre-resized images), ``images`` (opening one
image: what counts as unreadable), ``check`` (`data check`), ``tables`` (CLI text) and ``summaries`` (tables and sentences for people).
"""
from nbn_tutorial.data.build import build_dataset
from nbn_tutorial.data.cache import CACHE_MANIFEST, build_resized_cache, cache_dataset
from nbn_tutorial.data.check import CheckResult, check_dataset, check_images, dataset_images, format_check
from nbn_tutorial.data.datasets import FileLTDataset, LTDataset, TensorLTDataset, file_transform
from nbn_tutorial.data.files import read_list_file
from nbn_tutorial.data.imagefolder import LIST_FOLDER, default_list_dir, tree_classes, tree_images, user_list_dir
from nbn_tutorial.data.images import UnreadableImage, check_image, read_rgb
from nbn_tutorial.data.loaders import FileLoader, TensorLoader, augment_batch, make_loader
from nbn_tutorial.data.longtail import (CLASS_ORDERS, class_groups, FEW_THRESHOLD, MANY_THRESHOLD, PROFILES, SHOT_NAMES,
                                        SHOT_RULE_CHOICES, SHOT_RULES, LongTail, longtail_counts, order_counts,
                                        parse_imbalance_factor, parse_profile, resolve_shot_rule, select_held_out,
                                        select_longtail,
                                        shot_groups, shot_rule_text)
from nbn_tutorial.data.samplers import (SAMPLER_REGISTRY, SAMPLERS, ClassAwareSampler, DistributedOrder,
                                        EpochPermutation, EpochSampler, SeededSamples, epoch_generator, make_sampler,
                                        register_sampler, sampled_class_counts)
from nbn_tutorial.data.summaries import (benchmark_shot_groups, describe_split, formula_benchmarks,
                                         longtail_counts_table, split_table)
from nbn_tutorial.data.specs import (DATASETS, IMAGENET_MEAN, IMAGENET_STD, INAT_LISTS, OLTR_LISTS, DatasetSpec,
                                     get_spec, register_dataset, resolve_data_root, resolve_val_per_class, spec_with_options)
from nbn_tutorial.data.tables import format_dataset_list, format_dataset_stats
from nbn_tutorial.data.tensor_sources import DEBIAN_FASHION_MNIST, DIGITS_TEST_PER_CLASS, FASHION_MNIST_FILES

__all__ = [
    # long-tailed counts, selection and shot groups
    "PROFILES", "CLASS_ORDERS", "SHOT_RULES", "SHOT_NAMES", "MANY_THRESHOLD", "FEW_THRESHOLD", "LongTail",
    "parse_imbalance_factor", "parse_profile", "longtail_counts", "class_groups", "order_counts", "select_longtail", "select_held_out", "shot_groups",
    "shot_rule_text", "SHOT_RULE_CHOICES", "resolve_shot_rule",
    # registry
    "DatasetSpec", "DATASETS", "get_spec", "register_dataset", "resolve_data_root", "IMAGENET_MEAN", "IMAGENET_STD", "OLTR_LISTS",
    "INAT_LISTS", "spec_with_options", "resolve_val_per_class",
    # datasets
    "LTDataset", "TensorLTDataset", "FileLTDataset", "file_transform", "build_dataset",
    "DEBIAN_FASHION_MNIST", "FASHION_MNIST_FILES", "DIGITS_TEST_PER_CLASS", "read_list_file", "LIST_FOLDER",
    "default_list_dir", "user_list_dir", "tree_classes", "tree_images",
    # reading images and checking them
    "read_rgb", "check_image", "UnreadableImage", "CheckResult", "check_dataset", "check_images", "dataset_images",
    "format_check",
    # sample order and loaders
    "EpochSampler", "DistributedOrder", "EpochPermutation", "SeededSamples", "epoch_generator",
    "ClassAwareSampler", "SAMPLER_REGISTRY", "SAMPLERS", "make_sampler", "register_sampler", "sampled_class_counts",
    "augment_batch", "TensorLoader", "FileLoader", "make_loader",
    # tables and sentences of long-tailed data (notebook 01)
    "longtail_counts_table", "formula_benchmarks", "benchmark_shot_groups", "split_table", "describe_split",
    # pre-resized cache and CLI text
    "build_resized_cache", "cache_dataset", "CACHE_MANIFEST", "format_dataset_list", "format_dataset_stats",
]
