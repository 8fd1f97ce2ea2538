"""Compound BN (a reconstruction of Cheng et al., ACM MM 2022): the layer, its class-aware split, the dual path,
the factory and converter, the diagnosis, and 2-epoch runs through the CLI on digits."""
import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_tools import run_cli
import torch
import torch.nn.functional as F
from torch import nn

from nbn_tutorial import diagnosis, train
from nbn_tutorial.errors import UserError
from nbn_tutorial.models import CifarResNet, build_model
from nbn_tutorial.nn import (
    CompoundBatchNorm2d,
    apply_norm,
    class_split,
    compound_layers,
    create_norm_layer,
    frequency_groups,
)
from nbn_tutorial.train.dual_path import DualPathModel, DualPathObjective, consistency_loss

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def same_affine(bn: nn.BatchNorm2d, cbn: CompoundBatchNorm2d) -> None:
    """Give both layers the same random γ, β (so the comparison does not rest on γ = 1, β = 0)."""
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        cbn.weight.copy_(bn.weight[None])
        cbn.bias.copy_(bn.bias[None])


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# The layer
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.1, None])
def test_one_component_is_batchnorm_outputs_gradients_and_running_statistics(momentum):
    torch.manual_seed(0)
    bn, cbn = nn.BatchNorm2d(6, momentum=momentum), CompoundBatchNorm2d(6, num_components=1, momentum=momentum)
    same_affine(bn, cbn)
    for _ in range(3):
        x = torch.randn(10, 6, 5, 4) * 3 + 2
        x_bn, x_cbn = x.clone().requires_grad_(), x.clone().requires_grad_()
        upstream = torch.randn_like(x)
        y_bn, y_cbn = bn(x_bn), cbn(x_cbn)
        (y_bn * upstream).sum().backward()
        (y_cbn * upstream).sum().backward()
        close(y_cbn, y_bn)
        close(x_cbn.grad, x_bn.grad)
        close(cbn.weight.grad[0], bn.weight.grad)
        close(cbn.bias.grad[0], bn.bias.grad)
        close(cbn.running_mean[0], bn.running_mean)
        close(cbn.running_var[0], bn.running_var)
        bn.zero_grad()
        cbn.zero_grad()
    assert int(cbn.num_batches_tracked) == int(bn.num_batches_tracked) == 3
    bn.eval()
    cbn.eval()
    x = torch.randn(4, 6, 5, 4, requires_grad=True)
    x_bn = x.detach().clone().requires_grad_()
    cbn(x).sum().backward()
    bn(x_bn).sum().backward()
    close(cbn(x), bn(x_bn))
    close(x.grad, x_bn.grad)


def test_one_component_model_equals_the_batchnorm_model():
    """norm="cbn" with K = 1 through the factory and the converter computes what the BN model computes."""
    torch.manual_seed(3)
    bn_model = build_model("resnet32", 5, norm="bn")
    torch.manual_seed(3)
    cbn_model = build_model("resnet32", 5, norm="cbn", norm_where="all", norm_kwargs={"components": 1})
    assert len(compound_layers(cbn_model)) == 31
    bn_model, cbn_model = bn_model.double(), cbn_model.double()   # 31 layers deep: compare without float32 rounding
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    close(cbn_model(x), bn_model(x))
    bn_model.eval()
    cbn_model.eval()
    close(cbn_model(x), bn_model(x))


def test_in_eval_mode_a_sample_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(1)
    layer = CompoundBatchNorm2d(5, num_components=3)
    for _ in range(5):
        layer(torch.randn(16, 5, 3, 3) + torch.randint(0, 3, (16, 1, 1, 1)) * 2.0)
    layer.eval()
    sample = torch.randn(1, 5, 3, 3)
    alone = layer(sample)
    for others in (torch.randn(7, 5, 3, 3), 10 + 5 * torch.randn(30, 5, 3, 3)):
        in_batch = layer(torch.cat([others[:3], sample, others[3:]]))[3:4]
        torch.testing.assert_close(in_batch, alone, rtol=0, atol=1e-6)
    running = layer.running_mean.clone()
    layer(torch.randn(4, 5, 3, 3))
    assert torch.equal(layer.running_mean, running)  # eval never updates the mixture


@pytest.mark.parametrize("init", ["split", "perturb"])
def test_two_components_find_the_means_of_two_gaussians(init):
    torch.manual_seed(2)
    true_means = torch.tensor([[4.0, -2.0, 1.0, 0.0, 3.0], [-4.0, 2.0, -1.0, 3.0, 0.0]])
    layer = CompoundBatchNorm2d(5, num_components=2, init=init)
    for _ in range(200):
        component = (torch.rand(64) < 0.7).long()
        x = true_means[component][:, :, None, None] + 0.5 * torch.randn(64, 5, 3, 3)
        layer(x)
    order = layer.running_mean[:, 0].argsort(descending=True)   # components are unlabelled: match by the first mean
    torch.testing.assert_close(layer.running_mean[order], true_means, rtol=0, atol=0.1)
    torch.testing.assert_close(layer.running_var[order], torch.full((2, 5), 0.25), rtol=0, atol=0.05)
    torch.testing.assert_close(layer.mixing_weights[order], torch.tensor([0.3, 0.7]), rtol=0, atol=0.05)


def test_a_component_missing_from_a_batch_keeps_its_parameters():
    layer = CompoundBatchNorm2d(3, num_components=2)
    layer(torch.cat([torch.full((8, 3, 2, 2), -5.0), torch.full((8, 3, 2, 2), 5.0)]) + 0.1 * torch.randn(16, 3, 2, 2))
    before = layer.running_mean.clone()
    near_first = layer.running_mean[0][None, :, None, None] + 0.01 * torch.randn(8, 3, 2, 2)
    layer(near_first)
    assert torch.equal(layer.running_mean[1], before[1])
    assert not torch.equal(layer.running_mean[0], before[0])


def test_bad_layer_options_are_user_errors():
    for options, fragment in (({"num_components": 0}, "the number of CBN components must be a whole number >= 1"),
                              ({"temperature": 0.0}, "temperature"), ({"momentum": 1.5}, "momentum"),
                              ({"init": "kmeans"}, "unknown CBN init")):
        with pytest.raises(UserError, match=fragment):
            CompoundBatchNorm2d(4, **options)


# ----------------------------------------------------------------------------------------------------
# Class groups and the class-aware split (the auxiliary path)
# ----------------------------------------------------------------------------------------------------

def test_frequency_groups_cut_the_sorted_classes_into_contiguous_groups():
    counts = [50, 5000, 232, 1796, 139, 2997, 645, 83, 1077, 387]   # CIFAR-10-LT counts in a shuffled class order
    by_classes = frequency_groups(counts, 3, "classes")
    assert by_classes.tolist() == [2, 0, 1, 0, 2, 0, 1, 2, 0, 1]   # 4, 3, 3 classes, most frequent first
    by_samples = frequency_groups(CIFAR10_LT_COUNTS, 2, "samples")
    assert by_samples.tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]    # 5000 of 12406 is closest to half
    assert frequency_groups(CIFAR10_LT_COUNTS, 3, "samples").tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert frequency_groups([7, 7, 7, 7], 2).tolist() == [0, 0, 1, 1]  # ties: by class index
    assert frequency_groups([5, 3], 2, "samples").tolist() == [0, 1]
    with pytest.raises(UserError, match="cannot cut 3 classes into 4 class groups"):
        frequency_groups([3, 2, 1], 4)
    with pytest.raises(UserError, match="unknown class-group balance"):
        frequency_groups([3, 2, 1], 2, "images")


def test_the_split_path_uses_plain_batchnorm_statistics_of_each_class_group():
    torch.manual_seed(4)
    layer = CompoundBatchNorm2d(4, num_components=3, momentum=1.0)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    groups = torch.tensor([0, 2, 1, 0, 0, 2, 1, 0, 2, 1, 0, 2, 1])
    x = torch.randn(len(groups), 4, 3, 3) * torch.arange(1, len(groups) + 1)[:, None, None, None] + 1
    with class_split(layer, groups, min_group_size=2):
        y = layer(x)
    for group in range(3):
        members = groups == group
        reference = nn.BatchNorm2d(4, momentum=1.0)
        with torch.no_grad():
            reference.weight.copy_(layer.weight[group])
            reference.bias.copy_(layer.bias[group])
        close(y[members], reference(x[members]))
        close(layer.running_mean[group], reference.running_mean)
        close(layer.running_var[group], reference.running_var)
    assert layer._split is None   # the block restores mixture normalisation


def test_a_tiny_class_group_uses_running_statistics_and_leaves_them_unchanged():
    torch.manual_seed(5)
    layer = CompoundBatchNorm2d(4, num_components=2)
    layer(torch.randn(16, 4, 3, 3))
    running_mean, running_var = layer.running_mean.clone(), layer.running_var.clone()
    groups = torch.tensor([0, 0, 0, 0, 0, 1])
    x = torch.randn(6, 4, 3, 3)
    with class_split(layer, groups, min_group_size=2, tiny_group="running"):
        y = layer(x)
    expected = F.batch_norm(x[5:], running_mean[1], running_var[1], layer.weight[1], layer.bias[1], training=False)
    close(y[5:], expected)
    assert torch.equal(layer.running_mean[1], running_mean[1]) and torch.equal(layer.running_var[1], running_var[1])
    assert not torch.equal(layer.running_mean[0], running_mean[0])
    with class_split(layer, groups, min_group_size=2, tiny_group="batch", update_running=False):
        whole = layer(x)
    close(whole[5:], F.batch_norm(x, None, None, layer.weight[1], layer.bias[1], training=True)[5:])


def test_the_main_pass_normalises_by_the_mixture_and_updates_by_class_groups():
    torch.manual_seed(7)
    layer = CompoundBatchNorm2d(4, num_components=2, momentum=1.0)
    layer(torch.randn(16, 4, 3, 3) + torch.randint(0, 2, (16, 1, 1, 1)) * 3.0)
    plain = copy.deepcopy(layer)
    groups = torch.tensor([0, 1, 0, 0, 1, 0, 1, 0, 0, 1])
    x = torch.randn(len(groups), 4, 3, 3) + groups[:, None, None, None] * 2.0
    with class_split(layer, groups, normalize=False, min_group_size=2):
        y = layer(x)
    close(y, plain(x))   # normalised by the mixture, exactly as without the groups
    for group in range(2):   # momentum 1: the class-group step leaves each component at its group's BN statistics
        reference = nn.BatchNorm2d(4, momentum=1.0)
        reference(x[groups == group])
        close(layer.running_mean[group], reference.running_mean)
        close(layer.running_var[group], reference.running_var)


def test_class_split_needs_cbn_layers_and_valid_options():
    with pytest.raises(UserError, match="needs Compound BN layers"):
        with class_split(nn.Sequential(nn.BatchNorm2d(3)), torch.zeros(2, dtype=torch.long)):
            pass
    layer = CompoundBatchNorm2d(3, num_components=2)
    with pytest.raises(UserError, match="class group 2 has no component"):
        with class_split(layer, torch.tensor([0, 2])):
            pass
    with pytest.raises(UserError, match="unknown tiny-group rule"):
        with class_split(layer, torch.tensor([0, 1]), tiny_group="skip"):
            pass


# ----------------------------------------------------------------------------------------------------
# The dual path
# ----------------------------------------------------------------------------------------------------

def tiny_cbn_model(components: int = 2) -> nn.Module:
    torch.manual_seed(6)
    return build_model("resnet32", 4, norm="cbn", norm_where="last-stage", norm_kwargs={"components": components})


def test_the_dual_path_loss_is_both_losses_plus_the_stop_gradient_kl():
    model = tiny_cbn_model()
    network = DualPathModel(model, [0, 0, 1, 1])   # group_update="main"
    objective = DualPathObjective(network, nn.CrossEntropyLoss(), kl_weight=0.5)
    x, y = torch.randn(12, 3, 16, 16), torch.tensor([0, 1, 2, 3] * 3)
    main, auxiliary = network(x, y)
    assert main.shape == auxiliary.shape == (12, 4) and not torch.allclose(main, auxiliary)
    kl = (F.softmax(auxiliary, 1) * (F.log_softmax(auxiliary, 1) - F.log_softmax(main, 1))).sum(1).mean()
    close(consistency_loss(main, auxiliary), kl)
    loss, logits = objective(network, x, y)
    assert logits.shape == (12, 4) and torch.isfinite(loss)
    main_only = main.detach().requires_grad_()
    aux_only = auxiliary.detach().requires_grad_()
    consistency_loss(main_only, aux_only).backward()
    assert aux_only.grad is None and main_only.grad.abs().sum() > 0   # the auxiliary path is the stop-gradient target
    network.eval()
    assert network(x).shape == (12, 4)   # evaluation: the main path only
    assert not any(layer._split is not None for _, layer in compound_layers(model))
    for update in ("aux", "none"):
        DualPathModel(model, [0, 0, 1, 1], group_update=update).train()(x, y)
    with pytest.raises(UserError, match="unknown class-group update 'both'"):
        DualPathModel(model, [0, 0, 1, 1], group_update="both")


def test_dual_path_options_are_checked_before_training(tmp_path):
    with pytest.raises(UserError, match="cbn_dual_path needs Compound BN layers"):
        train.load_config("quick_digits_bn", ["cbn_dual_path=true"])
    with pytest.raises(UserError, match="sync_bn does not synchronise Compound BN"):
        train.load_config("quick_digits_cbn", ["sync_bn=true"])
    with pytest.raises(UserError, match="cbn_temperature must be a finite number > 0"):
        train.load_config("quick_digits_cbn", ["cbn_temperature=0"])
    with pytest.raises(UserError, match="unknown cbn_groups 'images'"):
        train.load_config("quick_digits_cbn", ["cbn_groups=images"])
    config = train.load_config("quick_digits_cbn", ["cbn_components=11", "device=cpu", "epochs=1"])
    with pytest.raises(UserError, match="cannot cut 10 classes into 11 class groups"):
        train.train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()


# ----------------------------------------------------------------------------------------------------
# Factory, converter, state
# ----------------------------------------------------------------------------------------------------

def test_cbn_is_a_registered_norm_with_nbn_placements():
    layer = create_norm_layer("cbn", 8, momentum=0.3)
    assert isinstance(layer, CompoundBatchNorm2d) and layer.momentum == 0.3 and layer.weight.shape == (2, 8)
    official = [name for name, _ in apply_norm(CifarResNet(blocks_per_stage=2), "cbn", where="official",
                                               components=3, shared_affine=True)]
    assert official == ["layer3.0.bn2", "layer3.1.bn2"]
    with pytest.raises(UserError, match="norm 'cbn' takes components, .*, not 'share_alpha'"):   # NBN's option
        apply_norm(CifarResNet(blocks_per_stage=2), "cbn", where="official", share_alpha=False)
    model = tiny_cbn_model(components=3)
    layers = compound_layers(model)
    assert [name for name, _ in layers] == [f"backbone.layer3.{b}.bn{i}" for b in range(5) for i in (1, 2)]
    assert all(layer.num_components == 3 and layer.running_mean.shape == (3, 64) for _, layer in layers)
    shared = build_model("resnet32", 4, norm="cbn", norm_kwargs={"shared_affine": True})
    assert all(layer.weight.shape == (1, 64) for _, layer in compound_layers(shared))
    with pytest.raises(UserError, match="already has Compound BN layers"):
        apply_norm(model, "cbn", where="all")


def test_a_loaded_cbn_model_continues_without_reinitialising():
    model = tiny_cbn_model()
    model(torch.randn(8, 3, 16, 16))
    restored = tiny_cbn_model()
    assert all(layer._awaiting_init for _, layer in compound_layers(restored))
    restored.load_state_dict(model.state_dict())
    assert not any(layer._awaiting_init for _, layer in compound_layers(restored))
    model.eval()
    restored.eval()
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(model(x), restored(x))


# ----------------------------------------------------------------------------------------------------
# Diagnosis
# ----------------------------------------------------------------------------------------------------

def test_component_usage_averages_each_groups_responsibilities():
    model = tiny_cbn_model()
    model(torch.randn(16, 3, 16, 16))
    x, y = torch.randn(10, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    counts = [40, 30, 20, 10]   # groups: classes {0, 1} and {2, 3}
    usage = diagnosis.component_usage(model, [(x[:6], y[:6]), (x[6:], y[6:])], counts)
    name, layer = compound_layers(model)[-1]
    captured = []
    handle = layer.register_forward_hook(
        lambda module, inputs, output: captured.append(module.responsibilities(inputs[0])))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    groups = torch.tensor([0, 0, 1, 1])[y]
    expected = torch.stack([captured[0][groups == g].mean(0) for g in range(2)]).numpy()
    np.testing.assert_allclose(diagnosis.usage_matrix(usage, name), expected, atol=1e-6)
    assert usage.groupby(["layer", "group"])["share"].sum().round(6).eq(1).all()
    match = diagnosis.component_match(usage)
    assert len(match) == 10 and match["matched_share"].between(0.5, 1).all()
    assert (match["matched_share"] >= match["paired_share"] - 1e-12).all()
    assert match["effective_components"].between(1, 2).all()


def test_component_match_reads_a_known_usage_table():
    import pandas as pd

    shares = [[0.2, 0.8], [0.9, 0.1]]   # the groups use swapped components
    usage = pd.DataFrame([{"layer": "l", "depth": 0, "group": g, "component": c, "share": shares[g][c], "samples": 5}
                          for g in range(2) for c in range(2)])
    match = diagnosis.component_match(usage).iloc[0]
    assert match["paired_share"] == pytest.approx(0.15) and match["tail_paired_share"] == pytest.approx(0.1)
    assert match["matched_share"] == pytest.approx(0.85)
    overall = np.array([0.55, 0.45])   # each component's mean share over the two groups
    assert match["effective_components"] == pytest.approx(np.exp(-(overall * np.log(overall)).sum()))


def test_usage_tables_and_sentences_read_the_component_match():
    import pandas as pd

    def usage(shares):
        return pd.DataFrame([{"layer": name, "depth": depth, "group": g, "component": c, "share": shares[depth][g][c],
                              "samples": 5} for depth, name in enumerate(("a", "b")) for g in range(2) for c in range(2)])

    swapped = usage([[[0.6, 0.4], [0.5, 0.5]], [[0.2, 0.8], [0.9, 0.1]]])   # the deepest layer: groups swapped
    paired = usage([[[0.6, 0.4], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8]]])
    table = diagnosis.usage_match_table({"CBN": swapped, "CBN + dual path": paired})
    assert list(table.index) == [("CBN", "a"), ("CBN", "b"), ("CBN + dual path", "a"), ("CBN + dual path", "b")]
    assert table.loc[("CBN", "b"), "paired_share"] == pytest.approx(0.15)
    text = diagnosis.usage_summary({"CBN": swapped, "CBN + dual path": paired})
    assert "**CBN**: in the deepest CBN layer, group k's samples take component k for 15%" in text
    assert "(the rarest group: 10%)" in text and "under the best one-to-one pairing 85%" in text
    before = diagnosis.component_match(swapped)["paired_share"].mean()
    after = diagnosis.component_match(paired)["paired_share"].mean()
    assert f"the mean paired share rises ({100 * before:.0f}% → {100 * after:.0f}%)" in text


# ----------------------------------------------------------------------------------------------------
# Through the CLI: 2-epoch CBN runs on digits, with and without the dual path
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dual_path", ["false", "true"])
def test_a_two_epoch_cbn_run_through_the_cli(tmp_path, dual_path):
    out = tmp_path / "run"
    result = run_cli("train", "--config", "quick_digits_cbn", "--set", "epochs=2", "--set",
                     f"cbn_dual_path={dual_path}", "--set", "device=cpu", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = train.read_metrics(out)
    assert list(rows.epoch) == [1, 2] and rows["balanced_acc"].between(0, 1).all()
    assert np.isfinite(rows["train_loss"]).all()
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["config"]["cbn_dual_path"] is (dual_path == "true")
    assert state["model"]["backbone.layer3.4.bn2.running_mean"].shape == (2, 64)
    assert not any(key.startswith("model.") for key in state["model"])   # the dual-path wrapper is not saved
    evaluated = train.evaluate_checkpoint(out / "last.pt", device="cpu")
    assert evaluated["balanced_acc"] == rows.iloc[-1]["balanced_acc"]
    assert re.search(r"balanced", run_cli("evaluate", "--checkpoint", str(out / "last.pt"), "--device", "cpu").stdout)


@pytest.mark.alone
def test_dual_path_training_under_torchrun_with_two_processes(tmp_path):
    """DDP (gloo, 2 CPU processes): both paths run in one DDP forward; CBN statistics are per process like plain
    BN's, DDP broadcasts rank 0's running buffers, and the checkpoint evaluates to the logged metrics."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "nbn_tutorial", "train", "--config", "quick_digits_cbn", "--set", "epochs=1", "--set", "device=cpu",
               "--set", "compile=off", "--out", str(out), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["config"]["cbn_dual_path"] is True
    logged = train.read_metrics(out).iloc[-1]
    evaluated = train.evaluate_checkpoint(out / "last.pt", device="cpu")
    assert evaluated["balanced_acc"] == logged["balanced_acc"]
    assert evaluated["per_class_acc"] == logged["per_class_acc"]


def test_the_model_description_names_the_cbn_layers():
    from nbn_tutorial import notebooks

    text = notebooks.describe_model(tiny_cbn_model(components=3))
    assert "0 of them NBN" in text
    assert "Compound BN layers (3 components): backbone.layer3.0.bn1, backbone.layer3.0.bn2" in text
