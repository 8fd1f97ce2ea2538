"""Normalizing Batch Normalization (NBN) layers: the normalised affine map and the layers that apply it.

NBN keeps a BatchNorm layer's γ (``.weight``) and β (``.bias``) but uses them only through their
directions: the affine map is w = γ/(‖γ‖₂+ε)·α and b = β/(‖β‖₂+ε)·α with one learnable scalar α, which
may be shared by several layers. Everything else is standard batch normalisation.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules._functions import SyncBatchNorm as _sync_batch_norm_function

SHARED_ALPHA_NAME = "nbn_alpha"
NORM_EPS = 1e-6
NORMALIZE_OPTIONS = ("both", "weight")


def normalized_affine(gamma: Tensor, beta: Tensor, alpha: Tensor, eps: float = NORM_EPS,
                      normalize_bias: bool = True) -> tuple[Tensor, Tensor]:
    """NBN's affine parameters w = γ/(‖γ‖₂+eps)·α and b = β/(‖β‖₂+eps)·α, computed in float32 (or float64).

    ``normalize_bias=False`` is the weight-only variant: b = β, a plain BN bias.
    """
    # Under bf16/fp16 autocast or in a half model, the norm over thousands of channels would lose
    # precision: compute in at least fp32, outside autocast.
    dtype = torch.promote_types(gamma.dtype, torch.float32)
    device_type = gamma.device.type
    no_autocast = (torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type)
                   else contextlib.nullcontext())
    with no_autocast:
        gamma, beta, alpha = gamma.to(dtype), beta.to(dtype), alpha.to(dtype)
        weight = gamma / (torch.linalg.vector_norm(gamma) + eps) * alpha
        bias = beta / (torch.linalg.vector_norm(beta) + eps) * alpha if normalize_bias else beta
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
    normalize_bias: bool

    def _init_alpha(self, alpha: float | nn.Parameter, normalize_bias: bool = True) -> None:
        """Register the layer's own α (a float becomes a new scalar Parameter); set what is normalised."""
        self.normalize_bias = bool(normalize_bias)
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

    def use_alpha_of(self, other: NormalizedAffineMixin) -> None:
        """Use the same α as ``other``: the same shared reference, or the same owned Parameter."""
        if other._shared_alpha is not None:
            self.use_shared_alpha(other._shared_alpha.owner, other._shared_alpha.name)
        else:
            self._shared_alpha = None
            self._parameters["alpha"] = other.alpha

    def normalized_weight_bias(self) -> tuple[Tensor, Tensor]:
        """The affine parameters actually applied: :func:`normalized_affine` of γ, β, α, in γ's dtype."""
        weight, bias = normalized_affine(self.weight, self.bias, self.alpha, normalize_bias=self.normalize_bias)
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
        normalized = "" if self.normalize_bias else ", normalize=weight"
        return f"{super().extra_repr()}, alpha={owner}{normalized}"


class NormalizedBatchNorm2d(NormalizedAffineMixin, nn.BatchNorm2d):
    """BatchNorm2d whose affine map is γ/(‖γ‖₂+1e-6)·α and β/(‖β‖₂+1e-6)·α (γ = .weight, β = .bias).

    The state-dict keys of γ, β and the running statistics are those of ``nn.BatchNorm2d``; an owned α
    adds the key ``alpha`` (a shared α lives on its owner, e.g. ``model.nbn_alpha``).
    ``normalize_bias=False`` keeps β as a plain BN bias (the weight-only ablation).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 alpha: float | nn.Parameter = 1.0, track_running_stats: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 normalize_bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine=True, track_running_stats=track_running_stats,
                         device=device, dtype=dtype)
        self._init_alpha(alpha, normalize_bias)


class NormalizedSyncBatchNorm(NormalizedAffineMixin, nn.SyncBatchNorm):
    """SyncBatchNorm with NBN's normalised affine map; build it with :func:`convert_sync_batchnorm`."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 alpha: float | nn.Parameter = 1.0, track_running_stats: bool = True, process_group=None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 normalize_bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine=True, track_running_stats=track_running_stats,
                         process_group=process_group, device=device, dtype=dtype)
        self._init_alpha(alpha, normalize_bias)

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


def nbn_layers(model: nn.Module) -> list[tuple[str, NormalizedAffineMixin]]:
    """Every NBN layer of ``model`` (NormalizedBatchNorm2d or NormalizedSyncBatchNorm) with its name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, NormalizedAffineMixin)]


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The distinct α Parameters used by ``model``'s NBN layers, in layer order."""
    distinct: dict[int, nn.Parameter] = {}
    for _, layer in nbn_layers(model):
        distinct.setdefault(id(layer.alpha), layer.alpha)
    return list(distinct.values())
