"""The notebook sequence's plumbing: papermill runner, parameter profiles, sweeps, the demo report, and what the
cells call around their work.

`run_sequence` executes the numbered notebooks (01..08) in order in a kernel of the current interpreter, passing one
`run_dir` so later notebooks reuse earlier checkpoints. Parameters come from a profile in
notebooks/params/ (or any YAML file). A parameter name is accepted when at least one notebook of
the sequence declares it in its cell tagged `parameters` (so a profile written for the whole sequence also
works with `only`); any other name is an error, and each selected notebook receives only the
parameters it declares. `run_sweep` runs a grid of parameter sets, skipping finished ones.

The cells compute with the domain packages (``nbt.data``, ``nbt.nn``, ``nbt.models``, ``nbt.losses``,
``nbt.train``, ``nbt.diagnosis``, ``nbt.study``); from here they take only plumbing: setting up, building
run configs and paths, training a plan, opening runs and studies, describing models, recording results,
saving figures, tables and sentences for the report, and the provenance of a study's numbers.

Modules: ``profiles`` (profiles, declared parameters, notebook selection), ``runner`` (papermill
execution), ``manifest`` (sequence.json: merged re-runs, failures), ``implied`` (the training configs
that parameters imply, checked before running), ``hygiene`` (committed form, nbval preparation), ``sweeps``,
``report``, ``rendering`` (HTML pages), ``exercises`` (course mode: nbgrader markup, student versions),
``tables`` (markdown tables, saving tables and sentences), ``helpers`` (run directory, results, figures),
``runs`` (run configs and paths, recording and opening runs, describing models), ``full_runs`` (notebook 05's
plan and launch commands), ``rebalancing`` (notebook 07's stage-2 runs) and ``studies`` (opening studies,
their provenance, saving their tables). A name whose computation moved to a domain (``moved``) raises an
AttributeError naming its new home.
"""
from nbn_tutorial import paths
from nbn_tutorial.notebooks.exercises import (Exercise, is_exercise_cell, list_exercises, student_notebook,
                                              write_student_notebooks)
from nbn_tutorial.notebooks.full_runs import (LAUNCH_SCRIPT, SEED_RUNS, SEED_TABLE, PlannedRun, gpu_plan_note,
                                              launch_commands, plan_runs, plan_table, preset_table, train_plan,
                                              write_launch_script)
from nbn_tutorial.notebooks.helpers import (FIGURE_INDEX, FIGURES_SUBDIR, RESULTS_FILE, project_path, read_results,
                                            record_result, resolve_run_dir, save_figure, setup)
from nbn_tutorial.notebooks.hygiene import CHECK_OUTPUT_MARKER, clean_notebook, clean_notebooks, prepare_notebooks
from nbn_tutorial.notebooks.implied import check_training_configs
from nbn_tutorial.notebooks.manifest import check_complete
from nbn_tutorial.notebooks.moved import MOVED, moved_error
from nbn_tutorial.notebooks.profiles import (DEFAULT_PROFILE, NOTEBOOK_NAME, SWEEP_PREFIX, check_parameters,
                                             discover_notebooks, list_profiles, load_profile, notebook_parameters,
                                             select_notebooks)
from nbn_tutorial.notebooks.rebalancing import REBALANCING_SUMMARY, REBALANCING_TABLE, train_stage2
from nbn_tutorial.notebooks.report import build_report
from nbn_tutorial.notebooks.runner import (KERNEL_ENV, MANIFEST_FILE, RUN_DIR_PARAMETER, RUN_SUBDIR, run_notebook,
                                           run_sequence)
from nbn_tutorial.notebooks.runs import (GROUP_METRICS, RunView, config_digest, describe_model, open_run, record_run,
                                         results_frame, ride_config, run_config, run_path)
from nbn_tutorial.notebooks.studies import (COMPOUND_ANSWERS, COMPOUND_TABLE, STUDY_ANSWERS, STUDY_TABLE,
                                            compound_study, open_study, save_compound_summary, save_study_summary,
                                            study_provenance)
from nbn_tutorial.notebooks.sweeps import (DONE_MARKER, SWEEP_KEYS, Sweep, load_sweep, run_sweep, set_name,
                                           sweep_rows, sweep_sets, write_sweep_summary)
from nbn_tutorial.notebooks.tables import markdown_table, save_table, save_text

NOTEBOOK_DIR = paths.NOTEBOOK_DIR
PARAMS_DIR = paths.PROFILE_DIR
PROJECT_ROOT = NOTEBOOK_DIR.parent   # the folder holding notebooks/ and configs/ (kept for old imports)

PLUMBING = (   # what the cells may call here: set up, configs and paths, runs and studies opened, things saved
    "setup", "resolve_run_dir", "project_path", "run_config", "ride_config", "run_path", "config_digest",
    "plan_runs", "plan_table", "preset_table", "train_plan", "gpu_plan_note", "write_launch_script",
    "launch_commands", "train_stage2", "open_run", "open_study", "compound_study", "describe_model", "record_run",
    "record_result", "read_results", "results_frame", "study_provenance", "save_figure", "save_table", "save_text",
    "save_study_summary", "save_compound_summary",
)

__all__ = [
    # folders and file names
    "PROJECT_ROOT", "NOTEBOOK_DIR", "PARAMS_DIR", "DEFAULT_PROFILE", "SWEEP_PREFIX", "RUN_SUBDIR", "MANIFEST_FILE",
    "RESULTS_FILE", "FIGURES_SUBDIR", "FIGURE_INDEX", "DONE_MARKER", "SEED_TABLE", "SEED_RUNS", "RUN_DIR_PARAMETER",
    "KERNEL_ENV", "NOTEBOOK_NAME", "GROUP_METRICS", "CHECK_OUTPUT_MARKER", "SWEEP_KEYS", "LAUNCH_SCRIPT",
    "STUDY_TABLE", "STUDY_ANSWERS", "REBALANCING_TABLE", "REBALANCING_SUMMARY", "COMPOUND_TABLE", "COMPOUND_ANSWERS",
    "PLUMBING",
    # profiles and parameters
    "list_profiles", "load_profile", "notebook_parameters", "discover_notebooks", "select_notebooks",
    "check_parameters",
    # execution, hygiene, sweeps, report
    "run_notebook", "run_sequence", "prepare_notebooks", "clean_notebook", "clean_notebooks",
    "Sweep", "load_sweep", "sweep_sets", "set_name", "run_sweep", "sweep_rows", "write_sweep_summary",
    "build_report", "check_complete", "check_training_configs",
    # course mode
    "Exercise", "list_exercises", "is_exercise_cell", "student_notebook", "write_student_notebooks",
    # what the cells call around their work
    "markdown_table", "save_table", "save_text", "project_path", "setup", "resolve_run_dir", "record_result",
    "read_results", "save_figure", "run_config", "ride_config", "config_digest", "run_path", "record_run",
    "results_frame", "RunView", "open_run", "describe_model", "PlannedRun", "plan_runs", "plan_table",
    "launch_commands", "train_plan", "preset_table", "write_launch_script", "gpu_plan_note", "train_stage2",
    "open_study", "compound_study", "study_provenance", "save_study_summary", "save_compound_summary",
]


def __getattr__(name: str):
    """A name that moved to a domain package (:data:`MOVED`) fails with its new home."""
    raise moved_error(name)
