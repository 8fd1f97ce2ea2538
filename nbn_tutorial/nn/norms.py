"""The normalization factory: norms by name ("bn", "nbn", "cbn"), as single layers and as applied to whole models.

In the style of torchvision's ``norm_layer`` argument and timm's ``create_norm_layer`` / ``norm_kwargs``: a
norm is registered once with :func:`register_norm` and then used by name everywhere. A norm has

- ``layer``: ``layer(num_features, **kwargs)`` builds one layer (what :func:`create_norm_layer` and the
  ``norm_layer`` callables of :func:`get_norm_layer` call);
- ``convert`` (optional): how :func:`apply_norm` (and so ``build_model``) applies it to a model built
  with plain BatchNorm2d, at a placement: ``convert(model, where=..., **norm_kwargs)`` replaces the selected
  layers in place (usually with :func:`~nbn_tutorial.nn.convert.replace_batchnorms`) and returns them.
  A norm without ``convert`` is built into the backbone directly, as its ``norm_layer`` (see
  :func:`backbone_norm_layer`);
- ``options`` (optional): the typed class of its options (:mod:`nbn_tutorial.nn.options`), whose fields a
  run config carries; :func:`norm_kwargs` reads them into the converter's keyword arguments.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from nbn_tutorial.nn.compound import CompoundBatchNorm2d
from nbn_tutorial.nn.convert import convert_to_cbn, convert_to_nbn
from nbn_tutorial.errors import UserError
from nbn_tutorial.nn.nbn import NormalizedBatchNorm2d
from nbn_tutorial.nn.options import CBNOptions, NBNOptions
from nbn_tutorial.nn.placement import Where
from nbn_tutorial.options import option_arguments
from nbn_tutorial.registry import Registry

NormLayer = Callable[[int], nn.Module]
NormConverter = Callable[..., list[tuple[str, nn.Module]]]


@dataclass(frozen=True)
class NormSpec:
    """One registered norm: its single-layer constructor and, optionally, its whole-model converter and the
    typed class of the options the converter takes."""

    layer: Callable[..., nn.Module]
    convert: NormConverter | None = None
    options: type | None = None


NORM_REGISTRY: Registry[NormSpec] = Registry("norm")


def register_norm(name: str, layer: Callable[..., nn.Module], convert: NormConverter | None = None,
                  options: type | None = None) -> NormSpec:
    """Register the norm ``name`` (see the module docstring for ``layer``, ``convert`` and ``options``)."""
    return NORM_REGISTRY.register(name, NormSpec(layer, convert, options))


register_norm("bn", nn.BatchNorm2d)
register_norm("nbn", NormalizedBatchNorm2d, convert=convert_to_nbn, options=NBNOptions)
register_norm("cbn", CompoundBatchNorm2d, convert=convert_to_cbn, options=CBNOptions)

NORMS: tuple[str, ...] = NORM_REGISTRY.names()


def create_norm_layer(name: str, num_features: int, **kwargs) -> nn.Module:
    """One layer of the norm ``name`` over ``num_features`` channels (``kwargs`` go to its constructor)."""
    return NORM_REGISTRY.get(name).layer(num_features, **kwargs)


def get_norm_layer(norm: str | NormLayer, **kwargs) -> NormLayer:
    """A ``norm_layer`` callable (channels -> module) for the norm named ``norm``; a callable is returned as is."""
    if callable(norm):
        return functools.partial(norm, **kwargs) if kwargs else norm
    layer = NORM_REGISTRY.get(norm).layer
    return functools.partial(layer, **kwargs) if kwargs else layer


def backbone_norm_layer(name: str) -> NormLayer:
    """The ``norm_layer`` to build a backbone with for the norm ``name``: BatchNorm2d if it converts afterwards."""
    spec = NORM_REGISTRY.get(name)
    return nn.BatchNorm2d if spec.convert is not None else spec.layer


def norm_kwargs(name: str, source: Any) -> dict[str, Any]:
    """The converter arguments of the norm ``name`` read from ``source`` (a run config): its options' fields."""
    spec = NORM_REGISTRY.get(name)
    return option_arguments(spec.options, source) if spec.options is not None else {}


def apply_norm(model: nn.Module, name: str, where: Where = "official", **kwargs) -> list[tuple[str, nn.Module]]:
    """Apply the norm ``name`` to a BN-built ``model`` in place at ``where``; returns the replaced layers.

    ``kwargs`` go to the norm's converter (for "nbn": ``share_alpha``, ``alpha_init``, ``normalize``; for "cbn":
    ``components``, ``shared_affine``, ``temperature``, ``init``, ``init_spread``); one it does not take is a
    UserError. A norm without a converter was built into the model directly, so nothing is replaced and
    ``where`` is unused (it takes no ``kwargs``).
    """
    spec = NORM_REGISTRY.get(name)
    _check_kwargs(name, spec.convert, kwargs)
    if spec.convert is None:
        return []
    return spec.convert(model, where=where, **kwargs)


def _check_kwargs(name: str, convert: NormConverter | None, kwargs: dict) -> None:
    """A UserError naming the first of ``kwargs`` that ``convert`` does not take (it may take ``**options``)."""
    parameters = inspect.signature(convert).parameters if convert is not None else {}
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    accepted = [key for key in parameters if key not in ("model", "where")]
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        takes = f"takes {', '.join(accepted)}" if accepted else "takes no options"
        raise UserError(f"norm {name!r} {takes}, not {unknown[0]!r}")
