"""Loaders: batches of normalized float images and int64 labels on the training device.

Tensor datasets use :class:`TensorLoader` (the whole uint8 split on the device, augmented a batch at a
time); files datasets use :class:`FileLoader` (a torch DataLoader with workers). The sample order of
both comes from :mod:`nbn_tutorial.data.samplers`; a training loader's ``sampler`` names a registered
rule (``instance``, ``class-balanced``, ``square-root``), evaluation loaders read every sample once, in order.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from nbn_tutorial.data.datasets import FileLTDataset, LTDataset, TensorLTDataset
from nbn_tutorial.data.images import UnreadableImage, worker_sentence
from nbn_tutorial.data.samplers import (DistributedOrder, EpochPermutation, SeededSamples, check_sharding,
                                        make_sampler)
from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import positive_int
from torch.utils.data import DataLoader


def augment_batch(x_uint8: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad, crop back to HxW at an independent random offset per image, flip each image with p=0.5."""
    batch, channels, height, width = x_uint8.shape
    if pad == 0 and not flip:
        return x_uint8
    device = x_uint8.device
    padded = x_uint8.new_zeros(batch, channels, height + 2 * pad, width + 2 * pad)
    padded[:, :, pad:pad + height, pad:pad + width] = x_uint8
    draw_device = generator.device
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device).to(device)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=draw_device).to(device)
    rows = dy[:, None] + torch.arange(height, device=device)                # [B, H]
    cols = dx[:, None] + torch.arange(width, device=device)                 # [B, W]
    if flip:
        flipped = (torch.rand(batch, generator=generator, device=draw_device) < 0.5).to(device)
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    return padded[torch.arange(batch, device=device)[:, None, None, None],
                  torch.arange(channels, device=device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def _check_loader_options(batch_size: int, seed: int, num_replicas: int, rank: int, train: bool = True,
                          sampler: str = "instance") -> None:
    positive_int(batch_size, "batch size")
    check_sharding(seed, num_replicas, rank)
    if not train and sampler != "instance":
        raise UserError(f"an evaluation loader reads every sample once, in order; sampler={sampler!r} applies to "
                        "training loaders only")


class TensorLoader:
    """Batches of a tensor dataset kept on the device, with batched CIFAR-style augmentation when training."""

    def __init__(self, dataset: TensorLTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, channels_last: bool = False, sampler: str = "instance") -> None:
        _check_loader_options(batch_size, seed, num_replicas, rank, train, sampler)
        self.dataset = dataset
        self.sampler = (make_sampler(sampler, dataset.targets, seed=seed, num_replicas=num_replicas, rank=rank)
                        if train else EpochPermutation(len(dataset), shuffle=False, seed=seed,
                                                       num_replicas=num_replicas, rank=rank))
        self.device = torch.device(device)
        self.images = dataset.images.to(self.device)
        self.targets = torch.as_tensor(dataset.targets, dtype=torch.int64).to(self.device)
        shape = (1, -1, 1, 1)
        self.scale = (255 * torch.tensor(dataset.spec.std, dtype=torch.float32, device=self.device)).view(shape)
        self.shift = (255 * torch.tensor(dataset.spec.mean, dtype=torch.float32, device=self.device)).view(shape)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.num_replicas, self.rank, self.channels_last = num_replicas, rank, channels_last

    @property
    def epoch(self) -> int:
        """The epoch whose order and augmentation the next iteration uses."""
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle and augmentation the next iteration uses."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # One stream per (seed, epoch, rank): the shuffle draws first, the augmentation continues from it.
        generator = self.sampler.epoch_generator()
        order = self.sampler.indices(generator).to(self.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            images = self.images[index]
            if self.train:
                images = augment_batch(images, self.dataset.spec.pad, self.dataset.spec.flip, generator)
            x = (images.float() - self.shift) / self.scale
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.targets[index]


class _SkippingView(torch.utils.data.Dataset):
    """A files dataset whose unreadable images come back as (blank, label, path) instead of stopping the loader."""

    def __init__(self, view: FileLTDataset) -> None:
        self.view = view

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, item):
        try:
            image, label = self.view[item]
        except UnreadableImage:
            path, label = self.view.samples[item[0] if isinstance(item, tuple) else item]
            size = self.view.spec.image_size
            return torch.zeros(self.view.spec.channels, size, size), label, str(path)
        return image, label, ""


class FileLoader:
    """A torch DataLoader over a files dataset: workers, pinned memory, distributed sampling, device moves.

    An image that cannot be read stops the loader with a one-sentence UserError naming it (also when a
    worker process read it), unless the dataset's ``skip_bad_images`` is set: then the image is left
    out of its batch and its path collected in :attr:`skipped`.
    """

    def __init__(self, dataset: FileLTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                 num_workers: int = 2, num_replicas: int = 1, rank: int = 0, channels_last: bool = False,
                 sampler: str = "instance") -> None:
        _check_loader_options(batch_size, seed, num_replicas, rank, train, sampler)
        view = dataset.for_training(train)
        self.device = torch.device(device)
        self.channels_last = channels_last
        # A DistributedSampler-like order (one replica when not distributed) gives a seeded, per-epoch training
        # order ("instance"); class-aware samplers draw a seeded, sharded order of their own.
        if train:
            self.sampler = make_sampler(sampler, view.targets, seed=seed, num_replicas=num_replicas, rank=rank,
                                        instance_order=DistributedOrder)
        else:
            self.sampler = (DistributedOrder(len(view), shuffle=False, seed=seed, num_replicas=num_replicas,
                                             rank=rank) if num_replicas > 1 else None)
        self.seeded = SeededSamples(self.sampler) if train else None
        self.skipping = bool(getattr(dataset, "skip_bad_images", False))
        self.skipped: set[str] = set()   # unreadable images left out so far (skip_bad_images)
        self.loader = DataLoader(_SkippingView(view) if self.skipping else view, batch_size=batch_size,
                                 sampler=self.seeded or self.sampler,
                                 num_workers=num_workers, persistent_workers=num_workers > 0,
                                 pin_memory=self.device.type == "cuda", drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the sampler so every epoch has its own seeded order and augmentation."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            for batch in self.loader:
                images, labels = self._readable(batch) if self.skipping else batch
                if len(labels) == 0:
                    continue
                x = images.to(self.device, non_blocking=True)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x, labels.to(self.device, non_blocking=True)
        except UserError as error:  # from a worker, torch prefixes the worker's traceback: keep the sentence
            raise type(error)(worker_sentence(str(error))) from None

    def _readable(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The readable rows of a (images, labels, bad paths) batch; the bad paths join :attr:`skipped`."""
        images, labels, bad = batch
        if not any(bad):
            return images, labels
        self.skipped.update(path for path in bad if path)
        keep = torch.tensor([not path for path in bad])
        return images[keep], labels[keep]


def make_loader(dataset: LTDataset, *, batch_size: int, train: bool, device="cpu", seed: int = 0,
                num_workers: int = 2, num_replicas: int = 1, rank: int = 0, channels_last: bool = False,
                sampler: str = "instance"):
    """A TensorLoader for tensor datasets, else a FileLoader; both yield normalized float x and int64 y.

    ``sampler`` (training loaders only) names the registered sample rule (see :data:`SAMPLERS`).
    """
    options = dict(batch_size=batch_size, train=train, device=device, seed=seed, num_replicas=num_replicas,
                   rank=rank, channels_last=channels_last, sampler=sampler)
    if dataset.spec.kind == "tensor":
        return TensorLoader(dataset, **options)
    return FileLoader(dataset, num_workers=num_workers, **options)
