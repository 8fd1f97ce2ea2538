"""What every notebook calls around its work: the run directory, recorded results and saved figures.

A notebook starts with :func:`setup` and leaves its numbers (``results.json``) and key figures
(``figures/*.png`` with ``figures/index.json``) in the run directory, where the report finds them.
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from nbn_tutorial.fileio import atomic_write_bytes, atomic_write_json, ensure_dir, read_json
from nbn_tutorial.paths import project_path

RESULTS_FILE = "results.json"    # {label: {metric: percent}} recorded by the notebooks into the run directory
FIGURES_SUBDIR = "figures"
FIGURE_INDEX = "index.json"
DISPLAY_DIGITS = 3              # decimals of the floats in the tables a notebook shows


def setup(run_dir: str | Path) -> Path:
    """A notebook's first call: show figures inline as PNG, tables with 3 decimals; returns the created run directory.

    nbn_tutorial.plots builds figures without pyplot, so IPython needs its inline backend activated
    to draw a Figure left as a cell's last expression.
    """
    try:
        from IPython import get_ipython   # deferred: only inside a kernel
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and hasattr(shell, "kernel"):
        shell.run_line_magic("matplotlib", "inline")
        import pandas as pd   # deferred: pandas: heavy, and this module's other callers do not need it

        pd.set_option("display.precision", DISPLAY_DIGITS)  # tables for people: 0.953, not 0.95333333
    return resolve_run_dir(run_dir)


def resolve_run_dir(run_dir: str | Path) -> Path:
    """The notebooks' run directory as an absolute path (created); see :func:`nbn_tutorial.paths.project_path`."""
    return ensure_dir(project_path(run_dir))


def _read_mapping(path: Path, what: str) -> dict:
    """The JSON mapping stored at ``path``, or {} when the file does not exist yet."""
    return read_json(path, what) if path.exists() else {}


def record_result(run_dir: str | Path, label: str, metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Store one model's metrics under `label` in the run directory's results.json; returns all results."""
    path = Path(run_dir) / RESULTS_FILE
    results = _read_mapping(path, "results file")
    results[label] = {key: float(value) for key, value in metrics.items()}
    atomic_write_json(path, results)
    return results


def read_results(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """The results recorded in a run directory ({} when none were recorded)."""
    return _read_mapping(Path(run_dir) / RESULTS_FILE, "results file")


def save_figure(figure, run_dir: str | Path, name: str, caption: str):
    """Save a figure as run_dir/figures/<name>.png for the report and return it for display."""
    folder = Path(run_dir) / FIGURES_SUBDIR
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(folder / f"{name}.png", image.getvalue())
    index = _read_mapping(folder / FIGURE_INDEX, "figure index")
    index[name] = caption
    atomic_write_json(folder / FIGURE_INDEX, index)
    return figure
