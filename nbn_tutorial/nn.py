"""Normalizing Batch Normalization (NBN) layers, the NBN converters, and the classifier heads.

NBN keeps a BatchNorm layer's γ (``.weight``) and β (``.bias``) but uses them only through their
directions: the affine map is w = γ/(‖γ‖₂+ε)·α and b = β/(‖β‖₂+ε)·α with one learnable scalar α, which
may be shared by several layers. Everything else is standard batch normalisation.
"""
from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules._functions import SyncBatchNorm as _sync_batch_norm_function
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.errors import UserError

WHERE_OPTIONS: tuple[str, ...] = ("official", "last-stage", "all")
ALPHA_INITS: tuple[str, ...] = ("official", "unit-gamma")
SHARED_ALPHA_NAME = "nbn_alpha"
NORM_EPS = 1e-6

_STAGE_NAME = re.compile(r"layer(\d+)")
_SHORTCUT_NAMES = ("downsample", "shortcut")

Where = str | Callable[[str, nn.Module], bool]


def normalized_affine(gamma: Tensor, beta: Tensor, alpha: Tensor, eps: float = NORM_EPS) -> tuple[Tensor, Tensor]:
    """NBN's affine parameters w = γ/(‖γ‖₂+eps)·α and b = β/(‖β‖₂+eps)·α, computed in float32 (or float64)."""
    # Under bf16/fp16 autocast or in a half model, the norm over thousands of channels would lose
    # precision: compute in at least fp32, outside autocast.
    dtype = torch.promote_types(gamma.dtype, torch.float32)
    device_type = gamma.device.type
    no_autocast = (torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type)
                   else contextlib.nullcontext())
    with no_autocast:
        gamma, beta, alpha = gamma.to(dtype), beta.to(dtype), alpha.to(dtype)
        weight = gamma / (torch.linalg.vector_norm(gamma) + eps) * alpha
        bias = beta / (torch.linalg.vector_norm(beta) + eps) * alpha
    return weight, bias


@dataclass(eq=False, repr=False)
class _SharedAlphaRef:
    """Unregistered pointer to an α Parameter registered on an owner module (so α is owned exactly once).

    It names the owner and the attribute instead of holding the Parameter itself, so the layer always
    reads the live Parameter, even after ``load_state_dict(assign=True)`` or ``to_empty`` replace it.
    Deep copies stay consistent because ``copy.deepcopy`` maps the owner to its copy.
    """

    owner: nn.Module
    name: str

    def get(self) -> nn.Parameter:
        """The shared α Parameter."""
        return getattr(self.owner, self.name)


class NormalizedAffineMixin:
    """The NBN logic, written once for :class:`NormalizedBatchNorm2d` and :class:`NormalizedSyncBatchNorm`."""

    _shared_alpha: _SharedAlphaRef | None

    def _init_alpha(self, alpha: float | nn.Parameter) -> None:
        """Register the layer's own α (a float becomes a new scalar Parameter)."""
        if not isinstance(alpha, nn.Parameter):
            alpha = nn.Parameter(torch.tensor(float(alpha), device=self.weight.device, dtype=self.weight.dtype))
        self._shared_alpha = None
        # register_parameter refuses the name because the `alpha` property below exists on the class.
        self._parameters["alpha"] = alpha

    @property
    def alpha(self) -> nn.Parameter:
        """The α Parameter this layer uses (its own, or the shared one)."""
        ref = self._shared_alpha
        return ref.get() if ref is not None else self._parameters["alpha"]

    @property
    def alpha_is_shared(self) -> bool:
        """True if α is owned by another module (see :meth:`use_shared_alpha`)."""
        return self._shared_alpha is not None

    def use_shared_alpha(self, owner: nn.Module, name: str = SHARED_ALPHA_NAME) -> None:
        """Drop this layer's own α and use the Parameter registered as ``owner.<name>`` instead."""
        if not isinstance(getattr(owner, name, None), nn.Parameter):
            raise ValueError(f"the owner module has no Parameter named {name!r} to share")
        self._parameters.pop("alpha", None)
        self._shared_alpha = _SharedAlphaRef(owner, name)

    def normalized_weight_bias(self) -> tuple[Tensor, Tensor]:
        """The affine parameters actually applied: :func:`normalized_affine` of γ, β, α, in γ's dtype."""
        weight, bias = normalized_affine(self.weight, self.bias, self.alpha)
        return weight.to(self.weight.dtype), bias.to(self.weight.dtype)

    def _batch_norm_arguments(self) -> tuple[Tensor | None, Tensor | None, bool, float]:
        """Running stats to pass, whether to use batch stats, and the momentum; as ``_BatchNorm.forward``."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_buffers = not self.training or self.track_running_stats
        return (self.running_mean if use_buffers else None, self.running_var if use_buffers else None,
                bn_training, factor)

    def forward(self, input: Tensor) -> Tensor:
        """Batch-normalise ``input`` with the normalised affine parameters."""
        self._check_input_dim(input)
        running_mean, running_var, bn_training, factor = self._batch_norm_arguments()
        weight, bias = self.normalized_weight_bias()
        return self._normalize(input, weight, bias, running_mean, running_var, bn_training, factor)

    def _normalize(self, input: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor | None,
                   running_var: Tensor | None, bn_training: bool, factor: float) -> Tensor:
        return F.batch_norm(input, running_mean, running_var, weight, bias, bn_training, factor, self.eps)

    def extra_repr(self) -> str:
        owner = f"shared {self._shared_alpha.name}" if self._shared_alpha is not None else "own"
        return f"{super().extra_repr()}, alpha={owner}"


class NormalizedBatchNorm2d(NormalizedAffineMixin, nn.BatchNorm2d):
    """BatchNorm2d whose affine map is γ/(‖γ‖₂+1e-6)·α and β/(‖β‖₂+1e-6)·α (γ = .weight, β = .bias).

    The state-dict keys of γ, β and the running statistics are those of ``nn.BatchNorm2d``; an owned α
    adds the key ``alpha`` (a shared α lives on its owner, e.g. ``model.nbn_alpha``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 alpha: float | nn.Parameter = 1.0, track_running_stats: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(num_features, eps, momentum, affine=True, track_running_stats=track_running_stats,
                         device=device, dtype=dtype)
        self._init_alpha(alpha)


class NormalizedSyncBatchNorm(NormalizedAffineMixin, nn.SyncBatchNorm):
    """SyncBatchNorm with NBN's normalised affine map; build it with :func:`convert_sync_batchnorm`."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 alpha: float | nn.Parameter = 1.0, track_running_stats: bool = True, process_group=None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(num_features, eps, momentum, affine=True, track_running_stats=track_running_stats,
                         process_group=process_group, device=device, dtype=dtype)
        self._init_alpha(alpha)

    def _normalize(self, input: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor | None,
                   running_var: Tensor | None, bn_training: bool, factor: float) -> Tensor:
        self._check_non_zero_input_channels(input)
        process_group, world_size = self._sync_group(input, bn_training)
        if world_size <= 1:
            return super()._normalize(input, weight, bias, running_mean, running_var, bn_training, factor)
        return _sync_batch_norm_function.apply(input, weight, bias, running_mean, running_var, self.eps,
                                               factor, process_group, world_size)

    def _sync_group(self, input: Tensor, bn_training: bool) -> tuple[object, int]:
        """Process group and world size to synchronise over; world size 1 means plain batch norm."""
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not (bn_training and self.training and distributed):
            return None, 1
        if input.device.type not in ("cuda", "hpu", "xpu", torch._C._get_privateuse1_backend_name()):
            raise ValueError("SyncBatchNorm expected input tensor to be on GPU or XPU")
        process_group = self.process_group or torch.distributed.group.WORLD
        return process_group, torch.distributed.get_world_size(process_group)


def _move_batchnorm_state(source: _BatchNorm, target: _BatchNorm) -> None:
    """Make ``target`` use ``source``'s γ, β Parameters and running-stat buffers (same objects)."""
    with torch.no_grad():
        target.weight = source.weight
        target.bias = source.bias
    target.running_mean = source.running_mean
    target.running_var = source.running_var
    target.num_batches_tracked = source.num_batches_tracked
    target.train(source.training)


def _share_alpha_like(source: NormalizedAffineMixin, target: NormalizedAffineMixin) -> None:
    """Give ``target`` the same α as ``source``: the same shared reference or the same owned Parameter."""
    if source.alpha_is_shared:
        target.use_shared_alpha(source._shared_alpha.owner, source._shared_alpha.name)
    else:
        target._parameters["alpha"] = source.alpha


def convert_sync_batchnorm(model: nn.Module, process_group=None) -> nn.Module:
    """NBN-aware ``nn.SyncBatchNorm.convert_sync_batchnorm``: NBN layers become NormalizedSyncBatchNorm.

    Torch's converter rebuilds every ``_BatchNorm`` subclass as a plain SyncBatchNorm, silently dropping
    NBN's normalisation and α. Here NBN layers keep γ, β, running statistics and their α (same
    Parameter, same ownership); other BatchNorm layers go through torch's converter. Like torch's, it
    converts in place and returns ``model`` (or the new layer if ``model`` itself is a BatchNorm).
    """
    if isinstance(model, NormalizedSyncBatchNorm):
        return model
    if isinstance(model, NormalizedBatchNorm2d):
        sync = NormalizedSyncBatchNorm(model.num_features, model.eps, model.momentum,
                                       track_running_stats=model.track_running_stats, process_group=process_group,
                                       device=model.weight.device, dtype=model.weight.dtype)
        _move_batchnorm_state(model, sync)
        _share_alpha_like(model, sync)
        return sync
    if isinstance(model, _BatchNorm):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
    for name, child in model.named_children():
        model.add_module(name, convert_sync_batchnorm(child, process_group))
    return model


def nbn_layers(model: nn.Module) -> list[tuple[str, NormalizedAffineMixin]]:
    """Every NBN layer of ``model`` (NormalizedBatchNorm2d or NormalizedSyncBatchNorm) with its name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, NormalizedAffineMixin)]


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The distinct α Parameters used by ``model``'s NBN layers, in layer order."""
    distinct: dict[int, nn.Parameter] = {}
    for _, layer in nbn_layers(model):
        distinct.setdefault(id(layer.alpha), layer.alpha)
    return list(distinct.values())


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


def _is_shortcut_bn(relative_name: str) -> bool:
    return any(part in _SHORTCUT_NAMES for part in relative_name.split("."))


def _official_names(model: nn.Module) -> set[str]:
    """Last stage only: the last BN of each block's residual branch, and every shortcut (downsample) BN."""
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


def _last_stage_names(model: nn.Module) -> set[str]:
    stage_name, stage = find_last_stage(model)
    return {f"{stage_name}.{name}" for name, module in stage.named_modules() if isinstance(module, nn.BatchNorm2d)}


def _select_batchnorms(model: nn.Module, where: Where) -> list[tuple[str, nn.BatchNorm2d]]:
    """The BatchNorm2d layers of ``model`` chosen by ``where``, in model order."""
    candidates = [(name, module) for name, module in model.named_modules()
                  if isinstance(module, nn.BatchNorm2d) and name]
    if callable(where):
        return [(name, module) for name, module in candidates if where(name, module)]
    if where == "all":
        return candidates
    if where == "official":
        chosen = _official_names(model)
    elif where == "last-stage":
        chosen = _last_stage_names(model)
    else:
        raise UserError(f"unknown NBN placement where={where!r}; valid: {', '.join(WHERE_OPTIONS)} or a "
                        "callable(name, module) -> bool")
    return [(name, module) for name, module in candidates if name in chosen]


def _alpha_value(alpha_init: str | float, layers: list[tuple[str, nn.BatchNorm2d]], share_alpha: bool) -> list[float]:
    """Initial α of each selected layer."""
    if isinstance(alpha_init, (int, float)) and not isinstance(alpha_init, bool):
        return [float(alpha_init)] * len(layers)
    if alpha_init == "official":
        return [1.0] * len(layers)
    if alpha_init != "unit-gamma":
        raise UserError(f"unknown alpha_init={alpha_init!r}; valid: {', '.join(ALPHA_INITS)} or a number")
    channels = sorted({module.num_features for _, module in layers})
    if share_alpha and len(channels) > 1:
        raise UserError(f"alpha_init='unit-gamma' sets α = √C, but the layers sharing α have different channel "
                        f"counts {channels}; use share_alpha=False or a numeric alpha_init")
    return [math.sqrt(module.num_features) for _, module in layers]


def _replace_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, new)


def convert_to_nbn(model: nn.Module, where: Where = "official", share_alpha: bool = True,
                   alpha_init: str | float = "official") -> list[tuple[str, NormalizedBatchNorm2d]]:
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
    in ``parameters()`` and the state dict); otherwise each layer owns an α named ``alpha``.
    ``alpha_init``: ``"official"`` = 1.0 (the official code); ``"unit-gamma"`` = √C (C = the layer's
    channels), so a fresh layer (γ = 1, β = 0) computes what a fresh BN does — with a shared α all
    selected layers must then have the same C; or a number.

    γ, β (same Parameter objects) and the running statistics are kept. A model that already has NBN
    layers is refused, so converting twice cannot stack normalisations.
    """
    if nbn_layers(model):
        raise UserError("the model already has NBN layers; call convert_to_nbn once, on a model with plain "
                        "BatchNorm2d layers")
    selected = _select_batchnorms(model, where)
    if not selected:
        raise UserError(f"where={where!r} selects no BatchNorm2d layer of this model; choose another placement")
    affine_free = [name for name, module in selected if not module.affine]
    if affine_free:
        raise UserError(f"NBN needs affine BatchNorm layers (γ, β), but {', '.join(affine_free)} have affine=False")
    alphas = _alpha_value(alpha_init, selected, share_alpha)
    if share_alpha:
        reference = selected[0][1].weight
        model.register_parameter(SHARED_ALPHA_NAME, nn.Parameter(
            torch.tensor(alphas[0], device=reference.device, dtype=reference.dtype)))
    converted = []
    for (name, bn), alpha in zip(selected, alphas):
        layer = NormalizedBatchNorm2d(bn.num_features, bn.eps, bn.momentum, alpha=alpha,
                                      track_running_stats=bn.track_running_stats,
                                      device=bn.weight.device, dtype=bn.weight.dtype)
        _move_batchnorm_state(bn, layer)
        if share_alpha:
            layer.use_shared_alpha(model, SHARED_ALPHA_NAME)
        _replace_submodule(model, name, layer)
        converted.append((name, layer))
    return converted


class LogitRectificationHead(nn.Module):
    """The official ``Linear_fcbn_notaffine`` head: Linear(in, C), then a non-affine BatchNorm1d over logits."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.bn = nn.BatchNorm1d(num_classes, affine=False)

    def forward(self, features: Tensor) -> Tensor:
        """Rectified logits [N, C]."""
        return self.bn(self.fc(features))

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, in]."""
        return self.fc.weight


class NormedLinear(nn.Module):
    """Cosine classifier of LDAM-DRW: normalize(x, dim=1) @ normalize(W, dim=0), with W of shape [in, C]."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, num_classes))
        # LDAM-DRW's init: uniform(-1, 1), then each class column rescaled to unit norm.
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, features: Tensor) -> Tensor:
        """Cosine similarities [N, C] between features and class weights."""
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=0)

    def classifier_weight(self) -> Tensor:
        """Class weight vectors [C, in]."""
        return self.weight.t()
