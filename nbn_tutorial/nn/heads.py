"""Classifier heads (features [N, D] -> logits [N, C]) and their registry: linear, logit-rectification, cosine."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nbn_tutorial.registry import Registry

HeadFactory = Callable[[int, int], nn.Module]

HEAD_REGISTRY: Registry[HeadFactory] = Registry("head")
HEAD_REGISTRY.register("linear", nn.Linear)


@HEAD_REGISTRY.register("lr")
class LogitRectificationHead(nn.Module):
    """The official ``Linear_fcbn_notaffine`` head: Linear(in, C), then a non-affine BatchNorm1d over logits."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.bn = nn.BatchNorm1d(num_classes, affine=False)

    def reset_parameters(self) -> None:
        """PyTorch's default init of the linear map; fresh running statistics of the logits."""
        self.fc.reset_parameters()
        self.bn.reset_parameters()

    def forward(self, features: Tensor) -> Tensor:
        """Rectified logits [N, C]."""
        return self.bn(self.fc(features))

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, in]."""
        return self.fc.weight


@HEAD_REGISTRY.register("cosine")
class NormedLinear(nn.Module):
    """Cosine classifier of LDAM-DRW: normalize(x, dim=1) @ normalize(W, dim=0), with W of shape [in, C]."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """LDAM-DRW's init: uniform(-1, 1), then each class column rescaled to unit norm."""
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, features: Tensor) -> Tensor:
        """Cosine similarities [N, C] between features and class weights."""
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=0)

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, in]."""
        return self.weight.t()


HEADS: tuple[str, ...] = HEAD_REGISTRY.names()


def create_head(name: str, in_features: int, num_classes: int) -> nn.Module:
    """The head registered as ``name`` (one of HEADS), mapping ``in_features`` to ``num_classes`` logits."""
    return HEAD_REGISTRY.get(name)(in_features, num_classes)
