"""Can the ImageNet-LT / iNaturalist input pipeline feed one H100 (>= 2,500 images/s for ResNet-50)?

1. Generates a tree of ImageNet-sized JPEGs (sizes around 500x375, structured random content so files
   are ~110 KB like ImageNet's) in the real ImageNet-LT layout: <root>/ImageNet_LT/train/<wnid>/*.JPEG
   plus the list file ImageNet_LT_train.txt.
2. Measures images/s of the project's real pipeline (`build_dataset("imagenet-lt")` + `make_loader`:
   PIL decode + RandomResizedCrop(224) + flip + ColorJitter + normalize in DataLoader workers) for each
   worker count, and extrapolates images/s per CPU core and the cores needed for 2,500 images/s.
3. Builds the practical fix, a pre-resized cache (short side 256, JPEG; `build_resized_cache`), and
   measures the same pipeline on it.
4. Measures torchvision.io.decode_jpeg + tensor transforms in one process on --device: on cuda this is
   GPU decode (nvJPEG), the other fix.

    python benchmarks/imagenet_pipeline.py --device cpu
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench_utils import add_device_argument, environment_line, format_table, median, ratio_line, resolve_device
from nbn_tutorial.data import build_resized_cache  # after bench_utils, which puts the repo on sys.path

H100_RESNET50_IMAGES_PER_S = 2500
TYPICAL_SIZES = ((500, 375), (375, 500), (500, 333), (500, 400), (333, 500), (500, 500), (640, 480))
TYPICAL_WEIGHTS = (0.45, 0.15, 0.15, 0.08, 0.07, 0.05, 0.05)
LIST_FILE = "ImageNet_LT_train.txt"
FOLDER = "ImageNet_LT"


# ----------------------------------------------------------------------------------------------
# Generated JPEG tree
# ----------------------------------------------------------------------------------------------

def structured_image(width: int, height: int, rng: np.random.Generator):
    """A photo-like RGB PIL image: smooth colour field, solid shapes, multi-scale texture (~110 KB as JPEG q90)."""
    from PIL import Image, ImageDraw

    base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(12):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(10, 120))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = [x - r, y - r, x + r, y + r] if rng.random() < 0.5 else [x - r, y - r // 2, x + r, y + r // 2]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(base, dtype=np.float32)
    for scale, amplitude, channels in ((1, 18, 1), (3, 14, 3), (12, 12, 3)):
        noise = rng.normal(0, amplitude, (height // scale + 1, width // scale + 1, channels))
        pixels += np.repeat(np.repeat(noise, scale, 0), scale, 1)[:height, :width]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_image(job: tuple[str, int, int, int]) -> int:
    path, width, height, seed = job
    structured_image(width, height, np.random.default_rng(seed)).save(path, "JPEG", quality=90)
    return os.path.getsize(path)


def generate_jpeg_tree(root: Path, num_images: int, num_classes: int = 10, seed: int = 0,
                       workers: int | None = None) -> tuple[Path, float]:
    """Write <root>/ImageNet_LT/train/<wnid>/<i>.JPEG and its list file; returns (folder, mean KB per file)."""
    folder = Path(root) / FOLDER
    rng = np.random.default_rng(seed)
    sizes = rng.choice(len(TYPICAL_SIZES), size=num_images, p=TYPICAL_WEIGHTS)
    lines, jobs = [], []
    for index in range(num_images):
        label = index % num_classes
        relative = f"train/n{label:08d}/n{label:08d}_{index}.JPEG"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        width, height = TYPICAL_SIZES[sizes[index]]
        jobs.append((str(folder / relative), width, height, seed * 1_000_003 + index))
        lines.append(f"{relative} {label}\n")
    with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        total_bytes = sum(pool.map(_write_image, jobs, chunksize=8))
    (folder / LIST_FILE).write_text("".join(lines))
    return folder, total_bytes / num_images / 1024


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------

def loader_rate(data_root: Path, workers: int, batch_size: int, repeats: int, device: torch.device) -> list[float]:
    """Images/s of the project's train loader over the tree, one value per pass after a warm-up pass."""
    from nbn_tutorial.data import build_dataset, make_loader

    dataset = build_dataset("imagenet-lt", root=data_root)
    loader = make_loader(dataset, batch_size=batch_size, train=True, device=device, num_workers=workers)
    rates = []
    for epoch in range(1 + repeats):  # pass 0 starts the (persistent) workers and warms the page cache
        loader.set_epoch(epoch)
        start = time.perf_counter()
        for images, _ in loader:
            pass
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if epoch > 0:
            rates.append(len(dataset) / (time.perf_counter() - start))
    del loader
    return rates


def pil_decode_rate(paths: Sequence[Path]) -> float:
    """Images/s of PIL decode + RGB conversion alone, one process (the floor under every PIL pipeline)."""
    from PIL import Image

    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB")
    return len(paths) / (time.perf_counter() - start)


def tensor_decode_rate(paths: Sequence[Path], device: torch.device, batch_size: int) -> float:
    """Images/s of torchvision.io.decode_jpeg on `device` (nvJPEG on cuda) + RandomResizedCrop 224 + flip + normalize."""
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms import v2

    crop = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip()])
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255

    def one_pass() -> None:
        for start in range(0, len(paths), batch_size):
            encoded = [read_file(str(path)) for path in paths[start:start + batch_size]]
            decoded = decode_jpeg(encoded, device=device)
            batch = torch.stack([crop(image) for image in decoded]).float()
            (batch - mean) / std
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    one_pass()  # warm-up (CUDA context, nvJPEG handles)
    start = time.perf_counter()
    one_pass()
    return len(paths) / (time.perf_counter() - start)


def worker_counts(max_workers: int) -> list[int]:
    """0, 1, 2, 4, ... up to and including `max_workers`."""
    counts, value = [0], 1
    while value < max_workers:
        counts.append(value)
        value *= 2
    return counts + [max_workers] if max_workers > 0 else counts


def per_core_rate(rates: dict[int, float], cores: int) -> float:
    """Best images/s per busy CPU core over the worker counts (0 workers = the main process alone)."""
    return max(rate / max(1, min(workers, cores)) for workers, rate in rates.items())


def measure_tree(label: str, data_root: Path, counts: Sequence[int], args: argparse.Namespace,
                 device: torch.device) -> tuple[list[list[object]], dict[int, float]]:
    """Table rows and median rates of the loader on one tree for every worker count."""
    rows, medians = [], {}
    for workers in counts:
        rates = loader_rate(data_root, workers, args.batch_size, args.repeats, device)
        medians[workers] = median(rates)
        rows.append([label, workers, medians[workers], f"{min(rates):.4g}..{max(rates):.4g}"])
    return rows, medians


def feed_verdict(label: str, rates: dict[int, float], cores: int) -> list[str]:
    """Lines saying whether this machine feeds 2,500 images/s and how many cores would."""
    best_workers = max(rates, key=rates.get)
    per_core = per_core_rate(rates, cores)
    needed = math.ceil(H100_RESNET50_IMAGES_PER_S / per_core)
    feeds = rates[best_workers] >= H100_RESNET50_IMAGES_PER_S
    return [f"{label}: best {rates[best_workers]:.0f} images/s with {best_workers} workers on {cores} cores -> "
            f"{'feeds' if feeds else 'does NOT feed'} {H100_RESNET50_IMAGES_PER_S} images/s here",
            f"{label}: ~{per_core:.0f} images/s per core -> ~{needed} cores needed for {H100_RESNET50_IMAGES_PER_S} "
            f"images/s (a 16-core H100 box: ~{16 * per_core:.0f} images/s)"]


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the tree, measure the pipeline per worker count, build and measure the cache, print all."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--images", type=int, default=None,
                        help="JPEGs in the generated tree (default: 64 per worker of --max-workers, at least 320)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per worker count (median taken)")
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--short-side", type=int, default=256, help="short side of the pre-resized cache")
    parser.add_argument("--keep", default=None, help="generate into this folder and keep it (default: temporary)")
    args = parser.parse_args(argv)
    args.images = args.images or max(320, 64 * args.max_workers)
    device = resolve_device(args.device, args.threads)
    cores = os.cpu_count() or 1
    print(environment_line(device))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbn-imagenet-"))
    try:
        start = time.perf_counter()
        folder, mean_kb = generate_jpeg_tree(root / "original", args.images, args.classes)
        print(f"# generated {args.images} JPEGs (~500x375, mean {mean_kb:.0f} KB) in {time.perf_counter() - start:.1f} s; "
              f"loader batch {args.batch_size}, {args.repeats} timed passes per setting (+1 warm-up)")
        start = time.perf_counter()
        cache = build_resized_cache(folder, [folder / LIST_FILE], root / "cache" / FOLDER, args.short_side)
        cache_paths = sorted(cache.rglob("*.JPEG"))
        cache_kb = np.mean([p.stat().st_size for p in cache_paths]) / 1024
        print(f"# pre-resized cache (short side {args.short_side}, mean {cache_kb:.0f} KB) built in "
              f"{time.perf_counter() - start:.1f} s")

        counts = worker_counts(args.max_workers)
        original_rows, original = measure_tree("original JPEGs", root / "original", counts, args, device)
        cache_rows, cached = measure_tree(f"cache (short side {args.short_side})", root / "cache", counts, args, device)
        print(format_table(["tree", "workers", "images/s (median)", "min..max"], original_rows + cache_rows))

        original_paths = sorted(folder.rglob("*.JPEG"))
        decode_rows = [["PIL decode only, original", "cpu", pil_decode_rate(original_paths)],
                       ["PIL decode only, cache", "cpu", pil_decode_rate(cache_paths)],
                       ["decode_jpeg + crop/flip/normalize, original", device.type,
                        tensor_decode_rate(original_paths, device, args.batch_size)]]
        print(format_table(["one process", "device", "images/s"], decode_rows))
        print("\n".join(feed_verdict("original JPEGs", original, cores) + feed_verdict("pre-resized cache", cached, cores)))
        best = max(original, key=original.get)
        print(ratio_line(f"pre-resized cache / original images/s, {best} workers", cached[best] / original[best]))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
