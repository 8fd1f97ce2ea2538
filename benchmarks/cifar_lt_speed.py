"""CIFAR-10-LT paper protocol: the project's engine (fast path) vs the usual loop, same data, same device.

Both train ResNet-32 (NBN by default) on the same CIFAR-10-LT-shaped data: 12,406 train images (IF 100,
exp profile, LDAM-DRW selection) and 10,000 test images, 32x32x3. The data is written in torchvision's
real CIFAR-10 on-disk format and read by the engine through `build_dataset("cifar10-lt")` (only
torchvision's md5 check is skipped: the files are synthetic, pixel content does not change speed).

- fast: `nbn_tutorial.train.train` with the preset `cifar10-lt_resnet32_<norm>_ce` (the 200-epoch
  protocol) stopped after --epochs (`stop_after_epochs`), runtime switches at the device's fast defaults
  (or the --fast-compile variants); evaluation every epoch.
- usual: `reference_loop.train_reference` (PIL dataset, RandomCrop + flip + ToTensor + Normalize,
  DataLoader with --workers, eager fp32), same schedule, evaluation every epoch.

Prints the steady epoch wall time (median over the epochs after the first: training + evaluation, and
for the engine its checkpoint writing too, timed between its metric rows), train images/s over that
time, the ratio, and each side's 200-epoch wall time extrapolated as: measured wall (start-up and
compilation included) + remaining epochs x the steady epoch.

    python benchmarks/cifar_lt_speed.py --device cpu --epochs 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench_utils import (add_device_argument, environment_line, format_table, median, ratio_line, read_metric_rows,
                         resolve_device)
from reference_loop import PAPER_EPOCHS, PAPER_MILESTONES, PAPER_WARMUP, train_reference
from synthetic import trust_cifar_files, write_cifar10_folder

GPU_TARGET_RATIO = 15.0
GPU_TARGET_WALL_S = 60.0


@dataclass
class SideTiming:
    """One measured run: label, wall seconds of every epoch (the first includes start-up), total wall, train images."""
    label: str
    epoch_s: list[float]
    wall_s: float
    train_images: int

    @property
    def steady_epoch_s(self) -> float:
        """Median epoch time without the first epoch (start-up, compilation), if there is more than one."""
        return median(self.epoch_s[1:] if len(self.epoch_s) > 1 else self.epoch_s)

    @property
    def images_per_s(self) -> float:
        """Train images per second of steady epoch wall time (evaluation included)."""
        return self.train_images / self.steady_epoch_s

    def extrapolated_wall_s(self, total_epochs: int = PAPER_EPOCHS) -> float:
        """Wall time of the full protocol: measured wall plus the remaining epochs at the steady epoch time."""
        return self.wall_s + (total_epochs - len(self.epoch_s)) * self.steady_epoch_s


class MetricsWatcher:
    """Notes the wall-clock moment each new row lands in a run's metrics.jsonl (polling every few ms).

    The engine appends one row per evaluated epoch and then writes its checkpoint, so the gaps between
    rows are whole epochs as a user waits for them: training, evaluation and checkpoint writing.
    """

    def __init__(self, run_dir: Path, interval: float = 0.005):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.interval = interval
        self.row_times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _rows(self) -> int:
        try:
            return self.path.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            now, rows = time.perf_counter(), self._rows()
            self.row_times += [now] * (rows - len(self.row_times))
            self._stop.wait(self.interval)

    def __enter__(self) -> MetricsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_engine(data_root: Path, out_dir: Path, args: argparse.Namespace, compile_mode: str) -> SideTiming:
    """Train with the project's engine on `data_root` for --epochs of the 200-epoch preset; epoch walls from its metrics."""
    from nbn_tutorial import train

    overrides = [f"data_root={data_root}", f"device={args.device}", f"seed={args.seed}",
                 f"stop_after_epochs={args.epochs}", f"compile={compile_mode}"]
    config = train.load_config(f"cifar10-lt_resnet32_{args.norm}_ce", overrides)
    start = time.perf_counter()
    with MetricsWatcher(out_dir) as watcher:
        run_dir = train.train(config, out_dir, overwrite=True, progress=False)
    wall = time.perf_counter() - start
    rows = read_metric_rows(run_dir)
    if len(watcher.row_times) != len(rows):
        raise RuntimeError(f"saw {len(watcher.row_times)} metric rows appear but the run has {len(rows)}")
    epoch_s = [b - a for a, b in zip([start, *watcher.row_times], watcher.row_times)]
    runtime = train.resolve_runtime(config, train.resolve_device(config.device)).describe()
    own_times = ", ".join(f"{row['time_s']:.2f}" for row in rows)
    print(f"  fast ({runtime}): balanced acc after {len(rows)} epochs {rows[-1]['balanced_acc']:.3f}; "
          f"engine's own epoch times (train + eval, no checkpoint) {own_times} s", flush=True)
    train_images = len(train.build_datasets(config, ("train",))["train"])
    return SideTiming(f"engine, compile={compile_mode}", epoch_s, wall, train_images)


def run_reference(data_root: Path, args: argparse.Namespace, device: torch.device) -> SideTiming:
    """Train the usual loop on the same LT split (loaded from the same files) with the same schedule."""
    from nbn_tutorial.data import build_dataset

    train_set = build_dataset("cifar10-lt", root=data_root)
    test_set = build_dataset("cifar10-lt", root=data_root, split="test")
    to_hwc = lambda images: images.permute(0, 2, 3, 1).numpy()  # noqa: E731  CIFAR10.data layout
    result = train_reference(to_hwc(train_set.images), train_set.targets, to_hwc(test_set.images), test_set.targets,
                             args.epochs, args.seed, device, norm=args.norm, warmup_epochs=PAPER_WARMUP,
                             milestones=PAPER_MILESTONES, num_workers=args.workers)
    print(f"  usual ({args.workers} workers, eager fp32): balanced acc after {args.epochs} epochs "
          f"{result['balanced_acc']:.3f}", flush=True)
    epochs = [r.train_s + r.eval_s for r in result["history"]]
    epochs[0] += result["wall_s"] - sum(epochs)  # start-up (model, loaders, first workers) counts in the first epoch
    return SideTiming(f"usual loop, DataLoader+PIL, {args.workers} workers", epochs, result["wall_s"], len(train_set))


def main(argv: Sequence[str] | None = None) -> None:
    """Run both sides (alternating over --repeats), print the table, the ratio and the 200-epoch extrapolation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: cpu 2, cuda 8)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating order")
    parser.add_argument("--norm", default="nbn", choices=("bn", "nbn"))
    parser.add_argument("--fast-compile", default=None,
                        help="comma-separated engine `compile` values to time (default: auto; on cuda auto,reduce-overhead)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader workers of the usual loop (LDAM-DRW uses 4)")
    parser.add_argument("--train-per-class", type=int, default=5000,
                        help="balanced pool per class before the LT selection (5000: the real 12,406-image split)")
    parser.add_argument("--test-per-class", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.train_per_class < 100:
        parser.error("--train-per-class must be at least 100 (imbalance factor 100 needs one image in the rarest class)")
    device = resolve_device(args.device, args.threads)
    args.device = device.type
    args.epochs = args.epochs or (8 if device.type == "cuda" else 2)
    variants = (args.fast_compile or ("auto,reduce-overhead" if device.type == "cuda" else "auto")).split(",")
    print(environment_line(device))

    trust_cifar_files()
    with tempfile.TemporaryDirectory(prefix="nbn-cifar-speed-") as tmp:
        data_root = Path(tmp) / "data"
        write_cifar10_folder(data_root, args.train_per_class, args.test_per_class, seed=args.seed)
        print(f"# CIFAR-10-LT-shaped data ({args.train_per_class}/class pool, IF 100 exp, "
              f"{10 * args.test_per_class} test), {args.epochs} epochs per run of the 200-epoch protocol, "
              f"norm={args.norm}, evaluation every epoch", flush=True)
        timings: dict[str, list[SideTiming]] = {}
        for repeat in range(args.repeats):
            sides = [*(("fast", v) for v in variants), ("usual", None)]
            for kind, variant in (sides if repeat % 2 == 0 else sides[::-1]):
                if kind == "fast":
                    timing = run_engine(data_root, Path(tmp) / f"run-{variant}", args, variant)
                else:
                    timing = run_reference(data_root, args, device)
                timings.setdefault(timing.label, []).append(timing)

    # With --repeats, each side is represented by its median run (by steady epoch time).
    best = {label: sorted(runs, key=lambda t: t.steady_epoch_s)[len(runs) // 2] for label, runs in timings.items()}
    rows = [[t.label, len(t.epoch_s), t.epoch_s[0], t.steady_epoch_s, t.images_per_s, t.wall_s,
             t.extrapolated_wall_s() / 60] for t in best.values()]
    print(format_table(["side", "epochs", "1st epoch s (+start-up)", "steady epoch s", "train images/s", "wall s",
                        f"{PAPER_EPOCHS}-epoch wall min (extrapolated)"], rows))
    usual = next(t for label, t in best.items() if label.startswith("usual loop"))
    on_cuda = device.type == "cuda"
    for label, timing in best.items():
        if label.startswith("engine"):
            print(ratio_line(f"{label} / usual, images/s", timing.images_per_s / usual.images_per_s,
                             GPU_TARGET_RATIO if on_cuda else 1.0))
            wall = timing.extrapolated_wall_s()
            verdict = f" (target <= {GPU_TARGET_WALL_S:g} s on one H100: {'met' if wall <= GPU_TARGET_WALL_S else 'NOT met'})"
            print(f"{label}: {PAPER_EPOCHS}-epoch wall extrapolated to {wall:.0f} s ({wall / 3600:.2f} h)"
                  f"{verdict if on_cuda else ''}")


if __name__ == "__main__":
    main()
