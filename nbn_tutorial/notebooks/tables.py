"""Small tables as text: markdown tables, "mean ± std" over seeds, and saving a table for the report.

Shared by the sweep summary, the report and notebook 05, so every table of the project prints the
same way (floats with one decimal, sample standard deviation).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.fileio import atomic_write_text


def percent(fraction: float | None) -> float:
    """A fraction in [0, 1] as percent (NaN for None)."""
    return math.nan if fraction is None else 100.0 * float(fraction)


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_std(values: Sequence[float], digits: int = 1) -> str:
    """"mean ± std" of values (sample std; just the value for a single one; "n/a" for none)."""
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sample_std(values):.{digits}f}"


def mean_std_rows(rows: Sequence[Mapping[str, Any]], group_keys: Sequence[str],
                  metrics: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Group rows by `group_keys`; each metric becomes "mean ± std (n)" text; returns (rows, columns)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in group_keys), []).append(row)
    table = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(group_keys, key))
        entry["seeds"] = len(members)
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric) is not None]
            entry[metric] = format_mean_std(values)
        table.append(entry)
    return table, [*group_keys, "seeds", *metrics]


def _cell(value: Any) -> str:
    """One markdown table cell as text."""
    if isinstance(value, float):
        return f"{value:.1f}"
    return "" if value is None else str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub markdown table of rows (floats with one decimal)."""
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def save_table(table, run_dir: str | Path, name: str) -> Any:
    """Write a table as <name>.csv and <name>.md into the run directory (for the report); returns it."""
    folder = Path(run_dir)
    atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(folder / f"{name}.md", markdown_table(table.to_dict("records"), list(table.columns)) + "\n")
    return table
