"""Torchvision ResNet-50 and ResNeXt-50 (32x4d) as backbones: random weights, fc = Identity, any input channels."""
from __future__ import annotations

from torch import nn

from nbn_tutorial.models.registry import BackboneBuilder, register_backbone
from nbn_tutorial.nn.norms import NormLayer

TORCHVISION_BACKBONES: tuple[str, ...] = ("resnet50", "resnext50_32x4d")


def torchvision_resnet(constructor_name: str) -> BackboneBuilder:
    """Builder of a torchvision ResNet backbone (random weights, fc = Identity, conv1 adapted to in_channels)."""

    def build(in_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> tuple[nn.Module, int]:
        import torchvision.models  # deferred: torchvision is only needed for these backbones

        backbone = getattr(torchvision.models, constructor_name)(weights=None, norm_layer=norm_layer)
        feature_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        if in_channels != 3:
            old = backbone.conv1
            backbone.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                       bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
        return backbone, feature_dim

    return build


for _name in TORCHVISION_BACKBONES:
    register_backbone(_name)(torchvision_resnet(_name))
