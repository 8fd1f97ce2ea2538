"""Diagnosis quantities and their figures, on small BN and NBN ResNet-32 models trained once on digits-lt."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn.metrics import balanced_accuracy_score

from nbn_tutorial import data, diagnosis, plots, train
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import nbn_layers

NORMS = ("bn", "nbn")
EPOCHS = 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tiny models gain nothing from more, and on a busy 2-core machine threads stall
    each other (training here took 4x longer with 2 threads than with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """norm -> {model (last epoch, eval mode), metrics (DataFrame)}: trained with the real engine, once."""
    result = {}
    for norm in NORMS:
        config = train.load_config(overrides=[
            f"norm={norm}", f"epochs={EPOCHS}", "warmup_epochs=1", "batch_size=128", "lr=0.05", "device=cpu",
            f"eval_every={EPOCHS}", f"save_every={EPOCHS}", "seed=0"])
        run_dir = train.train(config, tmp_path_factory.mktemp(f"run-{norm}"), progress=False)
        model, _ = train.load_run(run_dir, which="last")
        result[norm] = {"model": model, "metrics": train.read_metrics(run_dir), "run_dir": run_dir}
    return result


@pytest.fixture(scope="module")
def test_set() -> data.LTDataset:
    return data.build_dataset("digits-lt", split="test")


@pytest.fixture(scope="module")
def outputs(runs, test_set) -> dict[str, diagnosis.ModelOutputs]:
    return {norm: diagnosis.collect_outputs(runs[norm]["model"], test_set) for norm in NORMS}


def _hand_built_outputs(features, targets, channel_activations=None, num_classes: int = 3) -> diagnosis.ModelOutputs:
    features = np.asarray(features, dtype=np.float32)
    channels = features if channel_activations is None else np.asarray(channel_activations, dtype=np.float32)
    return diagnosis.ModelOutputs(np.zeros((len(features), num_classes), np.float32), np.asarray(targets),
                                  features, channels)


# ----------------------------------------------------------------------------------------------------
# Outputs and accuracy
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
def test_collect_outputs_matches_a_direct_forward_pass(runs, outputs, test_set, norm):
    model, result = runs[norm]["model"], outputs[norm]
    assert result.logits.shape == (300, 10) and result.features.shape == (300, 64)
    assert result.channel_activations.shape == (300, 64)
    np.testing.assert_array_equal(result.targets, test_set.targets)
    x, _ = next(iter(data.make_loader(test_set, batch_size=32, train=False)))
    with torch.no_grad():
        np.testing.assert_allclose(result.logits[:32], model(x).numpy(), rtol=1e-4, atol=1e-4)
    # ResNet-32's penultimate features are the global average pool of the last stage: the hook must agree.
    np.testing.assert_allclose(result.channel_activations, result.features, rtol=1e-5, atol=1e-5)


def test_collect_outputs_accepts_a_loader_and_restores_training_mode(runs, outputs, test_set):
    model = runs["bn"]["model"]
    model.train()
    model.backbone.bn1.eval()   # a frozen BN inside a training model must stay frozen
    try:
        from_loader = diagnosis.collect_outputs(model, data.make_loader(test_set, batch_size=64, train=False))
        assert [module.training for module in model.modules()] == [
            module is not model.backbone.bn1 for module in model.modules()]
    finally:
        model.eval()
    np.testing.assert_allclose(from_loader.logits, outputs["bn"].logits, rtol=1e-5, atol=1e-5)
    assert not model.training


def test_collect_outputs_rejects_empty_data(runs):
    with pytest.raises(UserError, match="empty"):
        diagnosis.collect_outputs(runs["bn"]["model"], [])


@pytest.mark.parametrize("norm", NORMS)
def test_accuracies_agree_with_sklearn_and_the_training_engine(runs, outputs, test_set, norm):
    result = outputs[norm]
    per_class = diagnosis.per_class_accuracy(result.logits, result.targets, 10)
    assert per_class.mean() == pytest.approx(balanced_accuracy_score(result.targets, result.predictions))
    groups = diagnosis.group_accuracy(result.logits, result.targets, test_set.shot_groups)
    last = runs[norm]["metrics"].iloc[-1]
    for name, key in (("overall", "test_acc"), ("balanced", "balanced_acc"), ("many", "many_acc"),
                      ("medium", "medium_acc"), ("few", "few_acc")):
        assert groups[name] == pytest.approx(last[key]), name


def test_per_class_accuracy_is_nan_for_a_class_without_samples():
    logits = np.eye(3)[[0, 0, 1]]
    np.testing.assert_array_equal(diagnosis.per_class_accuracy(logits, np.array([0, 1, 1]), 3), [1.0, 0.5, np.nan])


def test_accuracy_by_count_table(outputs, test_set):
    table = diagnosis.accuracy_by_count(outputs["bn"].logits, outputs["bn"].targets, test_set.train_counts,
                                        test_set.shot_groups)
    assert list(table.columns) == ["class", "train_count", "group", "accuracy", "test_samples"]
    np.testing.assert_array_equal(table["train_count"], test_set.train_counts)
    for group, members in test_set.shot_groups.items():
        assert set(table.loc[table["group"] == group, "class"]) == set(members)
    assert table["accuracy"].between(0, 1).all() and (table["test_samples"] == 30).all()
    summary = diagnosis.summarize_by_group(table, "accuracy")
    assert list(summary.index) == ["many", "medium", "few"]
    assert summary["few"] == pytest.approx(table.loc[table["group"] == "few", "accuracy"].mean())


@pytest.mark.parametrize("norm", NORMS)
def test_confusion_diagonal_is_per_class_accuracy(outputs, norm):
    result = outputs[norm]
    matrix = diagnosis.confusion(result.logits, result.targets, 10)
    np.testing.assert_allclose(np.diag(matrix), diagnosis.per_class_accuracy(result.logits, result.targets, 10))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    counts = diagnosis.confusion(result.logits, result.targets, 10, normalize=False)
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(result.targets, minlength=10))


def test_group_table_reads_group_accuracy_and_engine_rows(runs, outputs, test_set):
    bn = diagnosis.group_accuracy(outputs["bn"].logits, outputs["bn"].targets, test_set.shot_groups)
    table = diagnosis.group_table({"BN": bn, "NBN": runs["nbn"]["metrics"].iloc[-1]})
    assert list(table.index) == ["BN", "NBN"]
    assert list(table.columns) == ["overall", "balanced", "many", "medium", "few"]
    assert table.loc["BN", "few"] == bn["few"]
    assert table.loc["NBN", "balanced"] == pytest.approx(runs["nbn"]["metrics"].iloc[-1]["balanced_acc"])
    assert math.isnan(diagnosis.group_table({"x": {**bn, "few": None}}).loc["x", "few"])
    with pytest.raises(UserError, match="no 'few' accuracy"):
        diagnosis.group_table({"BN": {"overall": 0.5, "balanced": 0.5, "many": 0.5, "medium": 0.5}})


# ----------------------------------------------------------------------------------------------------
# Feature strength and class-specific channels
# ----------------------------------------------------------------------------------------------------

def test_feature_strength_on_hand_built_features():
    result = _hand_built_outputs([[3, 4], [0, 1], [6, 8], [1, 0]], [0, 0, 2, 2])
    table = diagnosis.feature_strength(result, [50, 20, 5], {"many": [0], "medium": [1], "few": [2]})
    np.testing.assert_allclose(table["strength"], [3.0, np.nan, 5.5])        # mean of (5, 1) and (10, 1)
    np.testing.assert_allclose(table["mean_abs_activation"], [2.0, np.nan, 3.75])
    np.testing.assert_allclose(table["relative_strength"], [3.0 / 4.25, np.nan, 5.5 / 4.25])
    assert list(table["group"]) == ["many", "medium", "few"] and list(table["test_samples"]) == [2, 0, 2]


@pytest.mark.parametrize("norm", NORMS)
def test_feature_strength_of_trained_model(outputs, test_set, norm):
    table = diagnosis.feature_strength(outputs[norm], test_set.train_counts, test_set.shot_groups)
    assert len(table) == 10 and (table["strength"] > 0).all()
    assert table["relative_strength"].mean() == pytest.approx(1.0)
    members = outputs[norm].targets == 9
    assert table.loc[9, "strength"] == pytest.approx(np.linalg.norm(outputs[norm].features[members], axis=1).mean())


def test_channel_ownership_on_hand_built_activations():
    # Class means per channel: ch0 = (1, 3, 2) -> class 1; ch1 = (10, 5, 30) -> class 2; ch2 is dead.
    activations = [[1, 10, 0], [1, 10, 0], [3, 5, 0], [2, 30, 0]]
    result = _hand_built_outputs(np.zeros((4, 2)), [0, 0, 1, 2], channel_activations=activations)
    groups = {"many": [0], "medium": [1], "few": [2]}
    table = diagnosis.class_specific_channels(result, [100, 40, 10], groups)
    assert list(table["owner"]) == [1, 2, -1]
    assert list(table["owner_group"]) == ["medium", "few", "none"] and list(table["owner_count"]) == [40, 10, 0]
    np.testing.assert_allclose(table["strength"], [3.0, 30.0, np.nan])
    np.testing.assert_allclose(table["selectivity"], [1.5, 2.0, np.nan])
    np.testing.assert_allclose(table["relative_strength"], [3 / 16.5, 30 / 16.5, np.nan])
    assert list(table["active"]) == [True, True, False]
    summary = diagnosis.channel_summary(table, groups)
    assert list(summary["channels"]) == [0, 1, 1]
    assert summary.loc["few", "mean_strength"] == 30.0 and math.isnan(summary.loc["many", "mean_strength"])


@pytest.mark.parametrize("norm", NORMS)
def test_class_specific_channels_of_trained_model(outputs, test_set, norm):
    result = outputs[norm]
    table = diagnosis.class_specific_channels(result, test_set.train_counts, test_set.shot_groups)
    assert len(table) == 64 and table["active"].any()
    active = table[table["active"]]
    assert active["owner"].between(0, 9).all()
    np.testing.assert_array_equal(active["owner_count"], test_set.train_counts[active["owner"]])
    channel = int(active["channel"].iloc[0])
    class_means = [result.channel_activations[result.targets == label, channel].mean() for label in range(10)]
    assert active["owner"].iloc[0] == int(np.argmax(class_means))
    assert active["strength"].iloc[0] == pytest.approx(max(class_means), rel=1e-5)
    assert (active["selectivity"] >= 1).all()
    summary = diagnosis.channel_summary(table, test_set.shot_groups)
    assert summary["channels"].sum() == len(active)


# ----------------------------------------------------------------------------------------------------
# BN parameters and classifier
# ----------------------------------------------------------------------------------------------------

def _applied_affine(layer: torch.nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """w and b a BN layer really applies in eval mode, measured from its outputs at x = mean and x = mean + std."""
    std = torch.sqrt(layer.running_var + layer.eps)
    at_mean = layer.running_mean.view(1, -1, 1, 1)
    with torch.no_grad():
        bias = layer(at_mean)
        weight = layer(at_mean + std.view(1, -1, 1, 1)) - bias
    return weight.flatten().numpy(), bias.flatten().numpy()


def test_bn_parameter_stats_of_bn_model(runs):
    model = runs["bn"]["model"]
    table = diagnosis.bn_parameter_stats(model)
    batchnorms = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)}
    assert list(table["layer"]) == list(batchnorms) and len(table) == 31
    assert (table["type"] == "BN").all() and table["alpha"].isna().all()
    np.testing.assert_allclose(table["w_norm"], table["gamma_norm"])
    layer = batchnorms["backbone.layer2.0.bn1"]
    row = table.set_index("layer").loc["backbone.layer2.0.bn1"]
    assert row["gamma_norm"] == pytest.approx(layer.weight.norm().item(), rel=1e-5)
    assert row["beta_std"] == pytest.approx(layer.bias.detach().numpy().std(), rel=1e-4)
    channels = diagnosis.bn_channel_parameters(model)
    assert len(channels) == sum(module.num_features for module in batchnorms.values())


def test_bn_parameter_stats_of_nbn_model_report_alpha_and_applied_affine(runs):
    model = runs["nbn"]["model"]
    table = diagnosis.bn_parameter_stats(model).set_index("layer")
    nbn = dict(nbn_layers(model))
    assert set(table.index[table["type"] == "NBN"]) == set(nbn) and len(nbn) == 5
    np.testing.assert_allclose(table.loc[list(nbn), "alpha"], model.nbn_alpha.item(), rtol=1e-6)
    channels = diagnosis.bn_channel_parameters(model)
    for name, layer in nbn.items():
        rows = channels[channels["layer"] == name]
        gamma, beta, alpha = layer.weight.detach(), layer.bias.detach(), model.nbn_alpha.item()
        np.testing.assert_allclose(rows["w"], (gamma / (gamma.norm() + 1e-6) * alpha).numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(rows["b"], (beta / (beta.norm() + 1e-6) * alpha).numpy(), rtol=1e-5, atol=1e-7)
        weight, bias = _applied_affine(layer)
        np.testing.assert_allclose(rows["w"], weight, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(rows["b"], bias, rtol=1e-3, atol=1e-5)
        assert table.loc[name, "w_norm"] == pytest.approx(abs(alpha), rel=1e-4)
        np.testing.assert_allclose(rows["gamma"], gamma.numpy())


@pytest.mark.parametrize("norm", NORMS)
def test_gamma_vs_owner_frequency(runs, outputs, test_set, norm):
    model = runs[norm]["model"]
    channels = diagnosis.class_specific_channels(outputs[norm], test_set.train_counts, test_set.shot_groups)
    table = diagnosis.gamma_vs_owner_frequency(model, channels)
    final_bn = model.backbone.layer3[4].bn2
    assert (table["layer"] == "backbone.layer3.4.bn2").all()
    assert (table["type"] == ("NBN" if norm == "nbn" else "BN")).all()
    np.testing.assert_allclose(table["gamma"], final_bn.weight.detach().numpy())
    np.testing.assert_allclose(table["w"], _applied_affine(final_bn)[0], rtol=1e-3, atol=1e-5)
    pd.testing.assert_series_equal(table["owner"], channels["owner"])
    with pytest.raises(ValueError, match="channels"):
        diagnosis.gamma_vs_owner_frequency(model, channels.iloc[:10])


def test_classifier_weight_norms(runs, test_set):
    model = runs["bn"]["model"]
    norms = diagnosis.classifier_weight_norms(model)
    np.testing.assert_allclose(norms, model.head.weight.detach().norm(dim=1).numpy(), rtol=1e-6)
    table = diagnosis.classifier_norm_table(model, test_set.train_counts, test_set.shot_groups)
    assert list(table.columns) == ["class", "train_count", "group", "weight_norm"] and len(table) == 10


# ----------------------------------------------------------------------------------------------------
# Grad-CAM and t-SNE
# ----------------------------------------------------------------------------------------------------

def test_pick_head_tail_examples(test_set):
    examples = diagnosis.pick_head_tail_examples(test_set, n=5, seed=1)
    assert list(examples.rows) == ["head"] * 5 + ["tail"] * 5
    assert set(examples.targets[:5]) <= set(test_set.shot_groups["many"])
    assert set(examples.targets[5:]) <= set(test_set.shot_groups["few"])
    np.testing.assert_array_equal(examples.targets, test_set.targets[examples.indices])
    x, _ = next(iter(data.make_loader(test_set, batch_size=len(test_set), train=False)))
    torch.testing.assert_close(examples.inputs, x[torch.as_tensor(examples.indices)])
    assert examples.images.shape == (10, 8, 8, 1) and 0 <= examples.images.min() and examples.images.max() <= 1
    np.testing.assert_allclose(examples.images[..., 0], test_set.images[examples.indices, 0].numpy() / 255, atol=1e-5)
    again = diagnosis.pick_head_tail_examples(test_set, n=5, seed=1)
    np.testing.assert_array_equal(again.indices, examples.indices)


def _class_activation_maps(model, inputs: torch.Tensor, targets: np.ndarray) -> np.ndarray:
    """CAM (Zhou et al.): with global average pooling and a linear head, Grad-CAM must reduce to it."""
    backbone = model.backbone
    with torch.no_grad():
        feature_map = F.relu(backbone.bn1(backbone.conv1(inputs)))
        feature_map = backbone.layer3(backbone.layer2(backbone.layer1(feature_map)))
        weights = model.head.weight[torch.as_tensor(targets)]
        cam = F.relu(torch.einsum("nk,nkhw->nhw", weights, feature_map)).unsqueeze(1)
        cam = F.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
    low, high = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(high > low, (cam - low) / (high - low), 0).numpy()


@pytest.mark.parametrize("norm", NORMS)
def test_grad_cam_maps(runs, test_set, norm):
    model = runs[norm]["model"]
    examples = diagnosis.pick_head_tail_examples(test_set, n=4)
    maps = diagnosis.grad_cam(model, examples.inputs, examples.targets)
    assert maps.shape == (8, 8, 8) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    flat = maps.reshape(len(maps), -1)
    assert all(np.isclose(row.max(), 1.0) or not row.any() for row in flat)
    assert sum(row.max() > row.min() for row in flat) >= len(flat) // 2
    np.testing.assert_allclose(maps, _class_activation_maps(model, examples.inputs, examples.targets), atol=1e-4)
    assert not model.training and all(parameter.grad is None for parameter in model.parameters())


def test_tsne_embedding_is_deterministic_and_subsamples(outputs):
    features = outputs["bn"].features
    embedding, indices = diagnosis.tsne_embedding(features, seed=3, max_points=80, threads=1)
    assert embedding.shape == (80, 2) and np.isfinite(embedding).all()
    assert len(set(indices)) == 80 and (np.diff(indices) > 0).all() and indices.max() < len(features)
    again, same_indices = diagnosis.tsne_embedding(features, seed=3, max_points=80, threads=1)
    np.testing.assert_array_equal(same_indices, indices)
    np.testing.assert_allclose(again, embedding)
    with pytest.raises(UserError, match="at least 3"):
        diagnosis.tsne_embedding(features[:2])


# ----------------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------------

def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.images)


def _assert_figure(figure: Figure) -> None:
    assert isinstance(figure, Figure)
    assert any(_has_data(ax) for ax in figure.axes)


@pytest.fixture(scope="module")
def tables(runs, outputs, test_set) -> dict[str, dict]:
    """Every diagnosis table of both models, for the figure tests."""
    counts, groups = test_set.train_counts, test_set.shot_groups
    result = {}
    for norm in NORMS:
        model, out = runs[norm]["model"], outputs[norm]
        channels = diagnosis.class_specific_channels(out, counts, groups)
        result[norm] = {
            "accuracy": diagnosis.accuracy_by_count(out.logits, out.targets, counts, groups),
            "strength": diagnosis.feature_strength(out, counts, groups),
            "channels": channels,
            "gamma": diagnosis.gamma_vs_owner_frequency(model, channels),
            "norms": diagnosis.classifier_norm_table(model, counts, groups),
            "groups": diagnosis.group_accuracy(out.logits, out.targets, groups),
        }
    result["nbn"]["tsne"] = diagnosis.tsne_table(outputs["nbn"], groups, max_points=150, threads=1)
    return result


def _pair(tables, key) -> dict[str, pd.DataFrame]:
    return {"BN": tables["bn"][key], "NBN": tables["nbn"][key]}


FIGURES = {
    "accuracy_vs_count": lambda t, r: plots.plot_accuracy_vs_count(t["bn"]["accuracy"]),
    "accuracy_vs_count_pair": lambda t, r: plots.plot_accuracy_vs_count(_pair(t, "accuracy")),
    "feature_strength": lambda t, r: plots.plot_feature_strength(t["bn"]["strength"]),
    "feature_strength_pair": lambda t, r: plots.plot_feature_strength(_pair(t, "strength"), y="relative_strength"),
    "channel_strength": lambda t, r: plots.plot_channel_strength(t["nbn"]["channels"]),
    "channel_strength_pair": lambda t, r: plots.plot_channel_strength(_pair(t, "channels")),
    "gamma_vs_frequency": lambda t, r: plots.plot_gamma_vs_frequency(t["nbn"]["gamma"], y="w"),
    "classifier_norms": lambda t, r: plots.plot_classifier_norms(t["bn"]["norms"]),
    "classifier_norms_pair": lambda t, r: plots.plot_classifier_norms(_pair(t, "norms")),
    "tsne": lambda t, r: plots.plot_tsne(t["nbn"]["tsne"]),
    "group_comparison": lambda t, r: plots.plot_group_comparison(
        diagnosis.group_table({"BN": t["bn"]["groups"], "NBN": t["nbn"]["groups"]})),
    "training_curves": lambda t, r: plots.plot_training_curves(r["bn"]["metrics"]),
    "training_curves_pair": lambda t, r: plots.plot_training_curves({"BN": r["bn"]["metrics"],
                                                                     "NBN": r["nbn"]["metrics"]}),
    "alpha_over_training": lambda t, r: plots.plot_alpha_over_training(r["nbn"]["metrics"]),
}


@pytest.mark.parametrize("name", FIGURES)
def test_figures_of_tables(tables, runs, name):
    _assert_figure(FIGURES[name](tables, runs))


@pytest.mark.parametrize("norm", NORMS)
def test_bn_parameter_figure(runs, norm):
    model = runs[norm]["model"]
    figure = plots.plot_bn_parameters(diagnosis.bn_parameter_stats(model), diagnosis.bn_channel_parameters(model))
    _assert_figure(figure)
    assert any(ax.get_ylabel() == "α" and ax.patches for ax in figure.axes) == (norm == "nbn")


def test_confusion_and_grad_cam_figures(runs, outputs, test_set):
    out = outputs["bn"]
    _assert_figure(plots.plot_confusion(diagnosis.confusion(out.logits, out.targets, 10), test_set.classes))
    examples = diagnosis.pick_head_tail_examples(test_set, n=3)
    maps = diagnosis.grad_cam(runs["bn"]["model"], examples.inputs, examples.targets)
    figure = plots.plot_grad_cam(examples, maps, predictions=out.predictions[examples.indices])
    assert sum(len(ax.images) for ax in figure.axes) == 6 + 2 * 6   # images, then image + map per overlay


def test_alpha_figure_reads_the_metrics_csv_too(runs):
    metrics = pd.read_csv(runs["nbn"]["run_dir"] / "metrics.csv")
    figure = plots.plot_alpha_over_training(metrics)
    alpha = runs["nbn"]["model"].nbn_alpha.item()
    assert figure.axes[0].lines[0].get_ydata()[-1] == pytest.approx(alpha, rel=1e-5)


def test_alpha_figure_rejects_a_bn_run(runs):
    with pytest.raises(UserError, match="no NBN"):
        plots.plot_alpha_over_training(runs["bn"]["metrics"])


def test_plots_leave_global_style_alone():
    import matplotlib as mpl

    before = dict(mpl.rcParams)
    plots.plot_confusion(np.eye(3))
    assert dict(mpl.rcParams) == before


def test_data_figures_show_the_profiles_and_one_row_per_class():
    profiles = plots.plot_longtail_profiles(num_classes=10, max_per_class=500, imbalance_factors=(10, 100))
    _assert_figure(profiles)
    lines = profiles.axes[0].get_lines()
    assert len(lines) == 4 and list(lines[0].get_ydata()) == data.longtail_counts(10, 500, 10, "exp")
    train = data.build_dataset("digits-lt", split="train")
    samples = plots.plot_class_samples(train, per_class=3)
    _assert_figure(samples)
    assert len(samples.axes) == 3 * train.num_classes


# ----------------------------------------------------------------------------------------------------
# Sentences computed from the tables (notebooks 02-04's summaries)
# ----------------------------------------------------------------------------------------------------

def test_the_baseline_sentence_states_the_final_accuracies_and_the_gap(runs):
    metrics = train.final_metrics(runs["bn"]["run_dir"])
    text = diagnosis.baseline_summary(metrics, train.epochs_done(runs["bn"]["run_dir"]))
    assert text.startswith(f"After {EPOCHS} epochs the BN baseline reaches {100 * metrics['overall']:.1f}% overall")
    gap = 100 * (metrics["many"] - metrics["few"])
    assert (f"trail many-shot classes by {gap:.1f} points" in text) == (gap > 0)
    assert "lead many-shot classes by 5.0 points" in diagnosis.baseline_summary({**metrics, "many": 0.5, "few": 0.55}, 1)


def test_the_bias_sentence_compares_few_and_many_shot_classes(runs, outputs, test_set):
    strength = diagnosis.feature_strength(outputs["bn"], test_set.train_counts, test_set.shot_groups)
    channels = diagnosis.class_specific_channels(outputs["bn"], test_set.train_counts, test_set.shot_groups)
    summary = diagnosis.channel_summary(channels, test_set.shot_groups)
    norms = diagnosis.classifier_norm_table(runs["bn"]["model"], test_set.train_counts, test_set.shot_groups)
    text = diagnosis.bias_summary(strength, summary, norms)
    by_group = diagnosis.summarize_by_group(strength, "strength")
    assert f"({by_group['few']:.3g} vs {by_group['many']:.3g})" in text
    assert f"Each few-shot class owns {summary['channels_per_class']['few']:.1f} channels" in text
    assert text.count(" than those of many-shot classes") == 3


def test_the_comparison_sentence_goes_group_by_group_and_warns_of_one_seed(outputs, test_set):
    results = {"bn": {"overall": 90.0, "few": 70.0}, "nbn": {"overall": 90.04, "few": 75.5}}
    channels = {name: diagnosis.class_specific_channels(outputs[name], test_set.train_counts, test_set.shot_groups)
                for name in ("bn", "nbn")}
    text = diagnosis.comparison_summary(results, {"BN": channels["bn"], "NBN": channels["nbn"]})
    assert "NBN left overall accuracy unchanged (90.0% → 90.0%)." in text
    assert "NBN improved few-shot accuracy by 5.5 points (70.0% → 75.5%)." in text
    owned = int((channels["bn"]["active"] & (channels["bn"]["owner_group"] == "few")).sum())
    assert f"Few-shot classes own {owned} of {int(channels['bn']['active'].sum())} with BN" in text
    assert text.endswith("separate the effect from noise.")
    assert diagnosis.comparison_summary({"bn": {}}).startswith("No comparison yet")


def test_the_alpha_sentence_reads_the_metrics(runs):
    assert "→" in diagnosis.alpha_summary(runs["nbn"]["metrics"])
    assert diagnosis.alpha_summary(runs["bn"]["metrics"]) == "This run has no NBN α (a plain BN run)."


def test_classifier_norm_tables_are_one_table_per_model(runs, test_set):
    tables = diagnosis.classifier_norm_tables({"BN": runs["bn"]["model"], "NBN": runs["nbn"]["model"]},
                                              test_set.train_counts, test_set.shot_groups)
    assert list(tables) == ["BN", "NBN"]
    assert tables["BN"].equals(diagnosis.classifier_norm_table(runs["bn"]["model"], test_set.train_counts,
                                                               test_set.shot_groups))
