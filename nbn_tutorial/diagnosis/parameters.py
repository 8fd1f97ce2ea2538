"""BN/NBN affine parameters and classifier weight norms: where the model stores its frequency bias.

For a plain BN layer the applied affine parameters are (γ, β); for an NBN layer they are
``normalized_affine(γ, β, α)`` = (γ/‖γ‖·α, β/‖β‖·α). Tables report both the raw and the applied ones.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.diagnosis.tables import per_class_table
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import nbn_layers, normalized_affine

_SHORTCUT_NAMES = ("downsample", "shortcut")


@dataclass(frozen=True)
class _AffineLayer:
    """One affine BatchNorm layer's raw (γ, β) and effective (w, b) parameters as numpy arrays."""

    name: str
    kind: str               # "BN" or "NBN"
    gamma: np.ndarray
    beta: np.ndarray
    weight: np.ndarray      # w actually applied: γ for BN, γ/‖γ‖·α for NBN
    bias: np.ndarray        # b actually applied: β for BN, β/‖β‖·α for NBN
    alpha: float            # NaN for BN


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def _affine_layer(name: str, module: _BatchNorm, is_nbn: bool) -> _AffineLayer:
    with torch.no_grad():
        if not is_nbn:
            gamma, beta = _numpy(module.weight), _numpy(module.bias)
            return _AffineLayer(name, "BN", gamma, beta, gamma, beta, float("nan"))
        weight, bias = normalized_affine(module.weight, module.bias, module.alpha)
        return _AffineLayer(name, "NBN", _numpy(module.weight), _numpy(module.bias), _numpy(weight), _numpy(bias),
                            float(module.alpha))


def _affine_layers(model: nn.Module) -> list[_AffineLayer]:
    """Every affine BatchNorm layer (1d/2d/3d, BN or NBN) of ``model``, in model order."""
    nbn = {id(module) for _, module in nbn_layers(model)}
    return [_affine_layer(name, module, id(module) in nbn) for name, module in model.named_modules()
            if isinstance(module, _BatchNorm) and module.affine]


def bn_parameter_stats(model: nn.Module) -> pd.DataFrame:
    """One row per affine BN layer: name, type (BN/NBN), channels, ‖γ‖, ‖β‖, γ/β mean and std, α, ‖w‖, ‖b‖.

    ``w_norm``/``b_norm`` are the norms of the affine parameters actually applied: γ and β for BN,
    ``normalized_affine(γ, β, α)`` for NBN (so about α). ``alpha`` is NaN for BN layers.
    """
    rows = [{"layer": layer.name, "type": layer.kind, "channels": len(layer.gamma),
             "gamma_norm": float(np.linalg.norm(layer.gamma)), "beta_norm": float(np.linalg.norm(layer.beta)),
             "gamma_mean": float(layer.gamma.mean()), "gamma_std": float(layer.gamma.std()),
             "beta_mean": float(layer.beta.mean()), "beta_std": float(layer.beta.std()),
             "alpha": layer.alpha,
             "w_norm": float(np.linalg.norm(layer.weight)), "b_norm": float(np.linalg.norm(layer.bias))}
            for layer in _affine_layers(model)]
    return pd.DataFrame(rows, columns=["layer", "type", "channels", "gamma_norm", "beta_norm", "gamma_mean",
                                       "gamma_std", "beta_mean", "beta_std", "alpha", "w_norm", "b_norm"])


def bn_channel_parameters(model: nn.Module) -> pd.DataFrame:
    """Long form, one row per (affine BN layer, channel): layer, type, channel, γ, β and the applied w, b."""
    frames = [pd.DataFrame({"layer": layer.name, "type": layer.kind, "channel": np.arange(len(layer.gamma)),
                            "gamma": layer.gamma, "beta": layer.beta, "w": layer.weight, "b": layer.bias})
              for layer in _affine_layers(model)]
    if not frames:
        return pd.DataFrame(columns=["layer", "type", "channel", "gamma", "beta", "w", "b"])
    return pd.concat(frames, ignore_index=True)


def _is_shortcut(relative_name: str) -> bool:
    return any(part in _SHORTCUT_NAMES for part in relative_name.split("."))


def last_stage_output_bn(model: nn.Module) -> tuple[str, _BatchNorm]:
    """The BN that shapes the last-stage channels: the last residual-branch BN of the last stage's final block."""
    stage = model.last_stage
    blocks = list(stage.children()) or [stage]
    final_block = blocks[-1]
    residual = [module for name, module in final_block.named_modules()
                if isinstance(module, _BatchNorm) and module.affine and not _is_shortcut(name)]
    if not residual:
        raise UserError("the last stage's final block has no affine BatchNorm layer, so there is no γ per "
                        "last-stage channel to relate to class frequency")
    names = {id(module): name for name, module in model.named_modules()}
    return names[id(residual[-1])], residual[-1]


def gamma_vs_owner_frequency(model: nn.Module, channel_table: pd.DataFrame) -> pd.DataFrame:
    """Per last-stage channel: γ, β (raw) and w, b (applied) of :func:`last_stage_output_bn`, beside its owner.

    ``channel_table`` comes from :func:`class_specific_channels` on the same model. For a BN layer
    ``w == gamma``; for an NBN layer ``w = γ/‖γ‖·α`` is what scales the channel.
    """
    name, module = last_stage_output_bn(model)
    layer = _affine_layer(name, module, id(module) in {id(m) for _, m in nbn_layers(model)})
    if len(layer.gamma) != len(channel_table):
        raise ValueError(f"{name} has {len(layer.gamma)} channels but the channel table has {len(channel_table)} "
                         "rows; compute the table with class_specific_channels on the same model")
    columns = ["channel", "owner", "owner_count", "owner_group", "strength", "selectivity", "active"]
    table = channel_table[columns].reset_index(drop=True).copy()
    table.insert(0, "layer", name)
    table.insert(1, "type", layer.kind)
    for column, values in (("gamma", layer.gamma), ("beta", layer.beta), ("w", layer.weight), ("b", layer.bias)):
        table[column] = values
    return table


def classifier_weight_norms(model: nn.Module) -> np.ndarray:
    """L2 norm of every class's weight vector in ``model.classifier_weight()`` [C]."""
    with torch.no_grad():
        return _numpy(torch.linalg.vector_norm(model.classifier_weight().float(), dim=1))


def classifier_norm_table(model: nn.Module, train_counts, groups: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Per-class table with ``weight_norm`` (see :func:`classifier_weight_norms`)."""
    return per_class_table({"weight_norm": classifier_weight_norms(model)}, train_counts, groups)


def classifier_norm_tables(models: Mapping[str, nn.Module], train_counts,
                           groups: Mapping[str, Sequence[int]]) -> dict[str, pd.DataFrame]:
    """:func:`classifier_norm_table` of several models of one training set ({"stage 1": model, "cRT": model, ...})."""
    return {name: classifier_norm_table(model, train_counts, groups) for name, model in models.items()}


def representative_alpha(alphas: Sequence[float]) -> float:
    """The α a model reports: its one α, the mean of several (RIDE: one per expert), NaN without NBN."""
    return float(alphas[0]) if len(alphas) == 1 else (float(np.mean(alphas)) if len(alphas) else math.nan)
