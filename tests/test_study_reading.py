"""Reading a study's results (what notebooks 06-08 show), on the committed results of the real studies: the
opened view, its arm and per-class tables, and the claim-carrying sentences, each checked against the numbers
it states."""
from __future__ import annotations

import re

import pytest
import torch

from nbn_tutorial import data, diagnosis, models, study
from nbn_tutorial.errors import UserError
from nbn_tutorial.study.contrasts import PRIMARY_FAMILY, find


@pytest.fixture(scope="module")
def ablation() -> study.StudyView:
    return study.read_study("nbn_ablation")


def test_a_study_is_read_with_its_design(ablation):
    assert (ablation.baseline, ablation.reference) == ("bn", "nbn")
    assert ablation.folder == study.committed_results("nbn_ablation")
    assert len(ablation.results) and len(ablation.per_class) and ablation.dynamics is not None and ablation.header
    assert set(ablation.contrasts["family"]) >= {PRIMARY_FAMILY}
    assert ablation.design.baseline == "bn"


def test_a_missing_results_folder_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match=r"^no study results in .*; run `nbn-tutorial study run nbn_ablation"):
        study.read_study("nbn_ablation", tmp_path)


def test_the_arms_table_shows_what_each_arm_changes():
    table = study.arms_table("nbn_ablation")
    assert list(table.index[:2]) == ["bn (baseline)", "nbn (reference)"]
    assert table.loc["last-stage", "config"] == "norm=nbn, norm_where=last-stage"
    assert table.loc["nbn (reference)", "runs on"] == "digits-lt (10 seeds); fashion-mnist-lt (5 seeds)"


def test_the_arm_tables_give_mean_and_paired_difference_per_metric(ablation):
    table = study.arm_tables(ablation, metrics=("balanced", "few"))
    assert list(table.columns) == ["runs", "balanced accuracy", "Δ balanced vs bn", "few-shot accuracy", "Δ few vs bn"]
    assert table.loc[("digits-lt", "nbn"), "runs"] == 10
    interval = study.paired_intervals(ablation.results, "digits-lt", "balanced", "bn")["nbn"]
    assert table.loc[("digits-lt", "nbn"), "Δ balanced vs bn"] == interval.text(1, True)


def test_the_per_class_sentence_states_the_table_it_comes_from(ablation):
    dataset = study.per_class_dataset(ablation)
    assert dataset == "fashion-mnist-lt"          # the dataset trained with a permuted class order
    table = study.per_class_differences(ablation, dataset, "nbn")
    text = study.per_class_summary(ablation, dataset, "nbn")
    assert f"{table.iloc[0]['difference']:+.1f} points for the most frequent class rank" in text
    assert f"{table.iloc[-1]['difference']:+.1f} for the rarest" in text
    excluding = table[(table["low"] > 0) | (table["high"] < 0)]
    assert ("No class rank's 95% interval excludes zero" in text) == excluding.empty
    assert "not confirmed" in text or excluding.empty
    assert study.per_class_summary(ablation, dataset, "no-such-arm").startswith("No per-class comparison")


def test_the_answers_state_every_primary_contrast_with_the_verdict_holm_allows(ablation):
    text = study.study_answers(ablation)
    assert text.startswith(study.design_sentence(ablation.design, ablation.contrasts))
    primary = ablation.contrasts[ablation.contrasts["family"] == PRIMARY_FAMILY]
    assert len(primary) == 2
    for row in primary.itertuples():
        mean = f"{row.mean:+.1f} points"
        assert f"On {row.dataset}" in text and mean in text
        allowed = row.p_holm < 0.05
        assert ("the runs do not tell the two arms apart" in text) or allowed


def test_the_mechanism_table_and_its_sentences_agree_with_the_runs(ablation):
    table = study.mechanism_table(ablation)
    runs = ablation.results[(ablation.results["dataset"] == "digits-lt") & (ablation.results["arm"] == "weight-only")]
    row = table.loc[("digits-lt", "weight-only")]
    assert row["runs"] == len(runs) and row["α at the end, min"] == pytest.approx(runs["alpha"].min(), abs=5e-4)
    text = study.mechanism_summary(ablation)
    frozen = runs["beta_cos_first_min"].min() >= diagnosis.FROZEN_COSINE
    line = next(line for line in text.splitlines() if "digits-lt, `weight-only`" in line)
    assert ("never moved" in line) == frozen and "kept changing" in line


def test_the_feature_and_alpha_evidence_read_the_dataset_with_dynamics(ablation):
    dataset = study.evidence_dataset(ablation)
    assert dataset in set(ablation.results["dataset"])
    text = study.feature_evidence(ablation, dataset)
    assert text.startswith(f"On {dataset}, two measures of the feature bias")
    assert re.search(r"its distance from 1 changes by [+-]\d", text)
    assert study.collapse_evidence(ablation, dataset).startswith(f"On {dataset}")


def test_the_rebalancing_study_reads_like_any_other():
    view = study.read_study("rebalancing")
    table = study.arm_tables(view, metrics=("balanced", "few"))
    assert view.baseline in set(table.index.get_level_values("arm"))
    assert "primary" in study.study_answers(view)


def test_the_compound_study_table_and_summary_come_from_its_contrasts():
    view = study.read_study(study.COMPOUND_STUDY)
    table = study.compound_table(view)
    digits = list(table.loc["digits-lt"].index)
    assert digits == ["bn", "nbn", "cbn", "cbn-dual"]
    assert table.loc[("digits-lt", "bn"), "Δ balanced vs bn"] == "—"
    conclusions = study.compound_conclusions(view)
    row = find(view.contrasts, "digits-lt", "cbn-dual", "cbn", "balanced")
    assert study.contrast_sentence(row) in conclusions
    torch.manual_seed(0)
    model = models.build_model("resnet32", 10, norm="cbn", in_channels=1).eval()
    test = data.build_dataset("digits-lt", split="test")
    usage = {"CBN": diagnosis.component_usage(model, test, test.train_counts)}
    summary = study.compound_summary(usage, view)
    assert summary.startswith(diagnosis.usage_summary(usage)) and summary.endswith("not the authors' method as they "
                                                                                  "ran it.")
    assert study.contrast_sentence(find(view.contrasts, "digits-lt", "cbn", "bn", "balanced")) in summary
