"""studies/rebalancing.yaml (notebook 07's grid over seeds) through the study runner, on a tiny grid."""
from pathlib import Path

import pytest
import torch
import yaml

from nbn_tutorial import paths, study
from nbn_tutorial.errors import UserError

STUDY_FILE = paths.STUDY_DIR / "rebalancing.yaml"


def tiny_copy(folder: Path) -> Path:
    """The rebalancing study with one seed and one epoch per run (DRW from the start)."""
    content = yaml.safe_load(STUDY_FILE.read_text())
    for values in content["arms"].values():
        if "epochs" in values:
            values["epochs"] = 1
        if "drw_epoch" in values:
            values["drw_epoch"] = 0
    content["datasets"]["digits-lt"].update(seeds=1, set={"epochs": 1, "warmup_epochs": 0})
    path = folder / "rebalancing_tiny.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def test_the_study_file_plans_stage_two_and_posthoc_arms_on_the_stage_one_run_of_each_seed(tmp_path):
    plan = study.plan_study(study.load_study("rebalancing"), tmp_path)
    assert len(plan) == 10 * 10
    by_arm = {run.arm: run for run in plan if run.seed == 3}
    stage1 = by_arm["nbn"].path
    assert by_arm["nbn-crt"].values["init_from"] == str(stage1.resolve() / "last.pt")
    assert by_arm["nbn-crt"].needs == (stage1,) and by_arm["nbn-crt"].values["data_seed"] == 3
    assert by_arm["nbn-tau"].posthoc == {"source": str(stage1), "tau_norm": "auto"}
    assert by_arm["ride-nbn"].values["model"] == "ride_resnet32" and not by_arm["ride-nbn"].needs


def test_a_tiny_grid_runs_with_two_processes_and_reports(tmp_path):
    out = study.run_study(tiny_copy(tmp_path), tmp_path / "runs", jobs=2, progress=False)
    rows = {row["arm"]: row for row in study.read_rows(out)}
    assert set(rows) == {"bn", "nbn", "bn-crt", "nbn-crt", "bn-tau", "nbn-tau", "bn-lws", "nbn-lws", "ride-bn",
                         "ride-nbn"}
    assert all(row["status"] == "finished" for row in rows.values()), [row.get("error") for row in rows.values()]
    assert rows["nbn-tau"]["tau_split"] == "val" and 0 <= rows["nbn-tau"]["tau"] <= 2
    stage1 = torch.load(out / "digits-lt" / "nbn" / "seed0" / "last.pt", weights_only=True)["model"]
    crt = torch.load(out / "digits-lt" / "nbn-crt" / "seed0" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(stage1[key], crt[key]) for key in stage1 if not key.startswith("head."))
    summary = study.write_study_report(out)
    assert "nbn-crt" in summary.read_text() and "ride-nbn" in summary.read_text()


def test_an_arm_may_build_only_on_a_training_arm_listed_before_it(tmp_path):
    content = {**yaml.safe_load(STUDY_FILE.read_text()), "reference": None, "pairs": None, "primary": None}
    content["arms"] = {"bn": {"norm": "bn"}, "bn-tau": {"tau_norm_of": "bn-crt"},
                       "bn-crt": {"init_from": "{run:bn}/last.pt", "trainable": "classifier"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    with pytest.raises(UserError, match="'bn-tau' builds on arm 'bn-crt'"):
        study.plan_study(study.load_study(path), tmp_path)
