"""Losses against values computed by hand, with plain ``math``, or with torch's own
``CrossEntropyLoss(weight=...)`` (what the reference code calls) on tiny inputs."""
import math

import pytest
import torch

from dali_cmo.training.losses import (BalancedSoftmaxLoss, CrossEntropy, DeferredReweighting,
                                     LDAMLoss, build_loss, drw_class_weights, mixed_loss,
                                     target_weights)
from dali_cmo.data.targets import soft_targets


def soft_ce(logits, target):
    """Per-sample cross entropy against soft targets, ``-sum_k t_k * log_softmax(z)_k``."""
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1)


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


COUNTS = [500, 100, 20, 5, 1]  # a long tail over 5 classes


def batch(n=12, seed=0):
    """Random logits (float64) and background / foreground labels for ``n`` samples."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, len(COUNTS), generator=g, dtype=torch.float64)
    y_b = torch.randint(0, len(COUNTS), (n,), generator=g)
    y_f = torch.randint(0, len(COUNTS), (n,), generator=g)
    return logits, y_b, y_f


def drw_ce():
    loss = CrossEntropy()
    loss.set_class_weights(drw_class_weights(COUNTS))
    return loss


def test_weighted_mixed_loss_equals_torch_cross_entropy_loss_with_weight():
    """The reference: criterion(out, y_b) * lam + criterion(out, y_f) * (1 - lam) with
    criterion = nn.CrossEntropyLoss(weight=w): each term is sum(w_i l_i) / sum(w_i)."""
    logits, y_b, y_f = batch()
    w = drw_class_weights(COUNTS).double()
    criterion = torch.nn.CrossEntropyLoss(weight=w)
    for lam in (0.3, 1.0):
        expected = criterion(logits, y_b) * lam + criterion(logits, y_f) * (1.0 - lam)
        value = mixed_loss(drw_ce(), logits, y_b, y_f, lam)
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
        # the per-batch lam of the reference, given as one value per sample
        per_sample = mixed_loss(drw_ce(), logits, y_b, y_f, torch.full((len(y_b),), lam))
        assert per_sample.item() == pytest.approx(expected.item(), rel=1e-6)
    # not the batch mean of the weighted losses (the two differ by the batch's mean weight)
    mean_form = (0.3 * drw_ce()(logits, y_b) + 0.7 * drw_ce()(logits, y_f)).mean()
    assert abs(mean_form.item() - mixed_loss(drw_ce(), logits, y_b, y_f, 0.3).item()) > 1e-3


def test_weighted_mixed_loss_gradient_equals_torch_cross_entropy_loss():
    logits, y_b, y_f = batch(seed=1)
    ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    criterion = torch.nn.CrossEntropyLoss(weight=drw_class_weights(COUNTS).double())
    mixed_loss(drw_ce(), ours, y_b, y_f, 0.6).backward()
    (criterion(theirs, y_b) * 0.6 + criterion(theirs, y_f) * 0.4).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-12)


def test_weighted_ldam_mixed_loss_equals_the_reference_formula():
    """LDAM-DRW: F.cross_entropy(s * (z - m_y onehot), y, weight=w) with its mean reduction."""
    logits, y_b, y_f = batch(seed=2)
    logits = torch.tanh(logits)  # cosines
    w = drw_class_weights(COUNTS).double()
    ldam = LDAMLoss(COUNTS)
    ldam.set_class_weights(w)
    margins = ldam.margins.double()

    def reference(target):
        onehot = torch.nn.functional.one_hot(target, len(COUNTS)).bool()
        shifted = torch.where(onehot, logits - margins[target].view(-1, 1), logits)
        return torch.nn.functional.cross_entropy(30.0 * shifted, target, weight=w)

    expected = reference(y_b) * 0.25 + reference(y_f) * 0.75
    assert mixed_loss(ldam, logits, y_b, y_f, 0.25).item() == pytest.approx(expected.item(),
                                                                             rel=1e-6)


def test_weighted_mixed_loss_with_per_sample_lam_by_hand():
    def pick(logits, target):  # a "loss" whose value is the target's logit, times w_y
        return logits[torch.arange(len(target)), target] * torch.tensor([1.0, 2.0, 4.0])[target]

    class Picked(CrossEntropy):
        def forward(self, logits, target):
            return pick(logits, target)

    loss = Picked()
    loss.set_class_weights([1.0, 2.0, 4.0])
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    lam = torch.tensor([0.25, 1.0])
    # background targets (0, 2): weights (1, 4); foreground targets (1, 0): weights (2, 1)
    # (0.25 * 1 * 1 + 1.0 * 4 * 6) / 5 + (0.75 * 2 * 2 + 0.0 * 1 * 4) / 3
    value = mixed_loss(loss, logits, torch.tensor([0, 2]), torch.tensor([1, 0]), lam)
    assert value.item() == pytest.approx(24.25 / 5 + 3.0 / 3)


def test_two_ranks_sharing_the_weight_sums_give_the_global_batch_gradient():
    """Each rank holds half of the global batch; DDP averages the ranks' gradients."""
    logits, y_b, y_f = batch(n=16, seed=3)
    lam = torch.rand(16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    whole = logits.clone().requires_grad_()
    mixed_loss(drw_ce(), whole, y_b, y_f, lam).backward()
    halves = [slice(0, 8), slice(8, 16)]

    def all_reduce(_):  # what the ranks' all-reduce of their weight sums returns
        return torch.stack([target_weights(drw_ce(), logits, y).sum() for y in (y_b, y_f)])

    grads = []
    for part in halves:
        local = logits[part].clone().requires_grad_()
        mixed_loss(drw_ce(), local, y_b[part], y_f[part], lam[part], all_reduce=all_reduce,
                   world_size=2).backward()
        grads.append(local.grad / 2)  # DDP: the mean over the 2 ranks
    torch.testing.assert_close(torch.cat(grads), whole.grad, rtol=1e-6, atol=1e-12)


def test_balanced_softmax_refuses_class_weights_as_the_reference_ignores_them():
    bs = BalancedSoftmaxLoss(COUNTS)
    bs.set_class_weights(None)  # clearing is fine
    with pytest.raises(ValueError) as error:
        bs.set_class_weights(drw_class_weights(COUNTS))
    assert str(error.value) == (
        "BalancedSoftmaxLoss takes no class weights: the reference's BalancedSoftmaxLoss "
        "(github.com/naver-ai/cmo, losses.py) is built without DRW's weights, and its log prior "
        "already balances the classes; use loss 'ce' or 'ldam' with DRW")
    # and mixed Balanced Softmax is the reference's: mean of F.cross_entropy(z + log prior)
    logits, y_b, y_f = batch(seed=5)
    adjusted = logits + torch.log(torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS))
    expected = (torch.nn.functional.cross_entropy(adjusted, y_b) * 0.4
                + torch.nn.functional.cross_entropy(adjusted, y_f) * 0.6)
    assert mixed_loss(bs, logits, y_b, y_f, 0.4).item() == pytest.approx(expected.item(),
                                                                         rel=1e-6)


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
