"""The Many / Medium / Few rule at its edges, by hand."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.groups import IMAGENET_RULE, ClassGroups, GroupRule

COUNTS = np.array([150, 101, 100, 21, 20, 19, 1])


def test_class_groups_edges():
    groups = ClassGroups.from_counts(COUNTS)
    assert groups.many.tolist() == [0, 1]
    assert groups.medium.tolist() == [2, 3, 4]
    assert groups.few.tolist() == [5, 6]
    assert [groups.group_of(k) for k in range(7)] == ["many"] * 2 + ["medium"] * 3 + ["few"] * 2
    inclusive = ClassGroups.from_counts(COUNTS, IMAGENET_RULE)
    assert inclusive.medium.tolist() == [2, 3] and inclusive.few.tolist() == [4, 5, 6]
    custom = ClassGroups.from_counts(COUNTS, GroupRule(many=50, few=2))
    assert custom.many.tolist() == [0, 1, 2] and custom.few.tolist() == [6]


def test_rule_in_words_and_validation():
    assert GroupRule().describe() == "many > 100, medium 20..100, few < 20"
    assert IMAGENET_RULE.describe() == "many > 100, medium 21..100, few <= 20"
    with pytest.raises(ValueError, match=r"^the few threshold \(30\) must not exceed the many "
                                         r"threshold \(20\)$"):
        GroupRule(many=20, few=30)


def test_dataset_class_groups_uses_counts():
    labels = np.repeat([0, 1, 2], [101, 20, 19])
    dataset = LongTailDataset(Path("."), tuple(map(str, range(len(labels)))), labels,
                              ("a", "b", "c"), "memory")
    groups = dataset.class_groups()
    assert (groups.many.tolist(), groups.medium.tolist(), groups.few.tolist()) == ([0], [1], [2])
    assert dataset.class_groups(IMAGENET_RULE).few.tolist() == [1, 2]
