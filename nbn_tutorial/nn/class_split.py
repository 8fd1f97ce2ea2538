"""Class-aware split normalisation for Compound BN: class groups by training frequency, and the split itself.

The paper's dual path (Cheng et al., ACM MM 2022; only its abstract is known) diversifies CBN's
components with "class-aware split feature normalisation". Reconstructed here (every choice marked (R)
is ours and an argument): the classes are sorted by training count (most frequent first; ties by
class index) and cut into K contiguous groups (R) with about equal numbers of classes
(``balance="classes"``) or of training samples (``"samples"``); inside :func:`class_split`, every CBN
layer normalises the samples of group k with component k's statistics computed from exactly those
samples (plain BN statistics over the group). Class-group statistics can also update component k of
the running mixture, taken from the auxiliary pass's input or, during the main pass, from the main
path's (``normalize=False``: the layers normalise by their mixture and only update by groups).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn.compound import TINY_GROUP_RULES, ClassSplit, compound_layers
from nbn_tutorial.registry import check_choice, positive_int

GROUP_BALANCES: tuple[str, ...] = ("classes", "samples")


def _equal_sample_cuts(sorted_counts: np.ndarray, num_groups: int) -> list[int]:
    """Cut positions (exclusive ends) giving K non-empty groups whose sample totals are closest to equal."""
    cumulative = np.cumsum(sorted_counts)
    total, cuts, start = cumulative[-1], [], 0
    for k in range(1, num_groups):
        low, high = start + 1, len(sorted_counts) - (num_groups - k)   # each group keeps at least one class
        candidates = np.arange(low, high + 1)
        best = candidates[np.argmin(np.abs(cumulative[candidates - 1] - k * total / num_groups))]
        cuts.append(int(best))
        start = int(best)
    return cuts + [len(sorted_counts)]


def frequency_groups(train_counts: Sequence[int], num_groups: int, balance: str = "classes") -> np.ndarray:
    """The class group (0 = most frequent classes) of each class, from the classes' training counts.

    Classes sorted by count (descending, ties by index) are cut into ``num_groups`` contiguous groups
    with equal numbers of classes (``balance="classes"``, the first groups one larger when it does not
    divide) or with sample totals as equal as the counts allow (``"samples"``); every group is non-empty.
    """
    check_choice("class-group balance", balance, GROUP_BALANCES)
    counts = np.asarray(train_counts, dtype=np.int64)
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or not 1 <= num_groups <= counts.size:
        raise UserError(f"cannot cut {counts.size} classes into {num_groups!r} class groups; use between 1 and "
                        f"{counts.size} groups (CBN components)")
    order = np.argsort(-counts, kind="stable")
    if balance == "classes":
        ends = np.cumsum([len(part) for part in np.array_split(np.arange(counts.size), num_groups)])
    else:
        ends = np.asarray(_equal_sample_cuts(counts[order], num_groups))
    groups = np.empty(counts.size, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    for group, (start, end) in enumerate(zip(starts, ends)):
        groups[order[start:end]] = group
    return groups


def check_group_count(num_groups: int, model: nn.Module) -> None:
    """A UserError unless every CBN layer of ``model`` has a component for each of ``num_groups`` class groups."""
    fewest = min((layer.num_components for _, layer in compound_layers(model)), default=0)
    if num_groups > fewest:
        raise UserError(f"class group {num_groups - 1} has no component: the model's CBN layers have {fewest}; use "
                        "as many class groups as components")


@contextlib.contextmanager
def class_split(model: nn.Module, groups: Tensor, *, min_group_size: int = 4, tiny_group: str = "running",
                update_running: bool = True, normalize: bool = True, check_groups: bool = True) -> Iterator[None]:
    """Inside the block, every CBN layer of ``model`` in training mode normalises by class groups
    (``normalize=False``: by its mixture, the groups only updating the running mixture).

    ``groups`` [N] holds each sample's class group (see :func:`frequency_groups`); ``min_group_size``,
    ``tiny_group``, ``update_running`` and ``normalize`` are those of :class:`~nbn_tutorial.nn.compound.ClassSplit`.
    ``check_groups=False`` skips checking that every group has a component (a device sync per batch), for
    callers that checked their class-to-group map once.
    """
    layers = compound_layers(model)
    if not layers:
        raise UserError("class-aware split normalisation needs Compound BN layers; build the model with norm='cbn'")
    check_choice("tiny-group rule", tiny_group, TINY_GROUP_RULES)
    positive_int(min_group_size, "the smallest class group to take batch statistics from")
    if check_groups:
        check_group_count(int(groups.max()) + 1 if groups.numel() else 0, model)
    split = ClassSplit(groups, min_group_size, tiny_group, bool(update_running), bool(normalize))
    try:
        for _, layer in layers:
            layer.set_split(split)
        yield
    finally:
        for _, layer in layers:
            layer.set_split(None)


def forward_split(model: nn.Module, x: Tensor, groups: Tensor, **options) -> Tensor:
    """``model(x)`` with class-aware split normalisation by ``groups`` (one auxiliary-path forward);
    ``options`` as in :func:`class_split`."""
    with class_split(model, groups, **options):
        return model(x)
