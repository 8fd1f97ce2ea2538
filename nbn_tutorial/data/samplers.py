"""Sample order: which dataset indices one rank reads in one epoch, and in which order.

Every sampler is deterministic given (seed, epoch, rank), so a resumed run reads exactly the batches an
uninterrupted run would. Samplers follow torch's ``Sampler`` protocol (``set_epoch``, ``len``, iterating
yields indices) and add :meth:`EpochSampler.indices`, the whole epoch as one int64 tensor, which the
GPU-resident tensor loader uses directly.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from nbn_tutorial.data.longtail import positive_int
from nbn_tutorial.errors import UserError


def check_sharding(seed: int, num_replicas: int, rank: int) -> None:
    """UserErrors for a negative or non-integer seed, fewer than one replica, or a rank outside 0..replicas-1."""
    positive_int(num_replicas, "number of replicas")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0, got {seed!r}")
    if not 0 <= rank < num_replicas:
        raise UserError(f"rank {rank} must lie in 0..{num_replicas - 1} for {num_replicas} replicas")


def epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """A CPU generator whose stream depends on (seed, epoch, rank) and nothing else."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class EpochSampler(torch.utils.data.Sampler):
    """Base class: the indices of a ``size``-sample dataset that one rank reads in one epoch, in reading order.

    Subclasses implement :meth:`indices`; call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        check_sharding(seed, num_replicas, rank)
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next :meth:`indices` (or iteration) gives."""
        self.epoch = epoch

    def epoch_generator(self) -> torch.Generator:
        """This (seed, epoch, rank)'s random stream, for the sampler and whatever the caller draws after it."""
        return epoch_generator(self.seed, self.epoch, self.rank)

    def indices(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """This epoch's int64 indices in reading order; ``generator`` is the stream to draw from, if the rule draws."""
        raise NotImplementedError

    def __len__(self) -> int:
        return math.ceil(self.size / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class DistributedOrder(EpochSampler):
    """Every index once per epoch, sharded and shuffled exactly like torch's DistributedSampler.

    The shuffle is seeded by seed + epoch (the same on every rank); each rank takes every
    ``num_replicas``-th index, the list first padded with its own head so that all shards are equally long.
    """

    def indices(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """This rank's shard of this epoch (``generator`` is not used: DistributedSampler seeds itself)."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(self.size), num_replicas=self.num_replicas, rank=self.rank,
                                     shuffle=self.shuffle, seed=self.seed)
        sampler.set_epoch(self.epoch)
        return torch.tensor(list(sampler), dtype=torch.int64)


class EpochPermutation(DistributedOrder):
    """Every index once per epoch: on one replica a permutation drawn from the epoch generator, so that a loader
    can go on drawing its augmentation from the same stream; on several replicas, DistributedOrder's shards.
    """

    def indices(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """This epoch's order; ``generator`` defaults to :meth:`epoch_generator` and is advanced by the shuffle."""
        if self.num_replicas > 1:
            return super().indices()
        if not self.shuffle:
            return torch.arange(self.size)
        return torch.randperm(self.size, generator=self.epoch_generator() if generator is None else generator)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's random transform in one epoch: a function of (seed, epoch, index) only."""
    return ((seed * 1_000_003 + epoch) << 32) + index


class SeededSamples(torch.utils.data.Sampler):
    """(index, seed) pairs in the order of an EpochSampler, each seed fixing that sample's random transform.

    DataLoader workers that persist across epochs keep their own RNG streams, so a resumed run would
    augment differently; seeding each sample from (seed, epoch, index) makes augmentation resumable.
    """

    def __init__(self, sampler: EpochSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the order and of the sample seeds."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seed, epoch = self.sampler.seed, self.sampler.epoch
        return ((index, sample_seed(seed, epoch, index)) for index in self.sampler)
