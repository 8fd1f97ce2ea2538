"""NBN's parameters over training, and NBN's first SGD step: the data behind notebook 04's mechanism cells.

During training the engine appends, after every epoch, one row per NBN layer to the run directory's
``nbn_dynamics.jsonl`` (:func:`nbn_state_rows`): the shared α, the norms of the raw γ and β, the norms of
the affine parameters actually applied (w and b, each |α| when both are normalised), and the cosine
between β's direction now and after the first epoch. :func:`nbn_dynamics` reads them back.

Why β's direction is worth watching: β starts at 0, where the applied bias b = α·β/(‖β‖+ε) has Jacobian
(α/ε)·I with ε = 1e-6 (β ↦ β/(‖β‖+ε) alone has I/ε), so the first SGD step scales β's gradient by about
10⁶·α and throws β to a huge norm. After
that, the gradient reaching β is about α/‖β‖ times the gradient of the applied bias: tiny. The first
batches choose the direction of NBN's bias for the rest of training (:func:`first_step_table`).
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import read_jsonl, trim_jsonl
from nbn_tutorial.nn import nbn_layers

DYNAMICS_FILE = "nbn_dynamics.jsonl"
DYNAMICS_COLUMNS = ("epoch", "layer", "alpha", "gamma_norm", "beta_norm", "weight_norm", "bias_norm",
                    "beta_cos_first")


def beta_directions(model: nn.Module) -> dict[str, Tensor]:
    """β/‖β‖ of every NBN layer (float64 on CPU), by layer name; a zero β has a zero direction."""
    directions = {}
    for name, layer in nbn_layers(model):
        beta = layer.bias.detach().double().cpu()
        norm = torch.linalg.vector_norm(beta)
        directions[name] = beta / norm if norm > 0 else torch.zeros_like(beta)
    return directions


def nbn_state_rows(model: nn.Module, epoch: int, reference: Mapping[str, Tensor] | None) -> list[dict]:
    """One row per NBN layer after ``epoch`` epochs (see the module docstring); [] for a model without NBN."""
    rows = []
    current = beta_directions(model)
    for name, layer in nbn_layers(model):
        weight, bias = layer.normalized_weight_bias()
        first = reference.get(name) if reference is not None else None
        cosine = float(torch.dot(current[name], first)) if first is not None and first.norm() > 0 else math.nan
        rows.append({"epoch": epoch, "layer": name, "alpha": float(layer.alpha.detach()),
                     "gamma_norm": float(torch.linalg.vector_norm(layer.weight.detach().double())),
                     "beta_norm": float(torch.linalg.vector_norm(layer.bias.detach().double())),
                     "weight_norm": float(torch.linalg.vector_norm(weight.detach().double())),
                     "bias_norm": float(torch.linalg.vector_norm(bias.detach().double())),
                     "beta_cos_first": cosine})
    return rows


def truncate_dynamics(run_dir: str | os.PathLike, epochs_done: int) -> None:
    """Drop rows recorded after the checkpoint being resumed (the resumed run records them again)."""
    trim_jsonl(Path(run_dir) / DYNAMICS_FILE, lambda row: row["epoch"] <= epochs_done)


def nbn_dynamics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The NBN state of a run after every epoch: columns ``epoch, layer, alpha, gamma_norm, beta_norm,
    weight_norm, bias_norm, beta_cos_first`` (one row per epoch and NBN layer)."""
    path = Path(run_dir) / DYNAMICS_FILE
    if not path.is_file():
        raise UserError(f"{str(path)!r} does not exist: {str(run_dir)!r} is not an NBN run directory trained with "
                        "this version (plain-BN runs have no NBN layers to record)")
    return pd.DataFrame(read_jsonl(path), columns=list(DYNAMICS_COLUMNS))


def _converted_layers(model: nn.Module, names: list[str]) -> list[tuple[str, nn.Module]]:
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise UserError(f"the model has no layer {missing[0]!r}; compare models of the same architecture")
    return [(name, modules[name]) for name in names]


def first_step_table(models: Mapping[str, nn.Module], x: Tensor, y: Tensor, lr: float = 0.1) -> pd.DataFrame:
    """What one plain SGD step does to β of NBN's layers, in fresh models (e.g. {"BN": bn, "NBN": nbn}).

    For every layer that is an NBN layer in one of the models: the norm of the cross-entropy gradient
    reaching β on the batch (x, y), and ‖β‖ after the step β − lr·∇β. The models are copied, not changed.
    Columns: ``model``, ``layer``, ``beta_norm_before``, ``beta_grad_norm``, ``beta_norm_after``.
    """
    names = sorted({name for model in models.values() for name, _ in nbn_layers(model)})
    if not names:
        raise UserError("none of the models has NBN layers; pass a fresh NBN model (norm='nbn') to compare")
    rows = []
    for label, model in models.items():
        trial = copy.deepcopy(model).train()
        trial.zero_grad(set_to_none=True)
        F.cross_entropy(trial(x), y).backward()
        for name, layer in _converted_layers(trial, names):
            beta, grad = layer.bias.detach(), layer.bias.grad
            grad = torch.zeros_like(beta) if grad is None else grad.detach()
            rows.append({"model": label, "layer": name,
                         "beta_norm_before": float(torch.linalg.vector_norm(beta.double())),
                         "beta_grad_norm": float(torch.linalg.vector_norm(grad.double())),
                         "beta_norm_after": float(torch.linalg.vector_norm((beta - lr * grad).double()))})
    return pd.DataFrame(rows, columns=["model", "layer", "beta_norm_before", "beta_grad_norm", "beta_norm_after"])


def summarize_dynamics(dynamics: pd.DataFrame) -> dict[str, float]:
    """Numbers for sentences: α first/last, ‖β‖ after the first and last epoch (largest over layers), and the
    smallest cosine between a layer's final β direction and its direction after the first epoch."""
    if dynamics.empty:
        raise UserError("the run recorded no NBN state (no epoch finished yet)")
    first, last = dynamics["epoch"].min(), dynamics["epoch"].max()
    at_first, at_last = dynamics[dynamics["epoch"] == first], dynamics[dynamics["epoch"] == last]
    return {"first_epoch": int(first), "last_epoch": int(last),
            "alpha_first": float(at_first["alpha"].iloc[0]), "alpha_last": float(at_last["alpha"].iloc[0]),
            "beta_norm_first": float(at_first["beta_norm"].max()), "beta_norm_last": float(at_last["beta_norm"].max()),
            "gamma_norm_last": float(at_last["gamma_norm"].max()),
            "beta_cos_last_min": float(np.nanmin(at_last["beta_cos_first"].to_numpy(dtype=float)))}
