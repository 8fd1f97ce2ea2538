"""Model builders: CIFAR ResNet-32 structure, torchvision backbones, heads, NBN placement, bad names."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import MODELS, LTClassifier, ZeroPadShortcut, build_model
from nbn_tutorial.nn import LogitRectificationHead, NormalizedBatchNorm2d, NormedLinear, nbn_layers


def resnet32_parameter_count(num_classes: int, in_channels: int = 3) -> int:
    """ResNet-32 by hand: 3x3 convs without bias, 2 parameters per BN channel, a linear head."""
    conv = lambda cin, cout: 9 * cin * cout  # noqa: E731
    total = conv(in_channels, 16) + 2 * 16
    in_planes = 16
    for planes in (16, 32, 64):
        for block in range(5):
            total += conv(in_planes if block == 0 else planes, planes) + conv(planes, planes) + 2 * 2 * planes
        in_planes = planes
    return total + 64 * num_classes + num_classes


def test_resnet32_has_the_known_parameter_count():
    model = build_model("resnet32", 10)
    assert resnet32_parameter_count(10) == 464_154  # the well-known "0.46M"
    assert sum(p.numel() for p in model.parameters()) == 464_154


def test_resnet32_structure_matches_ldam_drw():
    backbone = build_model("resnet32", 10).backbone
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.out_channels == 16
    for stage, (width, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        blocks = getattr(backbone, f"layer{stage}")
        assert len(blocks) == 5
        assert blocks[0].conv1.stride == (stride, stride) and blocks[-1].conv2.out_channels == width
    shortcuts = [block.shortcut for stage in (1, 2, 3) for block in getattr(backbone, f"layer{stage}")]
    assert sum(isinstance(s, ZeroPadShortcut) for s in shortcuts) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for s in shortcuts for m in s.modules())


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 16, 8, 8)
    expected = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))  # LDAM-DRW's lambda: planes // 4 on each side
    assert torch.equal(ZeroPadShortcut(16, 32, 2)(x), expected)


def test_resnet32_kaiming_normal_init():
    torch.manual_seed(0)
    model = build_model("resnet32", 100)
    conv = model.backbone.layer3[4].conv2.weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert model.head.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)


@pytest.mark.parametrize("in_channels, size", [(3, 32), (1, 28), (1, 8)])
def test_resnet32_accepts_small_inputs(in_channels, size):
    model = build_model("resnet32", 7, in_channels=in_channels).eval()
    x = torch.randn(2, in_channels, size, size)
    assert model.features(x).shape == (2, 64)
    assert model(x).shape == (2, 7)


def test_last_stage_outputs_the_last_feature_map():
    model = build_model("resnet32", 10)
    assert model.last_stage is model.backbone.layer3
    captured = []
    model.last_stage.register_forward_hook(lambda module, args, output: captured.append(output))
    model(torch.randn(2, 3, 32, 32))
    assert captured[0].shape == (2, 64, 8, 8)


@pytest.mark.parametrize("head, head_type", [("linear", nn.Linear), ("lr", LogitRectificationHead),
                                             ("cosine", NormedLinear)])
def test_heads_and_classifier_weight(head, head_type):
    model = build_model("resnet32", 5, head=head)
    assert isinstance(model, LTClassifier) and isinstance(model.head, head_type)
    weight = model.classifier_weight()
    assert weight.shape == (5, 64)
    x = torch.randn(3, 64)
    if head == "linear":
        assert torch.allclose(model.head(x), x @ weight.t() + model.head.bias, atol=1e-5)
    if head == "cosine":
        assert torch.allclose(model.head(x), F.normalize(x, dim=1) @ F.normalize(weight, dim=1).t(), atol=1e-5)


def test_resnet32_nbn_official_is_last_bn_of_each_last_stage_block():
    model = build_model("resnet32", 10, norm="nbn")
    names = [name for name, _ in nbn_layers(model)]
    assert names == [f"backbone.layer3.{i}.bn2" for i in range(5)]
    assert [name for name, _ in model.named_parameters() if "alpha" in name] == ["nbn_alpha"]
    assert model.nbn_alpha.item() == 1.0


def test_nbn_options_are_passed_to_the_converter():
    model = build_model("resnet32", 10, norm="nbn", norm_where="all",
                        norm_kwargs={"alpha_init": "unit-gamma", "share_alpha": False})
    layers = nbn_layers(model)
    assert len(layers) == 1 + 3 * 5 * 2
    assert all(layer.alpha.item() == pytest.approx(math.sqrt(layer.num_features)) for _, layer in layers)


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_torchvision_backbones(name):
    model = build_model(name, 6, norm="nbn", head="lr", in_channels=1).eval()
    assert model.feature_dim == 2048 and isinstance(model.backbone.fc, nn.Identity)
    assert model.backbone.conv1.in_channels == 1
    assert model.last_stage is model.backbone.layer4
    assert [name for name, _ in nbn_layers(model)] == [
        "backbone.layer4.0.bn3", "backbone.layer4.0.downsample.1", "backbone.layer4.1.bn3", "backbone.layer4.2.bn3"]
    assert isinstance(model.backbone.layer4[0].downsample[1], NormalizedBatchNorm2d)
    assert model.classifier_weight().shape == (6, 2048)
    if name == "resnet50":  # one tiny forward is enough; the structure is shared
        with torch.no_grad():
            assert model(torch.randn(1, 1, 64, 64)).shape == (1, 6)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "vgg16"}, "unknown model 'vgg16'; valid: " + ", ".join(MODELS)),
    ({"norm": "gn"}, "unknown norm 'gn'; valid: bn, nbn, cbn$"),
    ({"head": "mlp"}, "unknown head 'mlp'; valid: linear, lr, cosine"),
    ({"norm_where": "nowhere", "norm": "nbn"}, "official, last-stage, all"),
])
def test_bad_names_raise_user_errors(kwargs, message):
    arguments = {"name": "resnet32", "num_classes": 10, **kwargs}
    with pytest.raises(UserError, match=message):
        build_model(**arguments)
