"""Sample order: which dataset indices one rank reads in one epoch, and in which order.

Every sampler is deterministic given (seed, epoch, rank), so a resumed run reads exactly the batches an
uninterrupted run would. Samplers follow torch's ``Sampler`` protocol (``set_epoch``, ``len``, iterating
yields indices) and add :meth:`EpochSampler.indices`, the whole epoch as one int64 tensor, which the
GPU-resident tensor loader uses directly.

Which sampler a training loader uses is a registered name (:data:`SAMPLER_REGISTRY`, config key
``sampler``): ``instance`` (every sample once per epoch, the default), ``class-balanced`` (every class
equally often) and ``square-root`` (class c drawn with probability ∝ √n_c). The class-aware ones
(:class:`ClassAwareSampler`) draw, for each slot of the epoch, a class from those probabilities and then
the next of that class's samples in a random order (each sample once before any repeats). Their epoch
has C × n_max draws (C classes, n_max images in the largest): classifier-balancing's ClassAwareSampler
length, so under class-balanced sampling every class is drawn about as often as the largest class has
images, and the published stage-2 epoch counts keep their meaning.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import Registry, positive_int
from torch.utils.data import DistributedSampler


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


def shard(order: torch.Tensor, num_replicas: int, rank: int) -> torch.Tensor:
    """``rank``'s share of a global order, as DistributedSampler shards: padded with its head, every R-th item."""
    if num_replicas == 1:
        return order
    total = math.ceil(len(order) / num_replicas) * num_replicas
    padded = torch.cat([order, order[:total - len(order)]]) if total > len(order) else order
    return padded[rank:total:num_replicas]


class ClassAwareSampler(EpochSampler):
    """C × n_max draws per epoch: each slot's class with probability ∝ n_c^``power``, then that class's next sample.

    ``power`` 0 is class-balanced sampling, 0.5 square-root sampling, 1 instance-proportional sampling with
    replacement. Within a class the samples come in a random order, each once before any repeats. The
    draw is global (identical on every rank, seeded by seed and epoch) and then sharded like
    DistributedSampler; on one replica it uses the caller's generator (the loader's augmentation stream
    continues from it), as :class:`EpochPermutation` does.
    """

    def __init__(self, labels, power: float, *, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1 or labels.size == 0 or labels.min() < 0:
            raise UserError("a class-aware sampler needs a non-empty list of class labels >= 0")
        counts = np.bincount(labels)
        present = np.flatnonzero(counts)
        super().__init__(int(counts.max()) * len(present), shuffle=True, seed=seed, num_replicas=num_replicas,
                         rank=rank)
        self.power = float(power)
        self.classes = torch.as_tensor(present, dtype=torch.int64)
        self.members = [torch.as_tensor(np.flatnonzero(labels == c), dtype=torch.int64) for c in present]
        weights = counts[present].astype(np.float64) ** self.power
        self.class_probabilities = torch.as_tensor(weights / weights.sum(), dtype=torch.float64)

    def _draw(self, generator: torch.Generator) -> torch.Tensor:
        """The global order of one epoch: class of every slot, then each class's samples in a cycled permutation."""
        slot_classes = torch.multinomial(self.class_probabilities, self.size, replacement=True, generator=generator)
        order = torch.empty(self.size, dtype=torch.int64)
        for position, members in enumerate(self.members):
            slots = torch.nonzero(slot_classes == position).squeeze(1)
            if len(slots) == 0:
                continue
            cycles = math.ceil(len(slots) / len(members))
            picks = torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(cycles)])
            order[slots] = picks[:len(slots)]
        return order

    def indices(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """This rank's share of the epoch's draws; ``generator`` (one replica only) defaults to the epoch's stream."""
        if self.num_replicas > 1 or generator is None:
            generator = epoch_generator(self.seed, self.epoch, 0)  # the same draw on every rank
        return shard(self._draw(generator), self.num_replicas, self.rank)


SamplerFactory = Callable[..., EpochSampler]
SAMPLER_REGISTRY: Registry[SamplerFactory] = Registry("sampler")


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator registering ``factory(labels, *, seed, num_replicas, rank, instance_order) -> EpochSampler``.

    ``instance_order`` is the loader's every-sample-once order class (EpochPermutation for tensor
    loaders, DistributedOrder for file loaders), for rules that read every sample once.
    """
    return SAMPLER_REGISTRY.register(name)


@register_sampler("instance")
def _instance(labels, *, seed: int, num_replicas: int, rank: int, instance_order: type[EpochSampler]) -> EpochSampler:
    return instance_order(len(labels), shuffle=True, seed=seed, num_replicas=num_replicas, rank=rank)


@register_sampler("class-balanced")
def _class_balanced(labels, *, seed: int, num_replicas: int, rank: int, instance_order=None) -> EpochSampler:
    return ClassAwareSampler(labels, 0.0, seed=seed, num_replicas=num_replicas, rank=rank)


@register_sampler("square-root")
def _square_root(labels, *, seed: int, num_replicas: int, rank: int, instance_order=None) -> EpochSampler:
    return ClassAwareSampler(labels, 0.5, seed=seed, num_replicas=num_replicas, rank=rank)


SAMPLERS: tuple[str, ...] = SAMPLER_REGISTRY.names()


def make_sampler(name: str, labels, *, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 instance_order: type[EpochSampler] = EpochPermutation) -> EpochSampler:
    """The training sampler registered as ``name`` over a split with these class ``labels``."""
    check_sharding(seed, num_replicas, rank)
    return SAMPLER_REGISTRY.get(name)(labels, seed=seed, num_replicas=num_replicas, rank=rank,
                                      instance_order=instance_order)


def sampled_class_counts(train_set, seed: int = 0,
                         samplers: tuple[str, ...] = ("instance", "class-balanced", "square-root")):
    """How often each class is drawn in one epoch (epoch 0 of ``seed``) of each sampler, by class: a table with the
    columns ``class``, ``train_count`` and one per sampler."""
    import pandas as pd   # deferred: heavy, and only this table needs it

    columns = {"class": np.arange(train_set.num_classes), "train_count": np.asarray(train_set.class_counts)}
    for name in samplers:
        drawn = make_sampler(name, train_set.targets, seed=seed).indices().numpy()
        columns[name] = np.bincount(train_set.targets[drawn], minlength=train_set.num_classes)
    return pd.DataFrame(columns)


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
        # A sample drawn again in the same epoch (class-aware sampling) gets a seed of its own: the
        # occurrence counts in multiples of the dataset size (0 for samplers that read every sample once).
        seed, epoch, size = self.sampler.seed, self.sampler.epoch, self.sampler.size
        seen: dict[int, int] = {}
        for index in self.sampler:
            occurrence = seen.get(index, 0)
            seen[index] = occurrence + 1
            yield index, sample_seed(seed, epoch, index + occurrence * size)
