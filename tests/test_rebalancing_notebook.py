"""Notebook 07's helpers without training: stage-2 and RIDE configs, sampled counts, the computed summary."""
import pandas as pd

from nbn_tutorial import notebooks, train
from nbn_tutorial.notebooks.rebalancing import TauResult
from nbn_tutorial.train.tau_norm import TauSearch


def test_a_stage2_config_keeps_the_stage1_data_and_model_and_takes_the_preset_schedule(tmp_path):
    stage1 = notebooks.run_config("quick_digits_bn", norm="nbn", epochs=7, seed=3, imbalance_factor=20.0)
    config = notebooks.stage2_config("quick_digits_bn_crt", stage1, tmp_path / "run")
    assert (config.norm, config.seed, config.imbalance_factor, config.data_root) == \
        ("nbn", 3, 20.0, stage1.data_root)
    preset = train.load_config("quick_digits_bn_crt")
    assert (config.trainable, config.reinit_classifier, config.sampler, config.epochs, config.lr) == \
        (preset.trainable, True, "class-balanced", preset.epochs, preset.lr)
    assert config.init_from == str((tmp_path / "run").resolve() / "last.pt")
    assert notebooks.stage2_config("quick_digits_bn_lws", stage1, tmp_path, epochs=2).epochs == 2


def test_a_shorter_ride_run_keeps_the_share_of_training_before_drw():
    assert notebooks.ride_config("quick_digits_ride_nbn", norm="nbn", epochs=15).drw_epoch == 12
    assert notebooks.ride_config("quick_digits_ride_nbn", norm="bn").drw_epoch == 24


def test_sampled_class_counts_show_each_samplers_class_mix():
    counts = notebooks.sampled_class_counts(notebooks.run_config("quick_digits_bn"))
    assert list(counts["instance"]) == list(counts["train_count"])
    assert counts["class-balanced"].sum() == counts["square-root"].sum() == 10 * counts["train_count"].max()
    assert counts["class-balanced"].min() > counts["train_count"].min() * 5


def tau_result(split: str, tau: float) -> TauResult:
    return TauResult(TauSearch(tau, split, "digits-lt", pd.DataFrame({"tau": [tau]})), {})


def test_the_summary_is_computed_from_the_table_and_flags_a_tau_chosen_on_test(tmp_path):
    rows = []
    for norm, stage1, crt in (("BN", 90.0, 93.0), ("NBN", 92.0, 92.5)):
        rows += [{"norm": norm, "method": "stage 1", "balanced": stage1, "few": stage1 - 10},
                 {"norm": norm, "method": "cRT", "balanced": crt, "few": crt - 5}]
    summary = notebooks.rebalancing_summary(pd.DataFrame(rows), {"BN": tau_result("test", 1.1)}, run_dir=tmp_path)
    assert "On BN, cRT raised balanced accuracy by 3.0 points (90.0% → 93.0%)" in summary
    assert "cRT: 0.5 points below (92.5% vs 93.0%)" in summary and "stage 1: 2.0 points above" in summary
    assert "NBN is ahead in 1 of 2" in summary and "mean difference to BN is -0.5 points, against +2.0" in summary
    assert "chosen on the test split" in summary and "optimistic" in summary
    assert (tmp_path / f"{notebooks.REBALANCING_SUMMARY}.md").read_text().strip() == str(summary)
    on_val = notebooks.rebalancing_summary(pd.DataFrame(rows), {"BN": tau_result("val", 1.1)})
    assert "optimistic" not in on_val and "On NBN, cRT raised balanced accuracy by 0.5 points" in on_val
