"""Long-tailed losses, each against its formula written out here on small tensors."""
import math
import re

import numpy as np
import pytest
import torch

from nbn_tutorial.errors import UserError
from nbn_tutorial.losses import (LOSS_REGISTRY, LOSSES, build_loss, class_balanced_weights, ldam_margins,
                                 posthoc_logit_adjust)

COUNTS = [100, 20, 5]
LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-0.5, 1.5, 0.7], [0.0, -0.2, 0.4]])
TARGETS = torch.tensor([0, 1, 2, 2])


def cross_entropy_by_hand(logits, targets, weights=None, gamma=0.0):
    """(Σ w_y (1 − p_y)^γ (−log p_y)) / Σ w_y with plain Python math."""
    total, norm = 0.0, 0.0
    for row, y in zip(logits.tolist(), targets.tolist()):
        log_p = row[y] - math.log(sum(math.exp(v) for v in row))
        w = 1.0 if weights is None else weights[y]
        total += w * (1 - math.exp(log_p)) ** gamma * -log_p
        norm += w
    return total / norm


def cb_weights_by_hand(counts, beta):
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    return [w / sum(raw) * len(counts) for w in raw]


def test_two_class_cross_entropy_by_hand():
    loss = build_loss("ce", [3, 1])
    # logits (1, 2), target 0: −log(e/(e + e²)) = log(1 + e)
    assert loss(torch.tensor([[1.0, 2.0]]), torch.tensor([0])).item() == pytest.approx(math.log(1 + math.e), rel=1e-6)


def test_cross_entropy():
    loss = build_loss("ce", COUNTS)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(cross_entropy_by_hand(LOGITS, TARGETS), rel=1e-6)
    assert torch.equal(loss.adjust_logits(LOGITS), LOGITS) and loss.requires_cosine_head is False


def test_balanced_softmax_adds_log_counts():
    loss = build_loss("balanced-softmax", COUNTS)
    shifted = LOGITS + torch.tensor([math.log(n) for n in COUNTS])
    assert loss(LOGITS, TARGETS).item() == pytest.approx(cross_entropy_by_hand(shifted, TARGETS), rel=1e-6)
    assert torch.equal(loss.adjust_logits(LOGITS), LOGITS)


def test_logit_adjustment_loss_adds_scaled_log_prior():
    loss = build_loss("logit-adjustment", COUNTS, tau=0.5)
    shifted = LOGITS + torch.tensor([0.5 * math.log(n / sum(COUNTS)) for n in COUNTS])
    assert loss(LOGITS, TARGETS).item() == pytest.approx(cross_entropy_by_hand(shifted, TARGETS), rel=1e-6)
    assert torch.equal(loss.adjust_logits(LOGITS), LOGITS)  # the loss form predicts with raw logits


def test_posthoc_logit_adjustment_subtracts_scaled_log_prior():
    expected = LOGITS - torch.tensor([1.5 * math.log(n / sum(COUNTS)) for n in COUNTS])
    assert torch.allclose(posthoc_logit_adjust(LOGITS, COUNTS, tau=1.5), expected, atol=1e-6)
    loss = build_loss("ce", COUNTS, posthoc_tau=1.5)
    assert torch.allclose(loss.adjust_logits(LOGITS), expected, atol=1e-6)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(cross_entropy_by_hand(LOGITS, TARGETS), rel=1e-6)
    with pytest.raises(UserError, match="trained with 'ce'"):
        build_loss("balanced-softmax", COUNTS, posthoc_tau=1.0)


def test_ldam_margins_scale_with_inverse_fourth_root():
    margins = ldam_margins(COUNTS, 0.5)
    raw = [n ** -0.25 for n in COUNTS]
    assert margins.tolist() == pytest.approx([0.5 * r / max(raw) for r in raw], rel=1e-6)
    assert margins.max().item() == pytest.approx(0.5)


def test_class_balanced_weights_formula_and_sum():
    weights = class_balanced_weights(COUNTS, 0.9)
    assert weights.tolist() == pytest.approx(cb_weights_by_hand(COUNTS, 0.9), rel=1e-6)
    assert weights.sum().item() == pytest.approx(len(COUNTS))
    assert class_balanced_weights([500, 50, 5, 1], 0.9999).sum().item() == pytest.approx(4.0)


def ldam_by_hand(logits, targets, margins, s, weights=None):
    """LDAM-DRW reference semantics: subtract m_y at the target, then scale every logit by s."""
    shifted = logits.clone()
    for i, y in enumerate(targets.tolist()):
        shifted[i, y] -= margins[y]
    return cross_entropy_by_hand(s * shifted, targets, weights)


def test_ldam_drw_defers_class_balanced_weights_until_drw_epoch():
    loss = build_loss("ldam-drw", COUNTS, drw_epoch=3, cb_beta=0.99)
    assert loss.requires_cosine_head is True
    cosines = LOGITS / 3  # cosine-head outputs lie in [−1, 1]
    margins = [0.5 * n ** -0.25 / 5 ** -0.25 for n in COUNTS]
    unweighted = ldam_by_hand(cosines, TARGETS, margins, 30.0)
    weighted = ldam_by_hand(cosines, TARGETS, margins, 30.0, cb_weights_by_hand(COUNTS, 0.99))
    assert unweighted != pytest.approx(weighted, rel=1e-3)
    assert loss(cosines, TARGETS).item() == pytest.approx(unweighted, rel=1e-5)
    for epoch, expected in [(2, unweighted), (3, weighted), (10, weighted), (0, unweighted)]:
        loss.set_epoch(epoch)
        assert loss(cosines, TARGETS).item() == pytest.approx(expected, rel=1e-5), epoch


def test_ldam_uses_configured_margin_and_scale():
    loss = build_loss("ldam-drw", COUNTS, ldam_max_m=0.3, ldam_s=10.0)
    margins = [0.3 * n ** -0.25 / 5 ** -0.25 for n in COUNTS]
    expected = ldam_by_hand(LOGITS / 3, TARGETS, margins, 10.0)
    assert loss(LOGITS / 3, TARGETS).item() == pytest.approx(expected, rel=1e-5)


def test_focal_loss():
    loss = build_loss("focal", COUNTS, focal_gamma=2.0)
    expected = cross_entropy_by_hand(LOGITS, TARGETS, gamma=2.0)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-6)
    assert expected < cross_entropy_by_hand(LOGITS, TARGETS)


@pytest.mark.parametrize("name, gamma", [("cb-ce", 0.0), ("cb-focal", 1.5)])
def test_class_balanced_losses_weight_from_the_start(name, gamma):
    loss = build_loss(name, COUNTS, focal_gamma=1.5, cb_beta=0.99)
    expected = cross_entropy_by_hand(LOGITS, TARGETS, cb_weights_by_hand(COUNTS, 0.99), gamma)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-5)
    loss.set_epoch(5)
    assert loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-5)


def model_outputs(name: str, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The extra model outputs the loss needs (RIDE's), derived from ``logits`` so that gradients reach it."""
    needs = LOSS_REGISTRY.get(name).needs_outputs
    extras = {}
    if "expert_logits" in needs:
        extras["expert_logits"] = torch.stack([logits, 0.5 * logits + 0.1, logits.flip(1)])
    if "router_logits" in needs:
        extras["router_logits"] = logits[:, :2]
    assert set(extras) == set(needs), f"the test does not know how to make {needs}"
    return extras


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_gives_gradients_and_accepts_counts_as_array(name):
    logits = LOGITS.clone().requires_grad_()
    build_loss(name, np.array(COUNTS))(logits, TARGETS, **model_outputs(name, logits)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_bad_inputs_raise_user_errors():
    with pytest.raises(UserError, match=re.escape("unknown loss 'ldam' (did you mean 'ldam-drw'?); valid: "
                                                  + ", ".join(LOSSES))):
        build_loss("ldam", COUNTS)
    with pytest.raises(UserError, match="classes \\[1\\] have none"):
        build_loss("balanced-softmax", [10, 0, 3])
    with pytest.raises(UserError, match="cb_beta"):
        build_loss("cb-ce", COUNTS, cb_beta=1.0)
    with pytest.raises(UserError, match="focal_gamma"):
        build_loss("focal", COUNTS, focal_gamma=-1.0)
    with pytest.raises(UserError, match="non-empty"):
        build_loss("ce", [])
