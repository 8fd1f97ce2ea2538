"""``build_model``: a registered backbone, a registered head and a registered norm, assembled into a classifier."""
from __future__ import annotations

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import cifar_resnet, torchvision_resnets  # noqa: F401  (registers the built-in models)
from nbn_tutorial.models.classifier import LTClassifier
from nbn_tutorial.models.registry import MODEL_REGISTRY
from nbn_tutorial.nn.heads import HEAD_REGISTRY
from nbn_tutorial.nn.norms import apply_norm, backbone_norm_layer
from nbn_tutorial.nn.placement import Where

MODELS: tuple[str, ...] = MODEL_REGISTRY.names()


def build_model(name: str, num_classes: int, norm: str = "bn", head: str = "linear", in_channels: int = 3,
                nbn_where: Where = "official", alpha_init: str | float = "official",
                share_alpha: bool = True, nbn_normalize: str = "both") -> LTClassifier:
    """Build a classifier; ``norm="nbn"`` converts BN layers with ``convert_to_nbn`` (shared α: ``model.nbn_alpha``).

    ``resnet32`` follows LDAM-DRW, including Kaiming-normal init of every conv and linear layer (the head's
    too). The torchvision backbones keep torchvision's init; their head keeps PyTorch's default init.
    ``nbn_where``, ``alpha_init``, ``share_alpha`` and ``nbn_normalize`` (both | weight) are the placement
    and options of the norm's converter (see :func:`nbn_tutorial.nn.norms.apply_norm`).
    """
    spec = MODEL_REGISTRY.get(name)
    norm_layer = backbone_norm_layer(norm)
    make_head = HEAD_REGISTRY.get(head)
    if num_classes < 1 or in_channels < 1:
        raise UserError(f"num_classes and in_channels must be positive, got {num_classes} and {in_channels}")
    backbone, feature_dim = spec.build(in_channels, norm_layer)
    model = LTClassifier(backbone, make_head(feature_dim, num_classes), name, num_classes, feature_dim)
    if spec.init is not None:
        model.apply(spec.init)
    apply_norm(model, norm, where=nbn_where, share_alpha=share_alpha, alpha_init=alpha_init, normalize=nbn_normalize)
    return model
