"""The committed form of the notebooks, and notebooks prepared for nbval.

Notebooks are committed without outputs, except the cells marked :data:`CHECK_OUTPUT_MARKER`, whose
deterministic text output nbval compares with a fresh run.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nbn_tutorial.fileio import atomic_write_text, ensure_dir
from nbn_tutorial.notebooks.profiles import (DEFAULT_PROFILE, discover_notebooks, load_profile, read_notebook,
                                             select_notebooks)
from nbn_tutorial.notebooks.runner import RUN_SUBDIR, shares_with_run_dir

CHECK_OUTPUT_MARKER = "# NBVAL_CHECK_OUTPUT"
KEPT_CELL_METADATA = ("tags", "nbgrader")   # papermill's tags; the exercises' nbgrader markup (course mode)


def _is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_OUTPUT_MARKER in cell.source


def _notebook_text(notebook) -> str:
    """A notebook as nbformat writes it to a file (with the final newline)."""
    import nbformat   # deferred: notebook libraries: only notebook commands need them

    return nbformat.writes(notebook) + "\n"


def prepare_notebooks(out_dir: str | Path, profile: str | Path = DEFAULT_PROFILE, *,
                      only: Sequence[str] | str | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """Write the notebooks with a profile's parameters injected but not executed (papermill --prepare-only).

    The stored outputs of the NBVAL_CHECK_OUTPUT cells stay and those cells get an execution count
    (nbval compares only cells it considers run; committed notebooks carry no counts), so
    `pytest --nbval-lax` on the result checks them against a fresh run. Run directory: <out_dir>/run.
    """
    import papermill   # deferred: notebook libraries: only notebook commands need them

    out = ensure_dir(out_dir)
    notebooks = select_notebooks(only, notebook_dir)
    shares = shares_with_run_dir(load_profile(profile), notebooks, (out / RUN_SUBDIR).resolve())
    for path in notebooks:
        prepared = papermill.execute_notebook(str(path), None, parameters=shares[path], prepare_only=True,
                                              kernel_name="python3", language="python", progress_bar=False)
        for number, cell in enumerate(prepared.cells, start=1):
            if _is_checked(cell) and cell.outputs:
                cell.execution_count = number
        atomic_write_text(out / path.name, _notebook_text(prepared))
    return [out / path.name for path in notebooks]


def clean_notebook(notebook, executed=None):
    """The committed form of a notebook: no execution counts or run metadata (cell metadata: tags and
    nbgrader only); outputs only on NBVAL_CHECK_OUTPUT cells (taken from `executed`, the same notebook run by papermill, when given)."""
    executed_cells = {cell.get("id"): cell for cell in executed.cells} if executed is not None else {}
    for cell in notebook.cells:
        cell.metadata = {key: cell.metadata[key] for key in KEPT_CELL_METADATA if cell.metadata.get(key)}
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        source = executed_cells.get(cell.get("id"), cell) if _is_checked(cell) else None
        cell.outputs = [output for output in source.outputs if output.output_type == "stream"] if source else []
    notebook.metadata = {key: notebook.metadata[key] for key in ("kernelspec", "language_info")
                         if key in notebook.metadata}
    return notebook


def clean_notebooks(outputs_from: str | Path | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """Rewrite the notebooks in their committed form; returns the files that changed.

    With `outputs_from` (an executed sequence such as runs/demo) the NBVAL_CHECK_OUTPUT cells take
    their outputs from it; otherwise they keep the stored ones.
    """
    changed = []
    for path in discover_notebooks(notebook_dir).values():
        executed_path = Path(outputs_from) / path.name if outputs_from is not None else None
        executed = read_notebook(executed_path) if executed_path is not None and executed_path.exists() else None
        after = _notebook_text(clean_notebook(read_notebook(path), executed))
        if after != path.read_text(encoding="utf-8"):
            atomic_write_text(path, after)
            changed.append(path)
    return changed
