"""Course mode: the exercises' nbgrader markup, the student versions, and what running them does.

The committed notebooks are the instructor versions (solutions in); they run under nbval like any
notebook (tests/test_notebooks.py). Here: every exercise is a solution cell followed by an autograded
test cell whose hidden part compares the answer with the package's function; the student versions are
what `nbgrader generate_assignment` makes of the instructor notebooks, byte for byte. Running them (a student
notebook stops at its first exercise with NotImplementedError, and runs on once the solutions are in) is in
tests/test_quick_course.py, with the other executions of the real notebooks over one run directory.
"""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from cli_tools import run_cli
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbn_tutorial import notebooks as runner
from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks import exercises as course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
WITH_EXERCISES = [path for path in NOTEBOOKS if runner.list_exercises(path)]
SOLUTION_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def cells_by_id(path: Path) -> dict:
    """The exercise cells of a notebook by grade_id."""
    return {course.nbgrader_metadata(cell)["grade_id"]: cell for cell in read(path).cells
            if course.is_exercise_cell(cell)}


# ------------------------------------------------------------------ the markup in the instructor notebooks

def test_the_sequence_has_at_least_eight_exercises_with_unique_ids():
    found = [exercise for path in NOTEBOOKS for exercise in runner.list_exercises(path)]
    assert len(found) >= 8, found
    ids = [exercise.solution_id for exercise in found] + [exercise.test_id for exercise in found]
    assert len(ids) == len(set(ids))
    assert all(exercise.title.startswith("Exercise ") and exercise.points > 0 for exercise in found), found


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_each_exercise_follows_the_nbgrader_conventions(path):
    for exercise in runner.list_exercises(path):
        cells = cells_by_id(path)
        solution, tests = cells[exercise.solution_id], cells[exercise.test_id]
        assert course.nbgrader_metadata(solution) == {"grade": False, "grade_id": exercise.solution_id,
                                                      "locked": False, "schema_version": 3, "solution": True,
                                                      "task": False}
        assert course.nbgrader_metadata(tests) == {"grade": True, "grade_id": exercise.test_id, "locked": True,
                                                   "points": exercise.points, "schema_version": 3,
                                                   "solution": False, "task": False}
        assert solution.source.count(course.BEGIN_SOLUTION) == solution.source.count(course.END_SOLUTION) == 1
        visible, hidden = tests.source.split(course.BEGIN_HIDDEN_TESTS)
        hidden = hidden.split(course.END_HIDDEN_TESTS)[0]
        assert any(isinstance(node, ast.Assert) for node in ast.parse(visible).body), "visible checks are asserts"
        assert "assert" in hidden and "nbt." in hidden, "the hidden checks compare with the package's function"


def test_cleaning_keeps_the_nbgrader_metadata():
    notebook = read(WITH_EXERCISES[0])
    before = [course.nbgrader_metadata(cell) for cell in notebook.cells]
    cleaned = runner.clean_notebook(notebook)
    assert [course.nbgrader_metadata(cell) for cell in cleaned.cells] == before


# ------------------------------------------------------------------ the student versions

def _synthetic_notebook():
    solution = new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                             metadata={"nbgrader": {"grade": False, "grade_id": "f", "locked": False,
                                                    "schema_version": 3, "solution": True, "task": False}})
    whole = new_code_cell("answer = 42", metadata={"nbgrader": {"grade": False, "grade_id": "w", "locked": False,
                                                                "schema_version": 3, "solution": True,
                                                                "task": False}})
    tests = new_code_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS",
                          metadata={"nbgrader": {"grade": True, "grade_id": "f_tests", "locked": True, "points": 1,
                                                 "schema_version": 3, "solution": False, "task": False}})
    tests.outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
    tests.execution_count = 3
    return new_notebook(cells=[new_markdown_cell("# t"), solution, whole, tests])


def test_student_notebook_stubs_solutions_and_drops_hidden_tests():
    student = runner.student_notebook(_synthetic_notebook())
    _, solution, whole, tests = student.cells
    assert solution.source == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert whole.source == course.CODE_STUB
    assert tests.source == "assert f(1) == 2" and tests.outputs == [] and tests.execution_count is None
    assert solution.metadata["deletable"] is False and "editable" not in solution.metadata
    assert tests.metadata["deletable"] is False and tests.metadata["editable"] is False
    assert tests.metadata.nbgrader["checksum"] == course.checksum(tests)


def test_the_runner_names_the_exercise_a_student_notebook_stops_at(tmp_path):
    student = runner.student_notebook(_synthetic_notebook())
    student.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(student, str(tmp_path / "student.ipynb"))
    with pytest.raises(UserError, match=r"student.ipynb failed in cell 2: NotImplementedError"):
        runner.run_notebook(tmp_path / "student.ipynb", tmp_path / "executed.ipynb", progress=False)


@pytest.mark.parametrize("source, metadata, message", [
    ("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION", {}, "without nbgrader solution metadata"),
    ("assert True\n### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS", {}, "not autograded"),
    ("### BEGIN SOLUTION\nx = 2", {"nbgrader": {"grade": False, "grade_id": "a", "locked": False,
                                                "schema_version": 3, "solution": True, "task": False}},
     "no '### END SOLUTION' line"),
])
def test_misplaced_markup_is_a_user_error(source, metadata, message):
    with pytest.raises(UserError, match=message):
        runner.student_notebook(new_notebook(cells=[new_code_cell(source, metadata=metadata)]))


def test_cli_writes_the_student_versions_and_never_overwrites_silently(tmp_path):
    command = ("notebooks", "exercises", "--out", str(tmp_path / "students"))
    first = run_cli(*command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "students").glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    count = sum(len(runner.list_exercises(path)) for path in NOTEBOOKS)
    assert f"({count} exercises" in first.stdout
    (tmp_path / "students" / NOTEBOOKS[0].name).write_text("edited by the teacher")
    second = run_cli(*command, cwd=tmp_path)
    assert second.returncode == 2 and second.stderr.startswith("error: ") and "--overwrite" in second.stderr
    assert (tmp_path / "students" / NOTEBOOKS[0].name).read_text() == "edited by the teacher"
    third = run_cli(*command, "--overwrite", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    for path in NOTEBOOKS:   # every student notebook holds no solution and no hidden test
        text = (tmp_path / "students" / path.name).read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text


def test_student_versions_equal_what_nbgrader_generate_assignment_writes(tmp_path):
    pytest.importorskip("nbgrader", reason="nbgrader is in the test extra: pip install -e '.[test]'")
    source = tmp_path / "course" / "source" / "ps1"
    source.mkdir(parents=True)
    for path in WITH_EXERCISES:
        shutil.copy(path, source / path.name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # alembic
    result = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "ps1",
                             f"--CourseDirectory.root={tmp_path / 'course'}",
                             f"--CourseDirectory.db_url=sqlite:///{tmp_path / 'gradebook.db'}"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ours = runner.write_student_notebooks(tmp_path / "ours")
    for path in WITH_EXERCISES:
        theirs = (tmp_path / "course" / "release" / "ps1" / path.name).read_text(encoding="utf-8")
        assert (tmp_path / "ours" / path.name).read_text(encoding="utf-8") == theirs, path.name
    assert len(ours) == len(NOTEBOOKS)


def test_the_readme_lists_every_exercise_with_its_points():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in WITH_EXERCISES:
        parts = [f"{exercise.title.removeprefix('Exercise ')} ({exercise.points:g} point{'s' * (exercise.points != 1)})"
                 for exercise in runner.list_exercises(path)]
        assert f"| {path.name[:2]} | {'; '.join(parts)} |" in readme, path.name


def test_exercises_are_numbered_in_the_order_a_learner_meets_them():
    titles = [exercise.title for path in WITH_EXERCISES for exercise in runner.list_exercises(path)]
    numbers = [int(title.removeprefix("Exercise ").split(" ")[0]) for title in titles]
    assert numbers == list(range(1, len(numbers) + 1)), titles
