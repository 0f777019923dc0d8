"""Many / Medium / Few: the one home of the long-tailed class-group rule.

Classes are grouped by their number of *training* images ``n_k``:

* Many:   ``n_k > many``                   (default ``n > 100``)
* Medium: ``few <= n_k <= many``           (default ``20..100``)
* Few:    ``n_k < few``                    (default ``n < 20``)

This is the convention of the CMO paper's CIFAR-LT code (``cifar_train.py``). Its ImageNet-LT
and iNaturalist scripts put exactly ``few`` images in Few (``n <= 20``, Medium ``21..100``):
``GroupRule(few_inclusive=True)``. Everything that groups classes (evaluation metrics, the
per-class plot, ``python -m dali_cmo stats``, the trainer's table) takes a :class:`GroupRule`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUP_NAMES = ("many", "medium", "few")


@dataclass(frozen=True)
class GroupRule:
    """Thresholds of the Many / Medium / Few split.

    Args:
        many: a class with more than ``many`` training images is Many.
        few: a class with fewer than ``few`` training images is Few (at most ``few`` with
            ``few_inclusive``).
        few_inclusive: put a class with exactly ``few`` images in Few (ImageNet-LT/iNat scripts).
    """
    many: int = 100
    few: int = 20
    few_inclusive: bool = False

    def __post_init__(self):
        if self.few > self.many:
            raise ValueError(f"the few threshold ({self.few}) must not exceed the many "
                             f"threshold ({self.many})")

    def masks(self, class_counts) -> dict[str, np.ndarray]:
        """Boolean (C,) masks ``many``, ``medium``, ``few`` over classes by training count."""
        n = np.asarray(class_counts).reshape(-1)
        few = n <= self.few if self.few_inclusive else n < self.few
        many = n > self.many
        return {"many": many, "medium": ~many & ~few, "few": few}

    def describe(self) -> str:
        """The boundaries in words, e.g. ``"many > 100, medium 20..100, few < 20"``."""
        if self.few_inclusive:
            return f"many > {self.many}, medium {self.few + 1}..{self.many}, few <= {self.few}"
        return f"many > {self.many}, medium {self.few}..{self.many}, few < {self.few}"


#: The CIFAR-LT convention (the default) and the ImageNet-LT / iNaturalist scripts' convention.
CIFAR_RULE = GroupRule()
IMAGENET_RULE = GroupRule(few_inclusive=True)
#: The conventions by name, for command lines: ``lt20`` (few < 20, ``cifar_train.py``) and
#: ``le20`` (few <= 20, ``imagenet_train.py`` and ``inat18_train.py``).
GROUP_RULES = {"lt20": CIFAR_RULE, "le20": IMAGENET_RULE}


@dataclass(frozen=True, eq=False)
class ClassGroups:
    """The class ids of each group under a :class:`GroupRule`.

    Args:
        many, medium, few: sorted class ids of each group.
        rule: the rule that made the split.
    """
    many: np.ndarray
    medium: np.ndarray
    few: np.ndarray
    rule: GroupRule = CIFAR_RULE

    @classmethod
    def from_counts(cls, class_counts, rule: GroupRule = CIFAR_RULE) -> "ClassGroups":
        """Split class ids ``0..C-1`` by their counts ``class_counts[k]``."""
        masks = rule.masks(class_counts)
        return cls(*(np.flatnonzero(masks[name]) for name in GROUP_NAMES), rule=rule)

    def group_of(self, class_id: int) -> str:
        """``"many"``, ``"medium"`` or ``"few"``."""
        for name in GROUP_NAMES:
            if class_id in getattr(self, name):
                return name
        raise ValueError(f"class_id {class_id} is in no group")
