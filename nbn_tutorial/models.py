"""Backbones and classifiers for long-tailed recognition: CIFAR ResNet-32 and torchvision ResNet-50/ResNeXt-50."""
from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import LogitRectificationHead, NormedLinear, Where, convert_to_nbn, find_last_stage

MODELS: tuple[str, ...] = ("resnet32", "resnet50", "resnext50_32x4d")
NORMS: tuple[str, ...] = ("bn", "nbn")
HEADS: tuple[str, ...] = ("linear", "lr", "cosine")


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
    """CIFAR ResNet basic block: conv-BN-ReLU-conv-BN plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = ZeroPadShortcut(in_planes, planes, stride) if needs_projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Block output."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for small images as in LDAM-DRW: 3x3 stem (16 ch), 3 stages (16/32/64, strides 1/2/2), avg pool."""

    widths = (16, 32, 64)
    strides = (1, 2, 2)

    def __init__(self, blocks_per_stage: int, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, self.widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.widths[0])
        in_planes = self.widths[0]
        for index, (planes, stride) in enumerate(zip(self.widths, self.strides), start=1):
            blocks = [BasicBlock(in_planes if i == 0 else planes, planes, stride if i == 0 else 1)
                      for i in range(blocks_per_stage)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            in_planes = planes
        self.num_features = in_planes

    def forward(self, x: Tensor) -> Tensor:
        """Penultimate features [N, 64]."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


def _kaiming_init(module: nn.Module) -> None:
    """LDAM-DRW's ``_weights_init``: Kaiming-normal weights for every Conv2d and Linear."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


class LTClassifier(nn.Module):
    """A backbone (image -> penultimate features [N, D]) followed by a head (features -> logits [N, C])."""

    def __init__(self, backbone: nn.Module, head: nn.Module, arch: str, num_classes: int, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.arch = arch
        self.num_classes = num_classes
        self.feature_dim = feature_dim

    @property
    def last_stage(self) -> nn.Module:
        """The module whose output is the last-stage feature map [N, C', h, w]."""
        return find_last_stage(self.backbone)[1]

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [N, D]."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [N, C]."""
        return self.head(self.backbone(x))

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, D] of the head's linear map."""
        if isinstance(self.head, nn.Linear):
            return self.head.weight
        return self.head.classifier_weight()


def _resnet32(in_channels: int) -> tuple[nn.Module, int]:
    backbone = CifarResNet(blocks_per_stage=5, in_channels=in_channels)
    return backbone, backbone.num_features


def _torchvision_resnet(constructor_name: str) -> Callable[[int], tuple[nn.Module, int]]:
    """Builder of a torchvision ResNet backbone (random weights, fc = Identity, conv1 adapted to in_channels)."""

    def build(in_channels: int) -> tuple[nn.Module, int]:
        import torchvision.models  # deferred: torchvision is only needed for these backbones

        backbone = getattr(torchvision.models, constructor_name)(weights=None)
        feature_dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        if in_channels != 3:
            old = backbone.conv1
            backbone.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                       bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init
        return backbone, feature_dim

    return build


_BACKBONES: dict[str, Callable[[int], tuple[nn.Module, int]]] = {
    "resnet32": _resnet32,
    "resnet50": _torchvision_resnet("resnet50"),
    "resnext50_32x4d": _torchvision_resnet("resnext50_32x4d"),
}

_HEADS: dict[str, Callable[[int, int], nn.Module]] = {
    "linear": nn.Linear,
    "lr": LogitRectificationHead,
    "cosine": NormedLinear,
}


def _check_choice(kind: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UserError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def build_model(name: str, num_classes: int, norm: str = "bn", head: str = "linear", in_channels: int = 3,
                nbn_where: Where = "official", alpha_init: str | float = "official",
                share_alpha: bool = True) -> LTClassifier:
    """Build a classifier; ``norm="nbn"`` converts BN layers with ``convert_to_nbn`` (shared α: ``model.nbn_alpha``).

    ``resnet32`` follows LDAM-DRW, including Kaiming-normal init of every conv and linear layer (the head's
    too). The torchvision backbones keep torchvision's init; their head keeps PyTorch's default init.
    """
    _check_choice("model", name, MODELS)
    _check_choice("norm", norm, NORMS)
    _check_choice("head", head, HEADS)
    if num_classes < 1 or in_channels < 1:
        raise UserError(f"num_classes and in_channels must be positive, got {num_classes} and {in_channels}")
    backbone, feature_dim = _BACKBONES[name](in_channels)
    model = LTClassifier(backbone, _HEADS[head](feature_dim, num_classes), name, num_classes, feature_dim)
    if name == "resnet32":
        model.apply(_kaiming_init)
    if norm == "nbn":
        convert_to_nbn(model, where=nbn_where, share_alpha=share_alpha, alpha_init=alpha_init)
    return model
