"""Notebooks 06-08's plumbing for studies: open a study's committed results (or train a small one in the kernel),
say where its numbers come from, and save its table and answers where the report finds them.

What the results say is :mod:`nbn_tutorial.study`'s (:mod:`~nbn_tutorial.study.view`,
:mod:`~nbn_tutorial.study.answers`, :mod:`~nbn_tutorial.study.compound`).
"""
from __future__ import annotations

import os
from pathlib import Path

from nbn_tutorial import study
from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks.tables import markdown_table
from nbn_tutorial.study.compound import COMPOUND_STUDY, compound_conclusions, compound_table
from nbn_tutorial.study.view import StudyView, arm_tables, committed_results, read_study
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.wording import Summary

STUDY_TABLE = "study_table"            # notebook 06's arm table (.md) in the run directory, for the report
STUDY_ANSWERS = "study_answers"        # notebook 06's computed answers (.md), for the report
COMPOUND_TABLE = "compound_table"      # notebook 08's study table (.md) in the run directory, for the report
COMPOUND_ANSWERS = "compound_answers"  # notebook 08's computed conclusions (.md), for the report


def _run_small_study(name: str, run_dir: str | os.PathLike, jobs: int) -> Path:
    out = Path(run_dir) / "study" / name
    study.run_study(name, out, jobs=jobs, progress=True)
    study.write_study_report(out, command=f"nbt.notebooks.open_study(rerun=True, rerun_study={name!r})")
    return out


def open_study(name: str = "nbn_ablation", *, rerun: bool = False, rerun_study: str | None = None,
               run_dir: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None,
               jobs: int = 1) -> StudyView:
    """The results of study ``name``: the committed ones (or ``results_dir``), or, with ``rerun=True``, those of
    ``rerun_study`` (a smaller grid) trained now into ``run_dir``/study/ (resumable: a rerun continues)."""
    chosen = rerun_study if rerun and rerun_study else name
    if rerun:
        if run_dir is None:
            raise UserError("rerun=True needs a run_dir to train the study's runs into")
        folder = _run_small_study(chosen, run_dir, jobs)
    else:
        folder = Path(results_dir) if results_dir is not None else committed_results(name)
    if not (folder / "results.csv").is_file():
        raise UserError(f"no study results in {folder}; run `nbn-tutorial study run {chosen} --out runs/studies/"
                        f"{chosen}` and `nbn-tutorial study report runs/studies/{chosen} --out {folder}`, or set "
                        "rerun=True to train a small grid in this notebook")
    return read_study(chosen, folder)


def compound_study(results_dir: str | os.PathLike | None = None) -> StudyView:
    """The ``compound_bn`` study's results: the committed studies/results/compound_bn/, or ``results_dir``."""
    folder = Path(results_dir) if results_dir is not None else committed_results(COMPOUND_STUDY)
    if not (folder / "results.csv").is_file() or not (folder / "per_class.csv").is_file():
        raise UserError(f"no results of the {COMPOUND_STUDY} study in {folder}; run `nbn-tutorial study run "
                        f"{COMPOUND_STUDY} --out runs/studies/{COMPOUND_STUDY} --jobs 2` and `nbn-tutorial study "
                        f"report runs/studies/{COMPOUND_STUDY} --out {folder}`, or point results_dir (notebook 08's "
                        "cbn_results_dir) at a folder written by `nbn-tutorial study report`")
    return read_study(COMPOUND_STUDY, folder)


def study_provenance(view: StudyView) -> Summary:
    """Where the numbers come from (the results' header: commands, software, date), as a Markdown list."""
    runs = view.results
    counts = ", ".join(f"{dataset}: {int(group['seed'].nunique())} seeds × {int(group['arm'].nunique())} arms"
                       for dataset, group in runs.groupby("dataset", sort=False))
    lines = [f"Results of the study **{view.name}** from `{view.folder}` ({counts}; "
             f"{int((runs['status'] != 'finished').sum())} failed runs):", ""]
    return Summary("\n".join(lines + [f"- {line}" for line in view.header]))


def _save_markdown(table, folder: Path, name: str) -> None:
    flat = table.reset_index()
    atomic_write_text(folder / f"{name}.md", markdown_table(flat.to_dict("records"), list(flat.columns)) + "\n")


def save_study_summary(view: StudyView, run_dir: str | os.PathLike) -> None:
    """Write the arm table and the computed answers into the run directory, where the report finds them."""
    folder = Path(run_dir)
    _save_markdown(arm_tables(view), folder, STUDY_TABLE)
    atomic_write_text(folder / f"{STUDY_ANSWERS}.md", f"{study_provenance(view)}\n\n{study.study_answers(view)}\n")


def save_compound_summary(view: StudyView, run_dir: str | os.PathLike) -> None:
    """Write the study table and the computed conclusions into the run directory, where the report finds them."""
    folder = Path(run_dir)
    _save_markdown(compound_table(view), folder, COMPOUND_TABLE)
    atomic_write_text(folder / f"{COMPOUND_ANSWERS}.md", f"{compound_conclusions(view)}\n")
