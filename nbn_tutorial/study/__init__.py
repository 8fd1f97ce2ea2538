"""Seeded studies of training choices: datasets × arms × seeds, run resumably, reported with paired intervals,
p-values adjusted for multiple comparisons, and computed sentences.

``nbn-tutorial study run STUDY --out DIR [--jobs N] [--arms A,B]`` trains every run (:mod:`.runner`);
``nbn-tutorial study report DIR [--out RESULTS]`` writes the tables, contrasts and verdicts (:mod:`.report`),
and ``nbn-tutorial study report RESULTS`` rebuilds them from committed results alone. Study files live in
``studies/`` (:mod:`.spec` describes the format); committed results in ``studies/results/``.

Modules: ``spec`` (study files), ``runner`` (training), ``measures`` (what a run records), ``tables``
(results, per-class and dynamics tables), ``stats`` (intervals, p-values, Holm, correlation),
``contrasts`` (every paired contrast and its family), ``verdicts`` and ``evidence`` (sentences), ``summary``
(summary.md), ``report`` (writing the files), ``readme`` (the README block), ``view`` (a study's results
opened for reading), ``answers`` (what they answer, NBN's state per arm), ``compound`` (the compound_bn
study's table and sentences) and ``seeds`` (runs over seeds without a study file: mean ± std, the spread).
"""
from nbn_tutorial.study.answers import (collapse_evidence, evidence_dataset, feature_evidence, mechanism_summary,
                                       mechanism_table, study_answers)
from nbn_tutorial.study.compound import COMPOUND_STUDY, compound_conclusions, compound_summary, compound_table
from nbn_tutorial.study.contrasts import CONTRAST_COLUMNS, PRIMARY_FAMILY, Design, contrast_table, planned_contrasts
from nbn_tutorial.study.evidence import alpha_correlation, alpha_trajectories
from nbn_tutorial.study.readme import check_readme, readme_block, readme_table, update_readme
from nbn_tutorial.study.report import is_results_folder, load_design, rebuild_study_report, write_study_report
from nbn_tutorial.study.seeds import (SETTING_COLUMNS, format_mean_std, mean_accuracy_table, mean_std_rows,
                                     sample_std, seed_summary, seed_table)
from nbn_tutorial.study.runner import load_plan, read_rows, report_plan, run_one, run_study, unmeasured_runs
from nbn_tutorial.study.spec import PlannedRun, Study, load_study, plan_study, resolve_study_path
from nbn_tutorial.study.stats import (Correlation, Interval, correlation, holm, paired_difference, paired_values,
                                     sign_flip_p, smallest_sign_flip_p, t_interval, t_test_p)
from nbn_tutorial.study.summary import design_sentence, study_conclusions
from nbn_tutorial.study.tables import (arm_intervals, arm_table, by_seed, metric_label, paired_differences,
                                       paired_intervals, per_class_frame, per_class_paired, read_header, read_results, read_table,
                                       results_frame)
from nbn_tutorial.study.verdicts import contrast_sentence, effect, judgement
from nbn_tutorial.study.view import (StudyView, arm_tables, arms_table, committed_results, per_class_dataset,
                                     per_class_differences, per_class_summary, read_study)

__all__ = [
    "CONTRAST_COLUMNS", "PRIMARY_FAMILY", "Design", "contrast_table", "planned_contrasts", "alpha_correlation",
    "alpha_trajectories", "readme_block", "readme_table", "update_readme", "check_readme", "report_plan",
    "unmeasured_runs", "is_results_folder", "load_design",
    "rebuild_study_report", "write_study_report", "load_plan", "read_rows", "run_one", "run_study", "PlannedRun",
    "Study", "load_study", "plan_study", "resolve_study_path", "Correlation", "Interval", "correlation", "holm",
    "paired_difference", "paired_values", "sign_flip_p", "smallest_sign_flip_p", "t_interval", "t_test_p",
    "design_sentence", "study_conclusions", "arm_intervals", "arm_table", "by_seed", "metric_label",
    "paired_differences", "paired_intervals", "per_class_frame", "per_class_paired", "read_header", "read_results",
    "read_table",
    "results_frame", "contrast_sentence", "effect", "judgement",
    # a study's results opened for reading, and what they answer
    "StudyView", "read_study", "committed_results", "arms_table", "arm_tables", "per_class_dataset",
    "per_class_differences", "per_class_summary", "study_answers", "mechanism_table", "mechanism_summary",
    "evidence_dataset", "feature_evidence", "collapse_evidence",
    "COMPOUND_STUDY", "compound_table", "compound_conclusions", "compound_summary",
    # runs over seeds without a study file
    "SETTING_COLUMNS", "sample_std", "format_mean_std", "mean_std_rows", "seed_table", "mean_accuracy_table",
    "seed_summary",
]
