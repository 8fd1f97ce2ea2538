"""Images/s of the tensor fast path vs the usual DataLoader + PIL pipeline, CIFAR-shaped data, same model.

Fast path: `nbn_tutorial.data.TensorLoader` (uint8 dataset as one tensor on the device, batched
pad-4 crop + flip + normalize). Usual path: a CIFAR-style Dataset of PIL images with RandomCrop(32, 4) +
RandomHorizontalFlip + ToTensor + Normalize and a DataLoader with --workers processes (persistent).
Both feed the SAME ResNet-32 training step (forward, backward, SGD); a second measurement iterates the
loaders alone. One round = one pass over --images images per side; rounds interleaved, medians
compared. Target on CPU: fast/usual >= 1.3 with the training step.

    python benchmarks/loader.py --device cpu
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_utils import (add_device_argument, environment_line, format_table, interleaved_times, median,
                         paired_ratio, ratio_line, resolve_device, spread)
from reference_loop import CIFAR10_MEAN, CIFAR10_STD, PILImageDataset, reference_transforms
from synthetic import cifar_arrays, cifar_tensor_dataset

TARGET_RATIO = 1.3


def reference_loader(images, targets, batch_size: int, workers: int, device: torch.device, seed: int) -> DataLoader:
    """The usual CIFAR pipeline: PIL dataset, RandomCrop(32, 4) + flip + ToTensor + Normalize, worker processes."""
    dataset = PILImageDataset(images, targets, reference_transforms(32, 4, True, CIFAR10_MEAN, CIFAR10_STD, True))
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed))


def epoch_runner(batches: Callable[[], Iterable], device: torch.device, channels_last: bool,
                 step: Callable[[torch.Tensor, torch.Tensor], None] | None) -> Callable[[], None]:
    """A closure doing one pass over `batches()`: move each batch to the device, then `step` it (if any)."""
    def run() -> None:
        for images, labels in batches():
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            if step is not None:
                step(images, labels)

    return run


def training_step(device: torch.device, amp: bool, channels_last: bool, seed: int) -> Callable:
    """One ResNet-32 SGD step (momentum 0.9, wd 2e-4) on a batch; one model shared by both pipelines."""
    from nbn_tutorial.models import build_model

    torch.manual_seed(seed)
    model = build_model("resnet32", 10).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both pipelines with and without the training step; print the table and the ratios."""
    from nbn_tutorial.data import TensorLoader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--images", type=int, default=2560, help="images per timed pass (per side)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the usual pipeline")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per pipeline (median taken)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast in the training step (default: on for cuda)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last batches and model (default: on for cuda)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = resolve_device(args.device, args.threads)
    amp = device.type == "cuda" if args.amp is None else args.amp
    channels_last = device.type == "cuda" if args.channels_last is None else args.channels_last
    print(environment_line(device))
    print(f"# {args.images} CIFAR-shaped images per pass, batch {args.batch_size}, usual pipeline with "
          f"{args.workers} workers, {args.repeats} rounds (+1 warm-up), amp={amp}, channels_last={channels_last}")

    images, targets = cifar_arrays(per_class=-(-args.images // 10), seed=args.seed)
    images, targets = images[:args.images], targets[:args.images]
    fast = TensorLoader(cifar_tensor_dataset(images, targets), batch_size=args.batch_size, train=True,
                        device=device, seed=args.seed, channels_last=channels_last)
    usual = reference_loader(images, targets, args.batch_size, args.workers, device, args.seed)
    epochs = iter(range(10**9))

    def fast_batches():
        fast.set_epoch(next(epochs))
        return fast

    step = training_step(device, amp, channels_last, args.seed)
    rows, lines = [], []
    for label, model_step in (("training step", step), ("loader only", None)):
        sides = {"tensor fast path": epoch_runner(fast_batches, device, channels_last, model_step),
                 f"DataLoader+PIL ({args.workers} workers)": epoch_runner(lambda: usual, device, channels_last,
                                                                         model_step)}
        times = interleaved_times(sides, args.repeats, device)
        fast_name, usual_name = list(sides)
        for name, values in times.items():
            rates = [args.images / t for t in values]
            rows.append([label, name, median(rates), spread(rates)])
        ratio = paired_ratio(times[usual_name], times[fast_name])  # time ratio = images/s ratio
        lines.append(ratio_line(f"tensor fast path / DataLoader+PIL images/s, {label}", ratio,
                                TARGET_RATIO if model_step is not None else None))
    print(format_table(["measured", "pipeline", "images/s (median)", "min..max"], rows))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
