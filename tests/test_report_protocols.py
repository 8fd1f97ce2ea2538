"""Reports that never mix protocols or hide missing runs (issue 19), on real executed notebooks and a real study.

Notebooks are tiny ones written by ``tests/cli_tools.py`` and executed by papermill; the study is a
1-epoch digits-lt grid of two arms and two seeds.
"""
import json
from pathlib import Path

import pytest
import yaml
from cli_tools import error_line, run_cli, write_notebook
from image_trees import corrupt, write_image

from nbn_tutorial import notebooks as runner
from nbn_tutorial import study
from nbn_tutorial.errors import UserError


@pytest.fixture
def two_notebooks(tmp_path) -> Path:
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_first.ipynb", "size = 2\nrun_dir = 'runs/x'", "print(size)")
    write_notebook(folder / "02_second.ipynb", "fail = False\nrun_dir = 'runs/x'",
                   "if fail:\n    raise ValueError('stopped on purpose')")
    return folder


def run(folder: Path, out: Path, **kwargs) -> Path:
    """Run the tiny notebooks in ``folder`` with the parameter file ``folder/params.yaml`` (size 3)."""
    params = folder / "params.yaml"
    params.write_text("size: 3\n")
    return runner.run_sequence(params_file=params, out_dir=out, notebook_dir=folder, progress=False, **kwargs)


# ---------------------------------------------------------------------------------------------------
# notebooks report
# ---------------------------------------------------------------------------------------------------

def test_the_report_refuses_a_deleted_or_damaged_executed_notebook(two_notebooks, tmp_path):
    out = run(two_notebooks, tmp_path / "out")
    (out / "02_second.ipynb").unlink()
    line = error_line(run_cli("notebooks", "report", str(out)))
    assert "02_second.ipynb is missing" in line and f"notebooks run --only 02 --out {out}" in line
    run(two_notebooks, out, only=["02"])
    executed = out / "01_first.ipynb"
    executed.write_bytes(executed.read_bytes()[:200])   # cut short
    line = error_line(run_cli("notebooks", "report", str(out)))
    assert f"notebook {executed} is damaged" in line and f"notebooks run --only 01 --out {out}" in line
    assert not (out / "report.md").exists()


def test_the_report_of_a_file_or_a_missing_folder_names_what_to_give(tmp_path):
    a_file = tmp_path / "report.md"
    a_file.write_text("# not a sequence\n")
    line = error_line(run_cli("notebooks", "report", str(a_file)))
    assert "is a file; give the output folder of `nbn-tutorial notebooks run`" in line and "--out " + str(a_file) \
        not in line
    assert "does not exist" in error_line(run_cli("notebooks", "report", str(tmp_path / "nowhere")))


def test_the_report_is_rewritten_when_the_manifest_changes_and_removed_when_it_would_be_stale(two_notebooks,
                                                                                              tmp_path, capsys):
    out = run(two_notebooks, tmp_path / "out", report=True)
    report = out / "report.md"
    report.write_text("an old report\n")
    run(two_notebooks, out, only=["01"])   # same parameters: merged, and the report written again
    assert "an old report" not in report.read_text() and "02_second.ipynb" in report.read_text()
    write_notebook(two_notebooks / "02_second.ipynb", "fail = False\nrun_dir = 'runs/x'", "raise ValueError('now')")
    with pytest.raises(UserError, match="02_second.ipynb failed"):
        run(two_notebooks, out, only=["02"])
    assert not report.exists() and not (out / "report.html").exists()
    assert "removed the report" in capsys.readouterr().err


def test_a_notebook_stopped_by_an_unreadable_image_gets_advice_that_works_for_notebooks(tmp_path):
    image = corrupt(write_image(tmp_path / "bad.jpg", 0, 0), "truncated")
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_read.ipynb", f"path = {str(image)!r}\nsize = 0",
                   "from nbn_tutorial.data import read_rgb\nread_rgb(path)")
    with pytest.raises(UserError) as caught:
        run(folder, tmp_path / "out")
    message = str(caught.value)
    assert "UnreadableImage" in message and str(image) in message and "nbn-tutorial data check" in message
    assert "skip_bad_images" not in message and "--skip-bad-images" not in message


# ---------------------------------------------------------------------------------------------------
# study report
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    source = folder / "tiny.yaml"
    source.write_text(yaml.safe_dump({
        "description": "tiny", "baseline": "bn", "arms": {"bn": {"norm": "bn"}, "nbn": {"norm": "nbn"}},
        "datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 2,
                                   "set": {"epochs": 1, "batch_size": 64, "warmup_epochs": 1}}}}))
    return study.run_study(source, folder / "out", progress=False)


def test_an_incomplete_study_is_reported_only_when_allowed_and_then_says_what_each_figure_rests_on(tiny_study,
                                                                                                    tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for path in tiny_study.rglob("*"):
        if path.is_file():
            (out / path.relative_to(tiny_study)).parent.mkdir(parents=True, exist_ok=True)
            (out / path.relative_to(tiny_study)).write_bytes(path.read_bytes())
    for path in sorted((out / "digits-lt" / "nbn" / "seed1").iterdir()):   # a run deleted
        path.unlink()
    (out / "digits-lt" / "nbn" / "seed1").rmdir()
    (out / "digits-lt" / "bn" / "seed1" / "study_row.json").unlink()   # a run killed before it was measured
    line = error_line(run_cli("study", "report", str(out)))
    assert "2 planned runs without a result" in line
    assert "digits-lt/bn/seed1 (unfinished)" in line and "digits-lt/nbn/seed1 (missing)" in line
    assert "--allow-incomplete" in line and not (out / "summary.md").exists()
    allowed = run_cli("study", "report", str(out), "--allow-incomplete")
    assert allowed.returncode == 0, allowed.stderr
    summary = (out / "summary.md").read_text()
    assert "INCOMPLETE, reported with --allow-incomplete" in summary
    assert "digits-lt bn 1/2, digits-lt nbn 1/2" in summary
    assert "INCOMPLETE" in (out / "results.csv").read_text().splitlines()[0]


def test_a_complete_study_reports_without_the_flag_and_a_missing_readme_changes_nothing(tiny_study, tmp_path):
    results = tmp_path / "results"
    line = error_line(run_cli("study", "report", str(tiny_study), "--out", str(results), "--readme",
                              str(tmp_path / "README.md")))
    assert "README" in line and "does not exist" in line and not results.exists()
    reported = run_cli("study", "report", str(tiny_study), "--out", str(results))
    assert reported.returncode == 0, reported.stderr
    assert "INCOMPLETE" not in (results / "summary.md").read_text()
    assert json.loads((tiny_study / "study.json").read_text())["study"] == "tiny"
