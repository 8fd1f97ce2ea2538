"""The model registry: backbone builders by name, added with the :func:`register_backbone` decorator."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nbn_tutorial.nn.norms import NormLayer
from nbn_tutorial.registry import Registry

BackboneBuilder = Callable[[int, NormLayer], tuple[nn.Module, int]]
ModuleInit = Callable[[nn.Module], None]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered model: ``build(in_channels, norm_layer) -> (backbone, feature_dim)`` and an optional init.

    The backbone maps images to penultimate features [N, feature_dim]; ``init``, if given, is applied
    with ``Module.apply`` to the whole classifier (head included) right after it is assembled.
    """

    build: BackboneBuilder
    init: ModuleInit | None = None


MODEL_REGISTRY: Registry[BackboneSpec] = Registry("model")


def register_backbone(name: str, *, init: ModuleInit | None = None) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator registering a backbone builder as the model ``name`` (see :class:`BackboneSpec`)."""
    def add(build: BackboneBuilder) -> BackboneBuilder:
        MODEL_REGISTRY.register(name, BackboneSpec(build, init))
        return build

    return add
