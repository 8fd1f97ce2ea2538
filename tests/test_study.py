"""The study runner on a real (tiny) digits grid: plan, runs, resume, report, paired intervals (runs in several
processes: tests/test_rebalancing_study.py)."""
import math

import numpy as np
import pytest
from cli_tools import run_cli
import yaml
from scipy import stats

from nbn_tutorial import study
from nbn_tutorial.errors import UserError

TINY_SET = {"epochs": 2, "batch_size": 64, "warmup_epochs": 1}


def write_study(path, **changes):
    content = {"description": "tiny", "baseline": "bn", "reference": "nbn", "seed_keys": ["seed", "data_seed"],
               "arms": {"bn": {"norm": "bn"}, "nbn": {"norm": "nbn"}, "weight-only": {"norm": "nbn",
                                                                                      "nbn_normalize": "weight"}},
               "datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 2, "set": dict(TINY_SET)}}}
    content.update(changes)
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    source = write_study(folder / "tiny.yaml")
    out = study.run_study(source, folder / "out", jobs=1, progress=False)
    return source, out


def test_the_plan_pairs_every_arm_with_the_baseline_on_each_seed(tmp_path):
    loaded = study.load_study(write_study(tmp_path / "s.yaml"))
    plan = study.plan_study(loaded, tmp_path / "out")
    assert [(run.seed, run.arm) for run in plan] == [(0, "bn"), (0, "nbn"), (0, "weight-only"),
                                                     (1, "bn"), (1, "nbn"), (1, "weight-only")]
    assert all(run.values["seed"] == run.values["data_seed"] == run.seed for run in plan)
    assert plan[2].values["nbn_normalize"] == "weight" and plan[2].values["epochs"] == 2


@pytest.mark.parametrize("changes, fragment", [
    ({"baseline": "nope"}, "baseline arm"),
    ({"datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 0}}}, "seeds"),
    ({"datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 2, "set": {"epoch": 2}}}}, "epoch"),
    ({"datasets": {"digits-lt": {"preset": "quick_digits_bn", "seeds": 2, "arms": ["bm"]}}}, "arm"),
    ({"arms": {}}, "no arms"),
    ({"colour": 1}, "unknown key"),
    ({"pairs": [["weight-only"]]}, "two-arm lists"),
    ({"pairs": [["weight-only", "bm"]]}, "arm of a pair"),
])
def test_bad_study_files_are_one_sentence(tmp_path, changes, fragment):
    with pytest.raises(UserError, match=fragment):
        study.plan_study(study.load_study(write_study(tmp_path / "s.yaml", **changes)), tmp_path / "out")


def test_every_run_is_measured(finished):
    _, out = finished
    rows = study.read_rows(out)
    assert len(rows) == 6 and all(row["status"] == "finished" for row in rows)
    for row in rows:
        assert 0 <= row["balanced_acc"] <= 1 and len(row["per_class_acc"]) == 10
        assert math.isfinite(row["feature_strength_ratio"]) and row["feature_strength_ratio"] > 0
    nbn = [row for row in rows if row["arm"] == "nbn"]
    assert all(row["beta_norm_max"] > 100 for row in nbn), "the official NBN bias is thrown far at the first step"


def test_running_again_skips_measured_runs_and_refuses_changed_settings(finished, tmp_path):
    source, out = finished
    result = run_cli("study", "run", str(source), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "6 already measured, 0 to run" in result.stdout
    changed = write_study(tmp_path / "tiny.yaml", datasets={"digits-lt": {"preset": "quick_digits_bn", "seeds": 2,
                                                                          "set": {**TINY_SET, "epochs": 3}}})
    with pytest.raises(UserError, match="other settings"):
        study.run_study(changed, out, progress=False)


def test_the_report_has_paired_intervals_computed_from_the_runs(finished, tmp_path):
    _, out = finished
    summary = study.write_study_report(out, tmp_path / "results", command="test")
    results, per_class = study.read_results(tmp_path / "results")
    assert len(results) == 6 and set(results["arm"]) == {"bn", "nbn", "weight-only"}
    assert len(per_class) == 60
    header = (tmp_path / "results" / "results.csv").read_text().splitlines()[:4]
    assert all(line.startswith("#") for line in header) and any("torch" in line for line in header)
    bn = results[results["arm"] == "bn"].set_index("seed")["balanced"]
    nbn = results[results["arm"] == "nbn"].set_index("seed")["balanced"]
    differences = (nbn - bn).to_numpy()
    half = stats.t.ppf(0.975, 1) * differences.std(ddof=1) / np.sqrt(2)
    interval = study.paired_intervals(results, "digits-lt", "balanced", "bn")["nbn"]
    assert interval.mean == pytest.approx(differences.mean())
    assert (interval.low, interval.high) == pytest.approx((differences.mean() - half, differences.mean() + half))
    text = summary.read_text()
    assert "95% CI" in text and "paired" in text and "`weight-only` − `nbn`" in text and "p (Holm)" in text
    contrasts = study.read_table(tmp_path / "results", "contrasts")
    row = contrasts[(contrasts["arm"] == "nbn") & (contrasts["against"] == "bn") & (contrasts["metric"] == "balanced")]
    assert row["mean"].iloc[0] == pytest.approx(differences.mean())
    assert row["p"].iloc[0] == pytest.approx(stats.ttest_rel(nbn.to_numpy(), bn.to_numpy()).pvalue)


def test_intervals_need_two_seeds():
    assert study.t_interval([1.0]).n == 1 and math.isnan(study.t_interval([1.0]).low)
    assert study.paired_difference({0: 1.0, 1: 2.0, 5: 9.0}, {0: 0.5, 1: 1.0}).n == 2


def test_the_readme_block_is_rewritten_from_the_report(finished, tmp_path):
    _, out = finished
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- study:tiny:start -->\nold numbers\n<!-- study:tiny:end -->\noutro\n")
    result = run_cli("study", "report", str(out), "--out", str(tmp_path / "results"), "--readme", str(readme))
    assert result.returncode == 0, result.stderr
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    _, design = study.load_design("tiny", str(finished[0]))
    assert study.readme_block("tiny", tmp_path / "results", design) in text
    assert "| digits-lt | `nbn` | 2 |" in text and "contrasts.csv" in text and "Holm" in text


def test_the_committed_readme_tables_come_from_the_committed_results():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    for folder in sorted((root / "studies" / "results").glob("*")):
        marker = f"<!-- study:{folder.name}:start -->"
        if marker in readme:
            _, design = study.load_design(folder.name)
            assert study.readme_block(folder.name, folder, design) in readme, folder.name


def test_the_mechanism_table_summarises_the_nbn_state_of_each_nbn_arm(finished, tmp_path):
    from nbn_tutorial import diagnosis, notebooks

    _, out = finished
    study.write_study_report(out, tmp_path / "results", command="test")
    view = notebooks.open_study(str(finished[0]), results_dir=tmp_path / "results")
    table = study.mechanism_table(view)
    assert list(table.index.get_level_values("arm")) == ["nbn", "weight-only"]   # BN records no α
    results = view.results.set_index("arm")
    assert table.loc[("digits-lt", "nbn"), "α at the end, min"] == pytest.approx(results.loc["nbn", "alpha"].min(),
                                                                                abs=1e-3)
    text = str(study.mechanism_summary(view))
    assert "digits-lt, `nbn` (2 runs): α ended between" in text and "digits-lt, `weight-only` (2 runs)" in text
    full_nbn = results.loc["nbn", "beta_cos_first_min"].min() >= diagnosis.FROZEN_COSINE
    assert ("never moved" in text.split("\n")[0]) == full_nbn


def test_the_pairs_of_a_study_file_are_compared_seed_by_seed(finished, tmp_path):
    source, out = finished
    paired = study.load_study(write_study(tmp_path / "tiny.yaml", pairs=[["weight-only", "nbn"]]))
    assert paired.pairs == (("weight-only", "nbn"),) and study.load_study(source).pairs == ()
    study.write_study_report(out, tmp_path / "results", command="test")
    results = study.read_table(tmp_path / "results", "results")
    dynamics = study.read_table(tmp_path / "results", "dynamics")
    with_pairs = study.Design.of(paired)
    sentences = study.study_conclusions(results, study.contrast_table(results, with_pairs), dynamics, with_pairs)
    interval = study.paired_intervals(results, "digits-lt", "balanced", "nbn")["weight-only"]
    assert sentences[-1].startswith("On digits-lt, `weight-only` − `nbn` (same seeds): balanced accuracy "
                                    f"{interval.mean:+.1f} points")
    plain = study.Design.of(study.load_study(source))
    assert len(sentences) == len(study.study_conclusions(results, study.contrast_table(results, plain), dynamics,
                                                         plain)) + 1


def test_an_update_keeps_the_earlier_rows_of_runs_the_folder_lacks(finished, tmp_path):
    import shutil

    _, out = finished
    results = tmp_path / "results"
    study.write_study_report(out, results, command="test")
    before = study.read_table(results, "results").set_index(["arm", "seed"])
    partial = shutil.copytree(out, tmp_path / "partial")
    shutil.rmtree(partial / "digits-lt" / "weight-only" / "seed1")
    with pytest.raises(UserError, match="incomplete"):
        study.write_study_report(partial, tmp_path / "elsewhere", command="test")
    summary = study.write_study_report(partial, results, command="test", update=True)
    after = study.read_table(results, "results").set_index(["arm", "seed"])
    assert len(after) == 6 and after.loc[("weight-only", 1), "balanced"] == before.loc[("weight-only", 1), "balanced"]
    assert "INCOMPLETE" not in summary.read_text()
    with pytest.raises(UserError, match="--update keeps the rows"):
        study.write_study_report(partial, tmp_path / "empty", command="test", update=True)
