"""Mixed soft targets for a CMO batch, as in timm's ``mixup_target`` (timm/data/mixup.py).

A convenience: the loss of a CMO batch is ``lam * L(out, y_b) + (1 - lam) * L(out, y_f)``
(:func:`dali_cmo.training.losses.mixed_loss`), which soft targets reproduce only for losses
linear in the target (plain CE, Balanced Softmax).
"""
from __future__ import annotations

import torch


def soft_targets(target_b: torch.Tensor, target_f: torch.Tensor, lam: torch.Tensor | float,
                 num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Mixed one-hot targets, as in timm's ``mixup_target``.

    ``t = lam * onehot(y_b) + (1 - lam) * onehot(y_f)`` where ``onehot`` puts
    ``on = 1 - smoothing + smoothing / C`` on the label and ``off = smoothing / C`` elsewhere.

    Soft targets reproduce :func:`mixed_loss` only for losses that are linear in the target,
    i.e. plain CE (and Balanced Softmax, which is CE of ``logits + log_prior``):
    ``-sum_k t_k log p_k = lam * CE(y_b) + (1 - lam) * CE(y_f)``. They are *not* equivalent for
    class-weighted CE (DRW) or LDAM, whose per-sample loss depends on the label itself; use
    :func:`mixed_loss` there.

    Returns:
        (N, C) float tensor; each row sums to 1.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    lam = torch.as_tensor(lam, dtype=torch.float32, device=target_b.device).reshape(-1, 1)

    def one_hot(target: torch.Tensor) -> torch.Tensor:
        out = torch.full((target.shape[0], num_classes), off, device=target.device)
        return out.scatter_(1, target.long().view(-1, 1), on)

    return lam * one_hot(target_b) + (1.0 - lam) * one_hot(target_f)
