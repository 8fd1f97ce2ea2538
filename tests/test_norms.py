"""The norm factory, the generic BatchNorm replacement, and every registered model x norm end to end."""
import io
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import MODELS, CifarResNet, build_model, register_backbone, split_output
from nbn_tutorial.models import build as build_module
from nbn_tutorial.models import registry as model_registry_module
from nbn_tutorial.nn import (
    NORMS,
    CompoundBatchNorm2d,
    NormalizedBatchNorm2d,
    apply_norm,
    convert_to_nbn,
    create_norm_layer,
    get_norm_layer,
    nbn_layers,
    replace_batchnorms,
)
from nbn_tutorial.nn import norms as norms_module
from nbn_tutorial.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED_LAYER = {"bn": nn.BatchNorm2d, "nbn": NormalizedBatchNorm2d, "cbn": CompoundBatchNorm2d}
NORM_LAYER_TYPES = (nn.BatchNorm2d, CompoundBatchNorm2d)   # CBN's [K, C] state is not a BatchNorm2d's


class MarkedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d subclass standing in for a norm added from outside the package, in the extension tests."""


def structure(model: nn.Module) -> list[tuple[str, str, tuple]]:
    """Module names and types, with every parameter's name and shape: what 'equal in structure' compares."""
    return [(name, type(module).__name__, tuple((p, tuple(t.shape)) for p, t in module.named_parameters(recurse=False)))
            for name, module in model.named_modules()]


def test_every_norm_has_a_known_layer_type():
    assert set(EXPECTED_LAYER) == set(NORMS)


@pytest.mark.parametrize("norm", NORMS)
def test_create_norm_layer_builds_each_registered_norm(norm):
    layer = create_norm_layer(norm, 8, momentum=0.3)
    assert type(layer) is EXPECTED_LAYER[norm]
    assert layer.num_features == 8 and layer.momentum == 0.3
    x = torch.randn(4, 8, 3, 3)
    assert layer(x).shape == x.shape
    assert isinstance(get_norm_layer(norm)(8), EXPECTED_LAYER[norm])


def test_unknown_norm_names_the_valid_ones():
    valid = ", ".join(NORMS)   # the whole list, to the end of the message (bn, nbn, cbn)
    with pytest.raises(UserError, match=re.escape(f"unknown norm 'nbm' (did you mean 'nbn'?); valid: {valid}") + "$"):
        create_norm_layer("nbm", 8)
    with pytest.raises(UserError, match=re.escape(f"unknown norm 'gn'; valid: {valid}") + "$"):
        get_norm_layer("gn")


def test_get_norm_layer_bn_gives_the_default_cifar_resnet():
    torch.manual_seed(0)
    default = CifarResNet(blocks_per_stage=2)
    torch.manual_seed(0)
    factory = CifarResNet(blocks_per_stage=2, norm_layer=get_norm_layer("bn"))
    assert structure(factory) == structure(default)
    assert sum(p.numel() for p in factory.parameters()) == sum(p.numel() for p in default.parameters())
    assert factory.state_dict().keys() == default.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(factory.state_dict().values(), default.state_dict().values()))


def test_get_norm_layer_passes_keyword_arguments_and_callables():
    model = CifarResNet(blocks_per_stage=1, norm_layer=get_norm_layer("bn", momentum=0.01))
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(batchnorms) == 3 * 2 + 1 and all(m.momentum == 0.01 for m in batchnorms)
    assert get_norm_layer(MarkedBatchNorm2d) is MarkedBatchNorm2d


@pytest.mark.parametrize("norm", NORMS)
def test_cifar_resnet_takes_every_norm_as_norm_layer(norm):
    model = CifarResNet(blocks_per_stage=1, norm_layer=get_norm_layer(norm))
    norms = [m for m in model.modules() if isinstance(m, NORM_LAYER_TYPES)]
    assert len(norms) == 3 * 2 + 1 and all(type(m) is EXPECTED_LAYER[norm] for m in norms)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", MODELS)
def test_every_model_and_norm_trains_and_round_trips(name, norm):
    torch.manual_seed(0)
    model = build_model(name, 3, norm=norm)
    x = torch.randn(2, 3, 32, 32)
    logits, _ = split_output(model(x))   # multi-expert models add their experts' logits while training
    assert logits.shape == (2, 3)
    logits.pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert bool(nbn_layers(model)) == (norm == "nbn")

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    restored = build_model(name, 3, norm=norm)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        assert torch.equal(restored.eval()(x), model.eval()(x))


@pytest.mark.parametrize("name", ["resnet32", "resnext50_32x4d"])
def test_state_dict_keys_are_those_of_the_code_before_the_split(name):
    """Checkpoints written before models.py became a package still load: same keys, same shapes."""
    expected = json.loads((FIXTURES / "nbn_state_dict_keys.json").read_text())[name]
    state = build_model(name, 10, norm="nbn").state_dict()
    assert [[key, list(value.shape)] for key, value in state.items()] == expected


def test_replace_batchnorms_moves_parameters_and_running_stats():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6),
                          nn.BatchNorm2d(6))
    model(torch.randn(4, 3, 8, 8))
    model.eval()
    originals = {name: module for name, module in model.named_modules() if isinstance(module, nn.BatchNorm2d)}
    seen = []

    def build(name, bn):
        seen.append(name)
        return MarkedBatchNorm2d(bn.num_features, momentum=0.5)

    replaced = replace_batchnorms(model, lambda name, module: module.num_features == 6, build)
    assert seen == [name for name, _ in replaced] == ["3", "4"]
    for name, layer in replaced:
        old = originals[name]
        assert model.get_submodule(name) is layer and type(layer) is MarkedBatchNorm2d and layer.momentum == 0.5
        assert layer.weight is old.weight and layer.bias is old.bias
        assert layer.running_mean is old.running_mean and layer.running_var is old.running_var
        assert layer.num_batches_tracked is old.num_batches_tracked and layer.num_batches_tracked.item() == 1
        assert layer.training is False
    assert type(model[1]) is nn.BatchNorm2d
    assert [name for name, _ in replace_batchnorms(model, "all", lambda name, bn: nn.BatchNorm2d(4))] == ["1", "3", "4"]


def test_replace_batchnorms_refuses_unknown_or_empty_placements():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(UserError, match=re.escape("unknown placement 'al' (did you mean 'all'?); valid: official, "
                                                  "last-stage, all or a callable(name, module) -> bool")):
        replace_batchnorms(model, "al", lambda name, bn: bn)
    with pytest.raises(UserError, match="selects no BatchNorm2d layer"):
        replace_batchnorms(model, lambda name, module: False, lambda name, bn: bn)


def test_apply_norm_converts_only_for_norms_with_a_converter():
    plain = CifarResNet(blocks_per_stage=1)
    assert apply_norm(plain, "bn", where="all") == []
    assert not nbn_layers(plain)
    by_name = apply_norm(CifarResNet(blocks_per_stage=1), "nbn", where="last-stage", share_alpha=False)
    direct = convert_to_nbn(CifarResNet(blocks_per_stage=1), where="last-stage", share_alpha=False)
    assert [name for name, _ in by_name] == [name for name, _ in direct] == ["layer3.0.bn1", "layer3.0.bn2"]


def test_a_new_norm_is_added_by_registering(monkeypatch):
    """What Compound BN does: register a layer and a converter built on replace_batchnorms."""
    registry = Registry("norm")
    for name in NORMS:
        registry.register(name, norms_module.NORM_REGISTRY.get(name))
    monkeypatch.setattr(norms_module, "NORM_REGISTRY", registry)

    def convert_to_marked(model, where, **options):
        return replace_batchnorms(model, where, lambda name, bn: MarkedBatchNorm2d(bn.num_features))

    norms_module.register_norm("marked", MarkedBatchNorm2d, convert=convert_to_marked)
    model = build_model("resnet32", 10, norm="marked", norm_where="last-stage")
    marked = [name for name, module in model.named_modules() if isinstance(module, MarkedBatchNorm2d)]
    assert marked == [f"backbone.layer3.{block}.bn{i}" for block in range(5) for i in (1, 2)]
    assert isinstance(create_norm_layer("marked", 4), MarkedBatchNorm2d)


def test_a_new_model_is_added_by_registering(monkeypatch):
    """What a new backbone does: register a builder that takes the norm_layer (RIDE registers whole classifiers)."""
    registry = Registry("model")
    for name in MODELS:
        registry.register(name, build_module.MODEL_REGISTRY.get(name))
    monkeypatch.setattr(build_module, "MODEL_REGISTRY", registry)
    monkeypatch.setattr(model_registry_module, "MODEL_REGISTRY", registry)

    @register_backbone("tiny")
    def tiny(in_channels, norm_layer):
        stage = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), norm_layer(4))
        return nn.Sequential(nn.Conv2d(in_channels, 4, 3), norm_layer(4), nn.ReLU(), nn.Sequential(), stage,
                             nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4

    model = build_model("tiny", 5, norm="nbn", norm_where="all", in_channels=1)
    assert [name for name, _ in nbn_layers(model)] == ["backbone.1", "backbone.4.1"]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 5)
