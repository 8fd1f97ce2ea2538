"""The CIFAR ResNet of LDAM-DRW (ResNet-32): option-A shortcuts, basic blocks, Kaiming-normal init."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.models.registry import register_backbone
from nbn_tutorial.nn.norms import NormLayer


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut of CIFAR ResNets: subsample by ``stride``, then zero-pad the new channels (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_before = (planes - in_planes) // 2
        self.pad_after = planes - in_planes - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        """Subsampled, channel-padded ``x``."""
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block: conv-norm-ReLU-conv-norm plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = ZeroPadShortcut(in_planes, planes, stride) if needs_projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Block output."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def cifar_stage(in_planes: int, planes: int, blocks: int, stride: int,
                norm_layer: NormLayer = nn.BatchNorm2d) -> nn.Sequential:
    """One stage of basic blocks: the first changes width and stride, the others keep them."""
    return nn.Sequential(*[BasicBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1, norm_layer)
                           for i in range(blocks)])


class CifarResNet(nn.Module):
    """ResNet for small images as in LDAM-DRW: 3x3 stem (16 ch), 3 stages (16/32/64, strides 1/2/2), avg pool.

    ``norm_layer(channels)`` makes every normalization layer (default BatchNorm2d), as in torchvision.
    """

    widths = (16, 32, 64)
    strides = (1, 2, 2)

    def __init__(self, blocks_per_stage: int, in_channels: int = 3, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, self.widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(self.widths[0])
        in_planes = self.widths[0]
        for index, (planes, stride) in enumerate(zip(self.widths, self.strides), start=1):
            self.add_module(f"layer{index}", cifar_stage(in_planes, planes, blocks_per_stage, stride, norm_layer))
            in_planes = planes
        self.num_features = in_planes

    def forward(self, x: Tensor) -> Tensor:
        """Penultimate features [N, 64]."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


def kaiming_init(module: nn.Module) -> None:
    """LDAM-DRW's ``_weights_init``: Kaiming-normal weights for every Conv2d and Linear."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


@register_backbone("resnet32", init=kaiming_init)
def resnet32(in_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> tuple[CifarResNet, int]:
    """LDAM-DRW's ResNet-32 backbone (5 blocks per stage, 64 features); Kaiming init of the whole classifier."""
    backbone = CifarResNet(blocks_per_stage=5, in_channels=in_channels, norm_layer=norm_layer)
    return backbone, backbone.num_features
