"""Course mode: the exercises in the notebooks (nbgrader markup) and the student versions made from them.

The committed notebooks are the *instructor* versions, in nbgrader's source format:

- an exercise's **solution cell** is a code cell with nbgrader metadata ``solution: true`` whose answer
  lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines;
- its **test cell** right after it is an autograded cell (``grade: true``, ``locked: true``, ``points``)
  of asserts; the part between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` compares the
  answer with the package's own function and is not shown to students.

:func:`student_notebook` turns an instructor notebook into the student version the way ``nbgrader
generate_assignment`` does (the same preprocessors, in the same order): solution and test cells are
locked against deletion, each solution region becomes ``# YOUR CODE HERE`` / ``raise
NotImplementedError()`` at the region's indentation, outputs are cleared, hidden tests are removed and
nbgrader's checksums are computed. :func:`write_student_notebooks` writes the whole sequence.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text, ensure_dir
from nbn_tutorial.notebooks.profiles import discover_notebooks, read_notebook

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"   # nbgrader's stub for Python
TEXT_STUB = "YOUR ANSWER HERE"
NBGRADER_KEYS = ("grade", "grade_id", "locked", "points", "schema_version", "solution", "task")
SCHEMA_VERSION = 3
_OUTPUT_METADATA = ("collapsed", "scrolled")   # cell metadata nbconvert's ClearOutput removes


def nbgrader_metadata(cell) -> dict:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def is_solution(cell) -> bool:
    """True for a cell students answer in (nbgrader ``solution: true``)."""
    return bool(nbgrader_metadata(cell).get("solution"))


def is_grade(cell) -> bool:
    """True for an autograded cell (nbgrader ``grade: true``)."""
    return bool(nbgrader_metadata(cell).get("grade"))


def is_locked(cell) -> bool:
    """True for a read-only cell (nbgrader ``locked: true``)."""
    return bool(nbgrader_metadata(cell).get("locked"))


def is_exercise_cell(cell) -> bool:
    """True for the cells course mode adds: solution cells and autograded test cells."""
    return is_solution(cell) or is_grade(cell)


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: its solution cell, its test cell and the points the test is worth."""

    notebook: str
    title: str          # the heading of the markdown cell before the solution cell
    solution_id: str
    test_id: str
    points: float


def list_exercises(path: str | Path) -> list[Exercise]:
    """The exercises of a notebook, in order: each solution cell with the autograded cell after it."""
    path = Path(path)
    cells = read_notebook(path).cells
    found = []
    for index, cell in enumerate(cells):
        if not is_solution(cell):
            continue
        following = cells[index + 1] if index + 1 < len(cells) else None
        if following is None or not is_grade(following):
            raise UserError(f"solution cell {nbgrader_metadata(cell).get('grade_id')!r} of {path.name} must be "
                            "followed by its autograded test cell")
        heading = cells[index - 1].source.splitlines()[0] if index and cells[index - 1].cell_type == "markdown" else ""
        found.append(Exercise(path.name, heading.lstrip("# ").strip(), nbgrader_metadata(cell)["grade_id"],
                              nbgrader_metadata(following)["grade_id"],
                              float(nbgrader_metadata(following)["points"])))
    return found


def _replace_regions(source: str, begin: str, end: str, stub: Sequence[str] | None, what: str) -> tuple[str, bool]:
    """Lines between `begin` and `end` (delimiters included) replaced by `stub` at the begin line's
    indentation, or dropped when `stub` is None; returns (source, whether a region was found)."""
    lines, inside, found = [], False, False
    for line in source.split("\n"):
        if begin[4:] in line:   # nbgrader matches the words, whatever comment mark precedes them
            if inside:
                raise UserError(f"nested {begin!r} lines in a cell: {source[:80]!r}")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)
            lines += [indent + stub_line for stub_line in stub or []]
        elif end[4:] in line:
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise UserError(f"a {what} region has no {end!r} line: {source[:80]!r}")
    return "\n".join(lines), found


def checksum(cell) -> str:
    """nbgrader's checksum of a graded, solution or locked cell (nbgrader.utils.compute_checksum)."""
    digest = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade(cell)), str(is_solution(cell)), str(is_locked(cell)),
                 nbgrader_metadata(cell)["grade_id"]):
        digest.update(part.encode("utf-8"))
    if is_grade(cell):
        digest.update(str(float(nbgrader_metadata(cell)["points"])).encode("utf-8"))
    return digest.hexdigest()


def _add_checksum(cell) -> None:
    if is_grade(cell) or is_solution(cell) or is_locked(cell):
        cell.metadata.nbgrader["checksum"] = checksum(cell)
        cell.metadata.nbgrader["cell_type"] = cell.cell_type


def _lock(cell) -> None:
    """nbgrader's LockCells defaults: solution cells undeletable; test and read-only cells also uneditable."""
    if is_solution(cell):
        cell.metadata["deletable"] = False
    elif is_grade(cell) or is_locked(cell):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def _clear_solution(cell) -> None:
    stub = (CODE_STUB if cell.cell_type == "code" else TEXT_STUB).split("\n")
    source, replaced = _replace_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, stub, "solution")
    if replaced and not is_solution(cell):
        raise UserError(f"a solution region lies in a cell without nbgrader solution metadata: {cell.source[:80]!r}")
    cell.source = source if replaced or not is_solution(cell) else "\n".join(stub)


def _clear_hidden_tests(cell) -> None:
    source, removed = _replace_regions(cell.source, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, None, "hidden tests")
    if removed and not is_grade(cell):
        raise UserError(f"a hidden test region lies in a cell that is not autograded: {cell.source[:80]!r}")
    cell.source = source


def _clear_output(cell) -> None:
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    for key in _OUTPUT_METADATA:
        cell.metadata.pop(key, None)


def student_notebook(notebook):
    """The student version of an instructor notebook (changed in place and returned), as nbgrader makes it."""
    for step in (_lock, _clear_solution, _clear_output, _add_checksum, _clear_hidden_tests, _add_checksum):
        for cell in notebook.cells:
            step(cell)
    notebook.metadata.pop("celltoolbar", None)
    return notebook


def write_student_notebooks(out_dir: str | Path, notebook_dir: str | Path | None = None, *,
                            overwrite: bool = False) -> list[Path]:
    """Write the student version of every numbered notebook into `out_dir`; returns the files written.

    Existing files are kept (a UserError names them) unless `overwrite`.
    """
    import nbformat   # deferred: notebook libraries: only notebook commands need them

    out = Path(out_dir)
    sources = list(discover_notebooks(notebook_dir).values())
    existing = [out / path.name for path in sources if (out / path.name).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(path.name for path in existing)}; choose another folder "
                        "or pass --overwrite to replace them")
    ensure_dir(out)
    written = []
    for path in sources:
        student = student_notebook(read_notebook(path))
        written.append(atomic_write_text(out / path.name, nbformat.writes(student) + "\n"))
    return written
