"""`nbn-tutorial study report`: a study's tables, contrasts and computed answers, written into a results folder.

From a study's run folder (``study run --out``) it writes:

- ``results.csv``: one row per run (dataset, arm, seed, status, accuracies in percent, feature-bias
  ratios and their distance from 1, final α and NBN bias state, CBN component usage, τ and the split it
  was chosen on, epochs, training images, seconds);
- ``per_class.csv``: one row per run and class (training count, its rank, accuracy in percent);
- ``dynamics.csv``: one row per NBN run and epoch (α and the NBN norms over training);
- ``contrasts.csv``: every paired contrast with its t-test, sign-flip and Holm-adjusted p (:mod:`.contrasts`);
- ``summary.md``: the answers in computed sentences, then per dataset the arm table and every contrast.

From a results folder alone (the committed ``studies/results/<name>``, no run folders) it rebuilds
``contrasts.csv`` and ``summary.md`` from the committed tables, so every committed study can be reported
again without training. ``update=True`` replaces only the runs the run folder holds (for example the
arms re-run for a new measure) and keeps every other committed row. Every file starts with its
provenance as ``#`` lines: the study, each session that ran it, and the report command.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text, ensure_dir
from nbn_tutorial.study.contrasts import Design, contrast_table
from nbn_tutorial.study.runner import PLAN_FILE, load_plan, read_rows, report_plan
from nbn_tutorial.study.spec import load_study, plan_study
from nbn_tutorial.study.stats import METHOD
from nbn_tutorial.study.summary import summary_markdown
from nbn_tutorial.study.tables import (RESULT_FILES, dynamics_frame, per_class_frame, read_header, read_table,
                                       results_frame)
from nbn_tutorial import provenance
import tempfile

KEYS = ["dataset", "arm", "seed"]
TESTS = ("tests: paired t-test p, exact sign-flip permutation p (all 2^n sign patterns; seeded Monte Carlo above "
         "16 seeds) and the t-test p Holm-adjusted within its family (the primary contrasts; each dataset's other "
         "contrasts)")


def _session_lines(plan: dict) -> list[str]:
    lines = []
    for session in plan.get("sessions", []):
        software = ", ".join(f"{key} {value}" for key, value in session.get("versions", {}).items())
        lines.append(f"runs: `{session.get('command')}` started {session.get('started')} with {software}")
    return lines


def _header(name: str, description: str, sessions: list[str], command: str) -> list[str]:
    return [f"study: {name}: {' '.join(description.split())}", *sessions,
            f"report made by: `{command}` on {provenance.now()}",
            f"intervals: {METHOD}; differences are paired (same seed, same data, same initialisation)", TESTS]


def _csv(header: list[str], frame: pd.DataFrame) -> str:
    return "".join(f"# {line}\n" for line in header) + frame.to_csv(index=False)


def _merge(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` without the runs ``new`` holds, then ``new``: rows keyed by (dataset, arm, seed)."""
    if old.empty:
        return new
    replaced = pd.MultiIndex.from_frame(new[KEYS].astype({"seed": int}))
    kept = old[~pd.MultiIndex.from_frame(old[KEYS].astype({"seed": int})).isin(replaced)]
    return pd.concat([kept, new], ignore_index=True)


def _ordered(frame: pd.DataFrame, plan_order: list[tuple[str, str]]) -> pd.DataFrame:
    """Rows in study order (datasets and arms as the study lists them, then by seed)."""
    rank = {key: index for index, key in enumerate(plan_order)}
    order = frame.apply(lambda row: (rank.get((row["dataset"], row["arm"]), len(rank)), int(row["seed"])), axis=1)
    return frame.iloc[sorted(range(len(frame)), key=lambda i: order.iloc[i])].reset_index(drop=True)


def load_design(name: str, source: str | None = None):
    """The study file of ``name`` (from ``studies/``, else ``source``) and its :class:`Design`."""
    try:
        study = load_study(name)
    except UserError:
        if source is None or not Path(source).is_file():
            raise
        study = load_study(source)
    return study, Design.of(study)


def _fill_models(results: pd.DataFrame, study) -> pd.DataFrame:
    """``results`` with the model of each run the table does not name (reports written before the column
    existed), taken from the study file's planned configs."""
    missing = results["model"].fillna("") == ""
    if not missing.any():
        return results
    with tempfile.TemporaryDirectory() as scratch:
        models = {(run.dataset, run.arm): run.values.get("model", "") for run in plan_study(study, scratch)}
    filled = results.copy()
    filled.loc[missing, "model"] = [models.get((row["dataset"], row["arm"]), "")
                                    for _, row in results[missing].iterrows()]
    return filled


def _write(target: Path, name: str, header: list[str], tables: dict[str, pd.DataFrame]) -> Path:
    study, design = load_design(name, tables.pop("_source", None))
    results = tables["results"] = _fill_models(tables["results"], study)
    contrasts = contrast_table(results, design)
    order = [(dataset, arm) for dataset in study.datasets for arm in study.arms_of(dataset)]
    for which in ("results", "per_class", "dynamics"):
        frame = tables[which]
        atomic_write_text(target / RESULT_FILES[which], _csv(header, _ordered(frame, order) if len(frame) else frame))
    atomic_write_text(target / RESULT_FILES["contrasts"], _csv(header, contrasts))
    summary = target / "summary.md"
    atomic_write_text(summary, summary_markdown(name, header, results, tables["per_class"], tables["dynamics"],
                                                contrasts, design))
    return summary


def _plan_after_update(out: Path, plan: dict, results: pd.DataFrame, allow_incomplete: bool) -> dict:
    """The plan of an updated report: complete (its own description) when the merged rows hold every planned run
    finished; otherwise refused unless ``allow_incomplete`` (then described as the run folder's plan says)."""
    finished = {(row["dataset"], row["arm"], f"seed{int(row['seed'])}") for _, row in results.iterrows()
                if row["status"] == "finished"}
    missing = [run for run in plan["runs"] if tuple(Path(run).parts[:3]) not in finished]
    if not missing:
        return {**plan, "description": load_plan(out).get("description", "")}
    if not allow_incomplete:
        raise UserError(f"the updated report would still lack {len(missing)} planned run(s) (first: {missing[0]}); "
                        "finish them, or report with --allow-incomplete")
    return plan


def write_study_report(out_dir: str | os.PathLike, results_dir: str | os.PathLike | None = None,
                       command: str | None = None, update: bool = False, allow_incomplete: bool = False) -> Path:
    """Write every report file for the study run in ``out_dir`` (see the module docstring); returns summary.md.

    With ``update``, runs the run folder does not hold keep their rows from the tables already in
    ``results_dir`` (whose header lines are kept too)."""
    out = Path(out_dir)
    # refuses unmeasured runs unless allowed; with update the earlier report may hold them (checked below)
    rows, plan = read_rows(out), report_plan(out, allow_incomplete or update)
    target = ensure_dir(results_dir if results_dir is not None else out)
    command = command or provenance.command_line()
    tables = {"results": results_frame(rows), "per_class": per_class_frame(rows), "dynamics": dynamics_frame(rows)}
    sessions = _session_lines(plan)
    if update:
        if not (target / RESULT_FILES["results"]).is_file():
            raise UserError(f"--update keeps the rows of an earlier report, but {target} holds none; leave --update "
                            "out to write a new report")
        earlier = [line for line in read_header(target / RESULT_FILES["results"]) if line.startswith("runs")]
        sessions = [*earlier, *[line for line in sessions if line not in earlier]]
        tables = {which: _merge(read_table(target, which), frame) for which, frame in tables.items()}
        plan = _plan_after_update(out, plan, tables["results"], allow_incomplete)
    tables["_source"] = plan.get("source")
    header = _header(plan["study"], plan.get("description", ""), sessions, command)
    return _write(target, plan["study"], header, tables)


def rebuild_study_report(results_dir: str | os.PathLike, command: str | None = None,
                         study_name: str | None = None) -> Path:
    """Rewrite contrasts.csv and summary.md (and the tables' headers) from a results folder's committed tables."""
    target = Path(results_dir)
    if (target / PLAN_FILE).is_file():
        raise UserError(f"{target} is a study run folder; report it with `nbn-tutorial study report {target} --out "
                        "RESULTS`")
    tables = {which: read_table(target, which) for which in ("results", "per_class", "dynamics")}
    lines = read_header(target / RESULT_FILES["results"])
    found = next((line for line in lines if line.startswith("study: ")), None)
    name = study_name or (found.split(": ", 2)[1] if found else None)
    if name is None:
        raise UserError(f"{target / RESULT_FILES['results']} does not name its study in its header; pass --study NAME")
    description = found.split(": ", 2)[2] if found and found.count(": ") >= 2 else ""
    sessions = [line for line in lines if line.startswith("runs")]
    header = _header(name, description, sessions, command or provenance.command_line())
    return _write(target, name, header, tables)


def is_results_folder(folder: str | os.PathLike) -> bool:
    """True for a report folder (results.csv, no study.json), False for a study's run folder."""
    folder = Path(folder)
    return (folder / RESULT_FILES["results"]).is_file() and not (folder / PLAN_FILE).is_file()
