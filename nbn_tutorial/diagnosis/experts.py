"""Multi-expert models (RIDE) diagnosed per expert and as the ensemble, with the same functions as any model.

:func:`model_views` gives each expert of a RIDE model as a plain classifier (the shared early stages,
that expert's later stages and head; modules shared, nothing copied), then the ensemble (the model
itself: concatenated expert features, mean of the expert logits, every expert's last-stage channels). A
single-head model is its own only view. Every diagnosis function (``collect_outputs``,
``feature_strength``, ``class_specific_channels``, ``classifier_norm_table``, ``bn_parameter_stats``,
``grad_cam``, ...) takes any view; :func:`expert_table` puts the headline numbers side by side.
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from nbn_tutorial.diagnosis.features import feature_strength
from nbn_tutorial.diagnosis.outputs import collect_outputs
from nbn_tutorial.diagnosis.parameters import classifier_norm_table, representative_alpha
from nbn_tutorial.diagnosis.tables import few_many_ratio, group_accuracy, summarize_by_group
from nbn_tutorial.nn import alpha_parameters

EXPERT_COLUMNS = ("view", "balanced", "many", "medium", "few", "feature_strength_ratio", "weight_norm_ratio", "alpha")


def model_views(model: nn.Module) -> dict[str, nn.Module]:
    """``{"expert 1": ..., "expert E": ..., "ensemble": model}`` for a multi-expert model, ``{"model": model}`` else."""
    views = getattr(model, "expert_views", None)
    return views() if callable(views) else {"model": model}


def _alpha(view: nn.Module) -> float:
    return representative_alpha([float(alpha.detach()) for alpha in alpha_parameters(view)])


def expert_table(model: nn.Module, dataset) -> pd.DataFrame:
    """One row per view (each expert, then the ensemble): test accuracies in percent, few/many ratios of feature
    strength and classifier weight norm, and the NBN α the view uses (the mean over experts for the ensemble)."""
    rows = []
    for label, view in model_views(model).items():
        outputs = collect_outputs(view, dataset)
        accuracy = group_accuracy(outputs.logits, outputs.targets, dataset.shot_groups)
        strength = summarize_by_group(feature_strength(outputs, dataset.train_counts, dataset.shot_groups), "strength")
        norms = summarize_by_group(classifier_norm_table(view, dataset.train_counts, dataset.shot_groups),
                                   "weight_norm")
        rows.append({"view": label, **{name: 100 * accuracy[name] for name in ("balanced", "many", "medium", "few")},
                     "feature_strength_ratio": few_many_ratio(strength["few"], strength["many"]),
                     "weight_norm_ratio": few_many_ratio(norms["few"], norms["many"]), "alpha": _alpha(view)})
    return pd.DataFrame(rows, columns=list(EXPERT_COLUMNS))
