"""Post-hoc τ-normalisation of a trained classifier (Kang et al., ICLR 2020), with τ chosen honestly.

τ is searched over classifier-balancing's grid 0, 0.1, ..., 2 by balanced accuracy on the dataset's val
split (its own, or the held-out split of unused training images of digits, Fashion-MNIST and CIFAR).
Searching on the test split happens only when asked for (``split="test"``, ``--tau-split test``) and is
then said (:attr:`TauSearch.note`), because the test accuracy at that τ is optimistic; a dataset without
a val split is refused otherwise. The penultimate features are computed once; each τ only re-runs the
classifier head(s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.selection import has_own_val_split
from nbn_tutorial.train.builders import build_datasets
from nbn_tutorial.registry import check_choice
from nbn_tutorial.models import tau_normalized
from nbn_tutorial.train.metric_files import accuracy_metrics
from nbn_tutorial.data import make_loader

TAU_GRID: tuple[float, ...] = tuple(round(0.1 * step, 1) for step in range(21))   # classifier-balancing's search


@dataclass(frozen=True)
class TauSearch:
    """The τ chosen by balanced accuracy on ``split``, and every τ's accuracies there (``table``, fractions)."""

    tau: float
    split: str
    dataset: str
    table: pd.DataFrame

    @property
    def note(self) -> str:
        """One sentence on where τ was chosen (a warning when it was the test split)."""
        if self.split == "test":
            return (f"τ = {self.tau:g} was chosen on the test split (asked for), so the test accuracy with it is "
                    "optimistic")
        return f"τ = {self.tau:g} was chosen by balanced accuracy on the {self.split} split"


def parse_tau(value: str | float) -> str | float:
    """``"auto"`` or a finite τ from a command-line or notebook value; a UserError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        tau = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--tau-norm takes 'auto' (search τ) or a number such as 1.0, got {value!r}") from None
    if not math.isfinite(tau) or tau < 0:
        raise UserError(f"--tau-norm takes 'auto' or a number >= 0 (0 leaves the classifier as it is, 1 divides each "
                        f"class's weights by their norm), got {value!r}")
    return tau


def _features(model: nn.Module, dataset, device: torch.device,
              batch_size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """Penultimate features of every image of ``dataset`` (eval mode, no augmentation) and the labels."""
    features, targets = [], []
    model.eval()
    with torch.inference_mode():
        for x, y in make_loader(dataset, batch_size=batch_size, train=False, device=device):
            features.append(model.features(x).float())
            targets.append(y.cpu())
    return torch.cat(features), torch.cat(targets).numpy()


def _accuracies(predictions: np.ndarray, targets: np.ndarray, dataset) -> dict:
    classes = dataset.num_classes
    total = np.bincount(targets, minlength=classes)
    correct = np.bincount(targets[predictions == targets], minlength=classes)
    return accuracy_metrics(correct, total, dataset.shot_groups)


def tau_table(model: nn.Module, dataset, taus=TAU_GRID, device: str | torch.device = "cpu") -> pd.DataFrame:
    """Accuracies (fractions) of ``model`` τ-normalised with each τ on ``dataset``: columns tau, test_acc (the
    split's overall accuracy), balanced_acc, many_acc, medium_acc, few_acc."""
    device = torch.device(device)
    model = model.to(device)
    features, targets = _features(model, dataset, device)
    rows = []
    for tau in taus:
        with tau_normalized(model, tau) as normalized, torch.inference_mode():
            predictions = normalized.head(features).argmax(1).cpu().numpy()
        metrics = _accuracies(predictions, targets, dataset)
        rows.append({"tau": float(tau), **{key: metrics[key] for key in
                                           ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc")}})
    return pd.DataFrame(rows)


TAU_SPLITS = ("val", "test")


def search_tau(model: nn.Module, config: Config, taus=TAU_GRID, device: str | torch.device = "cpu",
               split: str = "val") -> TauSearch:
    """The τ with the best balanced accuracy on the config's ``split`` (val; test only when asked, and the
    result says so; the smallest τ among ties), with the whole table."""
    check_choice("τ search split", split, TAU_SPLITS)
    if split == "val" and not has_own_val_split(config):
        raise UserError(f"{config.dataset} has no val split here (val_per_class 0, or no val files), so τ cannot be "
                        "chosen on held-out data; give τ as a number (--tau-norm 1.0), or search on the test split "
                        "with --tau-split test (optimistic, and said so)")
    dataset = build_datasets(config, (split,))[split]
    table = tau_table(model, dataset, taus, device)
    best = table.loc[table["balanced_acc"].fillna(-1.0).idxmax()]
    return TauSearch(float(best["tau"]), split, config.dataset, table)
