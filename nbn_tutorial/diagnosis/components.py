"""Compound BN's components by class group: which component the samples of each frequency group use.

The paper's claim (abstract of Cheng et al., ACM MM 2022) is that plain moving-average EM lets the
components settle on head classes and that the dual path spreads them over rarer classes. The picture
that tests it: for each CBN layer, cut the classes into frequency groups (group 0 = the most frequent
classes, :func:`nbn_tutorial.nn.frequency_groups`) and average each group's responsibilities under the
running mixture (eval mode): the share of the group's samples each component takes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from nbn_tutorial.data import LTDataset
from nbn_tutorial.diagnosis.outputs import _evaluation_batches, eval_mode, model_device
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn.class_split import frequency_groups
from nbn_tutorial.nn.compound import compound_layers
from nbn_tutorial.wording import Summary

USAGE_COLUMNS = ("layer", "depth", "group", "component", "share", "samples")
MATCH_COLUMNS = ("layer", "depth", "paired_share", "tail_paired_share", "matched_share", "effective_components")


def component_usage(model: nn.Module, data: LTDataset | Iterable, train_counts: Sequence[int], *,
                    num_groups: int | None = None, balance: str = "classes", batch_size: int = 256) -> pd.DataFrame:
    """Per CBN layer, class group and component: the mean responsibility of the group's samples (``share``).

    ``data`` is an LTDataset (no augmentation) or an iterable of (x, y) batches; ``train_counts`` are the
    training counts that define the frequency groups (``num_groups`` of them, default: the layers'
    component count; ``balance`` as in :func:`~nbn_tutorial.nn.frequency_groups`). ``depth`` numbers the
    CBN layers in model order (0 = the first); ``samples`` is the group's sample count. Shares of a group
    sum to 1 over the components.
    """
    layers = compound_layers(model)
    if not layers:
        raise UserError("the model has no Compound BN layers, so there are no components to count; build it with "
                        "norm='cbn'")
    groups = torch.as_tensor(frequency_groups(train_counts, num_groups or layers[0][1].num_components, balance))
    num_groups = int(groups.max()) + 1
    sums = {name: torch.zeros(num_groups, layer.num_components, dtype=torch.float64) for name, layer in layers}
    counts = torch.zeros(num_groups, dtype=torch.float64)
    captured: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda module, inputs, output, name=name: captured.__setitem__(
        name, module.responsibilities(inputs[0]).double().cpu())) for name, layer in layers]
    device = model_device(model)
    try:
        with eval_mode(model), torch.inference_mode():
            for x, y in _evaluation_batches(data, device, batch_size):
                model(x.to(device))
                group = groups[torch.as_tensor(y).cpu()]
                counts += torch.bincount(group, minlength=num_groups).double()
                for name in sums:
                    sums[name].index_add_(0, group, captured[name])
    finally:
        for handle in handles:
            handle.remove()
    return _usage_frame(sums, counts)


def _usage_frame(sums: dict[str, torch.Tensor], counts: torch.Tensor) -> pd.DataFrame:
    records = []
    for depth, (name, total) in enumerate(sums.items()):
        shares = (total / counts.clamp_min(1)[:, None]).numpy()
        for group in range(shares.shape[0]):
            for component in range(shares.shape[1]):
                records.append({"layer": name, "depth": depth, "group": group, "component": component,
                                "share": float(shares[group, component]), "samples": int(counts[group])})
    return pd.DataFrame(records, columns=list(USAGE_COLUMNS))


def usage_matrix(usage: pd.DataFrame, layer: str) -> np.ndarray:
    """The [groups, components] share matrix of one layer of a :func:`component_usage` table."""
    table = usage[usage["layer"] == layer]
    if table.empty:
        known = ", ".join(usage["layer"].unique())
        raise UserError(f"no CBN layer named {layer!r} in the usage table; layers: {known}")
    return table.pivot(index="group", columns="component", values="share").to_numpy()


def _matched_components(shares: np.ndarray) -> np.ndarray:
    """The one-to-one group -> component assignment that maximises the summed shares (Hungarian)."""
    from scipy.optimize import linear_sum_assignment   # deferred: scipy: heavy, only this function needs it

    rows, columns = linear_sum_assignment(-shares)
    matched = np.full(shares.shape[0], -1)
    matched[rows] = columns
    return matched


def component_match(usage: pd.DataFrame) -> pd.DataFrame:
    """Per CBN layer: how far its components follow the frequency groups.

    - ``paired_share``: mean over groups of the share of group k's samples taken by component k, the
      pairing the dual path's auxiliary path trains (1 = each group uses its own component);
    - ``tail_paired_share``: that share for the rarest group alone (do tail samples use the tail's component?);
    - ``matched_share``: like ``paired_share`` under the one-to-one group-component pairing with the
      largest total, whatever the components' order (plain EM has no reason to follow group order);
    - ``effective_components``: exp(entropy) of the component usage over all groups weighted equally
      (1 = one component does everything, K = all are used equally).
    """
    records = []
    for layer, table in usage.groupby("layer", sort=False):
        shares = usage_matrix(usage, layer)
        paired = np.array([shares[g, g] if g < shares.shape[1] else math.nan for g in range(shares.shape[0])])
        matched = _matched_components(shares)
        own = np.array([shares[g, c] if c >= 0 else math.nan for g, c in enumerate(matched)])
        overall = shares.mean(axis=0)
        entropy = -float(np.sum(overall[overall > 0] * np.log(overall[overall > 0])))
        records.append({"layer": layer, "depth": int(table["depth"].iloc[0]),
                        "paired_share": float(np.nanmean(paired)), "tail_paired_share": float(paired[-1]),
                        "matched_share": float(np.nanmean(own)), "effective_components": math.exp(entropy)})
    return pd.DataFrame(records, columns=list(MATCH_COLUMNS))


def compound_measures(model: nn.Module, data: LTDataset) -> dict[str, float]:
    """What a study records of a CBN model on ``data`` (its test split): the means over CBN layers of
    :func:`component_match`'s ``paired_share`` and ``matched_share`` ({} for a model without CBN)."""
    if not compound_layers(model):
        return {}
    match = component_match(component_usage(model, data, data.train_counts))
    return {"cbn_paired_share": float(match["paired_share"].mean()),
            "cbn_matched_share": float(match["matched_share"].mean())}


def usage_match_table(usage: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`component_match` of each run's usage table ({"CBN": usage, ...}), one block of layers per run."""
    return pd.concat([component_match(table).assign(model=name) for name, table in usage.items()],
                     ignore_index=True).set_index(["model", "layer"])


def _share_text(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.0f}%"


def usage_summary(usage: Mapping[str, pd.DataFrame]) -> Summary:
    """Sentences on each run's component usage: in its deepest CBN layer and over all its CBN layers, and, for two
    runs, how the mean paired share changed from the first to the second."""
    sentences = []
    for name, table in usage.items():
        match = component_match(table)
        deepest = match.loc[match["depth"].idxmax()]
        groups = int(table["group"].max()) + 1
        sentences.append(
            f"**{name}**: in the deepest CBN layer, group k's samples take component k for "
            f"{_share_text(deepest['paired_share'])} on average over the {groups} frequency groups (the rarest group: "
            f"{_share_text(deepest['tail_paired_share'])}); under the best one-to-one pairing "
            f"{_share_text(deepest['matched_share'])} (it cannot fall below 1/{groups}), and "
            f"{deepest['effective_components']:.2f} of {groups} components are in effective use. Over all "
            f"{len(match)} CBN layers the paired share averages {_share_text(match['paired_share'].mean())}.")
    names = list(usage)
    if len(names) == 2:
        before, after = (component_match(usage[name])["paired_share"].mean() for name in names)
        change = "rises" if after > before + 0.005 else "falls" if after < before - 0.005 else "stays"
        sentences.append(f"From {names[0]} to {names[1]}, the mean paired share {change} "
                         f"({_share_text(before)} → {_share_text(after)}). One seed and a short run: the study "
                         "below repeats it over seeds.")
    return Summary(" ".join(sentences))
