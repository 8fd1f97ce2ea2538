"""The model registry: models by name, added with :func:`register_backbone` or :func:`register_classifier`.

Most models are a backbone (images -> features) under one head: :func:`register_backbone` registers the
backbone and ``build_model`` assembles the classifier. A model that assembles its own classifier (several
experts, each with its own later stages and head: RIDE) is registered with :func:`register_classifier`,
naming the build options it takes (``num_experts``) and the extra training outputs its forward returns
beside the logits (``expert_logits``; see :mod:`nbn_tutorial.models.outputs`). The options a run config
carries for a model are one typed class (``options=``, RIDE's :class:`~nbn_tutorial.models.ride.RIDEOptions`);
:func:`model_kwargs` reads them from a config.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from nbn_tutorial.nn.norms import NormLayer
from nbn_tutorial.options import option_values
from nbn_tutorial.registry import Registry
from nbn_tutorial.nn.heads import HEAD_REGISTRY
from nbn_tutorial.models.classifier import LTClassifier

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
    settings: type | None = None   # a backbone takes no build options, so a run config carries none for it

    @property
    def options(self) -> dict[str, Any]:
        """Build options and their defaults: none."""
        return {}

    def outputs(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Extra training outputs beside the logits: none."""
        return ()

    def assemble(self, name: str, num_classes: int, in_channels: int, norm_layer: NormLayer, head: str) -> nn.Module:
        """The backbone under the registered head ``head``, as an LTClassifier, with ``init`` applied."""
        backbone, feature_dim = self.build(in_channels, norm_layer)
        model = LTClassifier(backbone, HEAD_REGISTRY.get(head)(feature_dim, num_classes), name, num_classes,
                             feature_dim)
        if self.init is not None:
            model.apply(self.init)
        return model


ClassifierBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ClassifierSpec:
    """A registered model that assembles its whole classifier.

    ``build(num_classes, in_channels, norm_layer, head, **options)`` returns the model (``head`` is a
    registered head name; the options are its keyword-only arguments); ``settings`` is the typed class of the
    options a run config carries; ``training_outputs`` (options -> names) tells which extra outputs its
    training-mode forward returns beside the logits.
    """

    build: ClassifierBuilder
    settings: type | None = None
    training_outputs: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda options: ()

    @property
    def options(self) -> dict[str, Any]:
        """Every build option (a keyword-only argument of ``build``) with its default."""
        return {name: parameter.default for name, parameter in inspect.signature(self.build).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY}

    def outputs(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Extra training outputs beside the logits, for these build options."""
        return tuple(self.training_outputs({**self.options, **options}))

    def assemble(self, name: str, num_classes: int, in_channels: int, norm_layer: NormLayer, head: str,
                 **options: Any) -> nn.Module:
        """The whole classifier, built with the default options updated by ``options``."""
        return self.build(num_classes, in_channels, norm_layer, head, **{**self.options, **options})


ModelSpec = BackboneSpec | ClassifierSpec
MODEL_REGISTRY: Registry[ModelSpec] = Registry("model")


def register_backbone(name: str, *, init: ModuleInit | None = None) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator registering a backbone builder as the model ``name`` (see :class:`BackboneSpec`)."""
    def add(build: BackboneBuilder) -> BackboneBuilder:
        MODEL_REGISTRY.register(name, BackboneSpec(build, init))
        return build

    return add


def register_classifier(name: str, *, options: type | None = None,
                        outputs: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None,
                        ) -> Callable[[ClassifierBuilder], ClassifierBuilder]:
    """Decorator registering a whole-classifier builder as the model ``name`` (see :class:`ClassifierSpec`);
    ``options`` is the typed class of the options a run config carries for it."""
    def add(build: ClassifierBuilder) -> ClassifierBuilder:
        MODEL_REGISTRY.register(name, ClassifierSpec(build, options, outputs or (lambda values: ())))
        return build

    return add


def model_options() -> dict[str, Any]:
    """Every build option some registered model takes, with its default."""
    found: dict[str, Any] = {}
    for name in MODEL_REGISTRY:
        found.update({key: value for key, value in MODEL_REGISTRY.get(name).options.items() if key not in found})
    return found


def model_kwargs(name: str, source: Any) -> dict[str, Any]:
    """The build options of model ``name`` that a run config carries, read from ``source`` (a config)."""
    settings = MODEL_REGISTRY.get(name).settings
    return option_values(settings, source) if settings is not None else {}
