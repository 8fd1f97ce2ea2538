"""Tables as text for people and for the report: markdown tables, and saving a notebook's table beside its run.

Shared by the sweep summary, the report and the notebooks, so every table of the project prints the same
way (floats with one decimal).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.fileio import atomic_write_text


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


def save_table(table: Any, run_dir: str | Path, name: str) -> Any:
    """Write a table as <name>.csv and <name>.md into the run directory (for the report); returns it."""
    folder = Path(run_dir)
    atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
    atomic_write_text(folder / f"{name}.md", markdown_table(table.to_dict("records"), list(table.columns)) + "\n")
    return table


def save_text(text: str, run_dir: str | Path, name: str) -> str:
    """Write computed sentences as <name>.md into the run directory (for the report); returns them for display."""
    atomic_write_text(Path(run_dir) / f"{name}.md", f"{text}\n")
    return text
