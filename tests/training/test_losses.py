"""Losses against values computed by hand or with plain ``math`` on tiny inputs."""
import math

import pytest
import torch

from dali_cmo.training.losses import (BalancedSoftmaxLoss, CrossEntropy, DeferredReweighting, LDAMLoss,
                             SoftTargetCrossEntropy, build_loss, drw_class_weights, mixed_loss)
from dali_cmo.data.targets import soft_targets


def ce_by_hand(values, target):
    """-log softmax(values)[target] with plain math."""
    return math.log(sum(math.exp(v) for v in values)) - values[target]


LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], dtype=torch.float64)
TARGET = torch.tensor([2, 0])


def test_cross_entropy_per_sample():
    loss = CrossEntropy()(LOGITS, TARGET)
    assert loss.shape == (2,)
    # ln(e + e^2 + e^3) - 3 = ln(1 + e^-1 + e^-2)
    assert loss[0].item() == pytest.approx(math.log(1 + math.exp(-1) + math.exp(-2)), abs=1e-12)
    assert loss[1].item() == pytest.approx(ce_by_hand([0.5, -1.0, 0.0], 0), abs=1e-12)


def test_cross_entropy_class_weights_scale_each_sample_and_can_be_cleared():
    ce = CrossEntropy()
    ce.set_class_weights([0.5, 1.0, 2.0])
    weighted = ce(LOGITS, TARGET)
    assert weighted[0].item() == pytest.approx(2.0 * ce_by_hand([1, 2, 3], 2), abs=1e-6)
    assert weighted[1].item() == pytest.approx(0.5 * ce_by_hand([0.5, -1.0, 0.0], 0), abs=1e-6)
    ce.set_class_weights(None)
    assert ce(LOGITS, TARGET)[0].item() == pytest.approx(ce_by_hand([1, 2, 3], 2), abs=1e-12)


def test_balanced_softmax_zero_logits_is_minus_log_prior():
    # prior = (0.6, 0.3, 0.1); with z = 0 the adjusted softmax is the prior itself.
    bs = BalancedSoftmaxLoss([60, 30, 10])
    assert bs.log_prior.tolist() == pytest.approx([math.log(0.6), math.log(0.3), math.log(0.1)])
    loss = bs(torch.zeros(3, 3, dtype=torch.float64), torch.tensor([0, 1, 2]))
    assert loss.tolist() == pytest.approx([-math.log(0.6), -math.log(0.3), -math.log(0.1)],
                                          abs=1e-6)


def test_balanced_softmax_adds_log_prior():
    loss = BalancedSoftmaxLoss([60, 30, 10])(LOGITS, TARGET)
    adjusted = [1 + math.log(0.6), 2 + math.log(0.3), 3 + math.log(0.1)]
    assert loss[0].item() == pytest.approx(ce_by_hand(adjusted, 2), abs=1e-6)


def test_ldam_margins_and_value():
    # n^(-1/4) for n = 1, 16, 81 is 1, 1/2, 1/3; scaled so the largest is 0.5.
    ldam = LDAMLoss([1, 16, 81], max_margin=0.5, scale=30.0)
    assert ldam.margins.tolist() == pytest.approx([0.5, 0.25, 1 / 6], abs=1e-7)
    logits = torch.tensor([[0.2, 0.1, -0.3]], dtype=torch.float64)
    # target 1: 30 * (0.2, 0.1 - 0.25, -0.3) = (6, -4.5, -9)
    loss = ldam(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(ce_by_hand([6.0, -4.5, -9.0], 1), abs=1e-5)
    ldam.set_class_weights([1.0, 3.0, 1.0])
    assert ldam(logits, torch.tensor([1])).item() == pytest.approx(
        3 * ce_by_hand([6.0, -4.5, -9.0], 1), abs=1e-4)


def test_mixed_loss_is_lam_weighted_mean():
    def pick(logits, target):  # a "loss" whose value is the target's logit
        return logits[torch.arange(len(target)), target]

    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    lam = torch.tensor([0.25, 1.0])
    # (0.25 * 1 + 0.75 * 2 + 1.0 * 6 + 0.0 * 4) / 2
    value = mixed_loss(pick, logits, torch.tensor([0, 2]), torch.tensor([1, 0]), lam)
    assert value.item() == pytest.approx(3.875)
    assert mixed_loss(pick, logits, torch.tensor([0, 2]), torch.tensor([1, 0]), 0.5).item() == \
        pytest.approx((0.5 * 1 + 0.5 * 2 + 0.5 * 6 + 0.5 * 4) / 2)


def test_soft_targets_with_smoothing():
    # C = 4, smoothing 0.1: off = 0.025, on = 0.925
    t = soft_targets(torch.tensor([1]), torch.tensor([3]), torch.tensor([0.6]), 4, smoothing=0.1)
    assert t[0].tolist() == pytest.approx([0.025, 0.6 * 0.925 + 0.4 * 0.025, 0.025,
                                           0.6 * 0.025 + 0.4 * 0.925])
    assert t.sum().item() == pytest.approx(1.0)


def test_soft_target_ce_equals_mixed_loss_for_ce_and_bs_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y_b, y_f = torch.tensor([0, 1, 2, 3, 4, 0]), torch.tensor([4, 4, 0, 1, 1, 2])
    lam = torch.tensor([1.0, 0.8, 0.5, 0.3, 0.0, 0.9])
    soft = soft_targets(y_b, y_f, lam, 5).double()
    soft_ce = SoftTargetCrossEntropy()
    assert soft_ce(logits, soft).mean().item() == pytest.approx(
        mixed_loss(CrossEntropy(), logits, y_b, y_f, lam).item(), abs=1e-12)
    bs = BalancedSoftmaxLoss([100, 50, 20, 5, 1])
    assert soft_ce(logits + bs.log_prior.double(), soft).mean().item() == pytest.approx(
        mixed_loss(bs, logits, y_b, y_f, lam).item(), abs=1e-6)
    # Class-weighted CE depends on the label: soft targets are not the same loss.
    weighted = CrossEntropy()
    weighted.set_class_weights(drw_class_weights([100, 50, 20, 5, 1]))
    assert abs(soft_ce(logits, soft).mean().item()
               - mixed_loss(weighted, logits, y_b, y_f, lam).item()) > 1e-3


def test_drw_class_weights_by_hand():
    # beta 0.5, n = (1, 2): (0.5 / 0.5, 0.5 / 0.75) = (1, 2/3), rescaled to sum 2: (1.2, 0.8)
    assert drw_class_weights([1, 2], beta=0.5).tolist() == pytest.approx([1.2, 0.8])
    assert drw_class_weights([5, 500], beta=0.0).tolist() == pytest.approx([1.0, 1.0])
    w = drw_class_weights([5000, 500, 50, 5])
    assert w.sum().item() == pytest.approx(4.0)
    assert w.tolist() == sorted(w.tolist())  # rarer classes weigh more


def test_deferred_reweighting_switches_at_epoch():
    drw = DeferredReweighting([1, 2], switch_epoch=3, beta=0.5)
    assert drw.weights(0) is None and drw.weights(2) is None
    assert drw.weights(3).tolist() == pytest.approx([1.2, 0.8])
    assert drw.weights(199).tolist() == pytest.approx([1.2, 0.8])


def test_build_loss_names_and_errors():
    assert isinstance(build_loss("ce", [3, 2]), CrossEntropy)
    assert isinstance(build_loss("bs", [3, 2]), BalancedSoftmaxLoss)
    assert isinstance(build_loss("ldam", [3, 2]), LDAMLoss)
    with pytest.raises(ValueError, match="loss.*ce, bs, ldam"):
        build_loss("focal", [3, 2])
    with pytest.raises(ValueError, match="class_counts"):
        build_loss("bs", [3, 0])
