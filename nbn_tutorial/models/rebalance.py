"""Re-balancing a trained classifier (Kang et al., ICLR 2020): its heads, re-initialisation, LWS scales, τ-norm.

- :func:`classifier_heads`: the classifier head(s) of a model (one, or one per RIDE expert);
- :func:`reset_classifier`: re-initialise them (cRT; PyTorch's default init of a linear map, as
  classifier-balancing's re-trained classifier);
- :func:`add_class_scales`: learnable weight scaling (LWS): one scale per class multiplying the head's
  logits (its weight and bias rows), initialised to 1 so the model computes exactly what it did;
- :func:`tau_normalize`: τ-normalisation, w_c ← w_c / ‖w_c‖^τ for every class weight vector (the bias
  is kept; classifier-balancing's script uses weights only); τ = 0 changes nothing, τ = 1 gives every
  class a unit-norm weight. Cosine heads normalise their weights already, so τ does not apply to them.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.models.classifier import CLASS_SCALES


def classifier_heads(model: nn.Module) -> list[nn.Module]:
    """The model's classifier head modules (``classifier_slots()``: one head, or one per expert)."""
    slots = getattr(model, "classifier_slots", None)
    if not callable(slots):
        raise UserError(f"{type(model).__name__} does not name its classifier heads (classifier_slots); build it with "
                        "nbn_tutorial.models.build_model")
    return [getattr(owner, attribute) for owner, attribute in slots()]


def reset_classifier(model: nn.Module) -> None:
    """Re-initialise every classifier head in place (each submodule's ``reset_parameters``)."""
    for head in classifier_heads(model):
        for module in head.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        scales = getattr(head, CLASS_SCALES, None)
        if scales is not None:
            with torch.no_grad():
                scales.fill_(1.0)


def _scale_logits(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
    return output * getattr(module, CLASS_SCALES).to(output.dtype)


def add_class_scales(model: nn.Module) -> list[nn.Parameter]:
    """LWS: give every classifier head a learnable scale per class (``class_scales``, all 1) multiplying its logits.

    The scales are registered on the head (state-dict key ``head.class_scales``) and applied by a forward
    hook, so the head's own parameters keep their names and a stage-1 checkpoint loads unchanged.
    """
    added = []
    for head in classifier_heads(model):
        if hasattr(head, CLASS_SCALES):
            raise UserError("the classifier already has learned class scales (LWS); add them once")
        reference = next(head.parameters())
        num_classes = model.num_classes
        head.register_parameter(CLASS_SCALES, nn.Parameter(torch.ones(num_classes, device=reference.device,
                                                                      dtype=reference.dtype)))
        head.register_forward_hook(_scale_logits)
        added.append(getattr(head, CLASS_SCALES))
    return added


def class_weight_layer(head: nn.Module) -> nn.Linear:
    """The linear map whose rows are a head's class weight vectors (the head, or its ``fc``); UserError otherwise."""
    layer = head if isinstance(head, nn.Linear) else getattr(head, "fc", None)
    if not isinstance(layer, nn.Linear):
        raise UserError(f"τ-normalisation rescales the class weights of a linear classifier, but this model's head is "
                        f"{type(head).__name__}, which normalises its class weights already (cosine) or has none")
    return layer


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        raise UserError(f"τ must be a finite number (classifier-balancing searches 0..2), got {tau!r}")
    return float(tau)


def _divide_by_norm_power(layer: nn.Linear, tau: float) -> None:
    """w_c ← w_c / ‖w_c‖^τ for every row in place (a zero row stays zero)."""
    with torch.no_grad():
        norms = torch.linalg.vector_norm(layer.weight, dim=1, keepdim=True)
        layer.weight.div_(torch.where(norms > 0, norms.pow(tau), torch.ones_like(norms)))


@contextlib.contextmanager
def tau_normalized(model: nn.Module, tau: float) -> Iterator[nn.Module]:
    """The model itself with its class weights τ-normalised for the duration of the block, restored exactly after."""
    tau = _check_tau(tau)
    layers = [class_weight_layer(head) for head in classifier_heads(model)]
    originals = [layer.weight.detach().clone() for layer in layers]
    try:
        for layer in layers:
            _divide_by_norm_power(layer, tau)
        yield model
    finally:
        with torch.no_grad():
            for layer, original in zip(layers, originals):
                layer.weight.copy_(original)


def tau_normalize(model: nn.Module, tau: float) -> nn.Module:
    """A copy of ``model`` whose class weight vectors are divided by their norm to the power τ (bias kept).

    τ = 0 leaves the logits unchanged; larger τ shrinks the (large) weights of frequent classes more than
    the (small) weights of rare ones, the post-hoc correction of Kang et al.; ``model`` is not changed.
    """
    tau = _check_tau(tau)
    normalized = copy.deepcopy(model)
    for head in classifier_heads(normalized):
        _divide_by_norm_power(class_weight_layer(head), tau)
    return normalized
