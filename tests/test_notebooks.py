"""The committed notebooks: their shape and their stored outputs (nbval runs them in tests/test_quick_course.py).

Decision: notebooks are committed WITHOUT outputs (clean diffs; executed copies live in runs/demo),
except the cells marked `# NBVAL_CHECK_OUTPUT` (counts tables, model descriptions): they keep their
deterministic text output, so a reader sees it and nbval checks that a fresh run still prints it.
Refresh those outputs after an intended change with

    make demo && .venv/bin/python -c "import nbn_tutorial as nbt; nbt.notebooks.clean_notebooks('runs/demo')"
"""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbn_tutorial import notebooks as runner

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
EXPECTED = ["01_long_tailed_data.ipynb", "02_baseline_bn.ipynb", "03_feature_bias_diagnosis.ipynb",
            "04_normalizing_bn.ipynb", "05_full_runs.ipynb", "06_what_makes_nbn_work.ipynb",
            "07_rebalancing_and_experts.ipynb", "08_compound_bn.ipynb"]
SIMPLE_STATEMENTS = (ast.Assign, ast.Expr, ast.Import, ast.ImportFrom, ast.Assert)
BY_HAND_STATEMENTS = (*SIMPLE_STATEMENTS, ast.AugAssign, ast.For)
MAX_LINES = 15
BY_HAND = "# By hand"
CHECKED_NOTEBOOKS = {"01_long_tailed_data.ipynb", "02_baseline_bn.ipynb", "04_normalizing_bn.ipynb",
                     "07_rebalancing_and_experts.ipynb"}
BY_HAND_NOTEBOOKS = {"04_normalizing_bn.ipynb", "05_full_runs.ipynb", "06_what_makes_nbn_work.ipynb",
                     "07_rebalancing_and_experts.ipynb", "08_compound_bn.ipynb"}
HELPER_SHARE = 1 / 3   # at most this share of a notebook's package calls (plumbing aside) go to nbt.notebooks


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebooks_of_the_sequence_exist():
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stored_only_for_checked_cells(path):
    notebook = read(path)
    nbformat.validate(notebook)
    checked = 0
    for cell in code_cells(notebook):
        assert cell.execution_count is None, cell.source
        if runner.CHECK_OUTPUT_MARKER in cell.source:
            checked += 1
            assert cell.outputs, f"checked cell without stored output: {cell.source}"
            assert all(output.output_type == "stream" for output in cell.outputs), cell.source
        else:
            assert cell.outputs == [], f"unchecked cell with stored output: {cell.source}"
    assert (checked > 0) == (path.name in CHECKED_NOTEBOOKS)
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}


def test_notebooks_are_in_their_cleaned_form(tmp_path):
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
    assert runner.clean_notebooks(notebook_dir=tmp_path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_literal_parameters_cell(path):
    cells = code_cells(read(path))
    assert cells[0].metadata.get("tags") == ["parameters"]
    assert not any("parameters" in cell.metadata.get("tags", []) for cell in cells[1:])
    declared = runner.notebook_parameters(path)  # raises unless every line is `name = literal`
    assert "run_dir" in declared


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path):
    import papermill

    assert set(papermill.inspect_notebook(str(path))) == set(runner.notebook_parameters(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short_and_compute_by_hand_only_where_they_check_the_package(path):
    """Cells stay short (at most 15 lines) and hold no def or class: the package computes. A cell that starts
    with `# By hand` shows one idea computed with torch or numpy (loops allowed) and must assert that it equals
    the package function the rest of the notebook uses (d2l's way: show it, then call it); every other cell is
    simple statements, no loops or branches.

    Course mode's exercise cells are the one exception: a solution cell holds the learner's own code
    and its autograded test cell the checks (nbgrader metadata `solution` or `grade`; see
    tests/test_exercises.py for their rules)."""
    for cell in code_cells(read(path))[1:]:
        if runner.is_exercise_cell(cell):
            continue
        assert len(cell.source.splitlines()) <= MAX_LINES, cell.source
        statements = ast.parse(cell.source).body
        if cell.source.startswith(BY_HAND):
            assert all(isinstance(statement, BY_HAND_STATEMENTS) for statement in statements), cell.source
            checks = [statement for statement in statements if isinstance(statement, ast.Assert)]
            assert any("nbt." in ast.unparse(check) for check in checks), f"a by-hand cell checks the package:\n{cell.source}"
        else:
            assert all(isinstance(statement, SIMPLE_STATEMENTS) for statement in statements), cell.source


def flow_cells(notebook):
    """The code cells of a notebook's own flow: neither the parameters cell nor course mode's exercise cells."""
    return [cell for cell in code_cells(notebook)[1:] if not runner.is_exercise_cell(cell)]


def dotted_name(node: ast.expr) -> str | None:
    """``nbt.study.holm`` for the function of a call written as such; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def package_calls(notebook) -> list[str]:
    """Every call written ``nbt.<something>(...)`` in the notebook's flow, as its dotted name."""
    return [name for cell in flow_cells(notebook) for node in ast.walk(ast.parse(cell.source))
            if isinstance(node, ast.Call) and (name := dotted_name(node.func)) and name.startswith("nbt.")]


def helper_share(calls: list[str]) -> tuple[int, int]:
    """(calls to nbt.notebooks helpers, calls counted): plumbing (:data:`runner.PLUMBING`) is not counted."""
    plumbing = [name for name in calls if name.startswith("nbt.notebooks.") and name.split(".")[-1] in runner.PLUMBING]
    helpers = [name for name in calls if name.startswith("nbt.notebooks.") and name not in plumbing]
    return len(helpers), len(calls) - len(plumbing)


def test_the_call_count_sees_calls_and_leaves_plumbing_out():
    cell = nbformat.v4.new_code_cell("x = nbt.study.holm(nbt.notebooks.open_run(p).a)\nnbt.notebooks.budget(x)\n"
                                     "nbt.data.DATASETS.get('x')\nlen(x)")
    calls = package_calls(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run_dir = 1"), cell]))
    assert sorted(calls) == ["nbt.data.DATASETS.get", "nbt.notebooks.budget", "nbt.notebooks.open_run",
                             "nbt.study.holm"]
    assert helper_share(calls) == (1, 3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_most_package_calls_go_to_the_domains_not_to_notebook_helpers(path):
    """The cells compute with nbt.data, nbt.nn, nbt.train, nbt.diagnosis, nbt.study...: at most a third of the calls
    that are not plumbing go to nbt.notebooks (which keeps only plumbing, so there are none today)."""
    helpers, counted = helper_share(package_calls(read(path)))
    assert counted > 0 and helpers <= HELPER_SHARE * counted, (helpers, counted)


def test_plumbing_names_exist_in_the_notebook_package():
    assert all(callable(getattr(runner, name)) for name in runner.PLUMBING)


@pytest.mark.parametrize("path", [path for path in NOTEBOOKS if path.name in BY_HAND_NOTEBOOKS], ids=lambda p: p.stem)
def test_the_later_notebooks_compute_a_key_idea_by_hand(path):
    """Each of 04-08 has at least one `# By hand` cell (checked by the cell rule to assert against the package)."""
    assert any(cell.source.startswith(BY_HAND) for cell in flow_cells(read(path)))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_objectives_and_computed_summary(path):
    cells = read(path).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "**Learning objectives**" in cells[0].source
    summary = [i for i, cell in enumerate(cells)
               if cell.cell_type == "markdown" and cell.source.startswith("## Summary")]
    assert len(summary) == 1
    following = cells[summary[0] + 1]
    assert following.cell_type == "code" and following.source.startswith("nbt."), "the summary is computed"


def test_plain_papermill_runs_a_notebook_with_its_defaults_and_overrides(tmp_path):
    executed = tmp_path / "01.ipynb"
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / EXPECTED[0]), str(executed),
               "-p", "imbalance_factor", "20", "-p", "run_dir", str(tmp_path / "run")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Passed unknown parameter" not in result.stderr
    from nbn_tutorial import data

    counts = data.build_dataset("digits-lt", imbalance_factor=20).class_counts
    summary = code_cells(read(executed))[-1].outputs[0].data["text/markdown"]
    assert f"measured imbalance factor {counts.max() / counts.min():.1f}" in summary  # the override reached the data
    assert (tmp_path / "run" / "figures" / "class_samples.png").exists()
