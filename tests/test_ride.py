"""RIDE: the multi-expert models, NBN per expert, the RIDE and router losses, and the diagnosis per expert."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nbn_tutorial import data, diagnosis, losses, models, train
from nbn_tutorial import nn as nbn_nn
from nbn_tutorial.errors import UserError

DIGITS_COUNTS = np.array([144, 111, 86, 66, 51, 40, 31, 24, 18, 14])


def digits_batch(count: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 1, 8, 8, generator=generator), torch.randint(0, 10, (count,), generator=generator)


# ---- models and NBN per expert -----------------------------------------------------------------------

@pytest.mark.parametrize("name, experts, stage", [("ride_resnet32", 3, "layer3"), ("ride_resnet32", 1, "layer3"),
                                                  ("ride_resnet50", 2, "layer4")])
def test_ride_with_nbn_has_exactly_one_alpha_per_expert_over_its_last_stage(name, experts, stage):
    model = models.build_model(name, 10, norm="nbn", head="cosine", num_experts=experts)
    alphas = nbn_nn.alpha_parameters(model)
    assert len(alphas) == experts
    assert [n for n, _ in model.named_parameters() if n.endswith("nbn_alpha")] == \
        [f"experts.{i}.nbn_alpha" for i in range(experts)]
    for index, expert in enumerate(model.experts):
        last_stage_bns = {n for n, m in getattr(expert, stage).named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
        converted = {n.split(f"experts.{index}.{stage}.", 1)[1] for n, _ in nbn_nn.nbn_layers(model)
                     if n.startswith(f"experts.{index}.")}
        assert converted == last_stage_bns   # every BN of the expert's last stage (the official RIDE-NBN placement)
        assert all(layer.alpha is alphas[index] for _, layer in nbn_nn.nbn_layers(expert))
    assert not nbn_nn.nbn_layers(model.stem)


def test_placement_stays_configurable_per_expert():
    official = models.build_model("ride_resnet32", 10, norm="nbn", head="cosine")
    all_layers = models.build_model("ride_resnet32", 10, norm="nbn", head="cosine", norm_where="all")
    own_alpha = models.build_model("ride_resnet32", 10, norm="nbn", head="cosine", norm_kwargs={"share_alpha": False})
    assert len(nbn_nn.nbn_layers(all_layers)) == 3 * 20 and len(nbn_nn.alpha_parameters(all_layers)) == 3
    assert len(nbn_nn.nbn_layers(official)) == 3 * 10
    assert len(nbn_nn.alpha_parameters(own_alpha)) == len(nbn_nn.nbn_layers(own_alpha)) == 30
    predicate = models.build_model("ride_resnet32", 10, norm="nbn",
                                   norm_where=lambda name, _: name.endswith("layer3.4.bn2"))
    assert [n for n, _ in nbn_nn.nbn_layers(predicate)] == [f"experts.{i}.layer3.4.bn2" for i in range(3)]


def test_training_returns_each_experts_logits_and_eval_the_ensemble():
    model = models.build_model("ride_resnet32", 10, in_channels=1, head="cosine")
    x, _ = digits_batch(6)
    output = model.train()(x)
    assert set(output) == {"logits", "expert_logits"} and output["expert_logits"].shape == (3, 6, 10)
    assert torch.allclose(output["logits"], output["expert_logits"].mean(0))
    logits = model.eval()(x)
    assert logits.shape == (6, 10)
    assert torch.allclose(logits, model.expert_logits(model.features(x)).mean(0))
    assert model.features(x).shape == (6, 3 * 48)   # RIDE's reduced expert width on CIFAR ResNets


def copy_plain_into_ride(plain, ride) -> None:
    """Load a plain ResNet-32's weights into a one-expert RIDE ResNet-32 of the same shape."""
    state = {}
    for key, value in plain.state_dict().items():
        if key.startswith(("backbone.conv1", "backbone.bn1", "backbone.layer1")):
            state["stem." + key.removeprefix("backbone.")] = value
        elif key.startswith("backbone."):
            state["experts.0." + key.removeprefix("backbone.")] = value
        else:
            state["experts.0." + key] = value
    ride.load_state_dict(state)


@pytest.mark.parametrize("head, scale", [("linear", 1.0), ("cosine", 30.0)])
def test_a_one_expert_ride_model_computes_what_the_plain_model_computes(head, scale):
    torch.manual_seed(0)
    plain = models.build_model("resnet32", 10, in_channels=1, head=head)
    ride = models.build_model("ride_resnet32", 10, in_channels=1, head=head, num_experts=1, reduce_dimension=False)
    copy_plain_into_ride(plain, ride)
    x, _ = digits_batch()
    for mode in (True, False):
        plain.train(mode)
        ride.train(mode)
        ride_logits = ride(x)["logits"] if mode else ride(x)
        torch.testing.assert_close(ride_logits, scale * plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("epoch", [0, 170])   # before and after DRW re-weighting (drw_epoch 160)
def test_one_expert_without_diversity_trains_exactly_like_the_plain_ldam_drw_model(epoch):
    torch.manual_seed(1)
    plain = models.build_model("resnet32", 10, in_channels=1, head="cosine")
    ride = models.build_model("ride_resnet32", 10, in_channels=1, head="cosine", num_experts=1, reduce_dimension=False)
    copy_plain_into_ride(plain, ride)
    plain_loss = losses.build_loss("ldam-drw", DIGITS_COUNTS)
    ride_loss = losses.build_loss("ride", DIGITS_COUNTS, diversity_factor=0.0)
    plain_loss.set_epoch(epoch)
    ride_loss.set_epoch(epoch)
    x, y = digits_batch(seed=2)
    plain_value = plain_loss(plain.train()(x), y)
    output = ride.train()(x)
    ride_value = ride_loss(output.pop("logits"), y, **output)
    torch.testing.assert_close(ride_value, plain_value, rtol=1e-5, atol=1e-6)
    plain_value.backward()
    ride_value.backward()
    torch.testing.assert_close(ride.experts[0].layer3[4].conv2.weight.grad, plain.backbone.layer3[4].conv2.weight.grad,
                               rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(ride.stem.conv1.weight.grad, plain.backbone.conv1.weight.grad, rtol=1e-4, atol=1e-7)


def reference_ride_loss(ensemble, experts, y, epoch, counts=DIGITS_COUNTS, factor=-0.2, reweight=0.05, drw=160):
    """RIDE's loss written out from its published formula (model/loss.py), independently of the package."""
    margins = 1 / counts ** 0.25
    margins = torch.tensor(margins * 0.5 / margins.max(), dtype=torch.float32)
    weights = None
    temperature = torch.tensor(1.0)
    if epoch >= drw:
        effective = (1 - 0.9999) / (1 - 0.9999 ** counts)
        weights = torch.tensor(effective / effective.sum() * len(counts), dtype=torch.float32)
        prior = counts / counts.sum()
        diversity = len(counts) * prior * reweight + 1 - reweight
        temperature = torch.tensor(diversity / diversity.max(), dtype=torch.float32)[None, :]
    total = 0.0
    for logits in experts:
        shifted = logits - 30 * F.one_hot(y, 10) * margins[y, None]
        total = total + F.cross_entropy(shifted, y, weight=weights)
        target = F.softmax(ensemble / temperature, dim=1)
        kl = F.kl_div(F.log_softmax(logits / temperature, dim=1), target, reduction="batchmean")
        total = total + factor * temperature.mean() ** 2 * kl
    return total


@pytest.mark.parametrize("epoch", [0, 160])
def test_the_ride_loss_is_rides_published_formula(epoch):
    torch.manual_seed(3)
    experts = 30 * torch.randn(3, 16, 10).clamp(-1, 1)
    ensemble = experts.mean(0)
    y = torch.randint(0, 10, (16,))
    loss = losses.build_loss("ride", DIGITS_COUNTS)
    loss.set_epoch(epoch)
    torch.testing.assert_close(loss(ensemble, y, expert_logits=experts),
                               reference_ride_loss(ensemble, experts, y, epoch), rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match="each expert's logits"):
        loss(ensemble, y)


def test_the_ride_loss_needs_a_multi_expert_model():
    with pytest.raises(UserError, match="expert_logits"):
        train.load_config(None, ["loss=ride", "head=cosine", "model=resnet32"])
    with pytest.raises(UserError, match="num_experts applies to ride_resnet32, ride_resnet50"):
        train.load_config(None, ["num_experts=2"])
    with pytest.raises(UserError, match="takes no build options"):
        models.build_model("resnet32", 10, num_experts=2)
    config = train.load_config("quick_digits_ride_nbn")
    assert (config.model, config.num_experts, config.loss, config.head) == ("ride_resnet32", 3, "ride", "cosine")


# ---- the router ----------------------------------------------------------------------------------------

def test_router_targets_mark_where_a_later_expert_turns_a_wrong_prediction_right():
    # 3 experts, 2 classes, 3 samples with label 0
    experts = torch.tensor([[[0., 1.], [1., 0.], [0., 1.]],     # expert 1: wrong, right, wrong
                            [[3., 0.], [0., 3.], [0., 1.]],     # after 2: right, wrong, wrong
                            [[0., 0.], [0., 0.], [5., 0.]]])    # after 3: right, wrong, right
    helps = losses.expert_help_targets(experts, torch.zeros(3, dtype=torch.long))
    assert helps.tolist() == [[1., 0.], [0., 0.], [1., 1.]]


def test_the_routed_model_uses_the_experts_the_router_asks_for():
    model = models.build_model("ride_resnet32", 10, in_channels=1, head="cosine", expert_router=True).eval()
    x, _ = digits_batch(5)
    with torch.no_grad():
        all_experts = model.expert_logits(model.features(x))
        model.router.decide.bias.fill_(1e4)   # always "the next expert helps"
        logits, used = model.routed(x)
        torch.testing.assert_close(logits, all_experts.mean(0))
        assert used.tolist() == [3] * 5
        model.router.decide.bias.fill_(-1e4)  # never
        logits, used = model.routed(x)
        torch.testing.assert_close(logits, all_experts[0])
        assert used.tolist() == [1] * 5 and torch.equal(model(x), logits)
    output = model.train()(x)
    assert output["router_logits"].shape == (5, 2)


# ---- diagnosis per expert and for the ensemble ------------------------------------------------------------

def test_every_diagnosis_function_reads_each_expert_and_the_ensemble():
    test = data.build_dataset("digits-lt", split="test")
    model = models.build_model("ride_resnet32", 10, norm="nbn", in_channels=1, head="cosine").eval()
    views = diagnosis.model_views(model)
    assert list(views) == ["expert 1", "expert 2", "expert 3", "ensemble"]
    x, y = digits_batch(4)
    with torch.no_grad():
        experts = model.expert_logits(model.features(x))
        for index in range(3):
            torch.testing.assert_close(views[f"expert {index + 1}"](x), experts[index])
    for label, view in views.items():
        outputs = diagnosis.collect_outputs(view, test)
        channels = 48 * (3 if label == "ensemble" else 1)
        assert outputs.features.shape == (300, channels) and outputs.channel_activations.shape == (300, channels)
        assert len(diagnosis.class_specific_channels(outputs, test.train_counts, test.shot_groups)) == channels
        assert len(diagnosis.feature_strength(outputs, test.train_counts, test.shot_groups)) == 10
        assert len(diagnosis.classifier_norm_table(view, test.train_counts, test.shot_groups)) == 10
        assert diagnosis.grad_cam(view, x[:2], y[:2]).shape[0] == 2
    assert (diagnosis.bn_parameter_stats(views["expert 2"])["type"] == "NBN").sum() == 10
    table = diagnosis.expert_table(model, test)
    assert list(table["view"]) == ["expert 1", "expert 2", "expert 3", "ensemble"]
    assert table["alpha"].notna().all() and table["balanced"].between(0, 100).all()


def test_a_single_head_model_is_its_own_only_view():
    model = models.build_model("resnet32", 10, in_channels=1)
    assert diagnosis.model_views(model) == {"model": model}
    copy.deepcopy(models.build_model("ride_resnet32", 10, in_channels=1, norm="nbn"))   # NBN per expert deep-copies
