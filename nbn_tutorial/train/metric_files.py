"""A run's metric files: one row per evaluated epoch in metrics.jsonl (the source of truth) and metrics.csv.

Accuracies are fractions in [0, 1]; ``epoch`` counts completed epochs and ``lr`` is the rate used
during that epoch. In metrics.csv, ``per_class_acc`` and ``alpha`` are JSON strings and None is an
empty cell.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from nbn_tutorial.accuracy import SHOT_NAMES, group_accuracy_from_counts
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import append_text, atomic_write_text, jsonl_text, read_jsonl, trim_jsonl

METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_acc", "balanced_acc", "many_acc", "medium_acc",
                  "few_acc", "per_class_acc", "alpha", "val_acc", "val_balanced_acc", "val_many_acc", "val_medium_acc",
                  "val_few_acc", "time_s")


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def accuracy_metrics(correct: np.ndarray, total: np.ndarray, shot_groups: dict[str, np.ndarray]) -> dict:
    """Overall, balanced (mean per-class) and many/medium/few accuracy from per-class counts.

    A class without test samples has accuracy None and is left out of the means; an empty group is None.
    """
    accuracy = group_accuracy_from_counts(correct, total, shot_groups)
    return {
        "test_acc": _none_if_nan(accuracy["overall"]),
        "balanced_acc": _none_if_nan(accuracy["balanced"]),
        **{f"{group}_acc": _none_if_nan(accuracy[group]) for group in SHOT_NAMES},
        "per_class_acc": [_none_if_nan(value) for value in accuracy["per_class"]],
    }


def _csv_row(row: dict) -> dict:
    """A metrics row for csv: lists as JSON strings, None as an empty cell."""
    return {key: json.dumps(row.get(key)) if isinstance(row.get(key), (list, dict)) else
            ("" if row.get(key) is None else row.get(key)) for key in METRIC_COLUMNS}


def _csv_text(rows: list[dict], header: bool) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(_csv_row(row) for row in rows)
    return text.getvalue()


def write_metric_files(run_dir: Path, rows: list[dict]) -> None:
    """(Re)write metrics.jsonl and metrics.csv from ``rows``."""
    atomic_write_text(run_dir / "metrics.jsonl", jsonl_text(rows))
    atomic_write_text(run_dir / "metrics.csv", _csv_text(rows, header=True))


def _csv_header_is_current(csv_path: Path) -> bool:
    with open(csv_path, encoding="utf-8") as handle:
        return handle.readline().rstrip("\n").split(",") == list(METRIC_COLUMNS)


def append_metric_row(run_dir: Path, row: dict) -> None:
    """Append one row to metrics.jsonl and metrics.csv (creating them, the csv with a header).

    A metrics.csv written by an older version with other columns is rewritten from metrics.jsonl.
    """
    append_text(run_dir / "metrics.jsonl", jsonl_text([row]))
    csv_path = run_dir / "metrics.csv"
    if csv_path.exists() and not _csv_header_is_current(csv_path):
        write_metric_files(run_dir, read_metric_rows(run_dir))
        return
    append_text(csv_path, _csv_text([row], header=not csv_path.exists()))


def read_metric_rows(run_dir: Path) -> list[dict]:
    """The rows of ``run_dir``'s metrics.jsonl ([] when there is none yet)."""
    return read_jsonl(run_dir / "metrics.jsonl")


def truncate_metrics(run_dir: Path, epochs_done: int) -> None:
    """Drop metric rows written after the checkpoint being resumed (they will be produced again), and a last
    line that an interrupted append left half-written."""
    kept, changed = trim_jsonl(run_dir / "metrics.jsonl", lambda row: row["epoch"] <= epochs_done)
    if changed or (kept and not (run_dir / "metrics.csv").exists()):
        write_metric_files(run_dir, kept)


def read_metrics(run_dir: str | os.PathLike) -> "pandas.DataFrame":  # noqa: F821 (pandas imported lazily)
    """The run's metrics.jsonl as a DataFrame, one row per evaluated epoch (list columns stay lists)."""
    import pandas   # deferred: pandas: heavy, and this module's other callers do not need it

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{str(path)!r} does not exist; is {str(run_dir)!r} a run directory with a finished epoch?")
    return pandas.DataFrame(read_metric_rows(Path(run_dir)), columns=list(METRIC_COLUMNS))


def format_metrics(metrics: dict) -> str:
    """One human line: epoch, overall, balanced, many/medium/few accuracy."""

    def percent(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"

    where = f"epoch {metrics['epoch']}: " if metrics.get("epoch") is not None else ""
    return (f"{where}overall {percent('test_acc')} · balanced {percent('balanced_acc')} · many {percent('many_acc')}"
            f" · medium {percent('medium_acc')} · few {percent('few_acc')}")
