"""The usual way to train a CIFAR model, as a baseline to time and compare the project's fast path against.

A torchvision-CIFAR-style Dataset of PIL images, RandomCrop(32, padding=4) + RandomHorizontalFlip +
ToTensor + Normalize, a DataLoader with workers, eager fp32 on the device, and the LDAM-DRW protocol
(SGD momentum 0.9, wd 2e-4, lr 0.1, linear warm-up over 5 epochs, lr x0.01 from epoch 160 and x0.0001 from
epoch 180, batch 128, last partial batch kept, evaluation every epoch): what LDAM-DRW and the official NBN
code do. Same model builder as the engine (`nbn_tutorial.models.build_model`).

Importable (`train_reference(...)`) and a script:
    python benchmarks/reference_loop.py --epochs 2 --device cpu      # on CIFAR-10-LT-shaped synthetic data
"""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
PAPER_EPOCHS = 200
PAPER_WARMUP = 5
PAPER_MILESTONES = (160, 180)


class PILImageDataset(Dataset):
    """Like torchvision.datasets.CIFAR10: uint8 images held in memory (N,H,W,C or N,H,W), PIL images out."""

    def __init__(self, images: np.ndarray, targets: Sequence[int], transform=None):
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]  # PIL builds grayscale ("L") images from H x W arrays
        self.data = np.ascontiguousarray(images, dtype=np.uint8)
        self.targets = [int(t) for t in targets]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def reference_transforms(image_size: int, pad: int, flip: bool, mean: Sequence[float], std: Sequence[float],
                         train: bool) -> transforms.Compose:
    """The standard PIL pipeline: RandomCrop(size, pad) + RandomHorizontalFlip + ToTensor + Normalize (train)."""
    steps: list = []
    if train and pad > 0:
        steps.append(transforms.RandomCrop(image_size, padding=pad))
    if train and flip:
        steps.append(transforms.RandomHorizontalFlip())
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def scaled_schedule(epochs: int) -> tuple[int, tuple[int, int]]:
    """The paper's warm-up (5) and decay epochs (160, 180) of 200, scaled to `epochs` (warm-up at least 1,
    decay epochs strictly increasing)."""
    scale = epochs / PAPER_EPOCHS
    warmup = max(1, round(PAPER_WARMUP * scale))
    first, second = (max(1, round(m * scale)) for m in PAPER_MILESTONES)
    return warmup, (first, max(first + 1, second))


def protocol_lr(epoch: int, base_lr: float, warmup: int, milestones: Sequence[int]) -> float:
    """LDAM-DRW's adjust_learning_rate for 0-based `epoch`: linear warm-up, then x0.01 and x0.0001 steps."""
    epoch_1 = epoch + 1
    if epoch_1 <= warmup:
        return base_lr * epoch_1 / warmup
    if epoch_1 > milestones[1]:
        return base_lr * 1e-4
    if epoch_1 > milestones[0]:
        return base_lr * 1e-2
    return base_lr


@dataclass
class EpochRecord:
    """One epoch of the reference loop: lr, train loss/accuracy, test metrics, seconds spent."""
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    test_acc: float
    balanced_acc: float
    train_s: float
    eval_s: float


def per_class_accuracy(predictions: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of every class (NaN for a class absent from `targets`)."""
    correct = np.bincount(targets[predictions == targets], minlength=num_classes).astype(float)
    total = np.bincount(targets, minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correct / total


def shot_accuracies(class_acc: np.ndarray, train_counts: np.ndarray, shot_rule: str) -> dict[str, float]:
    """Mean class accuracy of the many/medium/few groups of the project's shot-group rule."""
    from nbn_tutorial.data import shot_groups

    groups = shot_groups(train_counts, rule=shot_rule)
    return {f"{name}_acc": float(np.nanmean(class_acc[idx])) if len(idx) else float("nan")
            for name, idx in groups.items()}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int) -> tuple[float, np.ndarray]:
    """Overall accuracy and per-class accuracy on a loader, the usual way (eval mode, no_grad)."""
    model.eval()
    predictions, targets = [], []
    for images, labels in loader:
        logits = model(images.to(device, non_blocking=True))
        predictions.append(logits.argmax(1).cpu())
        targets.append(labels)
    predicted = torch.cat(predictions).numpy()
    truth = torch.cat(targets).numpy()
    return float((predicted == truth).mean()), per_class_accuracy(predicted, truth, num_classes)


def train_reference(images_uint8: np.ndarray, targets: Sequence[int], test_images: np.ndarray,
                    test_targets: Sequence[int], epochs: int, seed: int, device: str | torch.device = "cpu", *,
                    num_classes: int | None = None, norm: str = "bn", model_name: str = "resnet32",
                    batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 2e-4,
                    warmup_epochs: int | None = None, milestones: Sequence[int] | None = None,
                    pad: int = 4, flip: bool = True, mean: Sequence[float] = CIFAR10_MEAN,
                    std: Sequence[float] = CIFAR10_STD, num_workers: int = 2, eval_batch_size: int = 100,
                    shot_rule: str = "absolute", max_batches: int | None = None, progress: bool = False) -> dict:
    """Train `model_name` the usual way on uint8 images (N,H,W,C like CIFAR10.data) and return its metrics.

    The schedule defaults to the paper's, scaled to `epochs` (see `scaled_schedule`). Returns the final
    test metrics (test_acc, balanced_acc, many/medium/few_acc), `history` (one EpochRecord per epoch) and
    timings: train_s, eval_s, wall_s, train_images_per_s. `max_batches` cuts each epoch short (smoke runs).
    """
    from nbn_tutorial.models import build_model

    device = torch.device(device)
    images_uint8, test_images = np.asarray(images_uint8), np.asarray(test_images)
    targets_np, test_targets_np = np.asarray(targets, dtype=np.int64), np.asarray(test_targets, dtype=np.int64)
    num_classes = num_classes or int(max(targets_np.max(), test_targets_np.max()) + 1)
    in_channels = 1 if images_uint8.ndim == 3 else images_uint8.shape[-1]
    image_size = images_uint8.shape[1]
    default_warmup, default_milestones = scaled_schedule(epochs)
    warmup = default_warmup if warmup_epochs is None else warmup_epochs
    milestones = tuple(milestones or default_milestones)

    torch.manual_seed(seed)
    np.random.seed(seed)
    train_set = PILImageDataset(images_uint8, targets_np,
                                reference_transforms(image_size, pad, flip, mean, std, train=True))
    test_set = PILImageDataset(test_images, test_targets_np,
                               reference_transforms(image_size, pad, flip, mean, std, train=False))
    loader_options = dict(num_workers=num_workers, pin_memory=device.type == "cuda",
                          persistent_workers=num_workers > 0)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=False,
                              generator=torch.Generator().manual_seed(seed), **loader_options)
    test_loader = DataLoader(test_set, batch_size=eval_batch_size, shuffle=False, **loader_options)

    model = build_model(model_name, num_classes, norm=norm, in_channels=in_channels).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss()
    train_counts = np.bincount(targets_np, minlength=num_classes)

    history: list[EpochRecord] = []
    wall_start = time.perf_counter()
    for epoch in range(epochs):
        epoch_lr = protocol_lr(epoch, lr, warmup, milestones)
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr
        model.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for batch_index, (images, labels) in enumerate(train_loader):
            if max_batches is not None and batch_index >= max_batches:
                break
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"reference loop: loss became {loss_sum} in epoch {epoch + 1}")
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        test_acc, class_acc = evaluate(model, test_loader, device, num_classes)
        eval_s = time.perf_counter() - start
        record = EpochRecord(epoch + 1, epoch_lr, loss_sum / seen, correct / seen, test_acc,
                             float(np.nanmean(class_acc)), train_s, eval_s)
        history.append(record)
        if progress:
            print(f"  reference epoch {record.epoch}/{epochs}: loss {record.train_loss:.3f} "
                  f"balanced acc {record.balanced_acc:.3f} ({train_s:.1f}s train, {eval_s:.1f}s eval)", flush=True)
    wall_s = time.perf_counter() - wall_start

    final = history[-1]
    train_s = sum(r.train_s for r in history)
    trained_images = len(train_set) if max_batches is None else min(len(train_set), max_batches * batch_size)
    return {"test_acc": final.test_acc, "balanced_acc": final.balanced_acc,
            **shot_accuracies(class_acc, train_counts, shot_rule),
            "per_class_acc": class_acc.tolist(), "history": history, "train_s": train_s,
            "eval_s": sum(r.eval_s for r in history), "wall_s": wall_s,
            "train_images_per_s": trained_images * epochs / train_s}


def main(argv: Sequence[str] | None = None) -> None:
    """Script entry: train the reference loop on CIFAR-10-LT-shaped synthetic data and print its speed."""
    from bench_utils import add_device_argument, environment_line, resolve_device
    from synthetic import cifar_lt_arrays

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--norm", default="bn", choices=("bn", "nbn"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device, args.threads)
    print(environment_line(device))
    train_x, train_y, test_x, test_y = cifar_lt_arrays(seed=args.seed)
    result = train_reference(train_x, train_y, test_x, test_y, args.epochs, args.seed, device,
                             norm=args.norm, num_workers=args.workers, progress=True)
    print(f"reference loop: {result['train_images_per_s']:.1f} train images/s, "
          f"{result['wall_s']:.1f} s for {args.epochs} epoch(s) with evaluation")


if __name__ == "__main__":
    main()
