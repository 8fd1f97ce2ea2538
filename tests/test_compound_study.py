"""The compound_bn study (BN vs NBN vs Compound BN) on a real tiny grid, and what notebook 08 reads from it."""
from pathlib import Path

import pytest

from nbn_tutorial.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_the_compound_study_has_the_protocol_and_seeds_of_the_nbn_study(tmp_path):
    from nbn_tutorial import study

    compound, ablation = study.load_study("compound_bn"), study.load_study("nbn_ablation")
    assert compound.seed_keys == ablation.seed_keys and list(compound.datasets) == list(ablation.datasets)
    for name, entry in compound.datasets.items():   # the same preset, seeds and settings; every arm runs
        assert {**entry, "arms": None} == {**ablation.datasets[name], "arms": None}
        assert compound.arms_of(name) == ["bn", "nbn", "cbn", "cbn-dual"]
    assert (compound.baseline, compound.reference) == ("bn", "nbn")
    assert compound.arms["bn"] == ablation.arms["bn"] and compound.arms["nbn"] == ablation.arms["nbn"]
    plan = study.plan_study(compound, tmp_path)
    cbn_runs = [run for run in plan if run.arm.startswith("cbn")]
    assert {run.values["cbn_dual_path"] for run in cbn_runs} == {False, True}
    assert all(run.values["norm"] == "cbn" and run.values["norm_where"] == "official" for run in cbn_runs)


@pytest.fixture(scope="module")
def tiny_compound_results(tmp_path_factory) -> Path:
    """The compound_bn study's four arms on digits-lt, 2 seeds of 1 epoch, run and reported for real; its BN and
    NBN runs are copied from a run of the NBN study's arms, as the study file's header suggests."""
    import shutil

    import yaml

    from nbn_tutorial import study

    folder = tmp_path_factory.mktemp("compound_study")
    datasets = {"digits-lt": {"preset": "quick_digits_bn", "seeds": 2, "set": {"epochs": 1}}}
    ablation = yaml.safe_load((ROOT / "studies" / "nbn_ablation.yaml").read_text())
    ablation.update(arms={arm: ablation["arms"][arm] for arm in ("bn", "nbn")}, datasets=datasets)
    (folder / "nbn_ablation.yaml").write_text(yaml.safe_dump(ablation))
    study.run_study(folder / "nbn_ablation.yaml", folder / "ablation", jobs=1, progress=False)
    spec = yaml.safe_load((ROOT / "studies" / "compound_bn.yaml").read_text())
    spec["datasets"] = datasets
    (folder / "compound_bn.yaml").write_text(yaml.safe_dump(spec))
    for arm in ("bn", "nbn"):
        shutil.copytree(folder / "ablation" / "digits-lt" / arm, folder / "out" / "digits-lt" / arm)
    out = study.run_study(folder / "compound_bn.yaml", folder / "out", jobs=1, progress=False)
    copied = study.read_rows(folder / "ablation")
    assert [row for row in study.read_rows(out) if row["arm"] in ("bn", "nbn")] == copied   # reused, not retrained
    study.write_study_report(out, folder / "results")
    return folder / "results"


def test_notebook_08_reads_the_study_into_tables_and_computed_sentences(tiny_compound_results, tmp_path):
    from nbn_tutorial import notebooks, study
    from nbn_tutorial.notebooks.report import SAVED_SECTIONS, _saved_section
    from nbn_tutorial.study.contrasts import find

    view = notebooks.compound_study(tiny_compound_results)
    results = view.results.set_index("arm")
    assert results["cbn_paired_share"].loc[["cbn", "cbn-dual"]].between(0, 1).all()
    assert results["cbn_paired_share"].loc[["bn", "nbn"]].isna().all()
    table = study.compound_table(view)
    assert list(table.index.get_level_values("arm")) == ["bn", "nbn", "cbn", "cbn-dual"]
    text = study.compound_conclusions(view)
    for arm, reference in (("cbn-dual", "bn"), ("cbn-dual", "cbn"), ("cbn", "nbn")):
        row = find(view.contrasts, "digits-lt", arm, reference, "balanced")
        assert row is not None and study.contrast_sentence(row) in text
        interval = study.paired_intervals(view.results, "digits-lt", "balanced", reference)[arm]
        assert row["mean"] == pytest.approx(interval.mean)
    notebooks.save_compound_summary(view, tmp_path)
    heading, table_name, text_name = next(s for s in SAVED_SECTIONS if s[1] == notebooks.COMPOUND_TABLE)
    report = "\n".join(_saved_section(tmp_path, heading, table_name, text_name))
    assert "Compound BN" in report and "cbn-dual" in report and text.strip() in report
    with pytest.raises(UserError, match="no results of the compound_bn study in"):
        notebooks.compound_study(tmp_path / "missing")
