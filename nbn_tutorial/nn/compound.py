"""Compound Batch Normalization (CBN): a reconstruction of Cheng et al., ACM MM 2022, from its abstract.

What the paper says (its abstract, arXiv 2212.01007; the paper's full text, which arXiv holds, was not
available to the project, and the authors' code is not public, so the reconstruction works from the abstract): head
classes dominate both BN's statistics and its affine parameters, so the internal covariate shift of
rare classes is overlooked; CBN models the feature space with a Gaussian mixture whose parameters a
moving-average EM estimates; EM is sensitive to its initialisation and its components tend to settle on
head classes, which a dual-path framework with class-aware split normalisation counters (see
:mod:`nbn_tutorial.nn.class_split` and :mod:`nbn_tutorial.train.dual_path`).

What this layer reconstructs. Every choice marked (R) is ours, not the paper's, and is an argument:

- K diagonal Gaussians over the C channels: buffers ``running_mean``/``running_var`` [K, C] and the
  mixing weights ``mixing_weights`` [K]; affine ``weight``/``bias`` [K, C], or [1, C] with
  ``shared_affine=True`` (R: the switch).
- E-step (R): r_nk = softmax_k((log π_k + ℓ_nk) / T) with ℓ_nk the diagonal-Gaussian log-likelihood of
  sample n under the running component k, averaged over the H·W positions; ``temperature`` T; no
  gradient flows through r.
- Training output: per-component batch statistics weighted by r (μ̂_k, σ̂²_k over samples and
  positions), y_n = Σ_k r_nk (w_k ⊙ (x_n − μ̂_k)/√(σ̂²_k + eps) + b_k); gradients flow through μ̂, σ̂² as in BN.
- M-step (R): the running parameters move by online EM with the momentum m: π_k ← (1−m)π_k + m·π̂_k
  (π̂_k = the batch's share of component k) and μ_k, σ²_k move towards μ̂_k, σ̂²_k (unbiased, as BN)
  with the per-component step m·π̂_k / ((1−m)π_k + m·π̂_k), so a component absent from a batch keeps its
  parameters. ``momentum=None`` is BN's cumulative average.
- Eval: r from the running mixture and the running μ, σ² only, so a sample's output does not depend on
  the rest of the batch.
- K = 1 is ``nn.BatchNorm2d`` (outputs, gradients, running statistics).
- Inside :func:`~nbn_tutorial.nn.class_split` (training only, the dual path): normalisation by class
  group instead of by responsibility, and/or an M-step whose responsibilities are the class groups (R;
  see :class:`ClassSplit`).
- Symmetry breaking (R), ``init``: ``"split"`` (default) sets the components from the first training
  batch cut into K equal groups along its first principal direction (of the per-sample mean features,
  each channel standardised); ``"perturb"`` draws each component's running mean around BN's, μ_k =
  μ + ``init_spread``·√σ²·z_k with z_k ~ N(0, 1) (torch's global generator), with no data.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import check_choice, positive_int

COMPONENT_INITS: tuple[str, ...] = ("split", "perturb")
TINY_GROUP_RULES: tuple[str, ...] = ("running", "batch")
_TINY = 1e-12


@dataclass(frozen=True)
class ClassSplit:
    """What a CBN layer needs for class-aware split normalisation (set by :func:`~nbn_tutorial.nn.class_split`).

    ``groups``: the class group of each sample of the batch [N] (long); group k belongs to component k.
    ``normalize=True``: training batches are normalised by class group (component k's statistics are
    those of group k's samples); ``False``: by the mixture as usual, the groups only serving the update.
    ``update_running``: each group's statistics (of this pass's input) also move its component's running
    mean and variance, by the moving-average step of an M-step whose responsibilities are the groups.
    A group with fewer than ``min_group_size`` samples in the batch is normalised with its component's
    running statistics (``tiny_group="running"``) or with the whole batch's (``"batch"``), and does not
    update the running mixture.
    """

    groups: Tensor
    min_group_size: int = 4
    tiny_group: str = "running"
    update_running: bool = True
    normalize: bool = True


def _full_precision(device_type: str):
    """Autocast off inside the layer: its small matrix products and statistics stay in float32 or more."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def sample_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and biased variance over the positions of ``x`` [N, C, H, W] (float32+)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    mean = x.mean(dim=(2, 3))
    # Two passes: exact like var_mean, and on CPU about ten times faster than torch.var_mean over two dims.
    var = (x - mean[:, :, None, None]).square().mean(dim=(2, 3))
    return mean, var


def weighted_statistics(mean: Tensor, var: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-component batch mean and biased variance [K, C] and mass Σ_n r_nk [K] from per-sample moments.

    ``weights`` [N, K] weighs sample n for component k; the variance is the weighted mean of each
    sample's own variance plus its mean's squared distance (the law of total variance, no cancellation).
    """
    mass = weights.sum(0)
    safe = mass.clamp_min(_TINY)[:, None]
    component_mean = weights.t() @ mean / safe
    spread = (weights[:, :, None] * (mean[:, None, :] - component_mean[None]).square()).sum(0)
    component_var = (weights.t() @ var + spread) / safe
    return component_mean, component_var, mass


class CompoundBatchNorm2d(nn.Module):
    """Batch norm over a K-component Gaussian mixture of the features (see the module docstring).

    The state-dict keys are ``weight``, ``bias`` ([K, C], or [1, C] shared), ``running_mean``,
    ``running_var`` ([K, C]), ``mixing_weights`` ([K]) and ``num_batches_tracked``.
    """

    def __init__(self, num_features: int, num_components: int = 2, momentum: float | None = 0.1, eps: float = 1e-5,
                 *, shared_affine: bool = False, temperature: float = 1.0, init: str = "split",
                 init_spread: float = 0.5, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        _check_options(num_features, num_components, momentum, eps, temperature, init, init_spread)
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.num_components = int(num_features), int(num_components)
        self.momentum, self.eps, self.temperature = momentum, float(eps), float(temperature)
        self.shared_affine, self.init, self.init_spread = bool(shared_affine), init, float(init_spread)
        rows = 1 if shared_affine else self.num_components
        self.weight = nn.Parameter(torch.ones(rows, self.num_features, **factory))
        self.bias = nn.Parameter(torch.zeros(rows, self.num_features, **factory))
        self.register_buffer("running_mean", torch.zeros(self.num_components, self.num_features, **factory))
        self.register_buffer("running_var", torch.ones(self.num_components, self.num_features, **factory))
        self.register_buffer("mixing_weights", torch.full((self.num_components,), 1.0 / self.num_components,
                                                          **factory))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        self._split: ClassSplit | None = None
        self._awaiting_init = False
        self.reset_components()

    # -- set-up ------------------------------------------------------------------------------------

    def reset_components(self) -> None:
        """Break the symmetry between the components (``init``); K = 1 keeps BN's start exactly."""
        self._awaiting_init = False
        if self.num_components == 1:
            return
        if self.init == "split":
            self._awaiting_init = True
        else:
            with torch.no_grad():
                noise = torch.randn(self.running_mean.shape, device=self.running_mean.device)
                self.running_mean.add_(self.init_spread * self.running_var.sqrt() * noise.to(self.running_mean.dtype))

    def adopt_batchnorm(self, bn: _BatchNorm) -> None:
        """Start from a BatchNorm layer: its γ, β and running statistics copied into every component."""
        with torch.no_grad():
            self.weight.copy_(bn.weight.detach().expand_as(self.weight))
            self.bias.copy_(bn.bias.detach().expand_as(self.bias))
            self.running_mean.copy_(bn.running_mean.expand_as(self.running_mean))
            self.running_var.copy_(bn.running_var.expand_as(self.running_var))
            if self.num_components == 1:
                self.num_batches_tracked.copy_(bn.num_batches_tracked)
        self.reset_components()
        self.train(bn.training)

    def set_split(self, split: ClassSplit | None) -> None:
        """Normalise training batches by class groups (the auxiliary path) until called with None.

        The groups must lie in 0..K-1 (:func:`~nbn_tutorial.nn.class_split` checks them once per batch).
        """
        self._split = split

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # A loaded layer that has trained needs no initialisation from its next batch.
        self._awaiting_init = (self.init == "split" and self.num_components > 1
                               and int(self.num_batches_tracked) == 0)

    # -- the mixture -------------------------------------------------------------------------------

    @torch.no_grad()
    def _responsibilities(self, mean: Tensor, var: Tensor) -> Tensor:
        """r [N, K] from per-sample moments and the running mixture (no gradient)."""
        component_var = (self.running_var + self.eps).to(mean.dtype)
        distance = (var[:, None, :] + (mean[:, None, :] - self.running_mean.to(mean.dtype)[None]).square())
        log_likelihood = -0.5 * ((distance / component_var[None]).sum(-1) + component_var.log().sum(-1)[None]
                                 + self.num_features * math.log(2 * math.pi))
        log_prior = self.mixing_weights.to(mean.dtype).clamp_min(_TINY).log()[None]
        return torch.softmax((log_prior + log_likelihood) / self.temperature, dim=1)

    def responsibilities(self, input: Tensor) -> Tensor:
        """Each sample's responsibilities [N, K] under the running mixture (what eval mode mixes with)."""
        return self._responsibilities(*sample_moments(input.detach()))

    def _apply_mixture(self, input: Tensor, mean: Tensor, var: Tensor, weights: Tensor) -> Tensor:
        """y_n = Σ_k r_nk (w_k (x_n − μ_k)/√(σ²_k + eps) + b_k), as one per-sample scale and shift."""
        scale_k = self.weight.to(mean.dtype) * torch.rsqrt(var + self.eps)
        shift_k = self.bias.to(mean.dtype) - mean * scale_k
        scale, shift = weights @ scale_k, weights @ shift_k
        output = input.to(scale.dtype) * scale[:, :, None, None] + shift[:, :, None, None]
        return output.to(input.dtype)

    def _momentum_factor(self) -> float:
        """The moving-average factor of this training step (BN's rule, ``momentum=None`` cumulative)."""
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, mass: Tensor, positions: int, factor: float,
                        active: Tensor | None = None) -> None:
        """Moving-average EM step of π, μ, σ² towards the batch's weighted statistics (see module docstring)."""
        batch = mass.sum().clamp_min(_TINY)
        share = mass / batch
        prior = self.mixing_weights.to(mass.dtype)
        step = factor * share / ((1 - factor) * prior + factor * share).clamp_min(_TINY)
        if active is not None:
            step = step * active.to(step.dtype)
        count = mass * positions
        bessel = torch.where(count > 1, count / (count - 1).clamp_min(_TINY), torch.ones_like(count))
        dtype = self.running_mean.dtype
        self.running_mean.lerp_(mean.to(dtype), step[:, None].to(dtype))
        self.running_var.lerp_((var * bessel[:, None]).to(dtype), step[:, None].to(dtype))
        updated = prior.lerp(share, factor)
        self.mixing_weights.copy_((updated / updated.sum()).to(self.mixing_weights.dtype))

    @torch.no_grad()
    def _initialise_from_batch(self, mean: Tensor, var: Tensor, positions: int) -> None:
        """The ``"split"`` initialisation: K equal groups along the batch's first principal direction."""
        samples = mean.shape[0]
        if samples < self.num_components:
            return  # wait for a batch with a sample per component
        centred = mean - mean.mean(0)
        scaled = centred / centred.std(0, correction=0).clamp_min(self.eps)
        direction = torch.linalg.svd(scaled, full_matrices=False).Vh[0]
        order = (scaled @ direction).argsort()
        groups = torch.empty(samples, dtype=torch.long, device=mean.device)
        groups[order] = torch.arange(samples, device=mean.device) * self.num_components // samples
        component_mean, component_var, mass = weighted_statistics(
            mean, var, F.one_hot(groups, self.num_components).to(mean.dtype))
        count = (mass * positions)[:, None]
        if bool((count < 2).any()):
            return  # a component with a single observation has no variance: wait for a larger batch
        self.running_mean.copy_(component_mean)
        self.running_var.copy_(component_var * count / (count - 1).clamp_min(_TINY))
        self.mixing_weights.fill_(1.0 / self.num_components)
        self._awaiting_init = False

    # -- forward -----------------------------------------------------------------------------------

    def forward(self, input: Tensor) -> Tensor:
        """Normalise ``input`` [N, C, H, W]: by the mixture, or by class groups inside a class split."""
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")
        with _full_precision(input.device.type):
            return self._forward(input)

    def _forward(self, input: Tensor) -> Tensor:
        if not self.training:
            mean, var = sample_moments(input.detach())
            weights = self._responsibilities(mean, var)
            return self._apply_mixture(input, self.running_mean.to(mean.dtype), self.running_var.to(mean.dtype),
                                       weights)
        factor = self._momentum_factor()
        if self._split is not None and self._split.normalize:
            return self._split_forward(input, self._split, factor)
        return self._mixture_forward(input, factor, self._split)

    def _mixture_forward(self, input: Tensor, factor: float, split: ClassSplit | None = None) -> Tensor:
        mean, var = sample_moments(input)
        positions = input.shape[2] * input.shape[3]
        if self._awaiting_init:
            self._initialise_from_batch(mean.detach(), var.detach(), positions)
        weights = self._responsibilities(mean.detach(), var.detach())
        component_mean, component_var, mass = weighted_statistics(mean, var, weights)
        self._update_running(component_mean.detach(), component_var.detach(), mass, positions, factor)
        if split is not None and split.update_running:
            self._group_update(mean.detach(), var.detach(), split, positions, factor)
        return self._apply_mixture(input, component_mean, component_var, weights)

    def _group_statistics(self, mean: Tensor, var: Tensor, split: ClassSplit) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each class group's batch mean and variance [K, C], its sample count [K] and whether it is tiny [K]."""
        weights = F.one_hot(split.groups, self.num_components).to(mean.dtype)
        component_mean, component_var, mass = weighted_statistics(mean, var, weights)
        return component_mean, component_var, mass, mass < split.min_group_size

    def _group_update(self, mean: Tensor, var: Tensor, split: ClassSplit, positions: int, factor: float) -> None:
        """The class-group M-step on this pass's input: group k's statistics move component k (tiny groups skip)."""
        component_mean, component_var, mass, tiny = self._group_statistics(mean, var, split)
        self._update_running(component_mean, component_var, mass, positions, factor, active=~tiny)

    def _split_forward(self, input: Tensor, split: ClassSplit, factor: float) -> Tensor:
        """Class-aware split normalisation: component k's statistics are those of class group k's samples."""
        mean, var = sample_moments(input)
        positions = input.shape[2] * input.shape[3]
        weights = F.one_hot(split.groups, self.num_components).to(mean.dtype)
        component_mean, component_var, mass, tiny = self._group_statistics(mean, var, split)
        tiny = tiny[:, None]
        if split.tiny_group == "running":
            fallback_mean, fallback_var = self.running_mean.to(mean.dtype), self.running_var.to(mean.dtype)
        else:
            fallback_mean, fallback_var, _ = weighted_statistics(mean, var, torch.ones_like(weights[:, :1]))
        used_mean = torch.where(tiny, fallback_mean, component_mean)
        used_var = torch.where(tiny, fallback_var, component_var)
        if split.update_running:
            self._group_update(mean.detach(), var.detach(), split, positions, factor)
        return self._apply_mixture(input, used_mean, used_var, weights)

    def extra_repr(self) -> str:
        affine = "shared" if self.shared_affine else "per-component"
        return (f"{self.num_features}, components={self.num_components}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={affine}, temperature={self.temperature:g}, init={self.init}")


def _check_options(num_features: int, num_components: int, momentum: float | None, eps: float, temperature: float,
                   init: str, init_spread: float) -> None:
    """UserErrors for options a CBN layer cannot work with."""
    positive_int(num_components, "the number of CBN components")
    if num_features < 1:
        raise UserError(f"a CBN layer needs at least one channel, got {num_features}")
    if momentum is not None and not 0 < momentum <= 1:
        raise UserError(f"CBN momentum must lie in (0, 1] (or None for a cumulative average), got {momentum!r}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise UserError(f"the CBN temperature must be a number > 0, got {temperature!r}")
    if not (math.isfinite(eps) and eps > 0) or not (math.isfinite(init_spread) and init_spread >= 0):
        raise UserError(f"CBN eps must be > 0 and init_spread >= 0, got eps={eps!r}, init_spread={init_spread!r}")
    check_choice("CBN init", init, COMPONENT_INITS)


def compound_layers(model: nn.Module) -> list[tuple[str, CompoundBatchNorm2d]]:
    """Every CompoundBatchNorm2d of ``model`` with its name."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, CompoundBatchNorm2d)]
