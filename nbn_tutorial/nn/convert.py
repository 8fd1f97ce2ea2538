"""Replacing a model's BatchNorm2d layers in place: the generic mechanism and the NBN and CBN converters on top.

:func:`replace_batchnorms` is the one way a normalization takes over BatchNorm2d layers: it selects the
layers with a placement, builds each replacement, hands it the BN's γ, β and running statistics (the
same objects, or the layer's own transfer) and swaps the submodule. :func:`convert_to_nbn` and
:func:`convert_to_cbn` are NBN's and Compound BN's uses of it.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn.compound import CompoundBatchNorm2d, compound_layers
from nbn_tutorial.nn.nbn import NORMALIZE_OPTIONS, SHARED_ALPHA_NAME, NormalizedBatchNorm2d, nbn_layers
from nbn_tutorial.nn.placement import Where, alpha_groups, select_batchnorms
from nbn_tutorial.registry import check_choice

ALPHA_INITS: tuple[str, ...] = ("official", "unit-gamma")

LayerBuilder = Callable[[str, nn.BatchNorm2d], nn.Module]
StateTransfer = Callable[[_BatchNorm, nn.Module], None]


def move_batchnorm_state(source: _BatchNorm, target: _BatchNorm) -> None:
    """Make ``target`` use ``source``'s γ, β Parameters and running-stat buffers (same objects)."""
    with torch.no_grad():
        target.weight = source.weight
        target.bias = source.bias
    target.running_mean = source.running_mean
    target.running_var = source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.train(source.training)


def _replace_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, new)


def replace_batchnorms(model: nn.Module, where: Where, build: LayerBuilder,
                       transfer: StateTransfer = move_batchnorm_state) -> list[tuple[str, nn.Module]]:
    """Replace the BatchNorm2d layers chosen by ``where`` with ``build(name, bn)``, in place; returns them.

    ``transfer(bn, layer)`` then hands the old layer's state to the new one: by default its γ, β and
    running statistics (the same Parameter and buffer objects, see :func:`move_batchnorm_state`) and its
    train/eval mode; a layer whose state has other shapes (Compound BN) passes its own. ``where`` is a
    registered placement name or a predicate ``callable(name, module) -> bool``; selecting nothing is a UserError.
    """
    replaced = []
    for name, bn in select_batchnorms(model, where):
        layer = build(name, bn)
        transfer(bn, layer)
        _replace_submodule(model, name, layer)
        replaced.append((name, layer))
    return replaced


def _alpha_values(alpha_init: str | float, layers: list[tuple[str, nn.BatchNorm2d]], share_alpha: bool) -> list[float]:
    """Initial α of each selected layer."""
    if isinstance(alpha_init, (int, float)) and not isinstance(alpha_init, bool):
        return [float(alpha_init)] * len(layers)
    check_choice("alpha_init", alpha_init, ALPHA_INITS, alternative="a number")
    if alpha_init == "official":
        return [1.0] * len(layers)
    channels = sorted({module.num_features for _, module in layers})
    if share_alpha and len(channels) > 1:
        raise UserError(f"alpha_init='unit-gamma' sets α = √C, but the layers sharing α have different channel "
                        f"counts {channels}; use share_alpha=False or a numeric alpha_init")
    return [math.sqrt(module.num_features) for _, module in layers]


def _alpha_owners(model: nn.Module, selected: list[tuple[str, nn.Module]]) -> dict[str, nn.Module]:
    """The module that owns each selected layer's shared α: its group (expert), or the model itself."""
    groups = [(prefix, part) for prefix, part in alpha_groups(model) if prefix]
    return {name: next((part for prefix, part in groups if name.startswith(prefix + ".")), model)
            for name, _ in selected}


def convert_to_nbn(model: nn.Module, where: Where = "official", share_alpha: bool = True,
                   alpha_init: str | float = "official",
                   normalize: str = "both") -> list[tuple[str, NormalizedBatchNorm2d]]:
    """Replace selected BatchNorm2d layers of ``model`` by NormalizedBatchNorm2d, in place; returns them.

    ``where``:

    - ``"official"``: what the official NBN code normalises. One generic rule for ResNet-style models:
      in the last stage (the highest-numbered ``layerN``) only, the last BN of each block's residual
      branch and any BN in the block's ``downsample``/``shortcut``. Torchvision ResNet-50/ResNeXt-50:
      ``layer4.{0,1,2}.bn3`` and ``layer4.0.downsample.1`` (4 layers). ResNet-32 has no official NBN
      model; the same rule gives the project's analogue ``layer3.{0..4}.bn2`` (5 layers; its option-A
      shortcuts have no BN).
    - ``"last-stage"``: every BatchNorm2d of the last stage; ``"all"``: every BatchNorm2d;
      or a predicate ``callable(name, module) -> bool`` called on each BatchNorm2d.

    ``share_alpha=True`` creates ONE α registered on ``model`` as ``model.nbn_alpha`` (so it appears once
    in ``parameters()`` and the state dict); otherwise each layer owns an α named ``alpha``. A multi-expert
    model (``nbn_groups()``, see :func:`~nbn_tutorial.nn.placement.alpha_groups`) gets one shared α per
    expert, registered on the expert (``experts.0.nbn_alpha``, ...), over the layers ``where`` selects in it.
    ``alpha_init``: ``"official"`` = 1.0 (the official code); ``"unit-gamma"`` = √C (C = the layer's
    channels), so a fresh layer (γ = 1, β = 0) computes what a fresh BN does — with a shared α all
    selected layers must then have the same C; or a number.
    ``normalize``: ``"both"`` (the official formulation) or ``"weight"`` (only γ is normalised; β stays a
    plain BN bias, an ablation).

    γ, β (same Parameter objects) and the running statistics are kept. A model that already has NBN
    layers is refused, so converting twice cannot stack normalisations.
    """
    if nbn_layers(model):
        raise UserError("the model already has NBN layers; call convert_to_nbn once, on a model with plain "
                        "BatchNorm2d layers")
    check_choice("NBN normalize option", normalize, NORMALIZE_OPTIONS)
    selected = select_batchnorms(model, where)
    affine_free = [name for name, module in selected if not module.affine]
    if affine_free:
        raise UserError(f"NBN needs affine BatchNorm layers (γ, β), but {', '.join(affine_free)} have affine=False")
    owners = _alpha_owners(model, selected)
    initial_alpha = {}
    for owner in dict.fromkeys(owners.values()):   # one α per group, initialised from the group's first layer
        layers = [(name, module) for name, module in selected if owners[name] is owner]
        initial_alpha.update(zip((name for name, _ in layers), _alpha_values(alpha_init, layers, share_alpha)))
        if share_alpha:
            reference = layers[0][1].weight
            owner.register_parameter(SHARED_ALPHA_NAME, nn.Parameter(
                torch.tensor(initial_alpha[layers[0][0]], device=reference.device, dtype=reference.dtype)))

    def build(name: str, bn: nn.BatchNorm2d) -> NormalizedBatchNorm2d:
        layer = NormalizedBatchNorm2d(bn.num_features, bn.eps, bn.momentum, alpha=initial_alpha[name],
                                      track_running_stats=bn.track_running_stats,
                                      device=bn.weight.device, dtype=bn.weight.dtype,
                                      normalize_bias=normalize == "both")
        if share_alpha:
            layer.use_shared_alpha(owners[name], SHARED_ALPHA_NAME)
        return layer

    # The selection is already made (and checked): replace exactly those layers.
    return replace_batchnorms(model, lambda name, _: name in initial_alpha, build)


def convert_to_cbn(model: nn.Module, where: Where = "official", components: int = 2, shared_affine: bool = False,
                   temperature: float = 1.0, init: str = "split",
                   init_spread: float = 0.5) -> list[tuple[str, CompoundBatchNorm2d]]:
    """Replace selected BatchNorm2d layers of ``model`` by CompoundBatchNorm2d, in place; returns them.

    ``where`` takes NBN's placements (``"official"``, ``"last-stage"``, ``"all"`` or a predicate, see
    :func:`convert_to_nbn`); which layers the paper replaces is not known. Each new layer has
    ``components`` Gaussian components and keeps the BN's momentum and eps; its γ, β and running
    statistics start as copies of the BN's in every component (:meth:`CompoundBatchNorm2d.adopt_batchnorm`).
    ``shared_affine``, ``temperature``, ``init`` and ``init_spread`` are the layer's options.
    A model that already has CBN layers is refused.
    """
    if compound_layers(model):
        raise UserError("the model already has Compound BN layers; call convert_to_cbn once, on a model with plain "
                        "BatchNorm2d layers")
    selected = select_batchnorms(model, where)
    unsupported = [name for name, module in selected if not (module.affine and module.track_running_stats)]
    if unsupported:
        raise UserError(f"CBN needs affine BatchNorm layers with running statistics, but {', '.join(unsupported)} "
                        "lack them")
    names = {name for name, _ in selected}

    def build(name: str, bn: nn.BatchNorm2d) -> CompoundBatchNorm2d:
        return CompoundBatchNorm2d(bn.num_features, components, bn.momentum, bn.eps, shared_affine=shared_affine,
                                   temperature=temperature, init=init, init_spread=init_spread,
                                   device=bn.weight.device, dtype=bn.weight.dtype)

    return replace_batchnorms(model, lambda name, _: name in names, build,
                              transfer=lambda bn, layer: layer.adopt_batchnorm(bn))
