"""Which BatchNorm2d layers of a model a normalization replaces: named placements and predicates.

A placement is a name registered in :data:`PLACEMENT_REGISTRY` (a rule ``model -> set of layer names``)
or a predicate ``callable(name, module) -> bool``. The named rules work on ResNet-style models, whose
stages are submodules named ``layer1``, ``layer2``, ...

A multi-expert model (RIDE) names its experts with ``nbn_groups()`` (``[(name, module), ...]``): a
placement then applies within each expert (the shared early stages keep plain BN), and NBN gives each
expert its own α (:func:`alpha_groups`). A part may name the rule its official code uses for
``"official"`` with the attribute ``official_nbn_placement`` (RIDE-NBN: every BN of each expert's last stage).
"""
from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import Registry, check_choice

Where = str | Callable[[str, nn.Module], bool]
PlacementRule = Callable[[nn.Module], set[str]]

PLACEMENT_REGISTRY: Registry[PlacementRule] = Registry("placement")

_STAGE_NAME = re.compile(r"layer(\d+)")
_SHORTCUT_NAMES = ("downsample", "shortcut")
_PREDICATE = "a callable(name, module) -> bool"


def find_last_stage(model: nn.Module) -> tuple[str, nn.Module]:
    """The highest-numbered ResNet stage of ``model`` (a submodule named ``layerN``) and its name."""
    stages = [(int(match.group(1)), name, module) for name, module in model.named_modules()
              if (match := _STAGE_NAME.fullmatch(name.rsplit(".", 1)[-1]))]
    if not stages:
        raise UserError("the model has no ResNet stages (submodules named layer1, layer2, ...), so "
                        "where='official' and 'last-stage' do not apply; use where='all' or a predicate")
    last = max(number for number, _, _ in stages)
    candidates = [(name, module) for number, name, module in stages if number == last]
    if len(candidates) > 1:
        names = ", ".join(name for name, _ in candidates)
        raise UserError(f"the model has several last stages ({names}); select layers with a predicate instead")
    return candidates[0]


def _batchnorms(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """Every BatchNorm2d below ``model`` (not ``model`` itself), in model order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, nn.BatchNorm2d) and name]


def _is_shortcut_bn(relative_name: str) -> bool:
    return any(part in _SHORTCUT_NAMES for part in relative_name.split("."))


@PLACEMENT_REGISTRY.register("official")
def _official_names(model: nn.Module) -> set[str]:
    """Last stage only: the last BN of each block's residual branch, and every shortcut (downsample) BN.

    A model (or expert) whose official NBN code uses another rule names it in ``official_nbn_placement``.
    """
    alias = getattr(model, "official_nbn_placement", None)
    if alias is not None and alias != "official":
        return PLACEMENT_REGISTRY.get(alias)(model)
    stage_name, stage = find_last_stage(model)
    selected = set()
    for block_name, block in stage.named_children():
        prefix = f"{stage_name}.{block_name}."
        residual = []
        for name, module in block.named_modules():
            if not isinstance(module, nn.BatchNorm2d):
                continue
            if _is_shortcut_bn(name):
                selected.add(prefix + name)
            else:
                residual.append(prefix + name)
        if residual:  # registration order: bn1, bn2, (bn3) — the last is the one before the addition
            selected.add(residual[-1])
    return selected


@PLACEMENT_REGISTRY.register("last-stage")
def _last_stage_names(model: nn.Module) -> set[str]:
    """Every BatchNorm2d of the last stage."""
    stage_name, stage = find_last_stage(model)
    return {f"{stage_name}.{name}" for name, module in stage.named_modules() if isinstance(module, nn.BatchNorm2d)}


@PLACEMENT_REGISTRY.register("all")
def _all_names(model: nn.Module) -> set[str]:
    """Every BatchNorm2d of the model."""
    return {name for name, _ in _batchnorms(model)}


WHERE_OPTIONS: tuple[str, ...] = PLACEMENT_REGISTRY.names()


def alpha_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The parts of ``model`` that each get a placement of their own and their own shared NBN α: the model's
    ``nbn_groups()`` where it defines them (one per expert of a RIDE model), else the whole model (name "")."""
    groups = getattr(model, "nbn_groups", None)
    return list(groups()) if callable(groups) else [("", model)]


def _prefixed(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def select_batchnorms(model: nn.Module, where: Where) -> list[tuple[str, nn.BatchNorm2d]]:
    """The BatchNorm2d layers of ``model`` chosen by ``where``, in model order; a UserError if none is.

    In a model with :func:`alpha_groups` the rule applies within each group; a predicate sees full names.
    """
    if not callable(where):
        check_choice("placement", where, PLACEMENT_REGISTRY.names(), alternative=_PREDICATE)
    selected = []
    for prefix, part in alpha_groups(model):
        candidates = [(_prefixed(prefix, name), module) for name, module in _batchnorms(part)]
        if callable(where):
            selected += [(name, module) for name, module in candidates if where(name, module)]
        else:
            chosen = {_prefixed(prefix, name) for name in PLACEMENT_REGISTRY.get(where)(part)}
            selected += [(name, module) for name, module in candidates if name in chosen]
    if not selected:
        raise UserError(f"where={where!r} selects no BatchNorm2d layer of this model; choose another placement")
    return selected
