"""A study's tables: one row per run (results), per run and class (per_class), per run and epoch (dynamics),
and what they give per arm: values by seed, means and intervals, paired differences.

Every file a report writes starts with ``#`` comment lines (its provenance): read them with
:func:`read_results`, or ``pandas.read_csv(path, comment="#")``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbn_tutorial.errors import UserError
from nbn_tutorial.study.stats import Interval, paired_difference, paired_values, t_interval

ACCURACIES = {"overall": "test_acc", "balanced": "balanced_acc", "many": "many_acc", "medium": "medium_acc",
              "few": "few_acc"}
RATIOS = ("feature_strength_ratio", "channel_strength_ratio")
GAPS = {"feature_strength_gap": "feature_strength_ratio", "channel_strength_gap": "channel_strength_ratio"}
EXTRA = ("alpha", "beta_norm_max", "beta_cos_first_min", "cbn_paired_share", "cbn_matched_share", "tau", "epochs",
         "train_images", "seconds")
TEXT_EXTRA = ("tau_split", "model")
RESULT_COLUMNS = ("dataset", "arm", "seed", "status", *ACCURACIES, *RATIOS, *GAPS, *EXTRA, *TEXT_EXTRA, "error")
PER_CLASS_COLUMNS = ("dataset", "arm", "seed", "class", "train_count", "count_rank", "accuracy")
DYNAMICS_COLUMNS = ("dataset", "arm", "seed", "epoch", "alpha", "gamma_norm_max", "beta_norm_max", "weight_norm_max",
                    "bias_norm_max", "beta_cos_first_min")
RESULT_FILES = {"results": "results.csv", "per_class": "per_class.csv", "dynamics": "dynamics.csv",
                "contrasts": "contrasts.csv"}


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def add_gaps(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with each few/many ratio's distance from 1 (``*_gap`` = |ratio − 1|: 0 is even strength)."""
    return results.assign(**{gap: (results[ratio].astype(float) - 1).abs() for gap, ratio in GAPS.items()})


def results_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: identity, status, accuracies (percent), feature-bias ratios and their gaps, run facts."""
    records = []
    for row in rows:
        record = {key: row.get(key) for key in ("dataset", "arm", "seed", "status")}
        record.update({name: 100 * _nan(row.get(key)) for name, key in ACCURACIES.items()})
        record.update({key: _nan(row.get(key)) for key in (*RATIOS, *EXTRA)})
        record.update({key: row.get(key) or "" for key in TEXT_EXTRA})
        record["model"] = (row.get("config") or {}).get("model", "")
        record["error"] = row.get("error", "")
        records.append(record)
    frame = pd.DataFrame(records, columns=[c for c in RESULT_COLUMNS if c not in GAPS])
    return add_gaps(frame)[list(RESULT_COLUMNS)]


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
    return pd.DataFrame(records, columns=list(PER_CLASS_COLUMNS))


def dynamics_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per NBN run and epoch (the ``dynamics`` a study row records): α and the NBN norms over training."""
    records = [{"dataset": row["dataset"], "arm": row["arm"], "seed": row["seed"], **epoch}
               for row in rows if row.get("status") == "finished" for epoch in row.get("dynamics") or ()]
    return pd.DataFrame(records, columns=list(DYNAMICS_COLUMNS))


def by_seed(results: pd.DataFrame, dataset: str, arm: str, metric: str) -> dict[int, float]:
    """``metric`` of each finished run of ``arm`` on ``dataset``, by seed."""
    chosen = results[(results["dataset"] == dataset) & (results["arm"] == arm) & (results["status"] == "finished")]
    return dict(zip(chosen["seed"].astype(int), chosen[metric].astype(float)))


def arms_of(results: pd.DataFrame, dataset: str) -> list[str]:
    """The arms of ``dataset`` in study order."""
    return list(results[results["dataset"] == dataset]["arm"].unique())


def paired_differences(results: pd.DataFrame, dataset: str, arm: str, against: str, metric: str) -> list[float]:
    """``arm`` − ``against`` of ``metric`` on ``dataset``, seed by seed (the seeds both finished)."""
    return paired_values(by_seed(results, dataset, arm, metric), by_seed(results, dataset, against, metric))


def arm_intervals(results: pd.DataFrame, dataset: str, metric: str) -> dict[str, Interval]:
    """Each arm's mean and t-interval of ``metric`` on ``dataset`` (finished runs)."""
    return {arm: t_interval(list(by_seed(results, dataset, arm, metric).values())) for arm in arms_of(results, dataset)}


def paired_intervals(results: pd.DataFrame, dataset: str, metric: str, reference: str) -> dict[str, Interval]:
    """Each other arm's paired difference (arm − reference, same seeds) of ``metric`` on ``dataset``."""
    control = by_seed(results, dataset, reference, metric)
    return {arm: paired_difference(by_seed(results, dataset, arm, metric), control)
            for arm in arms_of(results, dataset) if arm != reference}


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
    """The words for a metric column, e.g. ``balanced`` -> ``balanced accuracy``."""
    names = {"balanced": "balanced accuracy", "few": "few-shot accuracy", "many": "many-shot accuracy",
             "overall": "overall accuracy", "medium": "medium-shot accuracy",
             "feature_strength_ratio": "few/many feature-strength ratio",
             "channel_strength_ratio": "few/many class-specific channel-strength ratio",
             "feature_strength_gap": "distance of the few/many feature-strength ratio from 1",
             "channel_strength_gap": "distance of the few/many class-specific channel-strength ratio from 1",
             "cbn_paired_share": "share of each class group's samples on its own CBN component",
             "cbn_matched_share": "share of each class group's samples on its best-matched CBN component"}
    return names.get(metric, metric)


def metric_digits(metric: str) -> int:
    """Decimals a metric is written with: 1 for accuracies (percent), 3 for ratios and gaps."""
    return 1 if metric in ACCURACIES else 3


def unit(metric: str) -> str:
    """`` points`` for accuracy differences, nothing for ratios."""
    return " points" if metric in ACCURACIES else ""


def arm_table(results: pd.DataFrame, dataset: str, baseline: str,
              metrics: Sequence[str] = ("balanced", "few", "many", *RATIOS)) -> pd.DataFrame:
    """Per arm: runs, failures, mean [95% CI] of each metric and its paired difference to the baseline."""
    records = []
    subset = results[results["dataset"] == dataset]
    for arm in arms_of(results, dataset):
        runs = subset[subset["arm"] == arm]
        record: dict[str, Any] = {"arm": arm, "runs": len(runs), "failed": int((runs["status"] != "finished").sum())}
        for metric in metrics:
            digits = metric_digits(metric)
            record[metric_label(metric)] = arm_intervals(results, dataset, metric)[arm].text(digits)
            record[f"Δ {metric} vs {baseline}"] = ("—" if arm == baseline else
                                                    paired_intervals(results, dataset, metric, baseline)[arm]
                                                    .text(digits, signed=True))
        records.append(record)
    return pd.DataFrame(records)


def read_table(folder: str | os.PathLike, which: str) -> pd.DataFrame:
    """One of a report folder's tables (``results``, ``per_class``, ``dynamics``, ``contrasts``); a missing
    dynamics file is an empty table (studies reported before it existed)."""
    path = Path(folder) / RESULT_FILES[which]
    if not path.is_file():
        if which == "dynamics":
            return pd.DataFrame(columns=list(DYNAMICS_COLUMNS))
        raise UserError(f"{str(path)!r} does not exist; write the report with `nbn-tutorial study report`")
    try:
        frame = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{str(path)!r} is not a study table ({str(error).splitlines()[0]}); write it again with "
                        "`nbn-tutorial study report`") from None
    if which == "results":
        for column in RESULT_COLUMNS:
            if column not in frame:
                frame[column] = "" if column in (*TEXT_EXTRA, "error") else math.nan
        frame = add_gaps(frame)[list(RESULT_COLUMNS)]
        frame[[*TEXT_EXTRA, "error"]] = frame[[*TEXT_EXTRA, "error"]].astype(object).fillna("")
    return frame


def read_results(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (results, per_class) tables of a study report folder."""
    return read_table(results_dir, "results"), read_table(results_dir, "per_class")


def read_header(path: str | os.PathLike) -> list[str]:
    """The ``#`` provenance lines at the top of a report table, without the ``# ``."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return lines
