"""Long-tailed classification losses: settings of one formula, and RIDE's losses over several experts.

Every built-in single-model loss is a (class-weighted, optionally focal) cross-entropy on transformed
logits (RIDE's ``ride`` and ``ride-router`` apply it per expert, see :mod:`~nbn_tutorial.losses.ride`)::

    z = s · (logits + offset − margin_y · onehot(y))
    ℓ_i = (1 − p_{i,y})^γ · (−log p_{i,y}),   p_i = softmax(z_i)
    loss = Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}          (w = 1 when unweighted: the plain mean)

The weighted mean is PyTorch's ``cross_entropy(weight=...)`` convention, which LDAM-DRW's reference
code uses for DRW and class-balanced re-weighting.

===================  ================================================================================
name                 setting
===================  ================================================================================
ce                   all defaults
balanced-softmax     offset = log n_j
logit-adjustment     offset = τ · log π_j (π = class prior n_j / Σ n); predictions use raw logits
ldam-drw             margin m_j ∝ n_j^(−1/4) with max ``ldam_max_m``, s = ``ldam_s``, cosine head;
                     w = 1 before epoch ``drw_epoch`` (0-based), class-balanced (β = ``cb_beta``) after
focal                γ = ``focal_gamma``
cb-ce, cb-focal      class-balanced w (Cui et al.) with CE / focal, from the first epoch
===================  ================================================================================

Class-balanced weights are w_j = (1 − β)/(1 − β^{n_j}), rescaled to sum to C.

Post-hoc logit adjustment (Menon et al.) is for models trained with plain CE: ``build_loss("ce", counts,
posthoc_tau=τ)`` makes ``adjust_logits`` return logits − τ · log π at inference (see
:func:`posthoc_logit_adjust`). Losses that already correct for the prior while training refuse it.

- :mod:`~nbn_tutorial.losses.priors`: per-class quantities from the training counts;
- :mod:`~nbn_tutorial.losses.ltloss`: ``LTLoss``, the module computing the formula above;
- :mod:`~nbn_tutorial.losses.ride`: RIDE's diversity loss over experts and its router loss (``ride``,
  ``ride-router``; they read the model's per-expert logits);
- :mod:`~nbn_tutorial.losses.options`: ``LossOptions``, the losses' hyper-parameters (one typed class);
- :mod:`~nbn_tutorial.losses.build`: the loss registry (``@register_loss("name")``) and ``build_loss``.
"""
from nbn_tutorial.losses.build import (
    LOSS_REGISTRY,
    LOSSES,
    LossBuilder,
    LossSettings,
    LossSpec,
    build_loss,
    register_loss,
)
from nbn_tutorial.losses.ltloss import LTLoss
from nbn_tutorial.losses.options import LossOptions
from nbn_tutorial.losses.ride import RIDELoss, RouterLoss, diversity_weights, expert_help_targets
from nbn_tutorial.losses.priors import (
    Counts,
    class_balanced_weights,
    ldam_margins,
    log_prior,
    posthoc_logit_adjust,
)

__all__ = [
    "LOSSES",
    "LOSS_REGISTRY",
    "Counts",
    "LTLoss",
    "RIDELoss",
    "RouterLoss",
    "diversity_weights",
    "expert_help_targets",
    "LossBuilder",
    "LossOptions",
    "LossSettings",
    "LossSpec",
    "build_loss",
    "class_balanced_weights",
    "ldam_margins",
    "log_prior",
    "posthoc_logit_adjust",
    "register_loss",
]
