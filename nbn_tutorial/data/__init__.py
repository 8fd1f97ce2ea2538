"""Long-tailed data: LDAM-DRW counts and selection, shot groups, the dataset registry and loaders.

Small-image datasets (digits, Fashion-MNIST, CIFAR) are "tensor" datasets: the uint8 images live in one
tensor and `TensorLoader` augments whole batches on the training device. Large-image datasets
(ImageNet-LT, Places-LT, iNaturalist 2018, any ImageFolder tree) are "files" datasets described by list
files (`relative/path label` per line) and are read by a torch DataLoader (`FileLoader`).

Modules: ``longtail`` (counts, selection, shot groups), ``specs`` (the registry), ``datasets`` (dataset
objects), ``tensor_sources`` (digits/Fashion-MNIST/CIFAR arrays), ``files`` and ``imagefolder`` (list-file
datasets), ``build`` (build_dataset), ``samplers`` (per-epoch sample order), ``loaders``, ``cache``
(pre-resized images) and ``tables`` (CLI text).
"""
from nbn_tutorial.data.build import build_dataset
from nbn_tutorial.data.cache import build_resized_cache, cache_dataset
from nbn_tutorial.data.datasets import FileLTDataset, LTDataset, TensorLTDataset, file_transform
from nbn_tutorial.data.files import read_list_file
from nbn_tutorial.data.imagefolder import LIST_FOLDER
from nbn_tutorial.data.loaders import FileLoader, TensorLoader, augment_batch, make_loader
from nbn_tutorial.data.longtail import (CLASS_ORDERS, FEW_THRESHOLD, MANY_THRESHOLD, PROFILES, SHOT_NAMES,
                                        SHOT_RULES, LongTail, longtail_counts, order_counts, parse_imbalance_factor,
                                        parse_profile, select_longtail, shot_groups, shot_rule_text)
from nbn_tutorial.data.samplers import (DistributedOrder, EpochPermutation, EpochSampler, SeededSamples,
                                        epoch_generator)
from nbn_tutorial.data.specs import (DATASETS, IMAGENET_MEAN, IMAGENET_STD, INAT_LISTS, OLTR_LISTS, DatasetSpec,
                                     get_spec, resolve_data_root)
from nbn_tutorial.data.tables import format_dataset_list, format_dataset_stats
from nbn_tutorial.data.tensor_sources import DEBIAN_FASHION_MNIST, DIGITS_TEST_PER_CLASS, FASHION_MNIST_FILES

__all__ = [
    # long-tailed counts, selection and shot groups
    "PROFILES", "CLASS_ORDERS", "SHOT_RULES", "SHOT_NAMES", "MANY_THRESHOLD", "FEW_THRESHOLD", "LongTail",
    "parse_imbalance_factor", "parse_profile", "longtail_counts", "order_counts", "select_longtail", "shot_groups",
    "shot_rule_text",
    # registry
    "DatasetSpec", "DATASETS", "get_spec", "resolve_data_root", "IMAGENET_MEAN", "IMAGENET_STD", "OLTR_LISTS",
    "INAT_LISTS",
    # datasets
    "LTDataset", "TensorLTDataset", "FileLTDataset", "file_transform", "build_dataset",
    "DEBIAN_FASHION_MNIST", "FASHION_MNIST_FILES", "DIGITS_TEST_PER_CLASS", "read_list_file", "LIST_FOLDER",
    # sample order and loaders
    "EpochSampler", "DistributedOrder", "EpochPermutation", "SeededSamples", "epoch_generator",
    "augment_batch", "TensorLoader", "FileLoader", "make_loader",
    # pre-resized cache and CLI text
    "build_resized_cache", "cache_dataset", "format_dataset_list", "format_dataset_stats",
]
