"""`nbn-tutorial study run`: train every run of a study, resumably, optionally several processes at once.

Each run lives in ``<out>/<dataset>/<arm>/seed<N>/`` (an ordinary run directory) and, once finished and
measured, holds ``study_row.json``. Running the study again skips measured runs, resumes unfinished
ones from their last checkpoint and refuses a directory trained with other settings. A run that fails
(for example a diverging loss) is recorded as failed with its message, and the study goes on.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_json, check_utf8_path, read_json
from nbn_tutorial.registry import check_choice, positive_int
from nbn_tutorial.study.spec import ROW_FILE, PlannedRun, Study, load_study, plan_study
from nbn_tutorial.wording import plural

PLAN_FILE = "study.json"


def _same_config(recorded: dict[str, Any], planned: dict[str, Any]) -> bool:
    """Whether a recorded config computes what the planned one does: keys a row of an older version lacks take
    their defaults, as in checkpoints (so adding a config key does not invalidate finished runs)."""
    from nbn_tutorial import train   # deferred: torch-free: this subpackage reads committed results without torch

    try:
        filled = train.config_to_dict(train.config_from_dict(recorded, "a study row"))
    except UserError:
        return False
    return filled == train.config_to_dict(train.config_from_dict(planned, "a planned study run"))


def _row_matches(run: PlannedRun) -> bool:
    """True when the run already holds a study row recorded for this run's config."""
    path = run.path / ROW_FILE
    if not path.is_file():
        return False
    row = read_json(path, "study row")
    if not _same_config(row.get("config") or {}, run.values):
        raise UserError(f"{run.path} holds a study run trained with other settings; delete that folder or run the "
                        "study into another --out")
    return True


def run_one(run: PlannedRun) -> dict[str, Any]:
    """Train (or resume) one planned run, measure it and write its ``study_row.json``; returns the row."""
    from nbn_tutorial import train   # deferred: torch-free: this subpackage reads committed results without torch
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial.study.measures import run_measures
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial.train.lock import folder_lock
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial.train.runtime import cpu_threads

    started = time.perf_counter()
    config = train.config_from_dict(run.values, f"study run {run.label}")
    row: dict[str, Any] = {"dataset": run.dataset, "arm": run.arm, "seed": run.seed, "preset": run.preset,
                           "config": run.values}
    with folder_lock(run.path):   # another writer there stops the study (it is not this run's failure)
        try:
            if run.posthoc is None:
                train.load_or_train(config, run.path, progress=False)
            with cpu_threads(config.cpu_threads):
                measured = run.path if run.posthoc is None else Path(run.posthoc["source"])
                row.update(status="finished", **run_measures(measured, tau_norm=(run.posthoc or {}).get("tau_norm")))
        except UserError as error:
            row.update(status="failed", error=str(error))
        row["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(run.path / ROW_FILE, row)
    return row


def _progress_line(done: int, total: int, row: dict[str, Any], started: float) -> str:
    elapsed = time.perf_counter() - started
    eta = elapsed / done * (total - done) if done else 0.0
    if row["status"] == "finished":
        result = f"balanced {100 * row['balanced_acc']:.1f}%, few {100 * row['few_acc']:.1f}%"
    else:
        result = f"FAILED: {row['error']}"
    return (f"[{done}/{total}] {row['dataset']} {row['arm']} seed {row['seed']}: {result} "
            f"({row['seconds']:.0f} s; about {eta / 60:.0f} min left)")


def _execute(pending: Sequence[PlannedRun], jobs: int, report: Callable[[dict[str, Any]], None]) -> None:
    if jobs == 1:
        for run in pending:
            report(run_one(run))
        return
    # spawn: fresh interpreters, so no torch thread pool or OpenMP state is inherited from this process
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue = list(pending)
        waiting_for = {run.path for run in pending}   # a run starts once the runs it builds on are measured
        running: dict = {}                              # future -> the path of its run
        while queue or running:
            while len(running) < jobs and (ready := next((run for run in queue
                                                          if not waiting_for.intersection(run.needs)), None)):
                queue.remove(ready)
                running[pool.submit(run_one, ready)] = ready.path
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                waiting_for.discard(running.pop(future))
                report(future.result())


def _write_plan(out: Path, study: Study, plan: Sequence[PlannedRun], command: str | None) -> None:
    """study.json: what the study is, its runs, and every session that ran it (command, versions, start)."""
    from nbn_tutorial import provenance   # deferred: torch-free: this subpackage reads committed results without torch

    previous = read_json(out / PLAN_FILE, "study plan") if (out / PLAN_FILE).is_file() else {}
    if previous and previous.get("study") != study.name:
        raise UserError(f"{out} holds the study {previous.get('study')!r}, not {study.name!r}; choose another --out")
    session = {"command": command or provenance.command_line(), "started": provenance.now(),
               "versions": provenance.software_versions()}
    atomic_write_json(out / PLAN_FILE, {
        "study": study.name, "source": str(study.source.resolve()), "description": study.description,
        "baseline": study.baseline, "reference": study.reference, "pairs": [list(pair) for pair in study.pairs],
        "runs": [str(run.path.relative_to(out)) for run in plan],
        "sessions": [*previous.get("sessions", []), session]})


def _chosen_runs(plan: Sequence[PlannedRun], pending: Sequence[PlannedRun], arms: Sequence[str] | None,
                 datasets: Sequence[str] | None, study: Study) -> list[PlannedRun]:
    """The pending runs of ``arms`` on ``datasets`` (None: all); a run whose source run is neither chosen nor
    measured is refused, naming the arm to add."""
    for arm in arms or ():
        check_choice("arm", arm, list(study.arms))
    for dataset in datasets or ():
        check_choice("dataset of the study", dataset, list(study.datasets))
    chosen = [run for run in pending if (arms is None or run.arm in arms)
              and (datasets is None or run.dataset in datasets)]
    waiting = {run.path for run in pending} - {run.path for run in chosen}
    for run in chosen:
        for needed in run.needs:
            if needed in waiting:
                source = next(other.arm for other in plan if other.path == needed)
                raise UserError(f"arm {run.arm!r} builds on arm {source!r}, whose run {needed} is not measured yet; "
                                f"add {source} to --arms")
    return chosen


def run_study(study: str | os.PathLike | Study, out_dir: str | os.PathLike, *, jobs: int = 1,
              progress: bool = True, command: str | None = None, arms: Sequence[str] | None = None,
              datasets: Sequence[str] | None = None) -> Path:
    """Run every planned run of ``study`` into ``out_dir`` (skipping measured ones; only those of ``arms`` and
    ``datasets`` when given, so that a long study can give some arms their seeds first); returns ``out_dir``.

    The folder is locked while the study runs (:mod:`nbn_tutorial.train.lock`), and created only once the
    study is planned: a study refused before it starts leaves no folder behind."""
    # deferred: torch-free: this subpackage reads committed results without torch
    from nbn_tutorial.train.lock import folder_lock

    positive_int(jobs, "jobs")
    study = study if isinstance(study, Study) else load_study(study)
    out = Path(out_dir)
    check_utf8_path(out, "study folder")
    plan = plan_study(study, out)
    with folder_lock(out, "study folder"):
        unmeasured = [run for run in plan if not _row_matches(run)]
        pending = _chosen_runs(plan, unmeasured, arms, datasets, study)
        _write_plan(out, study, plan, command)
        if progress:
            subset = [f"{what} {', '.join(names)}" for what, names in (("arms", arms), ("datasets", datasets))
                      if names]
            chosen = f" ({'; '.join(subset)}; {len(unmeasured) - len(pending)} other runs wait)" if subset else ""
            print(f"study {study.name}: {len(plan)} runs, {len(plan) - len(unmeasured)} already measured, "
                  f"{len(pending)} to run with {plural(jobs, 'process', 'processes')}{chosen} -> {out}", flush=True)
        started, done = time.perf_counter(), 0

        def report(row: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            if progress:
                print(_progress_line(done, len(pending), row, started), flush=True)

        _execute(pending, jobs, report)
    return out


def load_plan(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The study.json of a study folder: the study's name, comparisons, runs and sessions."""
    plan_path = Path(out_dir) / PLAN_FILE
    if not plan_path.is_file():
        raise UserError(f"{str(out_dir)!r} holds no study ({PLAN_FILE} is missing); run `nbn-tutorial study run` first")
    return read_json(plan_path, "study plan")


def unmeasured_runs(out_dir: str | os.PathLike) -> list[str]:
    """The planned runs of the study in ``out_dir`` without a result: ``<run folder> (missing)`` when the folder
    is gone, ``(unfinished)`` when it was stopped (or is still running) before it was measured."""
    out = Path(out_dir)
    return [f"{relative} ({'unfinished' if (out / relative).exists() else 'missing'})"
            for relative in load_plan(out)["runs"] if not (out / relative / ROW_FILE).is_file()]


def _finished_counts(out: Path, plan: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    """(finished, planned) runs of every (dataset, arm) of the plan."""
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for relative in plan["runs"]:
        key = tuple(Path(relative).parts[:2])
        row_path = out / relative / ROW_FILE
        finished = row_path.is_file() and read_json(row_path, "study row").get("status") == "finished"
        done, total = counts.get(key, (0, 0))
        counts[key] = (done + finished, total + 1)
    return counts


def report_plan(out_dir: str | os.PathLike, allow_incomplete: bool = False) -> dict[str, Any]:
    """The plan a report is written from: refused while planned runs have no result unless ``allow_incomplete``;
    when any planned run is not finished, its description ends with the finished runs behind every figure."""
    out = Path(out_dir)
    plan = load_plan(out)
    unmeasured = unmeasured_runs(out)
    if unmeasured and not allow_incomplete:
        shown = ", ".join(unmeasured[:4]) + (f" and {len(unmeasured) - 4} more" if len(unmeasured) > 4 else "")
        raise UserError(f"the study in {out} is incomplete: {plural(len(unmeasured), 'planned run')} without a result "
                        f"({shown}); finish it with `nbn-tutorial study run {plan.get('source')} --out {out}`, or "
                        "report the runs there are with --allow-incomplete")
    counts = _finished_counts(out, plan)
    if all(done == total for done, total in counts.values()):
        return plan
    state = "INCOMPLETE, reported with --allow-incomplete" if unmeasured else "some runs failed"
    basis = ", ".join(f"{dataset} {arm} {done}/{total}" for (dataset, arm), (done, total) in counts.items())
    return {**plan, "description": f"{plan.get('description', '')} ({state}: each figure rests only on finished runs; "
                                   f"finished/planned runs in this run folder per dataset and arm: {basis})"}


def read_rows(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The study rows of every planned run of the study in ``out_dir`` that has been measured, in plan order."""
    out = Path(out_dir)
    plan = load_plan(out)
    rows = []
    for relative in plan["runs"]:
        row_path = out / relative / ROW_FILE
        if row_path.is_file():
            rows.append(read_json(row_path, "study row"))
    return rows
