"""Per-class accuracy and the Many / Medium / Few summary of long-tailed evaluation.

Groups follow a :class:`dali_cmo.data.groups.GroupRule` (by default the CIFAR-LT convention:
many > 100, medium 20..100, few < 20 training images; the ImageNet-LT and iNaturalist scripts
of the reference put exactly 20 in few, ``GROUP_RULES["le20"]``).

Over a run, the reference (``cifar_train.py``, ``imagenet_train.py``, ``inat18_train.py``)
reports the best test top-1 over the epochs; :func:`best_evaluation` finds that evaluation in
the epochs' history, beside the last one.

A group's accuracy is the mean of its classes' accuracies (each class counts once, however
many test images it has). Classes with no evaluation samples have no accuracy: they are
``None`` in ``per_class`` and left out of the group means; a group with no such class left is
``None``. ``top1`` is over samples: ``sum(correct) / sum(total)``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from dali_cmo.data.groups import CIFAR_RULE, GroupRule


class ConfusionCounter:
    """Accumulates per-class correct and total counts over evaluation batches.

    For several processes: all-reduce (sum) :meth:`counts` and rebuild with
    :meth:`from_counts`, or :meth:`merge` counters in one process.
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.total = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Add a batch: ``outputs`` are (N, C) logits (argmax taken) or (N,) predictions."""
        preds = outputs.argmax(dim=1) if outputs.dim() == 2 else outputs
        targets = targets.to(preds.device).long()
        hits = targets[preds.long() == targets]
        self.correct += torch.bincount(hits, minlength=self.num_classes).to(self.correct.device)
        self.total += torch.bincount(targets, minlength=self.num_classes).to(self.total.device)

    def merge(self, other: "ConfusionCounter") -> "ConfusionCounter":
        """Add ``other``'s counts to this counter (in place); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge counters of {other.num_classes} and "
                             f"{self.num_classes} classes")
        self.correct += other.correct.to(self.correct.device)
        self.total += other.total.to(self.total.device)
        return self

    def counts(self) -> torch.Tensor:
        """A (2, C) int64 tensor: row 0 correct, row 1 total (a copy, safe to all-reduce)."""
        return torch.stack([self.correct, self.total])

    @classmethod
    def from_counts(cls, counts: torch.Tensor) -> "ConfusionCounter":
        """Rebuild a counter from a (2, C) tensor produced by :meth:`counts`."""
        if counts.dim() != 2 or counts.shape[0] != 2:
            raise ValueError(f"counts must have shape (2, C); got {tuple(counts.shape)}")
        counter = cls(counts.shape[1], device=counts.device)
        counter.correct += counts[0].long()
        counter.total += counts[1].long()
        return counter


def accuracy_report(correct: Sequence[int] | torch.Tensor, total: Sequence[int] | torch.Tensor,
                    class_counts: Sequence[int] | torch.Tensor,
                    rule: GroupRule = CIFAR_RULE) -> dict:
    """Top-1 and Many / Medium / Few accuracy in percent (see the module docstring).

    Args:
        correct, total: (C,) evaluation counts per class (e.g. from :class:`ConfusionCounter`).
        class_counts: (C,) number of *training* images per class.
        rule: the Many / Medium / Few thresholds.

    Returns:
        ``{"top1", "many", "medium", "few"}`` (float percent or None), ``"per_class"``
        (list of float percent or None) and ``"groups"`` (the convention, as a string).
    """
    correct = torch.as_tensor(correct, dtype=torch.float64).flatten().cpu()
    total = torch.as_tensor(total, dtype=torch.float64).flatten().cpu()
    if not correct.numel() == total.numel() == torch.as_tensor(class_counts).numel():
        raise ValueError("correct, total and class_counts must have one entry per class; got "
                         f"{correct.numel()}, {total.numel()} and "
                         f"{torch.as_tensor(class_counts).numel()}")
    seen = total > 0
    accuracy = torch.where(seen, 100.0 * correct / total.clamp(min=1), torch.nan)
    report: dict = {"top1": (100.0 * correct.sum() / total.sum()).item()
                    if total.sum() > 0 else None}
    for name, mask in rule.masks(torch.as_tensor(class_counts).cpu().numpy()).items():
        mask = torch.from_numpy(mask)
        members = mask & seen
        report[name] = accuracy[members].mean().item() if members.any() else None
    report["per_class"] = [a if a == a else None for a in accuracy.tolist()]
    report["groups"] = rule.describe()
    return report


def best_evaluation(history: list[dict]) -> dict | None:
    """The evaluated epoch of ``history`` (the trainer's ``log.jsonl`` entries) with the
    highest top-1; of equal ones the earlier, as the reference's ``is_best = acc1 > best_acc1``.
    None when no epoch was evaluated.
    """
    best = None
    for entry in history:
        if entry.get("top1") is not None and (best is None or entry["top1"] > best["top1"]):
            best = entry
    return best


def format_report_table(rows: dict[str, dict]) -> str:
    """A fixed-width table of ``overall`` (top1), ``many``, ``medium``, ``few`` per named run.

    ``rows`` maps a run name to an :func:`accuracy_report` dict; a missing or None value is
    shown as ``-``.
    """
    columns = (("overall", "top1"), ("many", "many"), ("medium", "medium"), ("few", "few"))
    name_width = max([len("run")] + [len(name) for name in rows])

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["  ".join([f"{'run':<{name_width}}"] + [f"{title:>8}" for title, _ in columns])]
    lines.append("-" * len(lines[0]))
    for name, report in rows.items():
        cells = [f"{cell(report.get(key)):>8}" for _, key in columns]
        lines.append("  ".join([f"{name:<{name_width}}"] + cells))
    return "\n".join(lines)
