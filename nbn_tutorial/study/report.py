"""`nbn-tutorial study report`: tables, paired confidence intervals and computed verdicts of a study.

Writes, into the results folder (default: the study's own folder):

- ``results.csv``: one row per run (dataset, arm, seed, status, accuracies in percent, feature-bias
  ratios, final α and NBN bias state, CBN component usage (paired and matched shares), epochs, seconds);
- ``per_class.csv``: one row per run and class (training count, its rank, accuracy in percent);
- ``summary.md``: per dataset, each arm's mean and 95% t-interval, its paired difference to the baseline
  on the same seeds (and to the reference arm, when the study names one), per-class paired differences
  against training count, and sentences computed from those intervals.

Every file starts with the command that produced the runs and the report, the software versions and
the date (CSV files as ``#`` comment lines: read them with ``pandas.read_csv(path, comment="#")``).
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbn_tutorial.fileio import atomic_write_text, ensure_dir
from nbn_tutorial.study.runner import read_rows, report_plan
from nbn_tutorial.study.stats import METHOD, Interval, paired_difference, t_interval

ACCURACIES = {"overall": "test_acc", "balanced": "balanced_acc", "many": "many_acc", "medium": "medium_acc",
              "few": "few_acc"}
RATIOS = ("feature_strength_ratio", "channel_strength_ratio")
EXTRA = ("alpha", "beta_norm_max", "beta_cos_first_min", "cbn_paired_share", "cbn_matched_share", "epochs", "seconds")
SUMMARY_METRICS = ("balanced", "few", "many", "feature_strength_ratio", "channel_strength_ratio")


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def results_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, status, accuracies (percent), feature-bias ratios and run facts."""
    records = []
    for row in rows:
        record = {key: row.get(key) for key in ("dataset", "arm", "seed", "status")}
        record.update({name: 100 * _nan(row.get(key)) for name, key in ACCURACIES.items()})
        record.update({key: _nan(row.get(key)) for key in (*RATIOS, *EXTRA)})
        record["error"] = row.get("error", "")
        records.append(record)
    return pd.DataFrame(records, columns=["dataset", "arm", "seed", "status", *ACCURACIES, *RATIOS, *EXTRA, "error"])


def per_class_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per finished run and class: training count, its rank (0 = most images) and accuracy (percent)."""
    records = []
    for row in rows:
        if row.get("status") != "finished":
            continue
        counts = np.asarray(row["train_counts"])
        ranks = np.empty(len(counts), dtype=np.int64)
        ranks[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
        for label, (count, accuracy) in enumerate(zip(counts.tolist(), row["per_class_acc"])):
            records.append({"dataset": row["dataset"], "arm": row["arm"], "seed": row["seed"], "class": label,
                            "train_count": count, "count_rank": int(ranks[label]), "accuracy": 100 * _nan(accuracy)})
    return pd.DataFrame(records, columns=["dataset", "arm", "seed", "class", "train_count", "count_rank", "accuracy"])


def _by_seed(results: pd.DataFrame, dataset: str, arm: str, metric: str) -> dict[int, float]:
    chosen = results[(results["dataset"] == dataset) & (results["arm"] == arm) & (results["status"] == "finished")]
    return dict(zip(chosen["seed"].astype(int), chosen[metric].astype(float)))


def arm_intervals(results: pd.DataFrame, dataset: str, metric: str) -> dict[str, Interval]:
    """Each arm's mean and t-interval of ``metric`` on ``dataset`` (finished runs)."""
    arms = results[results["dataset"] == dataset]["arm"].unique()
    return {arm: t_interval(list(_by_seed(results, dataset, arm, metric).values())) for arm in arms}


def paired_intervals(results: pd.DataFrame, dataset: str, metric: str, reference: str) -> dict[str, Interval]:
    """Each other arm's paired difference (arm − reference, same seeds) of ``metric`` on ``dataset``."""
    control = _by_seed(results, dataset, reference, metric)
    arms = [arm for arm in results[results["dataset"] == dataset]["arm"].unique() if arm != reference]
    return {arm: paired_difference(_by_seed(results, dataset, arm, metric), control) for arm in arms}


def per_class_paired(per_class: pd.DataFrame, dataset: str, reference: str) -> pd.DataFrame:
    """Per arm and training-count rank: paired accuracy difference (arm − reference, same seed and class)."""
    frame = per_class[per_class["dataset"] == dataset]
    control = frame[frame["arm"] == reference].set_index(["seed", "class"])
    records = []
    for arm in [a for a in frame["arm"].unique() if a != reference]:
        treated = frame[frame["arm"] == arm].set_index(["seed", "class"])
        joined = treated.merge(control[["accuracy"]], left_index=True, right_index=True, suffixes=("", "_reference"))
        joined["difference"] = joined["accuracy"] - joined["accuracy_reference"]
        for rank, members in joined.groupby("count_rank"):
            interval = t_interval(members["difference"].tolist())
            records.append({"arm": arm, "count_rank": int(rank), "train_count": float(members["train_count"].mean()),
                            "difference": interval.mean, "low": interval.low, "high": interval.high, "n": interval.n})
    return pd.DataFrame(records, columns=["arm", "count_rank", "train_count", "difference", "low", "high", "n"])


def metric_label(metric: str) -> str:
    names = {"balanced": "balanced accuracy", "few": "few-shot accuracy", "many": "many-shot accuracy",
             "overall": "overall accuracy", "medium": "medium-shot accuracy",
             "feature_strength_ratio": "few/many feature-strength ratio",
             "channel_strength_ratio": "few/many class-specific channel-strength ratio",
             "cbn_paired_share": "share of each class group's samples on its own CBN component",
             "cbn_matched_share": "share of each class group's samples on its best-matched CBN component"}
    return names.get(metric, metric)


def _unit(metric: str) -> str:
    return " points" if metric in ACCURACIES else ""


def difference_sentence(arm: str, reference: str, metric: str, interval: Interval) -> str:
    """One sentence: the paired difference, its interval and what the interval allows one to say."""
    if interval.n < 2:
        return f"{arm} vs {reference}, {metric_label(metric)}: fewer than two paired seeds, no interval."
    digits = 1 if metric in ACCURACIES else 3
    fmt = f"{{:+.{digits}f}}"
    numbers = (f"{fmt.format(interval.mean)}{_unit(metric)} (95% CI {fmt.format(interval.low)} to "
               f"{fmt.format(interval.high)}, {interval.n} paired seeds)")
    if not interval.excludes_zero:
        verdict = "the interval includes zero: no detectable difference at this scale"
    elif interval.mean > 0:
        verdict = "higher, and the interval excludes zero"
    else:
        verdict = "lower, and the interval excludes zero"
    return f"{arm} − {reference}, {metric_label(metric)}: {numbers}; {verdict}."


def dataset_verdicts(results: pd.DataFrame, dataset: str, baseline: str, reference: str | None) -> list[str]:
    """The sentences of one dataset: every arm against the baseline on balanced and few-shot accuracy and on
    the feature-bias ratios, then the NBN variants against the reference arm."""
    sentences = []
    for metric in SUMMARY_METRICS:
        for arm, interval in paired_intervals(results, dataset, metric, baseline).items():
            sentences.append(difference_sentence(arm, baseline, metric, interval))
    if reference is not None and reference in set(results[results["dataset"] == dataset]["arm"]):
        for metric in ("balanced", "few"):
            for arm, interval in paired_intervals(results, dataset, metric, reference).items():
                if arm != baseline:
                    sentences.append(difference_sentence(arm, reference, metric, interval))
    return sentences


def _markdown(frame: pd.DataFrame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = [f"{v:.1f}" if isinstance(v, float) and math.isfinite(v) else ("" if isinstance(v, float) else str(v))
                 for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arm_table(results: pd.DataFrame, dataset: str, baseline: str) -> pd.DataFrame:
    """Per arm: runs, failures, mean [95% CI] of each summary metric and paired difference to the baseline."""
    records = []
    subset = results[results["dataset"] == dataset]
    for arm in subset["arm"].unique():
        runs = subset[subset["arm"] == arm]
        record: dict[str, Any] = {"arm": arm, "runs": len(runs), "failed": int((runs["status"] != "finished").sum())}
        for metric in SUMMARY_METRICS:
            digits = 1 if metric in ACCURACIES else 3
            record[metric_label(metric)] = arm_intervals(results, dataset, metric)[arm].text(digits)
            if arm != baseline:
                difference = paired_intervals(results, dataset, metric, baseline)[arm]
                record[f"Δ {metric} vs {baseline}"] = difference.text(digits, signed=True)
            else:
                record[f"Δ {metric} vs {baseline}"] = "—"
        records.append(record)
    return pd.DataFrame(records)


def _header(plan: dict[str, Any], report_command: str, markdown: bool) -> list[str]:
    from nbn_tutorial import provenance

    lines = [f"study: {plan.get('study')}: {' '.join(plan.get('description', '').split())}"]
    for number, session in enumerate(plan.get("sessions", []), start=1):
        software = ", ".join(f"{key} {value}" for key, value in session.get("versions", {}).items())
        lines.append(f"runs, session {number}: `{session.get('command')}` started {session.get('started')} "
                     f"with {software}")
    lines += [f"report made by: `{report_command}` on {provenance.now()}",
             f"intervals: {METHOD}; differences are paired (same seed, same data, same initialisation)"]
    return [f"- {line}" for line in lines] if markdown else [f"# {line}" for line in lines]


def write_study_report(out_dir: str | os.PathLike, results_dir: str | os.PathLike | None = None,
                       command: str | None = None, allow_incomplete: bool = False) -> Path:
    """Write results.csv, per_class.csv and summary.md for the study in ``out_dir``; returns summary.md."""
    from nbn_tutorial import provenance

    out = Path(out_dir)
    rows = read_rows(out)
    plan = report_plan(out, allow_incomplete)   # refuses runs without a result unless allowed; says what is missing
    target = ensure_dir(results_dir if results_dir is not None else out)
    command = command or provenance.command_line()
    results, per_class = results_frame(rows), per_class_frame(rows)
    header = "\n".join(_header(plan, command, markdown=False)) + "\n"
    atomic_write_text(target / "results.csv", header + results.to_csv(index=False))
    atomic_write_text(target / "per_class.csv", header + per_class.to_csv(index=False))
    baseline, reference = plan.get("baseline"), plan.get("reference")
    lines = [f"# Study `{plan.get('study')}`", "", *_header(plan, command, markdown=True), ""]
    if reference is not None:
        from nbn_tutorial.study.verdicts import study_conclusions

        answers = study_conclusions(results, baseline, reference, plan.get("pairs") or ())
        lines += ["## What the study says", "", *[f"- {s}" for s in answers], ""]
    for dataset in results["dataset"].unique():
        lines += [f"## {dataset}", "", "Mean [95% CI] over seeds; Δ = paired difference to the baseline arm "
                  f"`{baseline}` (percentage points for accuracies).", "",
                  _markdown(arm_table(results, dataset, baseline)), "", "### What the intervals say", ""]
        lines += [f"- {sentence}" for sentence in dataset_verdicts(results, dataset, baseline, reference)]
        lines += ["", f"### Per-class paired differences to `{baseline}` by training-count rank", "",
                  _markdown(per_class_paired(per_class, dataset, baseline)), ""]
    summary = target / "summary.md"
    atomic_write_text(summary, "\n".join(lines).rstrip() + "\n")
    return summary


def read_results(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (results, per_class) tables of a study report folder."""
    folder = Path(results_dir)
    return (pd.read_csv(folder / "results.csv", comment="#"), pd.read_csv(folder / "per_class.csv", comment="#"))
