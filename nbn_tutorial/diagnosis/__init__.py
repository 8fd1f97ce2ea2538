"""Feature-bias diagnosis of a trained long-tailed classifier (BN or NBN): the data behind the paper's pictures.

Every function returns data (numpy arrays or pandas DataFrames); :mod:`nbn_tutorial.plots` draws them.

Conventions:

- accuracies are fractions in [0, 1];
- shot groups are the shared ``"many"``, ``"medium"``, ``"few"`` (:data:`nbn_tutorial.accuracy.SHOT_NAMES`;
  head, middle and tail classes);
- per-class tables have the columns ``class``, ``train_count``, ``group`` plus the quantity;
- the *feature strength* of a class is the mean L2 norm of the penultimate feature vectors of its test
  samples (column ``strength``; the mean absolute activation is reported beside it as
  ``mean_abs_activation``);
- a last-stage channel's activation on an image is the spatial mean of the last stage's output map
  (what global average pooling passes on). Its *owner* is the class with the highest class-mean
  activation divided by the channel's mean over classes (the ratio is the channel's ``selectivity``),
  and its *strength* is the owner's class-mean activation on it.

Modules: ``outputs`` (running the model), ``tables`` (per-class tables, accuracy, confusion), ``features``
(feature strength, class-specific channels), ``parameters`` (BN/NBN parameters, classifier norms),
``gradcam``, ``embedding`` (t-SNE), ``compare`` (runs side by side), ``dynamics`` (NBN's parameters over
training and its first SGD step), ``components`` (Compound BN's component usage by class-frequency group),
``experts`` (multi-expert models per expert and as the ensemble), ``mechanism`` (NBN's budget, initial
scale, first step and dynamics, in numbers and sentences) and ``sentences`` (the feature-bias and accuracy
sentences of notebooks 02-04).
"""
from nbn_tutorial.diagnosis.compare import group_table, stack_runs
from nbn_tutorial.diagnosis.components import (MATCH_COLUMNS, USAGE_COLUMNS, component_match, component_usage,
                                               compound_measures, usage_match_table, usage_matrix, usage_summary)
from nbn_tutorial.diagnosis.dynamics import (DYNAMICS_COLUMNS, DYNAMICS_FILE, beta_directions, first_step_table,
                                             nbn_dynamics, nbn_state_rows, summarize_dynamics, truncate_dynamics)
from nbn_tutorial.diagnosis.embedding import tsne_embedding, tsne_table
from nbn_tutorial.diagnosis.experts import EXPERT_COLUMNS, expert_table, model_views
from nbn_tutorial.diagnosis.features import channel_owners, channel_summary, class_specific_channels, feature_strength
from nbn_tutorial.diagnosis.gradcam import (ImageExamples, feature_map_size, grad_cam, grad_cam_note,
                                            pick_head_tail_examples)
from nbn_tutorial.diagnosis.mechanism import (FROZEN_COSINE, budget_summary, budget_table, dynamics_summary,
                                              first_step_summary, initial_scale_summary, initial_scale_table)
from nbn_tutorial.diagnosis.outputs import ModelOutputs, collect_outputs
from nbn_tutorial.diagnosis.parameters import (bn_channel_parameters, bn_parameter_stats, classifier_norm_table,
                                               classifier_norm_tables,
                                               classifier_weight_norms, gamma_vs_owner_frequency,
                                               last_stage_output_bn, representative_alpha)
from nbn_tutorial.diagnosis.sentences import alpha_summary, baseline_summary, bias_summary, comparison_summary
from nbn_tutorial.diagnosis.tables import (GROUP_ORDER, GROUP_TABLE_COLUMNS, accuracy_by_count, class_groups,
                                           class_means, confusion, few_many_ratio, group_accuracy,
                                           per_class_accuracy, per_class_table, summarize_by_group)

__all__ = [
    "GROUP_ORDER", "GROUP_TABLE_COLUMNS",
    "DYNAMICS_FILE", "DYNAMICS_COLUMNS", "beta_directions", "nbn_state_rows", "truncate_dynamics", "nbn_dynamics",
    "first_step_table", "summarize_dynamics",
    "ModelOutputs", "collect_outputs",
    "class_groups", "per_class_table", "class_means", "per_class_accuracy", "accuracy_by_count", "group_accuracy",
    "summarize_by_group", "confusion", "few_many_ratio",
    "feature_strength", "channel_owners", "class_specific_channels", "channel_summary",
    "bn_parameter_stats", "bn_channel_parameters", "last_stage_output_bn", "gamma_vs_owner_frequency",
    "classifier_weight_norms", "classifier_norm_table", "classifier_norm_tables", "representative_alpha",
    "ImageExamples", "pick_head_tail_examples", "grad_cam", "feature_map_size", "grad_cam_note",
    "tsne_embedding", "tsne_table",
    "group_table", "stack_runs",
    "EXPERT_COLUMNS", "model_views", "expert_table",
    "USAGE_COLUMNS", "MATCH_COLUMNS", "component_usage", "component_match", "usage_matrix",
    "compound_measures", "usage_match_table", "usage_summary",
    # NBN's mechanism measured (notebook 04)
    "FROZEN_COSINE", "budget_table", "budget_summary", "initial_scale_table", "initial_scale_summary",
    "first_step_summary", "dynamics_summary",
    # sentences computed from the tables above
    "baseline_summary", "bias_summary", "comparison_summary", "alpha_summary",
]
