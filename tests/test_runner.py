"""The papermill runner: profiles, parameter checks, failure reports, --only, sweeps and the report.

Runner behaviour is exercised on tiny notebooks written into tmp_path (real papermill, real kernels,
about a second each); the profiles and parameter checks also run against the real notebooks.
"""
import csv
import json
from pathlib import Path

import nbformat
import pytest
import yaml
from cli_tools import run_cli, write_notebook

from nbn_tutorial import notebooks as runner
from nbn_tutorial import paths
from nbn_tutorial.errors import UserError

EXPECTED_PROFILES = {"quick", "fashion", "cifar10-lt", "cifar100-lt", "imagenet-lt", "inat2018"}


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def injected_parameters(executed: Path) -> dict:
    return nbformat.read(str(executed), as_version=4).metadata.papermill.parameters


@pytest.fixture
def tiny(tmp_path):
    """Three tiny notebooks: 01 declares `size`, 02 declares `label`, 03 has no run_dir."""
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_first.ipynb", "size = 2\nrun_dir = 'runs/tiny'",
                   "from pathlib import Path\nPath(run_dir, 'first.txt').write_text(str(size))")
    write_notebook(folder / "02_second.ipynb", "label = 'a'\nrun_dir = 'runs/tiny'",
                   "from pathlib import Path\n"
                   "Path(run_dir, 'second.txt').write_text(label + Path(run_dir, 'first.txt').read_text())")
    write_notebook(folder / "03_third.ipynb", "ratio = 0.5", "print(ratio)")
    return folder


# ------------------------------------------------------------------ profiles

def test_the_six_profiles_exist_and_load():
    assert EXPECTED_PROFILES <= set(runner.list_profiles())
    for name in runner.list_profiles():
        assert isinstance(runner.load_profile(name), dict)


def test_every_profile_only_sets_parameters_the_notebooks_declare():
    notebooks = runner.select_notebooks()
    for name in runner.list_profiles():
        shares = runner.check_parameters(runner.load_profile(name), notebooks)
        assert set(runner.load_profile(name)) == set().union(*map(set, shares.values())), name


def test_quick_profile_equals_the_notebook_defaults():
    quick = runner.load_profile("quick")
    for path in runner.select_notebooks():
        defaults = runner.notebook_parameters(path)
        for name, value in quick.items():
            if name in defaults:
                assert defaults[name] == value, f"{path.name}: {name} default {defaults[name]!r} != quick {value!r}"


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(UserError, match="quick.*fashion|fashion.*quick"):
        runner.load_profile("quik")


def test_profile_can_be_a_yaml_file(tmp_path):
    assert runner.load_profile(write_yaml(tmp_path / "mine.yaml", {"epochs": 3})) == {"epochs": 3}
    with pytest.raises(UserError, match="missing.yaml"):
        runner.load_profile(tmp_path / "missing.yaml")


# ------------------------------------------------------------------ parameter checks

def test_unknown_parameter_is_rejected_naming_it_and_the_notebooks(tiny):
    with pytest.raises(UserError) as error:
        runner.check_parameters({"sise": 3}, runner.select_notebooks(None, tiny))
    message = str(error.value)
    assert "'sise'" in message and "did you mean 'size'" in message
    assert "01_first.ipynb" in message and "03_third.ipynb" in message


def test_unknown_parameter_is_rejected_for_the_real_notebooks():
    with pytest.raises(UserError, match="'epoch'.*02_baseline_bn.ipynb"):
        runner.check_parameters({"epoch": 1}, runner.select_notebooks())


def test_profile_parameters_of_unselected_notebooks_are_accepted_and_not_passed(tiny, tmp_path):
    params = write_yaml(tmp_path / "p.yaml", {"size": 5, "label": "b"})  # label: only 02 declares it
    out = runner.run_sequence(params_file=params, out_dir=tmp_path / "out", only=["01"], notebook_dir=tiny,
                              progress=False)
    assert injected_parameters(out / "01_first.ipynb") == {"size": 5, "run_dir": str((out / "run").resolve())}


def test_parameter_value_must_match_the_default_type(tiny):
    notebooks = runner.select_notebooks(None, tiny)
    with pytest.raises(UserError, match="'size'.*integer"):
        runner.check_parameters({"size": "big"}, notebooks)
    assert runner.check_parameters({"ratio": 1}, notebooks)[notebooks[2]] == {"ratio": 1}


def test_parameters_cell_must_hold_only_literals(tmp_path):
    path = write_notebook(tmp_path / "01_bad.ipynb", "import os\nsize = 2")
    with pytest.raises(UserError, match="01_bad.ipynb.*line 1"):
        runner.notebook_parameters(path)
    path = write_notebook(tmp_path / "02_bad.ipynb", "size = len('ab')")
    with pytest.raises(UserError, match="'size'.*literal"):
        runner.notebook_parameters(path)
    path = write_notebook(tmp_path / "03_bad.ipynb", "size = (")
    with pytest.raises(UserError, match="03_bad.ipynb is not valid Python"):
        runner.notebook_parameters(path)


def test_bad_only_value_lists_the_valid_ids(tiny):
    with pytest.raises(UserError, match="'07'.*01, 02, 03"):
        runner.select_notebooks(["01", "07"], tiny)
    assert [p.name for p in runner.select_notebooks("3,1", tiny)] == ["01_first.ipynb", "03_third.ipynb"]


# ------------------------------------------------------------------ execution

def test_sequence_passes_one_run_dir_and_each_notebook_its_own_parameters(tiny, tmp_path):
    params = write_yaml(tmp_path / "p.yaml", {"size": 7, "label": "z"})
    out = runner.run_sequence(params_file=params, out_dir=tmp_path / "out", notebook_dir=tiny, progress=False)
    run_dir = out / runner.RUN_SUBDIR
    assert (run_dir / "second.txt").read_text() == "z7"
    assert injected_parameters(out / "01_first.ipynb") == {"size": 7, "run_dir": str(run_dir.resolve())}
    assert injected_parameters(out / "03_third.ipynb") == {}
    manifest = json.loads((out / runner.MANIFEST_FILE).read_text())
    assert set(manifest["seconds"]) == {"01_first.ipynb", "02_second.ipynb", "03_third.ipynb"}


def test_only_runs_the_selected_notebooks(tiny, tmp_path):
    out = runner.run_sequence(params_file=write_yaml(tmp_path / "p.yaml", {"ratio": 2.0}), out_dir=tmp_path / "out",
                              only=["3"], notebook_dir=tiny, progress=False)
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["03_third.ipynb"]


def test_failing_cell_is_reported_by_notebook_and_cell_and_the_copy_kept(tiny, tmp_path):
    write_notebook(tiny / "02_second.ipynb", "label = 'a'", "x = 1", "raise ValueError(f'bad label {label}')")
    out = tmp_path / "out"
    with pytest.raises(UserError) as error:
        runner.run_sequence(params_file=write_yaml(tmp_path / "p.yaml", {}), out_dir=out, notebook_dir=tiny,
                            progress=False)
    message = str(error.value)
    assert message.startswith("notebook 02_second.ipynb failed in cell 3: ValueError: bad label a"), message
    executed = nbformat.read(str(out / "02_second.ipynb"), as_version=4)
    failing = [c for c in executed.cells if c.cell_type == "code" and c.execution_count == 3]
    assert failing and failing[0].outputs[-1].output_type == "error"
    assert not (out / "03_third.ipynb").exists()


def test_cli_reports_an_unknown_parameter_in_one_sentence(tmp_path):
    params = write_yaml(tmp_path / "p.yaml", {"epochz": 1})
    result = run_cli("notebooks", "run", "-f", str(params), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: unknown parameter 'epochz'") and "Traceback" not in result.stderr


# ------------------------------------------------------------------ sweeps

RECORDING_CELL = """
from pathlib import Path
from nbn_tutorial.notebooks import record_result
with open(log_file, "a") as log:
    log.write(f"{seed}\\n")
if seed == 1 and Path(stop_file).exists():
    raise RuntimeError("stopped on purpose")
record_result(run_dir, "bn", {"overall": 50.0 + seed, "few": 10.0 + seed})
record_result(run_dir, "nbn", {"overall": 52.0 + seed, "few": 15.0 + seed})
"""


def test_sweep_continues_after_an_interruption_and_summarises(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_record.ipynb",
                   "seed = 0\nscale = 1\nlog_file = 'log.txt'\nstop_file = 'stop'\nrun_dir = 'runs/x'", RECORDING_CELL)
    log, stop = tmp_path / "log.txt", tmp_path / "stop"
    stop.touch()
    profile = write_yaml(tmp_path / "base.yaml", {"scale": 1})
    sweep = write_yaml(tmp_path / "sweep_test.yaml", {
        "profile": str(profile), "parameters": {"log_file": str(log), "stop_file": str(stop)},
        "grid": {"scale": [1], "seed": [0, 1, 2]}})
    out = tmp_path / "sweep"
    with pytest.raises(UserError, match="01_record.ipynb failed in cell .*RuntimeError: stopped on purpose"):
        runner.run_sweep(sweep, out, notebook_dir=folder, progress=False)
    assert log.read_text().split() == ["0", "1"]
    assert (out / "scale=1_seed=0" / runner.DONE_MARKER).exists()
    assert not (out / "scale=1_seed=1" / runner.DONE_MARKER).exists()

    stop.unlink()
    summary = runner.run_sweep(sweep, out, notebook_dir=folder, progress=False)
    assert log.read_text().split() == ["0", "1", "1", "2"]  # set 0 skipped, 1 re-run, 2 run
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["seed"], r["model"], float(r["few"])) for r in rows] == [
        ("0", "bn", 10.0), ("0", "nbn", 15.0), ("1", "bn", 11.0), ("1", "nbn", 16.0), ("2", "bn", 12.0),
        ("2", "nbn", 17.0)]
    text = summary.read_text()
    assert "| 1 | nbn | 3 | 53.0 ± 1.0 | 16.0 ± 1.0 |" in text  # scale, model, seeds, overall, few

    runner.run_sweep(sweep, out, notebook_dir=folder, progress=False)
    assert log.read_text().split() == ["0", "1", "1", "2"]  # everything finished: nothing re-runs


def test_sweep_refuses_to_reuse_sets_finished_with_other_parameters(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_only.ipynb", "seed = 0\nscale = 1", "print(seed * scale)")
    sweep = write_yaml(tmp_path / "sweep_a.yaml", {"profile": str(write_yaml(tmp_path / "b.yaml", {})),
                                                   "grid": {"seed": [0]}})
    runner.run_sweep(sweep, tmp_path / "out", notebook_dir=folder, progress=False)
    write_yaml(sweep, {"profile": str(tmp_path / "b.yaml"), "parameters": {"scale": 3}, "grid": {"seed": [0]}})
    with pytest.raises(UserError, match="seed=0 was finished with other parameters"):
        runner.run_sweep(sweep, tmp_path / "out", notebook_dir=folder, progress=False)


@pytest.mark.parametrize("content, fragment", [
    ({"profile": "quick"}, "grid"),
    ({"profile": "quick", "grid": {"seed": []}}, "non-empty list"),
    ({"profile": "quick", "grid": {"seed": [0]}, "param": {}}, "unknown key 'param'"),
    ({"profile": "quick", "grid": {"run_dir": ["a"]}}, "run_dir"),
])
def test_bad_sweep_files_are_user_errors(tmp_path, content, fragment):
    with pytest.raises(UserError, match=fragment):
        runner.load_sweep(write_yaml(tmp_path / "sweep.yaml", content))


def test_sweep_sets_are_the_cartesian_product_with_readable_names(tmp_path):
    sweep = runner.load_sweep(write_yaml(tmp_path / "s.yaml", {"grid": {"dataset": ["digits-lt", "fashion-mnist-lt"],
                                                                         "seed": [0, 1]}}))
    names = [runner.set_name(values) for values in runner.sweep_sets(sweep)]
    assert names == ["dataset=digits-lt_seed=0", "dataset=digits-lt_seed=1", "dataset=fashion-mnist-lt_seed=0",
                     "dataset=fashion-mnist-lt_seed=1"]


def test_example_sweep_is_valid_for_the_real_notebooks():
    sweep = runner.load_sweep(runner.PARAMS_DIR / "sweep_example.yaml")
    notebooks = runner.select_notebooks()
    assert runner.select_notebooks(sweep.only)
    for values in runner.sweep_sets(sweep):
        runner.check_parameters({**runner.load_profile(sweep.profile), **sweep.parameters, **values}, notebooks)


# ------------------------------------------------------------------ report

FIGURE_CELL = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from nbn_tutorial.notebooks import record_result, save_figure
record_result(run_dir, "bn", {"overall": 60.0, "many": 80.0, "medium": 60.0, "few": 30.0})
record_result(run_dir, "nbn", {"overall": 62.0, "many": 79.0, "medium": 60.0, "few": 35.25})
figure, axis = plt.subplots()
axis.bar(["bn", "nbn"], [30.0, 35.25])
save_figure(figure, run_dir, "few_shot", "Few-shot accuracy")
"""


def test_report_holds_the_table_computed_sentences_and_figures(tmp_path):
    folder = tmp_path / "nbs"
    write_notebook(folder / "01_results.ipynb", "run_dir = 'runs/x'", FIGURE_CELL)
    out = runner.run_sequence(params_file=write_yaml(tmp_path / "p.yaml", {}), out_dir=tmp_path / "out",
                              notebook_dir=folder, progress=False)
    report = runner.build_report(out).read_text()
    assert "| nbn | 62.0 | 79.0 | 60.0 | 35.2 |" in report
    assert "NBN improved few-shot accuracy by 5.2 points (30.0% → 35.2%)." in report
    assert "NBN lowered many-shot accuracy by 1.0 points (80.0% → 79.0%)." in report
    assert "NBN left medium-shot accuracy unchanged (60.0% → 60.0%)." in report
    assert "![Few-shot accuracy](run/figures/few_shot.png)" in report
    assert (out / "run" / "figures" / "few_shot.png").read_bytes()[:4] == b"\x89PNG"
    assert "| [01_results.ipynb](01_results.ipynb) | [HTML](01_results.html) |" in report
    page = (out / "01_results.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "record_result" in page   # the notebook's code, rendered
    html_report = (out / "report.html").read_text()
    assert "<td>35.2</td>" in html_report and '<img src="run/figures/few_shot.png"' in html_report
    assert '<a href="01_results.html">HTML</a>' in html_report


def test_report_of_a_directory_without_a_run_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match="notebooks run"):
        runner.build_report(tmp_path)


def test_relative_run_dir_counts_from_the_project_root(tmp_path, monkeypatch):
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(paths, "source_root", lambda: checkout)
    relative = Path("runs") / "resolve"
    assert runner.resolve_run_dir(relative) == checkout / relative
    assert (checkout / relative).is_dir() and not (elsewhere / "runs").exists()
    assert runner.resolve_run_dir(tmp_path / "abs") == tmp_path / "abs"
    assert (tmp_path / "abs").is_dir()


def test_relative_run_dir_counts_from_the_current_directory_without_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "source_root", lambda: None)
    relative = Path("runs") / "resolve"
    assert runner.resolve_run_dir(relative) == tmp_path / relative
    assert (tmp_path / relative).is_dir()


# ------------------------------------------------------------------ notebook helpers on real runs

def test_run_path_is_shared_by_configs_that_compute_the_same(tmp_path):
    config = runner.run_config("quick_digits_bn", epochs=3, seed=1)
    assert runner.run_path(tmp_path, config) == runner.run_path(tmp_path, runner.run_config("quick_digits_bn", epochs=3,
                                                                                            seed=1, data_root="x"))
    assert runner.run_path(tmp_path, config).name.startswith("digits-lt_resnet32_bn_ce_seed1-")
    for other in (runner.run_config("quick_digits_bn", epochs=4, seed=1),
                  runner.run_config("quick_digits_bn", epochs=3, seed=1, norm="nbn"),
                  runner.run_config("quick_digits_bn", epochs=3, seed=1, imbalance_factor=20.0)):
        assert runner.run_path(tmp_path, other) != runner.run_path(tmp_path, config)


def test_run_config_keeps_preset_values_for_none_and_rejects_bad_ones():
    preset = runner.run_config("quick_digits_bn")
    assert runner.run_config("quick_digits_bn", epochs=None, seed=None).epochs == preset.epochs
    with pytest.raises(UserError, match="norm"):
        runner.run_config("quick_digits_bn", norm="group")


@pytest.fixture(scope="module")
def two_seed_runs(tmp_path_factory):
    """BN and NBN digits-lt runs of one epoch for seeds 0 and 1, planned like notebook 05 plans them."""
    run_dir = tmp_path_factory.mktemp("runs")
    plan = runner.plan_runs(["quick_digits_bn", "quick_digits_nbn"], [0, 1], run_dir, epochs=1, device="cpu")
    assert [run.status for run in plan] == ["new"] * 4
    return plan, runner.train_plan(plan, progress=False)


def test_planned_runs_train_once_and_are_then_finished(two_seed_runs):
    plan, runs = two_seed_runs
    assert runs == [run.path for run in plan]
    assert [run.status for run in plan] == ["finished"] * 4
    commands = runner.launch_commands(plan, gpus=4).splitlines()
    assert commands[1] == (f"torchrun --nproc-per-node 4 -m nbn_tutorial train --config quick_digits_bn --set epochs=1 "
                           f"--set device=cpu --set seed=1 --out {plan[1].path}")
    assert runner.launch_commands(plan[:1], gpus=1).startswith("nbn-tutorial train --config quick_digits_bn")


def test_gathered_results_give_mean_and_std_over_seeds(two_seed_runs):
    from nbn_tutorial import study, train

    _, runs = two_seed_runs
    results = train.gather_runs(runs)
    assert list(results["norm"]) == ["bn", "bn", "nbn", "nbn"] and list(results["seed"]) == [0, 1, 0, 1]
    few = [100 * train.read_metrics(run).iloc[-1]["few_acc"] for run in runs]
    assert results["few"].tolist() == pytest.approx(few)
    table = study.seed_table(results)
    assert table["few"].tolist() == [study.format_mean_std(few[:2]), study.format_mean_std(few[2:])]
    assert list(table["seeds"]) == [2, 2]
    summary = study.seed_summary(results)
    assert "On digits-lt (resnet32, ce, 1 epochs, 2 seeds), NBN" in summary and "seed-to-seed spread" in summary
    assert list(study.mean_accuracy_table(results).index) == ["digits-lt ce bn", "digits-lt ce nbn"]


def test_recorded_run_results_are_percent_of_the_final_epoch(two_seed_runs, tmp_path):
    from nbn_tutorial import train

    _, runs = two_seed_runs
    shown = runner.record_run(tmp_path, "bn", runs[0])
    stored = runner.read_results(tmp_path)
    assert stored["bn"]["overall"] == pytest.approx(100 * train.read_metrics(runs[0]).iloc[-1]["test_acc"])
    shown = runner.record_run(tmp_path, "nbn", runs[2])   # the table shows every recorded model, rounded
    assert list(shown.index) == ["bn", "nbn"] and shown.index.name == "model"
    assert list(shown.columns) == ["overall (%)", "balanced (%)", "many (%)", "medium (%)", "few (%)"]
    assert shown.loc["bn", "overall (%)"] == round(stored["bn"]["overall"], 1)


def test_results_table_rounds_and_labels():
    table = runner.results_frame({"bn": {"overall": 95.33333333333334, "few": 80.06}})
    assert table.loc["bn"].tolist() == [95.3, 80.1] and table.columns.name == "test accuracy"


def test_gpu_note_on_a_machine_without_several_gpus_says_what_torchrun_would_run(two_seed_runs, tmp_path):
    import torch

    plan, _ = two_seed_runs
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has several GPUs: the note is the commands themselves")
    note = runner.gpu_plan_note(plan, tmp_path, gpus=4, train_here=True)
    assert "nothing here runs with torchrun: 4 of the 4 planned runs are finished and the next cell only" in note
    assert f"the 4 commands are in `{tmp_path / runner.LAUNCH_SCRIPT}`" in note
    assert note.count("torchrun --nproc-per-node 4") == 1   # one example, not the launch list as main output
    script = (tmp_path / runner.LAUNCH_SCRIPT).read_text().splitlines()
    assert script[2:] == runner.launch_commands(plan, gpus=4).splitlines()


def test_grad_cam_note_says_when_the_map_comes_from_a_tiny_feature_map():
    import torch

    from nbn_tutorial import diagnosis, models

    model = models.build_model("resnet32", 10, norm="bn", in_channels=1)
    digits = diagnosis.grad_cam_note(model, torch.zeros(2, 1, 8, 8))
    assert digits.startswith("**Coarse maps.**") and "2×2 feature maps" in digits and "8×8 input" in digits
    cifar = diagnosis.grad_cam_note(model, torch.zeros(2, 1, 32, 32))
    assert "8×8 feature maps" in cifar and "4×4 block" in cifar and "Coarse" not in cifar


def test_model_description_counts_the_shared_alpha_once():
    from nbn_tutorial import models

    bn = runner.describe_model(models.build_model("resnet32", 10, norm="bn", in_channels=1))
    nbn = runner.describe_model(models.build_model("resnet32", 10, norm="nbn", in_channels=1))
    count = lambda text: int(text.split(": ")[1].split(" parameters")[0].replace(",", ""))  # noqa: E731
    assert count(nbn) == count(bn) + 1
    assert "5 of them NBN" in nbn and "learnable α: 1 scalar parameter" in nbn


@pytest.mark.parametrize("before, after, expected", [
    (31.2, 35.3, "NBN improved few-shot accuracy by 4.1 points (31.2% → 35.3%)."),
    (35.3, 31.2, "NBN lowered few-shot accuracy by 4.1 points (35.3% → 31.2%)."),
    (35.31, 35.29, "NBN left few-shot accuracy unchanged (35.3% → 35.3%)."),
])
def test_change_sentences_follow_the_numbers(before, after, expected):
    from nbn_tutorial import wording

    assert wording.change_sentence("NBN", "few-shot accuracy", before, after) == expected
