"""NBN's mechanism, measured: its |α| budget, its initial scale, its first SGD step and its dynamics (notebook 04).

Each ``*_table`` is computed on real layers; each ``*_summary`` turns a table (or
:func:`~nbn_tutorial.diagnosis.dynamics.first_step_table` / :func:`~nbn_tutorial.diagnosis.dynamics.summarize_dynamics`)
into sentences, so a notebook states only what the numbers show.
"""
from __future__ import annotations

import math

import pandas as pd
import torch
from torch import nn

from nbn_tutorial.nn import NormalizedBatchNorm2d, normalized_affine
from nbn_tutorial.wording import Summary

FROZEN_COSINE = 0.999   # β's final direction this close to its epoch-1 direction counts as never having moved


def budget_table(layer: NormalizedBatchNorm2d, channel: int = 0, factor: float = 10.0) -> pd.DataFrame:
    """The applied weights w of every channel before and after multiplying γ of one ``channel`` by ``factor``.

    Columns ``channel``, ``w_before``, ``w_after``, ``change`` (w_after / w_before); the layer is not changed.
    """
    with torch.no_grad():
        before, _ = layer.normalized_weight_bias()
        gamma = layer.weight.detach().clone()
        gamma[channel] *= factor
        after, _ = normalized_affine(gamma, layer.bias.detach(), layer.alpha.detach())
    return pd.DataFrame({"channel": range(len(before)), "w_before": before.tolist(), "w_after": after.tolist(),
                         "change": (after / before).tolist()})


def budget_summary(table: pd.DataFrame, channel: int = 0, factor: float = 10.0) -> Summary:
    """Sentences: the chosen channel grew, every other channel shrank by the same factor, ‖w‖ did not move."""
    others = table[table["channel"] != channel]["change"]
    norm_before = math.sqrt((table["w_before"] ** 2).sum())
    norm_after = math.sqrt((table["w_after"] ** 2).sum())
    grown = float(table.loc[table["channel"] == channel, "change"].iloc[0])
    shrink = f"{others.min():.3f}" if round(others.min(), 3) == round(others.max(), 3) else \
        f"{others.min():.3f}–{others.max():.3f}"
    return Summary(f"Multiplying γ of channel {channel} by {factor:g} multiplied its applied weight by {grown:.2f}, "
                   f"and every other channel's weight by {shrink}: the others paid for it. "
                   f"‖w‖ was {norm_before:.4f} before and {norm_after:.4f} after — the budget |α| does not move.")


def initial_scale_table(channels: int = 64, batch: int = 256, seed: int = 0) -> pd.DataFrame:
    """Output standard deviation of a fresh BN layer and of fresh NBN layers with α = 1 and α = √C, on the same input."""
    torch.manual_seed(seed)
    x = torch.randn(batch, channels, 4, 4) * 3 + 1
    layers = {"BN": nn.BatchNorm2d(channels), "NBN, α = 1 (official)": NormalizedBatchNorm2d(channels, alpha=1.0),
              f"NBN, α = √C = {math.sqrt(channels):g}": NormalizedBatchNorm2d(channels, alpha=math.sqrt(channels))}
    with torch.no_grad():
        rows = [{"layer": name, "output_std": float(layer.train()(x).std(dim=(0, 2, 3)).mean())}
                for name, layer in layers.items()]
    table = pd.DataFrame(rows)
    table["relative_to_bn"] = table["output_std"] / table["output_std"].iloc[0]
    return table


def initial_scale_summary(table: pd.DataFrame, channels: int = 64) -> Summary:
    """Sentences on how much quieter a fresh NBN layer starts than BN with the official α = 1."""
    official = float(table["relative_to_bn"].iloc[1])
    unit = float(table["relative_to_bn"].iloc[2])
    return Summary(f"With γ = 1 and β = 0, BN passes the normalised input on at standard deviation "
                   f"{table['output_std'].iloc[0]:.3f}. NBN with the official α = 1 divides γ by ‖γ‖ = √{channels}, "
                   f"so its output is {official:.3f} times BN's ({1 / official:.1f}× quieter, 1/√C = "
                   f"{1 / math.sqrt(channels):.3f}); α = √C restores BN's scale ({unit:.3f} times BN's). "
                   "The official α = 1 therefore starts the converted layers much quieter than BN, and training must "
                   "move α (or the following layers must compensate).")


def first_step_summary(table: pd.DataFrame, lr: float) -> Summary:
    """Sentences on the first SGD step of fresh models, from ``diagnosis.first_step_table``."""
    nbn, bn = table[table["model"] == "NBN"], table[table["model"] == "BN"]
    text = (f"At initialisation β = 0. One plain SGD step at learning rate {lr:g} moves ‖β‖ of the NBN layers to "
            f"{nbn['beta_norm_after'].min():.3g}–{nbn['beta_norm_after'].max():.3g}")
    if not bn.empty:
        ratio = (nbn["beta_grad_norm"].to_numpy() / bn["beta_grad_norm"].to_numpy().clip(min=1e-30)).min()
        text += (f", while the same step moves BN's β to at most {bn['beta_norm_after'].max():.3g}; the gradient "
                 f"reaching NBN's β is at least {ratio:.3g} times BN's")
    return Summary(text + ". At β = 0 the applied bias b = α·β/(‖β‖ + 10⁻⁶) has Jacobian α/10⁻⁶ times the identity "
                   "(β ↦ β/(‖β‖ + 10⁻⁶) alone has 10⁶ times the identity, and α multiplies it).")


def dynamics_summary(summary: dict) -> Summary:
    """Sentences on a run's NBN state over training, from ``diagnosis.summarize_dynamics``."""
    frozen = summary["beta_cos_last_min"]
    verdict = ("the bias direction chosen in the first epoch never changed afterwards"
               if frozen > FROZEN_COSINE else "the bias direction still turned during training")
    return Summary(f"After epoch {summary['first_epoch']} the largest ‖β‖ of an NBN layer was "
                   f"{summary['beta_norm_first']:.3g}; after epoch {summary['last_epoch']} it was "
                   f"{summary['beta_norm_last']:.3g}, while ‖γ‖ ended at most {summary['gamma_norm_last']:.3g}. "
                   f"The cosine between each layer's final β direction and its direction after the first epoch is at "
                   f"least {frozen:.6f}: {verdict}. α went from {summary['alpha_first']:.3f} to "
                   f"{summary['alpha_last']:.3f}; since ‖w‖ ≈ |α| in every NBN layer, and ‖b‖ ≈ |α| once β has left 0 "
                   "(after the first step), α alone sets how loud those layers are.")
