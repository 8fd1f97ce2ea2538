"""What notebook 07 computes: stage-2 and RIDE configs, sampled counts, and, on tiny real runs (a stage-1 run, cRT
and LWS from it, a RIDE run), the changed tensors, τ-normalisation, the one table and its computed summary."""
import pandas as pd
import pytest
import torch

from nbn_tutorial import data, notebooks, train
from nbn_tutorial.train.rebalancing import TauResult
from nbn_tutorial.train.tau_norm import TauSearch


def test_a_stage2_config_keeps_the_stage1_data_and_model_and_takes_the_preset_schedule(tmp_path):
    stage1 = notebooks.run_config("quick_digits_bn", norm="nbn", epochs=7, seed=3, imbalance_factor=20.0)
    config = train.stage2_config("quick_digits_bn_crt", stage1, tmp_path / "run")
    assert (config.norm, config.seed, config.imbalance_factor, config.data_root) == \
        ("nbn", 3, 20.0, stage1.data_root)
    preset = train.load_config("quick_digits_bn_crt")
    assert (config.trainable, config.reinit_classifier, config.sampler, config.epochs, config.lr) == \
        (preset.trainable, True, "class-balanced", preset.epochs, preset.lr)
    assert config.init_from == str((tmp_path / "run").resolve() / "last.pt")
    assert train.stage2_config("quick_digits_bn_lws", stage1, tmp_path, epochs=2).epochs == 2


def test_a_shorter_ride_run_keeps_the_share_of_training_before_drw():
    assert notebooks.ride_config("quick_digits_ride_nbn", norm="nbn", epochs=15).drw_epoch == 12
    assert notebooks.ride_config("quick_digits_ride_nbn", norm="bn").drw_epoch == 24


def test_sampled_class_counts_show_each_samplers_class_mix():
    config = notebooks.run_config("quick_digits_bn")
    counts = data.sampled_class_counts(train.build_datasets(config, ("train",))["train"], seed=config.seed)
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
    summary = train.rebalancing_summary(pd.DataFrame(rows), {"BN": tau_result("test", 1.1)})
    assert "On BN, cRT raised balanced accuracy by 3.0 points (90.0% → 93.0%)" in summary
    assert "cRT: 0.5 points below (92.5% vs 93.0%)" in summary and "stage 1: 2.0 points above" in summary
    assert "NBN is ahead in 1 of 2" in summary and "mean difference to BN is -0.5 points, against +2.0" in summary
    assert "chosen on the test split" in summary and "optimistic" in summary
    notebooks.save_text(summary, tmp_path, notebooks.REBALANCING_SUMMARY)   # what the report reads
    assert (tmp_path / f"{notebooks.REBALANCING_SUMMARY}.md").read_text().strip() == str(summary)
    on_val = train.rebalancing_summary(pd.DataFrame(rows), {"BN": tau_result("val", 1.1)})
    assert "optimistic" not in on_val and "On NBN, cRT raised balanced accuracy by 0.5 points" in on_val


FAST = {"epochs": 1, "device": "cpu", "compile": "off", "cpu_threads": 1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A 2-epoch BN stage-1 run on digits-lt, cRT and LWS (1 epoch each) from it, and a 1-epoch RIDE run."""
    folder = tmp_path_factory.mktemp("rebalancing")
    stage1_config = notebooks.run_config("quick_digits_bn", **{**FAST, "epochs": 2})
    stage1 = train.train(stage1_config, folder / "stage1", progress=False)
    trained = {"stage1": stage1, "config": stage1_config}
    for name in ("crt", "lws"):
        config = train.stage2_config(f"quick_digits_bn_{name}", stage1_config, stage1, epochs=1)
        trained[name] = train.train(config, folder / name, progress=False)
    ride = notebooks.ride_config("quick_digits_ride_bn", norm="bn", **FAST)
    trained["ride"] = train.train(ride, folder / "ride", progress=False)
    return trained


def test_crt_changes_only_the_classifier(runs):
    table = train.changed_tensors(runs["stage1"], runs["crt"])
    changed = table[table["changed"]]
    assert set(changed["module"]) == {"head"} and set(changed["kind"]) == {"weight", "bias"}
    assert table[~table["changed"]]["tensors"].sum() > 50   # every convolution, BN parameter and statistic
    assert train.changed_tensors(runs["stage1"] / "last.pt", runs["stage1"])["changed"].sum() == 0


def test_tau_normalisation_is_chosen_on_val_and_reported_on_test(runs):
    result = train.tau_normalize_run(runs["stage1"])
    assert result.search.split == "val" and result.tau in train.TAU_GRID
    model, config = train.load_run(runs["stage1"])
    test = train.build_datasets(config, ("test",))["test"]
    at_tau = train.tau_table(model, test, taus=(result.tau,)).iloc[0]
    assert result.test["balanced_acc"] == pytest.approx(at_tau["balanced_acc"])
    curves = train.tau_curves({"BN": result})
    assert len(curves) == len(train.TAU_GRID) and curves["chosen"].sum() == 1
    assert curves.loc[curves["chosen"], "tau"].item() == result.tau and set(curves["split"]) == {"val"}


def test_the_one_table_reads_every_method_of_the_runs(runs):
    stage1 = {"BN": runs["stage1"]}
    tau = {"BN": train.tau_normalize_run(runs["stage1"])}
    table = train.rebalancing_table(stage1, {"BN": runs["crt"]}, tau, {"BN": runs["lws"]}, {"BN": runs["ride"]})
    assert table["method"].tolist() == ["stage 1", "cRT", "τ-norm", "LWS", "RIDE"]
    final = train.final_metrics(runs["crt"])
    assert table.loc[1, "balanced"] == pytest.approx(100 * final["balanced"])
    assert table.loc[2, "note"] == f"τ = {tau['BN'].tau:g} (val split)" and "3 experts, 1 epochs" == table.loc[4, "note"]
    text = train.rebalancing_summary(table, tau)
    assert f"On BN, cRT" in text and "RIDE (trained from scratch)" in text and "optimistic" not in text


def test_lws_scales_the_logits_of_the_stage1_classifier(runs):
    model, config = train.load_run(runs["lws"])
    head = model.head
    x, _ = next(iter(data.make_loader(train.build_datasets(config, ("test",))["test"], batch_size=16, train=False)))
    with torch.no_grad():
        expected = (model.features(x) @ head.weight.T + head.bias) * head.class_scales
        assert torch.allclose(model(x), expected, atol=1e-5)
