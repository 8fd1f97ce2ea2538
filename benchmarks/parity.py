"""Accuracy parity: the fast path trains as well as the usual loop, on real Fashion-MNIST-LT, over seeds.

Data: the real Fashion-MNIST images at their native 28x28x1 (no padding/replication to the CIFAR shape:
the comparison needs the same input on both sides, not CIFAR's shape). A balanced pool of the first
--train-per-class training images of every class (6000 = the full set) is written in the real IDX
format to a temporary data root; the engine's `build_dataset("fashion-mnist-lt")` makes it long-tailed
(IF --imbalance-factor, exp, LDAM-DRW selection, data seed 0) and the usual loop trains on exactly that
subset. The test set is the first --test-per-class test images of every class (balanced).

Both sides train ResNet-32 (in_channels 1) with the same protocol: SGD 0.9, wd 2e-4, lr 0.1, batch 128,
the paper's warm-up and step decay scaled to --epochs, the dataset's augmentation (pad 2 + random
28x28 crop + horizontal flip, normalize). Seeds vary initialisation, order and augmentation.
- fast: `nbn_tutorial.train.train` (TensorLoader, batched augmentation, the device's fast switches);
- usual: `reference_loop.train_reference` (PIL + RandomCrop/Flip/ToTensor/Normalize, DataLoader workers).

Verdict: the difference of mean balanced accuracies is "within seed-to-seed spread" when it is at most
--spread-k (default 2) standard errors of that difference, sqrt(s_fast^2/n + s_usual^2/n).

    python benchmarks/parity.py --device cpu                     # 3 seeds, small pool: ~10 min on 2 cores
    python benchmarks/parity.py --device cuda --train-per-class 6000 --test-per-class 1000 --epochs 200 --seeds 5
"""
from __future__ import annotations

import argparse
import gzip
import math
import statistics
import struct
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench_utils import (add_device_argument, environment_line, format_table, ratio_line, read_metric_rows,
                         resolve_device)
from reference_loop import scaled_schedule, train_reference

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {"train-images-idx3-ubyte": 0x803, "train-labels-idx1-ubyte": 0x801,
             "t10k-images-idx3-ubyte": 0x803, "t10k-labels-idx1-ubyte": 0x801}


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped or not)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        content = file.read()
    magic, = struct.unpack(">I", content[:4])
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
    return np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """Write a uint8 array as an (uncompressed) IDX file, as torchvision's MNIST readers expect."""
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` items of every class, in their original order."""
    keep = np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in np.unique(labels)])
    return np.sort(keep)


def write_fashion_pool(source: Path, data_root: Path, train_per_class: int, test_per_class: int) -> None:
    """Write a balanced Fashion-MNIST pool in IDX format to <data_root>/FashionMNIST/raw (torchvision's layout)."""
    arrays = {}
    for name in IDX_FILES:
        candidates = [source / f"{name}.gz", source / name]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            raise SystemExit(f"error: {source} has neither {name}.gz nor {name}; pass --fashion-gz with Fashion-MNIST's files")
        arrays[name] = read_idx(found)
    raw = data_root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        keep = first_per_class(arrays[f"{split}-labels-idx1-ubyte"], per_class)
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{split}-{kind}"
            write_idx(raw / name, arrays[name][keep], IDX_FILES[name])


def run_fast(data_root: Path, out_dir: Path, seed: int, args: argparse.Namespace) -> dict:
    """Train with the project's engine; returns its final metrics row."""
    from nbn_tutorial import train

    warmup, milestones = scaled_schedule(args.epochs)
    config = train.config_from_dict({
        "dataset": "fashion-mnist-lt", "data_root": str(data_root), "imbalance_factor": args.imbalance_factor,
        "model": "resnet32", "norm": args.norm, "loss": "ce", "seed": seed, "epochs": args.epochs,
        "warmup_epochs": warmup, "milestones": list(milestones), "device": args.device,
        "save_every": args.epochs}, "parity.py")
    run_dir = train.train(config, out_dir, overwrite=True, progress=False)
    return read_metric_rows(run_dir)[-1]


def run_usual(data_root: Path, seed: int, args: argparse.Namespace) -> dict:
    """Train the usual loop on exactly the engine's LT subset and test set; returns its final metrics."""
    from nbn_tutorial.data import build_dataset

    train_set = build_dataset("fashion-mnist-lt", root=data_root, imbalance_factor=args.imbalance_factor)
    test_set = build_dataset("fashion-mnist-lt", root=data_root, imbalance_factor=args.imbalance_factor, split="test")
    spec = train_set.spec
    to_hwc = lambda images: images.permute(0, 2, 3, 1).numpy()  # noqa: E731
    return train_reference(to_hwc(train_set.images), train_set.targets, to_hwc(test_set.images), test_set.targets,
                           args.epochs, seed, args.device, norm=args.norm, pad=spec.pad, flip=spec.flip,
                           mean=spec.mean, std=spec.std, shot_rule=spec.shot_rule, num_workers=args.workers)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdict(fast: Sequence[float], usual: Sequence[float], k: float) -> str:
    """Whether the mean difference is within k standard errors of the difference of means."""
    (mean_f, std_f), (mean_u, std_u) = mean_std(fast), mean_std(usual)
    standard_error = math.sqrt(std_f**2 / len(fast) + std_u**2 / len(usual))
    difference = mean_f - mean_u
    if standard_error == 0:
        return f"difference {100 * difference:+.2f} points; one seed or no spread: run more seeds for a verdict"
    within = abs(difference) <= k * standard_error
    return (f"difference fast - usual = {100 * difference:+.2f} points, {abs(difference) / standard_error:.2f} standard "
            f"errors ({100 * standard_error:.2f} points) -> {'within' if within else 'OUTSIDE'} seed-to-seed spread "
            f"(|difference| <= {k:g} standard errors)")


def main(argv: Sequence[str] | None = None) -> None:
    """Train both sides for every seed and print the per-seed table, mean ± std and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for both sides")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-per-class", type=int, default=1000, help="balanced pool per class before the LT selection")
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--imbalance-factor", type=float, default=100.0)
    parser.add_argument("--norm", default="bn", choices=("bn", "nbn"))
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the usual loop")
    parser.add_argument("--spread-k", type=float, default=2.0, help="standard errors allowed for 'within spread'")
    parser.add_argument("--fashion-gz", type=Path, default=DEBIAN_FASHION_MNIST,
                        help="folder with Fashion-MNIST's four IDX files (.gz or not); default: the Debian copy")
    args = parser.parse_args(argv)
    device = resolve_device(args.device, args.threads)
    args.device = device.type
    print(environment_line(device))
    rows, fast_acc, usual_acc, fast_s, usual_s = [], [], [], 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="nbn-parity-") as tmp:
        data_root = Path(tmp) / "data"
        write_fashion_pool(args.fashion_gz, data_root, args.train_per_class, args.test_per_class)
        from nbn_tutorial.data import build_dataset

        train_size = len(build_dataset("fashion-mnist-lt", root=data_root, imbalance_factor=args.imbalance_factor))
        print(f"# Fashion-MNIST-LT 28x28x1: pool {args.train_per_class}/class -> {train_size} LT train images "
              f"(IF {args.imbalance_factor:g}), {10 * args.test_per_class} test; ResNet-32 {args.norm}, "
              f"{args.epochs} epochs (warm-up/decay {scaled_schedule(args.epochs)}), seeds 0..{args.seeds - 1}", flush=True)
        for seed in range(args.seeds):
            start = time.perf_counter()
            fast = run_fast(data_root, Path(tmp) / f"fast-{seed}", seed, args)
            fast_s += time.perf_counter() - start
            start = time.perf_counter()
            usual = run_usual(data_root, seed, args)
            usual_s += time.perf_counter() - start
            fast_acc.append(fast["balanced_acc"])
            usual_acc.append(usual["balanced_acc"])
            rows.append([seed, fast["balanced_acc"], usual["balanced_acc"], fast["few_acc"], usual["few_acc"]])
            print(f"  seed {seed}: fast {fast['balanced_acc']:.4f}, usual {usual['balanced_acc']:.4f}", flush=True)
    print(format_table(["seed", "fast balanced acc", "usual balanced acc", "fast few acc", "usual few acc"], rows))
    (mean_f, std_f), (mean_u, std_u) = mean_std(fast_acc), mean_std(usual_acc)
    print(f"balanced accuracy, mean ± std over {args.seeds} seeds: fast {100 * mean_f:.2f} ± {100 * std_f:.2f} %, "
          f"usual {100 * mean_u:.2f} ± {100 * std_u:.2f} %")
    print(f"verdict: {verdict(fast_acc, usual_acc, args.spread_k)}")
    print(ratio_line("fast / usual mean balanced accuracy", mean_f / mean_u))
    print(f"(wall: fast {fast_s:.0f} s, usual {usual_s:.0f} s for {args.seeds} seeds)")


if __name__ == "__main__":
    main()
