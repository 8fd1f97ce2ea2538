"""NBN's mechanism, measured: the variants against their formulas, scale invariance, the |α| budget, the
first-step bias freeze, and the per-epoch NBN state a training run records."""
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_runs import TINY

from nbn_tutorial import data, diagnosis, models, train
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import NormalizedBatchNorm2d, nbn_layers, normalized_affine


def _layer(channels: int = 8, **options) -> NormalizedBatchNorm2d:
    torch.manual_seed(0)
    layer = NormalizedBatchNorm2d(channels, alpha=1.7, **options)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


def test_weight_only_variant_keeps_beta_as_a_plain_bias():
    layer = _layer(normalize_bias=False)
    x = torch.randn(16, 8, 3, 3)
    w = layer.weight / (layer.weight.norm() + 1e-6) * layer.alpha
    expected = F.batch_norm(x, None, None, w, layer.bias, training=True, eps=layer.eps)
    assert torch.allclose(layer(x), expected, atol=1e-6)
    weight, bias = normalized_affine(layer.weight, layer.bias, layer.alpha, normalize_bias=False)
    assert torch.equal(bias, layer.bias.detach().float()) or torch.allclose(bias, layer.bias)


def test_weight_only_variant_through_the_config():
    config = train.load_config(None, [*TINY, "norm=nbn", "nbn_normalize=weight"])
    model = train.build_model_for(config, data.build_dataset("digits-lt"))
    assert all(not layer.normalize_bias for _, layer in nbn_layers(model))
    with pytest.raises(UserError, match="nbn_normalize"):
        train.load_config(None, [*TINY, "nbn_normalize=bias"])


def test_both_normalised_parameters_have_norm_alpha_whatever_gamma_and_beta():
    layer = _layer()
    weight, bias = layer.normalized_weight_bias()
    assert weight.norm().item() == pytest.approx(1.7, rel=1e-5)
    assert bias.norm().item() == pytest.approx(1.7, rel=1e-5)


def test_scaling_gamma_and_beta_leaves_the_output_unchanged():
    """Exact up to the 1e-6 added to each norm (relative effect 1e-6 / ‖γ‖ and 1e-6 / ‖β‖)."""
    layer = _layer()
    x = torch.randn(16, 8, 3, 3)
    before = layer(x)
    with torch.no_grad():
        layer.weight.mul_(37.0)
        layer.bias.mul_(5.0)
    assert torch.allclose(layer(x), before, atol=1e-5)


def test_one_sgd_step_throws_beta_far_and_its_direction_then_stays():
    """From β = 0 the first step's gradient is scaled by ~α/1e-6: ‖β‖ jumps far above 1, and later steps,
    whose gradient reaching β shrinks like 1/‖β‖, barely turn it."""
    torch.manual_seed(0)
    model = models.build_model("resnet32", 10, norm="nbn", in_channels=1)
    bn_model = models.build_model("resnet32", 10, norm="bn", in_channels=1)
    loader = data.TensorLoader(data.build_dataset("digits-lt"), batch_size=32, train=True, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)
    batches = iter(loader)
    x, y = next(batches)
    table = diagnosis.first_step_table({"BN": bn_model, "NBN": model}, x, y, lr=0.05)
    nbn_rows, bn_rows = table[table["model"] == "NBN"], table[table["model"] == "BN"]
    assert (nbn_rows["beta_norm_before"] == 0).all() and (nbn_rows["beta_norm_after"] > 100).all()
    assert (bn_rows["beta_norm_after"] < 1).all()
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    first = diagnosis.beta_directions(model)
    assert all(layer.bias.norm() > 100 for _, layer in nbn_layers(model))
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    later = diagnosis.beta_directions(model)
    assert min(float(torch.dot(first[name], later[name])) for name in first) > 0.99


@pytest.fixture(scope="module")
def nbn_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dyn") / "nbn"
    return train.train(train.load_config(None, [*TINY, "norm=nbn", "epochs=3"]), run_dir, progress=False)


def test_every_epoch_records_the_nbn_state_of_every_layer(nbn_run):
    dynamics = diagnosis.nbn_dynamics(nbn_run)
    assert {"epoch", "layer", "alpha", "gamma_norm", "beta_norm", "beta_cos_first"} <= set(dynamics.columns)
    layers = [name for name, _ in nbn_layers(train.load_run(nbn_run)[0])]
    assert sorted(dynamics["epoch"].unique()) == [1, 2, 3]
    assert (dynamics.groupby("epoch")["layer"].apply(sorted) == [sorted(layers)] * 3).all()
    first = dynamics[dynamics["epoch"] == 1]
    assert first["beta_cos_first"].tolist() == pytest.approx([1.0] * len(layers))
    assert (dynamics["weight_norm"] - dynamics["alpha"].abs()).abs().max() < 1e-4
    model, _ = train.load_run(nbn_run)
    last = dynamics[dynamics["epoch"] == 3].set_index("layer")
    for name, layer in nbn_layers(model):
        assert last.loc[name, "beta_norm"] == pytest.approx(float(layer.bias.detach().norm()), rel=1e-6)
        assert last.loc[name, "alpha"] == pytest.approx(float(layer.alpha.detach()), rel=1e-6)


def test_a_resumed_run_records_the_same_dynamics(nbn_run, tmp_path):
    config = train.load_config(None, [*TINY, "norm=nbn", "epochs=3"])
    halves = train.train(train.load_config(None, [*TINY, "norm=nbn", "epochs=3", "stop_after_epochs=2"]),
                         tmp_path / "halves", progress=False)
    train.train(config, halves, resume=True, progress=False)
    straight, resumed = diagnosis.nbn_dynamics(nbn_run), diagnosis.nbn_dynamics(halves)
    assert straight.equals(resumed)


def test_plain_bn_runs_record_no_dynamics(tmp_path):
    run = train.train(train.load_config(None, [*TINY, "epochs=1"]), tmp_path / "bn", progress=False)
    with pytest.raises(UserError, match="not an NBN run"):
        diagnosis.nbn_dynamics(run)


def test_summarize_dynamics_gives_the_numbers_for_sentences(nbn_run):
    summary = diagnosis.summarize_dynamics(diagnosis.nbn_dynamics(nbn_run))
    assert summary["first_epoch"] == 1 and summary["last_epoch"] == 3
    assert summary["beta_norm_first"] > 100 and 0.9 < summary["beta_cos_last_min"] <= 1 + 1e-9
    assert math.isfinite(summary["alpha_last"])


# ------------------------------------------------------------------ the mechanism in numbers and sentences

def test_the_budget_table_is_nbn_formula_with_one_gamma_changed_and_its_sentence_states_it():
    layer = _layer()
    table = diagnosis.budget_table(layer, channel=2, factor=10.0)
    gamma = layer.weight.detach().clone()
    gamma[2] *= 10
    after, _ = normalized_affine(gamma, layer.bias.detach(), layer.alpha.detach())
    assert table["w_after"].tolist() == pytest.approx(after.tolist(), abs=1e-7)
    others = table[table["channel"] != 2]["change"]
    assert others.max() - others.min() < 1e-5 and others.max() < 1 < table.loc[2, "change"]
    norm_after = math.sqrt((table["w_after"] ** 2).sum())
    assert norm_after == pytest.approx(1.7, rel=1e-5) and torch.equal(layer.weight.detach(), _layer().weight.detach())
    text = diagnosis.budget_summary(table, channel=2, factor=10.0)
    assert f"multiplied its applied weight by {table.loc[2, 'change']:.2f}" in text
    assert f"every other channel's weight by {others.min():.3f}" in text and f"{norm_after:.4f} after" in text


def test_a_fresh_nbn_layer_starts_one_over_root_c_as_loud_as_bn():
    table = diagnosis.initial_scale_table(channels=64)
    assert table["relative_to_bn"].tolist() == pytest.approx([1.0, 1 / 8, 1.0], rel=2e-2)
    text = diagnosis.initial_scale_summary(table, channels=64)
    assert f"its output is {table['relative_to_bn'].iloc[1]:.3f} times BN's" in text and "1/√C = 0.125" in text


def test_the_first_step_sentence_reads_the_first_step_table():
    torch.manual_seed(0)
    fresh = {"BN": models.build_model("resnet32", 10, norm="bn", in_channels=1),
             "NBN": models.build_model("resnet32", 10, norm="nbn", in_channels=1)}
    x, y = next(iter(data.TensorLoader(data.build_dataset("digits-lt"), batch_size=32, train=True, seed=0)))
    table = diagnosis.first_step_table(fresh, x, y, lr=0.05)
    text = diagnosis.first_step_summary(table, lr=0.05)
    nbn = table[table["model"] == "NBN"]
    assert f"to {nbn['beta_norm_after'].min():.3g}–{nbn['beta_norm_after'].max():.3g}" in text
    assert f"BN's β to at most {table[table['model'] == 'BN']['beta_norm_after'].max():.3g}" in text
    assert "BN's β" not in diagnosis.first_step_summary(nbn, lr=0.05)


def test_the_dynamics_sentence_says_whether_the_bias_direction_froze(nbn_run):
    summary = diagnosis.summarize_dynamics(diagnosis.nbn_dynamics(nbn_run))
    text = diagnosis.dynamics_summary(summary)
    assert f"at least {summary['beta_cos_last_min']:.6f}" in text
    frozen = summary["beta_cos_last_min"] > diagnosis.FROZEN_COSINE
    assert ("never changed afterwards" in text) == frozen and ("still turned" in text) == (not frozen)
    assert "still turned" in diagnosis.dynamics_summary({**summary, "beta_cos_last_min": 0.5})
