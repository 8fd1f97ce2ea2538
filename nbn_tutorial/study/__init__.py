"""Seeded studies of training choices: datasets × arms × seeds, run resumably, reported with paired intervals.

``nbn-tutorial study run STUDY --out DIR [--jobs N]`` trains every run (:mod:`.runner`);
``nbn-tutorial study report DIR [--out RESULTS]`` writes the tables and verdicts (:mod:`.report`).
Study files live in ``studies/`` (:mod:`.spec` describes the format); committed results in
``studies/results/``.
"""
from nbn_tutorial.study.readme import check_readme, readme_block, readme_table, update_readme
from nbn_tutorial.study.report import (
    arm_intervals,
    arm_table,
    dataset_verdicts,
    difference_sentence,
    paired_intervals,
    per_class_frame,
    per_class_paired,
    read_results,
    results_frame,
    write_study_report,
)
from nbn_tutorial.study.runner import load_plan, read_rows, report_plan, run_one, run_study, unmeasured_runs
from nbn_tutorial.study.spec import PlannedRun, Study, load_study, plan_study, resolve_study_path
from nbn_tutorial.study.stats import Interval, paired_difference, t_interval
from nbn_tutorial.study.verdicts import (baseline_answer, choices_answer, direction, feature_answer, nbn_answer,
                                         pair_answer, study_conclusions)

__all__ = [
    "Interval", "PlannedRun", "Study", "arm_intervals", "arm_table", "dataset_verdicts", "difference_sentence",
    "load_study", "paired_difference", "paired_intervals", "per_class_frame", "per_class_paired", "plan_study",
    "read_results", "read_rows", "load_plan", "resolve_study_path", "results_frame", "run_one", "run_study", "t_interval",
    "write_study_report", "readme_table", "readme_block", "update_readme", "check_readme", "report_plan",
    "unmeasured_runs", "study_conclusions", "nbn_answer",
    "baseline_answer", "pair_answer", "choices_answer", "feature_answer", "direction",
]
