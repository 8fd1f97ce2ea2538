"""The real notebooks executed with the quick profile (as `make demo` runs them, but shorter), over one run directory.

No test trains longer than its assertions need: the profile's epochs are cut (`SHORTER`), since neither the
NBVAL_CHECK_OUTPUT outputs nor the notebooks' own asserts depend on how long the quick runs train (each still
runs past its warm-up); `make demo` runs the quick profile in full.

Every test here shares the module's quick-course run directory: whichever execution comes first trains a run,
the later ones load it (`load_or_train`), so each quick run is trained once per test session. pytest-xdist's
`--dist loadfile` (`make test`) keeps this file on one worker. Here:

- nbval over all eight notebooks: every cell runs, and the stored NBVAL_CHECK_OUTPUT outputs must match;
- course mode: a student notebook stops at its first exercise with NotImplementedError and, in the same kernel
  (as a learner works), runs on to the end once the instructor's solutions are put in.
"""
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nbn_tutorial import notebooks as runner
from nbn_tutorial.notebooks import exercises as course
from nbn_tutorial.notebooks.runner import _kernel_manager_class, shares_with_run_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
WITH_EXERCISES = [path for path in NOTEBOOKS if runner.list_exercises(path)]


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


SHORTER = {"epochs": 10, "ride_epochs": 6, "cbn_epochs": 6}   # the quick profile's 30, 15 and 10


@dataclass(frozen=True)
class QuickCourse:
    """The eight notebooks prepared with the shortened quick profile over one run directory."""

    folder: Path
    prepared: list[Path]
    parameters: dict[str, dict]   # notebook file name -> its parameters, run_dir included


@pytest.fixture(scope="module")
def quick_course(tmp_path_factory) -> QuickCourse:
    folder = tmp_path_factory.mktemp("quick_course")
    profile = folder / "quick_shorter.yaml"
    profile.write_text(yaml.safe_dump({**runner.load_profile("quick"), **SHORTER}))
    prepared = runner.prepare_notebooks(folder, profile)
    shares = shares_with_run_dir(runner.load_profile(profile), NOTEBOOKS, (folder / runner.RUN_SUBDIR).resolve())
    return QuickCourse(folder, prepared, {path.name: values for path, values in shares.items()})


def test_nbval_runs_every_notebook_with_the_shortened_quick_profile(quick_course):
    """Executes the whole quick sequence under nbval; stored NBVAL_CHECK_OUTPUT outputs must match."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
               "--nbval-sanitize-with", str(ROOT / "notebooks" / "sanitize.cfg"), "--nbval-cell-timeout", "300",
               *map(str, quick_course.prepared)]
    result = subprocess.run(command, cwd=quick_course.folder, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    code_cells = sum(cell.cell_type == "code" for p in quick_course.prepared for cell in read(p).cells)
    assert f"{code_cells} passed" in result.stdout


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_a_student_notebook_stops_at_its_first_exercise_and_runs_on_with_the_solutions(path, tmp_path, quick_course):
    """A learner's flow in one kernel: run all, stop at the first exercise with NotImplementedError, put the
    instructor's solutions in and run on from that exercise to the end (nbval above runs the instructor's
    notebook, hidden tests included, in a fresh kernel)."""
    student = prepared_student(path, quick_course.parameters[path.name], tmp_path)
    first = runner.list_exercises(path)[0]
    start = next(index for index, cell in enumerate(student.cells)
                 if course.nbgrader_metadata(cell).get("grade_id") == first.solution_id)
    solutions = {course.nbgrader_metadata(cell)["grade_id"]: cell.source for cell in read(path).cells
                 if course.is_solution(cell)}
    client = NotebookClient(student, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                            kernel_manager_class=_kernel_manager_class())
    with client.setup_kernel():
        stopped = run_cells(client, range(len(student.cells)))
        assert stopped is not None, "the student notebook ran through without stopping at an exercise"
        index, error = stopped
        assert course.nbgrader_metadata(student.cells[index]).get("grade_id") in (first.solution_id, first.test_id)
        assert error.ename == "NotImplementedError", str(error)
        assert not any(output.output_type == "error" for cell in student.cells[:index] if cell.cell_type == "code"
                       for output in cell.outputs)
        for cell in student.cells:   # the student's answers: the instructor's solutions put in
            if course.is_solution(cell):
                cell.source = solutions[course.nbgrader_metadata(cell)["grade_id"]]
        failed = run_cells(client, range(start, len(student.cells)))
        assert failed is None, f"cell {failed[0]} failed with the solutions: {failed[1]}"


def prepared_student(path: Path, parameters: dict, folder: Path):
    """The student version of `path` (written into `folder`) with the run's parameters injected, as papermill
    injects them."""
    student_path = folder / path.name
    nbformat.write(runner.student_notebook(read(path)), str(student_path))
    return papermill.execute_notebook(str(student_path), None, parameters=parameters, prepare_only=True,
                                      kernel_name="python3", language="python", progress_bar=False)


def run_cells(client: NotebookClient, indices) -> tuple[int, CellExecutionError] | None:
    """Execute the code cells at `indices` in order; the first that raises, with its error (None if none does)."""
    for index in indices:
        cell = client.nb.cells[index]
        if cell.cell_type != "code":
            continue
        try:
            client.execute_cell(cell, index)
        except CellExecutionError as error:
            return index, error
    return None
