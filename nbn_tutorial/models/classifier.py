"""The long-tailed classifier: a backbone (images -> features) followed by a head (features -> logits)."""
from __future__ import annotations

from torch import Tensor, nn

from nbn_tutorial.nn.placement import find_last_stage

CLASS_SCALES = "class_scales"   # a head's learned per-class scales (LWS), see nbn_tutorial.models.rebalance


def head_class_weight(head: nn.Module) -> Tensor:
    """Class weight vectors [C, D] of a head (a Linear's weight, else its ``classifier_weight()``), times its
    learned class scales where it has them (LWS)."""
    weight = head.weight if isinstance(head, nn.Linear) else head.classifier_weight()
    scales = getattr(head, CLASS_SCALES, None)
    return weight if scales is None else weight * scales[:, None].to(weight.dtype)


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
        """Class weight vectors [C, D] of the head's linear map (times its class scales after LWS)."""
        return head_class_weight(self.head)

    def classifier_slots(self) -> list[tuple[nn.Module, str]]:
        """(owner, attribute) of every classifier head: here the one head."""
        return [(self, "head")]
