"""``build_model``: a registered backbone, a registered head and a registered norm, assembled into a classifier."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models import cifar_resnet, ride, torchvision_resnets  # noqa: F401  (registers the built-in models)
from nbn_tutorial.models.registry import MODEL_REGISTRY
from nbn_tutorial.nn.heads import HEAD_REGISTRY
from nbn_tutorial.nn.norms import apply_norm, backbone_norm_layer
from nbn_tutorial.nn.placement import Where

MODELS: tuple[str, ...] = MODEL_REGISTRY.names()
LEGACY_NORM_KEYWORDS = {"alpha_init": "alpha_init", "share_alpha": "share_alpha", "nbn_normalize": "normalize"}


def build_model(name: str, num_classes: int, norm: str = "bn", head: str = "linear", in_channels: int = 3,
                norm_where: Where = "official", norm_kwargs: Mapping[str, Any] | None = None,
                **model_options: Any) -> nn.Module:
    """Build a classifier: the registered model ``name`` under the registered ``head``, with the norm ``norm``.

    ``resnet32`` follows LDAM-DRW, including Kaiming-normal init of every conv and linear layer (the head's
    too). The torchvision backbones keep torchvision's init; their head keeps PyTorch's default init.
    A converting norm (``"nbn"``, ``"cbn"``) replaces the BN layers ``norm_where`` selects, with its converter's
    ``norm_kwargs`` (as timm's: ``{"alpha_init": "unit-gamma", "share_alpha": False}`` for NBN, ``{"components":
    3}`` for CBN; see :func:`nbn_tutorial.nn.norms.apply_norm`; a run config's come from
    :func:`nbn_tutorial.nn.norms.norm_kwargs`). ``model_options`` are the model's own build options
    (``num_experts=3`` for ``ride_resnet32``); a model built from a backbone takes none. RIDE models apply
    the norm within each expert (one α per expert). The keywords of old (``nbn_where``, ``alpha_init``,
    ``share_alpha``, ``nbn_normalize``, ``norm_options``) are still read, with a DeprecationWarning.
    """
    norm_where, norm_kwargs, model_options = _legacy_keywords(norm_where, norm_kwargs, model_options)
    spec = MODEL_REGISTRY.get(name)
    norm_layer = backbone_norm_layer(norm)
    HEAD_REGISTRY.get(head)  # an unknown head is a UserError before anything is built
    if num_classes < 1 or in_channels < 1:
        raise UserError(f"num_classes and in_channels must be positive, got {num_classes} and {in_channels}")
    unknown = sorted(set(model_options) - set(spec.options))
    if unknown:
        takes = f"takes only {', '.join(spec.options)}" if spec.options else "takes no build options"
        raise UserError(f"model {name!r} {takes}, not {unknown[0]!r}")
    model = spec.assemble(name, num_classes, in_channels, norm_layer, head, **model_options)
    apply_norm(model, norm, where=norm_where, **dict(norm_kwargs or {}))
    return model


def _legacy_keywords(norm_where: Where, norm_kwargs: Mapping[str, Any] | None,
                     model_options: dict[str, Any]) -> tuple[Where, dict[str, Any], dict[str, Any]]:
    """build_model's keywords before issue 18 (nbn_where, alpha_init, share_alpha, nbn_normalize, norm_options)
    read as norm_where and norm_kwargs, with a DeprecationWarning; returns (norm_where, norm_kwargs, the rest)."""
    legacy = [key for key in model_options if key in ("nbn_where", "norm_options", *LEGACY_NORM_KEYWORDS)]
    kwargs, rest = dict(norm_kwargs or {}), {k: v for k, v in model_options.items() if k not in legacy}
    if legacy:
        warnings.warn(f"build_model's {', '.join(legacy)} keyword(s) are read as norm_where and norm_kwargs "
                      "(their names since the norms' options were typed)", DeprecationWarning, stacklevel=3)
    kwargs.update(model_options.get("norm_options") or {})
    kwargs.update({LEGACY_NORM_KEYWORDS[key]: model_options[key] for key in legacy if key in LEGACY_NORM_KEYWORDS})
    return model_options.get("nbn_where", norm_where), kwargs, rest
