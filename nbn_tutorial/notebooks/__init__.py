"""The notebook sequence: papermill runner, parameter profiles, sweeps, the demo report, notebook helpers.

`run_sequence` executes notebooks/01..05 in order in a kernel of the current interpreter, passing one
`run_dir` so later notebooks reuse earlier checkpoints. Parameters come from a profile in
notebooks/params/ (or any YAML file). A parameter name is accepted when at least one notebook of
the sequence declares it in its cell tagged `parameters` (so a profile written for all five also
works with `only`); any other name is an error, and each selected notebook receives only the
parameters it declares. `run_sweep` runs a grid of parameter sets, skipping finished ones.

The remaining functions are what the notebooks call so that they hold no logic themselves: run
directory resolution, recording results, figures for the report and sentences computed from numbers.

Modules: ``profiles`` (profiles, declared parameters, notebook selection), ``runner`` (papermill
execution), ``manifest`` (sequence.json: merged re-runs, failures), ``implied`` (the training configs
that parameters imply, checked before running), ``hygiene`` (committed form, nbval preparation), ``sweeps``,
``report``, ``tables`` (markdown and mean ± std tables), ``helpers`` (run directory, results, figures),
``runs`` (training runs from notebooks), ``longtail`` (notebook 01's tables), ``full_runs`` (notebook
05), ``exercises`` (course mode: nbgrader markup, student versions), ``prose`` (sentences computed
from numbers), ``mechanism`` (notebook 04's measurements of NBN's mechanism), ``studies`` (notebook
06: a study's results), ``rebalancing`` (notebook 07: cRT, τ-norm, LWS and RIDE on the stage-1 runs),
``compound`` (notebook 08: Compound BN's components and study).
"""
from nbn_tutorial import paths
from nbn_tutorial.notebooks.compound import (COMPOUND_ANSWERS, COMPOUND_STUDY, COMPOUND_TABLE, compound_conclusions,
                                             compound_study, compound_summary, compound_table, run_component_usage,
                                             save_compound_summary, usage_match_table, usage_summary)
from nbn_tutorial.notebooks.exercises import (Exercise, is_exercise_cell, list_exercises, student_notebook,
                                              write_student_notebooks)
from nbn_tutorial.notebooks.full_runs import (LAUNCH_SCRIPT, RUN_COLUMNS, SEED_RUNS, SEED_TABLE, PlannedRun,
                                              gather_results, launch_commands, mean_accuracy_table, plan_runs,
                                              plan_table, preset_table, results_table, train_plan,
                                              write_launch_script)
from nbn_tutorial.notebooks.helpers import (FIGURE_INDEX, FIGURES_SUBDIR, RESULTS_FILE, project_path, read_results,
                                            record_result, resolve_run_dir, save_figure, setup)
from nbn_tutorial.notebooks.hygiene import CHECK_OUTPUT_MARKER, clean_notebook, clean_notebooks, prepare_notebooks
from nbn_tutorial.notebooks.longtail import benchmark_shot_groups, longtail_counts_table, split_table
from nbn_tutorial.notebooks.mechanism import (budget_summary, budget_table, dynamics_summary, first_step_summary,
                                              initial_scale_summary, initial_scale_table)
from nbn_tutorial.notebooks.profiles import (DEFAULT_PROFILE, NOTEBOOK_NAME, SWEEP_PREFIX, check_parameters,
                                             discover_notebooks, list_profiles, load_profile, notebook_parameters,
                                             select_notebooks)
from nbn_tutorial.notebooks.prose import (Summary, alpha_summary, baseline_summary, bias_summary, change_sentence,
                                          comparison_summary, describe_split, gpu_plan_note, grad_cam_note,
                                          seed_summary)
from nbn_tutorial.notebooks.report import build_report
from nbn_tutorial.notebooks.implied import check_training_configs
from nbn_tutorial.notebooks.manifest import check_complete
from nbn_tutorial.notebooks.runner import (KERNEL_ENV, MANIFEST_FILE, RUN_DIR_PARAMETER, RUN_SUBDIR, run_notebook,
                                           run_sequence)
from nbn_tutorial.notebooks.runs import (GROUP_METRICS, RunView, config_digest, describe_model, final_metrics,
                                         open_run, record_run, results_frame, run_config, run_path)
from nbn_tutorial.notebooks.rebalancing import (REBALANCING_SUMMARY, REBALANCING_TABLE, TauResult, changed_tensors,
                                                classifier_norms, expert_tables, rebalancing_summary, rebalancing_table, ride_config,
                                                sampled_class_counts, stage2_config, tau_curves, tau_normalize_runs,
                                                train_stage2)
from nbn_tutorial.notebooks.studies import (STUDY_ANSWERS, STUDY_TABLE, StudyView, arm_tables, arms_table,
                                            collapse_evidence, committed_results, evidence_dataset, feature_evidence,
                                            mechanism_summary, mechanism_table, open_study,
                                            per_class_dataset, per_class_differences, per_class_summary,
                                            save_study_summary, study_answers, study_provenance)
from nbn_tutorial.notebooks.sweeps import (DONE_MARKER, SWEEP_KEYS, Sweep, load_sweep, run_sweep, set_name,
                                           sweep_rows, sweep_sets, write_sweep_summary)
from nbn_tutorial.notebooks.tables import format_mean_std, markdown_table, mean_std_rows, save_table

NOTEBOOK_DIR = paths.NOTEBOOK_DIR
PARAMS_DIR = paths.PROFILE_DIR
PROJECT_ROOT = NOTEBOOK_DIR.parent   # the folder holding notebooks/ and configs/ (kept for old imports)

__all__ = [
    # folders and file names
    "PROJECT_ROOT", "NOTEBOOK_DIR", "PARAMS_DIR", "DEFAULT_PROFILE", "SWEEP_PREFIX", "RUN_SUBDIR", "MANIFEST_FILE",
    "RESULTS_FILE", "FIGURES_SUBDIR", "FIGURE_INDEX", "DONE_MARKER", "SEED_TABLE", "SEED_RUNS", "RUN_DIR_PARAMETER",
    "KERNEL_ENV", "NOTEBOOK_NAME", "GROUP_METRICS", "CHECK_OUTPUT_MARKER", "SWEEP_KEYS", "RUN_COLUMNS",
    # profiles and parameters
    "list_profiles", "load_profile", "notebook_parameters", "discover_notebooks", "select_notebooks",
    "check_parameters",
    # execution, hygiene, sweeps, report
    "run_notebook", "run_sequence", "prepare_notebooks", "clean_notebook", "clean_notebooks",
    "Sweep", "load_sweep", "sweep_sets", "set_name", "run_sweep", "sweep_rows", "write_sweep_summary",
    "build_report", "check_complete", "check_training_configs",
    # course mode
    "Exercise", "list_exercises", "is_exercise_cell", "student_notebook", "write_student_notebooks",
    # tables
    "mean_std_rows", "format_mean_std", "markdown_table", "save_table",
    # helpers the notebooks call
    "project_path", "setup", "resolve_run_dir", "record_result", "read_results", "save_figure",
    "run_config", "config_digest", "run_path", "final_metrics", "record_run", "RunView", "open_run",
    "describe_model", "longtail_counts_table", "benchmark_shot_groups", "split_table",
    "PlannedRun", "plan_runs", "plan_table", "launch_commands", "train_plan", "gather_results", "results_table",
    "results_frame", "preset_table", "write_launch_script", "LAUNCH_SCRIPT",
    "mean_accuracy_table",
    # prose
    "Summary", "change_sentence", "describe_split", "baseline_summary", "bias_summary", "comparison_summary",
    "alpha_summary", "seed_summary", "grad_cam_note", "gpu_plan_note",
    # notebook 04's mechanism cells
    "budget_table", "budget_summary", "initial_scale_table", "initial_scale_summary", "first_step_summary",
    "dynamics_summary",
    # notebook 06: studies
    "StudyView", "open_study", "committed_results", "study_provenance", "arm_tables", "study_answers",
    "evidence_dataset", "feature_evidence", "collapse_evidence",
    "per_class_differences", "per_class_summary", "arms_table", "per_class_dataset", "save_study_summary",
    "STUDY_TABLE", "STUDY_ANSWERS", "mechanism_table", "mechanism_summary",
    # notebook 07: re-balancing and experts
    "REBALANCING_TABLE", "REBALANCING_SUMMARY", "TauResult", "stage2_config", "train_stage2", "ride_config",
    "tau_normalize_runs", "tau_curves", "classifier_norms", "changed_tensors", "expert_tables", "rebalancing_table",
    "rebalancing_summary", "sampled_class_counts",
    # notebook 08: Compound BN
    "COMPOUND_STUDY", "COMPOUND_TABLE", "COMPOUND_ANSWERS", "run_component_usage", "usage_match_table",
    "usage_summary", "compound_study", "compound_table", "compound_conclusions", "save_compound_summary",
    "compound_summary",
]
