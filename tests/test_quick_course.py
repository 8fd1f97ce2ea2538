"""The real notebooks executed with the quick profile (as `make demo` runs them, but shorter), over one run directory.

No test trains longer than its assertions need: the profile's epochs are cut (`SHORTER`), since neither the
NBVAL_CHECK_OUTPUT outputs nor the notebooks' own asserts depend on how long the quick runs train (each still
runs past its warm-up); `make demo` runs the quick profile in full.

Every test here shares the module's quick-course run directory: whichever execution comes first trains a run,
the later ones load it (`load_or_train`), so each quick run is trained once per test session. pytest-xdist's
`--dist loadfile` (`make test`) keeps this file on one worker. Here:

- nbval over all eight notebooks: every cell runs, and the stored NBVAL_CHECK_OUTPUT outputs must match;
- course mode: a student notebook stops at its first exercise with NotImplementedError, and runs through once
  the instructor's solutions are put back.
"""
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import yaml

from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks import exercises as course
from nbn_tutorial.notebooks.runner import shares_with_run_dir

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
def test_a_student_notebook_stops_at_its_first_exercise_and_passes_with_the_solutions(path, tmp_path, quick_course):
    parameters = quick_course.parameters[path.name]
    student_path = tmp_path / path.name
    student = runner.student_notebook(read(path))
    nbformat.write(student, str(student_path))
    first = runner.list_exercises(path)[0]
    with pytest.raises(UserError, match="NotImplementedError") as error:
        runner.run_notebook(student_path, tmp_path / "executed" / path.name, parameters, progress=False)
    executed = read(tmp_path / "executed" / path.name)
    failed = [cell for cell in executed.cells if cell.cell_type == "code"
              and any(output.output_type == "error" for output in cell.outputs)]
    assert len(failed) == 1 and course.nbgrader_metadata(failed[0])["grade_id"] in (first.solution_id,
                                                                                   first.test_id), str(error.value)
    assert failed[0].outputs[-1].ename == "NotImplementedError"

    solutions = {course.nbgrader_metadata(cell)["grade_id"]: cell.source for cell in read(path).cells
                 if course.is_solution(cell)}
    for cell in student.cells:   # the student's answers: the instructor's solutions put back
        if course.is_solution(cell):
            cell.source = solutions[course.nbgrader_metadata(cell)["grade_id"]]
    nbformat.write(student, str(student_path))
    runner.run_notebook(student_path, tmp_path / "answered" / path.name, parameters, progress=False)
