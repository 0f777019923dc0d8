"""Losses for long-tailed training with CMO.

Notation: ``z`` logits of shape (N, C), ``y`` integer targets (N,), ``n_k`` the number of
training images of class ``k``, ``C`` the number of classes, ``w_k`` optional class weights.

Every loss module here returns **one value per sample**, ``w_{y_i} * L(z_i, y_i)``
(``reduction='none'``, ``w = 1`` without class weights), so that the CMO mix can be formed
exactly for any of them (Park et al., CVPR 2022; the reference code's ``cifar_train.py``).
:func:`mixed_loss` normalises each term as
``torch.nn.CrossEntropyLoss(weight=w)`` does, by the sum of the weights of its targets::

    loss = sum_i lam_i w_{y_b,i} L(z_i, y_b,i) / sum_i w_{y_b,i}
         + sum_i (1 - lam_i) w_{y_f,i} L(z_i, y_f,i) / sum_i w_{y_f,i}

``lam_i`` is the background share of image ``i`` (1.0 where nothing was pasted). With one
``lam`` for the batch this is the reference's ``criterion(output, target) * lam +
criterion(output, target2) * (1 - lam)`` (github.com/naver-ai/cmo, ``cifar_train.py``), each
``criterion`` a weighted mean; without weights both sums are ``N`` (a plain mean).

Losses (names accepted by :func:`build_loss`):

* ``ce``   -- cross entropy, optionally class-weighted (deferred re-weighting, DRW).
* ``bs``   -- Balanced Softmax (Ren et al., NeurIPS 2020): CE of ``z + log(prior)``. It takes
  no class weights: the reference's ``BalancedSoftmaxLoss`` (``losses.py``) is built without
  them, so its DRW runs train plain Balanced Softmax; here DRW with ``bs`` is refused.
* ``ldam`` -- LDAM (Cao et al., NeurIPS 2019): CE of ``s * (z - m_y * onehot(y))``.

Class weights (DRW, Cao et al. 2019; weights from Cui et al., CVPR 2019) are set at run time
with ``set_class_weights`` on ``ce`` and ``ldam``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSS_NAMES = ("ce", "bs", "ldam")

PerSampleLossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _class_counts(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``class_counts`` as a float64 vector, checked: one entry per class, all positive."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
    if counts.numel() == 0:
        raise ValueError("class_counts must hold one count per class; got an empty sequence")
    if bool((counts <= 0).any()):
        empty = torch.nonzero(counts <= 0).flatten().tolist()
        raise ValueError(f"class_counts must be positive for every class; classes {empty[:10]} "
                         f"have no training samples")
    return counts


def target_weights(per_sample_loss: PerSampleLossFn, logits: torch.Tensor,
                   target: torch.Tensor) -> torch.Tensor:
    """``w_{y_i}`` per sample: the class weights of a :class:`PerSampleLoss`, else ones."""
    weights = per_sample_loss.weight(logits) if isinstance(per_sample_loss, PerSampleLoss) \
        else None
    if weights is None:
        return torch.ones(target.shape, dtype=logits.dtype, device=logits.device)
    return weights[target]


def mixed_loss(per_sample_loss: PerSampleLossFn, logits: torch.Tensor, target_b: torch.Tensor,
               target_f: torch.Tensor, lam: torch.Tensor | float, *,
               all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
               world_size: int = 1) -> torch.Tensor:
    """CMO / CutMix loss, exact for any per-sample loss ``L``, weighted or not.

    ``sum_i lam_i l_b,i / sum_i w_b,i + sum_i (1 - lam_i) l_f,i / sum_i w_f,i`` with
    ``l = per_sample_loss(logits, target)`` (already ``w_y * L``) and ``w`` the class weights
    of each target (ones for a loss without weights): each term is normalised as
    ``torch.nn.CrossEntropyLoss(weight=w)`` normalises (see the module docstring).

    Several ranks, each holding a share of the global batch: pass ``all_reduce`` (sums a
    tensor over the ranks in place and returns it) and ``world_size``. The weight sums are then
    taken over the global batch, and each rank returns ``world_size`` times its share of the
    numerators, so that DistributedDataParallel's gradient average is the gradient of the
    loss of the global batch, as the reference computes it in one process.

    Args:
        per_sample_loss: ``L(logits, target) -> (N,)``, one (weighted) loss per sample.
        logits: (N, C) model outputs for the mixed images.
        target_b: (N,) labels of the backgrounds.
        target_f: (N,) labels of the pasted foregrounds.
        lam: (N,) background share per sample (or one float for the batch).
        all_reduce: sums a tensor over the ranks (None: one process).
        world_size: the number of ranks (with ``all_reduce``).
    """
    lam = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device)
    lam = lam.expand(target_b.shape)
    sums = torch.stack([target_weights(per_sample_loss, logits, target_b).sum(),
                        target_weights(per_sample_loss, logits, target_f).sum()]).detach()
    if all_reduce is not None:
        sums = all_reduce(sums) / world_size
    return ((lam * per_sample_loss(logits, target_b)).sum() / sums[0]
            + ((1.0 - lam) * per_sample_loss(logits, target_f)).sum() / sums[1])


class PerSampleLoss(nn.Module):
    """A loss with one value per sample and optional per-class weights ``w`` (C,) that scale
    each sample's loss by ``w_y`` (``takes_class_weights`` says whether it accepts them)."""

    takes_class_weights = True
    no_weights_reason = ""

    def __init__(self) -> None:
        super().__init__()
        self.class_weights: torch.Tensor | None = None

    def set_class_weights(self, weights: torch.Tensor | Sequence[float] | None) -> None:
        """Set (or clear, with ``None``) the per-class weights, e.g. from DRW."""
        if weights is not None and not self.takes_class_weights:
            raise ValueError(f"{type(self).__name__} takes no class weights: "
                             f"{self.no_weights_reason}")
        self.class_weights = (None if weights is None
                              else torch.as_tensor(weights, dtype=torch.float32).flatten())

    def weight(self, logits: torch.Tensor) -> torch.Tensor | None:
        """The class weights as ``logits``' dtype and device (None without weights)."""
        if self.class_weights is None:
            return None
        if self.class_weights.numel() != logits.shape[-1]:
            raise ValueError(f"class weights have {self.class_weights.numel()} entries but the "
                             f"logits have {logits.shape[-1]} classes")
        return self.class_weights.to(device=logits.device, dtype=logits.dtype)


class CrossEntropy(PerSampleLoss):
    """Per-sample cross entropy ``w_y * (logsumexp(z) - z_y)`` (``w = 1`` without weights)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight(logits), reduction="none")


class BalancedSoftmaxLoss(PerSampleLoss):
    """Balanced Softmax (Ren et al., NeurIPS 2020), per sample.

    ``L(z, y) = CE(z + log(pi), y)`` with the training prior ``pi_k = n_k / sum_j n_j``.
    Predict with the plain logits ``z`` (the prior is only added inside the loss).
    """

    takes_class_weights = False
    no_weights_reason = ("the reference's BalancedSoftmaxLoss (github.com/naver-ai/cmo, "
                         "losses.py) is built without DRW's weights, and its log prior already "
                         "balances the classes; use loss 'ce' or 'ldam' with DRW")

    def __init__(self, class_counts: Sequence[int] | torch.Tensor) -> None:
        super().__init__()
        counts = _class_counts(class_counts)
        self.register_buffer("log_prior", torch.log(counts / counts.sum()).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        adjusted = logits + self.log_prior.to(logits.dtype)
        return F.cross_entropy(adjusted, target, reduction="none")


class LDAMLoss(PerSampleLoss):
    """Label-distribution-aware margin loss (Cao et al., NeurIPS 2019), per sample.

    Margins ``m_k = max_margin * n_k^(-1/4) / max_j n_j^(-1/4)`` (the rarest class gets
    ``max_margin``). ``L(z, y) = w_y * CE(scale * (z - m_y * onehot(y)), y)``.

    The logits are expected to be cosines in [-1, 1] from a
    :class:`dali_cmo.training.models.NormedLinear` head, as in the reference code
    (``scale`` = 30, ``max_margin`` = 0.5).
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, max_margin: float = 0.5,
                 scale: float = 30.0) -> None:
        super().__init__()
        if max_margin <= 0:
            raise ValueError(f"max_margin must be positive; got {max_margin}")
        if scale <= 0:
            raise ValueError(f"scale must be positive; got {scale}")
        margins = _class_counts(class_counts) ** -0.25
        self.register_buffer("margins", (margins * (max_margin / margins.max())).float())
        self.scale = scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        margin = self.margins.to(logits.dtype)[target].unsqueeze(1)
        shifted = logits.scatter_add(1, target.view(-1, 1), -margin)
        return F.cross_entropy(self.scale * shifted, target, weight=self.weight(logits),
                               reduction="none")


def drw_class_weights(class_counts: Sequence[int] | torch.Tensor,
                      beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights (Cui et al., CVPR 2019) as used by LDAM-DRW and CMO.

    ``w_k = (1 - beta) / (1 - beta^n_k)`` (the inverse effective number of samples), then
    rescaled so that ``sum_k w_k = C``. ``beta = 0`` gives all ones.

    Returns:
        (C,) float32 tensor.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1); got {beta}")
    counts = _class_counts(class_counts)
    weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (weights / weights.sum() * counts.numel()).float()


class DeferredReweighting:
    """DRW (Cao et al., NeurIPS 2019): no class weights before ``switch_epoch``, then the
    class-balanced weights of :func:`drw_class_weights` from ``switch_epoch`` on (epochs
    counted from 0, so the reference CIFAR recipe switches at epoch 160 of 200).
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, switch_epoch: int,
                 beta: float = 0.9999) -> None:
        if switch_epoch < 0:
            raise ValueError(f"switch_epoch must be >= 0; got {switch_epoch}")
        self.switch_epoch = switch_epoch
        self._weights = drw_class_weights(class_counts, beta)

    def weights(self, epoch: int) -> torch.Tensor | None:
        """Class weights for ``epoch``: ``None`` before the switch, a (C,) tensor from it on."""
        return None if epoch < self.switch_epoch else self._weights.clone()


def build_loss(name: str, class_counts: Sequence[int] | torch.Tensor) -> nn.Module:
    """A per-sample loss by name: ``ce``, ``bs`` (Balanced Softmax) or ``ldam``.

    ``ldam`` expects a cosine head (``build_model(..., normed_linear=True)``).
    """
    if name == "ce":
        return CrossEntropy()
    if name == "bs":
        return BalancedSoftmaxLoss(class_counts)
    if name == "ldam":
        return LDAMLoss(class_counts)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
