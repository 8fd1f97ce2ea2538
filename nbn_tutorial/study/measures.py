"""What a study records about one finished run: final accuracies, per-class accuracy, feature bias, NBN state."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def feature_bias_measures(run_dir: str | Path) -> dict[str, float]:
    """Notebook 03's feature-bias measures of the run's last checkpoint on its test split (few/many ratios).

    ``feature_strength_ratio``: mean penultimate-feature L2 norm of few-shot classes / many-shot classes;
    ``channel_strength_ratio``: mean strength of the class-specific last-stage channels owned by few-shot
    classes / by many-shot classes (NaN when a group owns no active channel).
    """
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial import diagnosis, train

    model, config = train.load_run(run_dir, which="last")
    test = train.build_datasets(config, ("test",))["test"]
    outputs = diagnosis.collect_outputs(model, test)
    groups = test.shot_groups
    strength = diagnosis.summarize_by_group(diagnosis.feature_strength(outputs, test.train_counts, groups), "strength")
    channels = diagnosis.channel_summary(diagnosis.class_specific_channels(outputs, test.train_counts, groups), groups)
    few_many = diagnosis.few_many_ratio
    return {"feature_strength_ratio": few_many(strength["few"], strength["many"]),
            "channel_strength_ratio": few_many(channels.loc["few", "mean_strength"], channels.loc["many", "mean_strength"])}


def epoch_summaries(dynamics) -> list[dict[str, float]]:
    """One record per epoch of a run's NBN dynamics, over its NBN layers: α (one per α group, averaged), and the
    largest γ, β, applied-weight and applied-bias norms and the smallest cosine of β to its first-epoch direction."""
    from nbn_tutorial import diagnosis   # deferred: torch-free: this subpackage reads committed results without torch

    records = []
    for epoch, layers in dynamics.groupby("epoch"):
        records.append({"epoch": int(epoch),
                        "alpha": diagnosis.representative_alpha(list(dict.fromkeys(layers["alpha"].astype(float)))),
                        "gamma_norm_max": float(layers["gamma_norm"].max()),
                        "beta_norm_max": float(layers["beta_norm"].max()),
                        "weight_norm_max": float(layers["weight_norm"].max()),
                        "bias_norm_max": float(layers["bias_norm"].max()),
                        "beta_cos_first_min": float(layers["beta_cos_first"].min())})
    return records


def run_measures(run_dir: str | Path, tau_norm: str | float | None = None) -> dict[str, Any]:
    """Final-epoch metrics (fractions), per-class accuracy and train counts, feature bias, NBN state and (CBN runs)
    component usage of a run. With ``tau_norm`` (``"auto"`` or a τ) the accuracies are those of the last
    checkpoint with its classifier τ-normalised, and ``tau``/``tau_split`` say which τ and where it was chosen."""
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial import diagnosis, train

    run_dir = Path(run_dir)
    last = train.read_metrics(run_dir).iloc[-1]
    if tau_norm is not None:
        evaluated = train.evaluate_checkpoint(run_dir / "last.pt", device="cpu", tau_norm=tau_norm)
        last = last.copy()
        for key in ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc", "per_class_acc"):
            last[key] = evaluated[key]
    model, config = train.load_run(run_dir, which="last")
    test = train.build_datasets(config, ("test",))["test"]
    train_counts = test.train_counts
    row: dict[str, Any] = {
        "epochs": int(last["epoch"]),
        **{key: (math.nan if last[key] is None else float(last[key]))
           for key in ("test_acc", "balanced_acc", "many_acc", "medium_acc", "few_acc")},
        "train_loss": float(last["train_loss"]),
        "per_class_acc": [math.nan if value is None else float(value) for value in last["per_class_acc"]],
        "train_counts": np.asarray(train_counts).tolist(),
        "train_images": int(np.asarray(train_counts).sum()),
        **feature_bias_measures(run_dir),
        **diagnosis.compound_measures(model, test),   # CBN runs: component usage by class group
    }
    alphas = last["alpha"] if isinstance(last["alpha"], list) else []
    row["alpha"] = diagnosis.representative_alpha(alphas)
    dynamics = diagnosis.nbn_dynamics(run_dir) if alphas else None
    if dynamics is not None and not dynamics.empty:
        final = dynamics[dynamics["epoch"] == dynamics["epoch"].max()]
        row["beta_norm_max"] = float(final["beta_norm"].max())
        row["beta_cos_first_min"] = float(final["beta_cos_first"].min())
        row["dynamics"] = epoch_summaries(dynamics)
    if tau_norm is not None:
        row.update(tau=float(evaluated["tau"]), tau_split=evaluated["tau_split"])
    return row
