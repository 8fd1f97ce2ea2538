"""Where the computations that once lived here went (issue 18): ``nbt.notebooks.<old name>`` raises an
AttributeError that names the domain function to call instead, so an old notebook fails with the way forward."""
from __future__ import annotations

_SAME_NAME = {   # old name -> the domain package that now holds a function of the same name
    "data": ("benchmark_shot_groups", "describe_split", "longtail_counts_table", "sampled_class_counts",
             "split_table"),
    "train": ("RUN_COLUMNS", "TauResult", "changed_tensors", "final_metrics", "rebalancing_summary",
              "rebalancing_table", "stage2_config", "tau_curves"),
    "diagnosis": ("alpha_summary", "baseline_summary", "bias_summary", "budget_summary", "budget_table",
                  "comparison_summary", "dynamics_summary", "first_step_summary", "grad_cam_note",
                  "initial_scale_summary", "initial_scale_table", "usage_match_table", "usage_summary"),
    "study": ("COMPOUND_STUDY", "StudyView", "arm_tables", "arms_table", "collapse_evidence", "committed_results",
              "compound_conclusions", "compound_summary", "compound_table", "evidence_dataset", "feature_evidence",
              "format_mean_std", "mean_accuracy_table", "mean_std_rows", "mechanism_summary", "mechanism_table",
              "per_class_dataset", "per_class_differences", "per_class_summary", "seed_summary", "study_answers"),
    "wording": ("Summary", "change_sentence"),
}
_RENAMED = {   # old name -> what replaces it (one run or model at a time, where the old one took a dict)
    "tau_normalize_runs": "train.tau_normalize_run (one stage-1 run at a time)",
    "classifier_norms": "diagnosis.classifier_norm_tables (of models: train.load_run(run)[0])",
    "expert_tables": "diagnosis.expert_table (one RIDE model and its test split at a time)",
    "gather_results": "train.gather_runs",
    "results_table": "study.seed_table",
    "run_component_usage": "diagnosis.component_usage (of a model, its test split and train counts)",
}
MOVED = {**{name: f"{package}.{name}" for package, names in _SAME_NAME.items() for name in names}, **_RENAMED}


def moved_error(name: str) -> AttributeError:
    """The error for ``nbn_tutorial.notebooks.<name>``: where the name went, or the usual error."""
    if name in MOVED:
        return AttributeError(f"nbn_tutorial.notebooks.{name} has moved to its domain: use "
                              f"nbn_tutorial.{MOVED[name]} (nbt.{MOVED[name]} in a notebook)")
    return AttributeError(f"module 'nbn_tutorial.notebooks' has no attribute {name!r}")
