"""Random draws and per-sample choices, shared by every augmentation (DALI conditionals).

A transform's own random values are drawn before it splits the batch (so a sample's draws do
not depend on which samples share its branch); transforms nested in a branch draw within it.
All draws are DALI random operators: seeded by the pipeline seed and restored by a DALI
checkpoint. Pipelines using these functions need ``enable_conditionals=True`` (as
``pipelines.training`` sets).
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali.auto_aug.core import select


def coin(probability: float):
    """A per-sample boolean, true with ``probability``."""
    return fn.random.coin_flip(probability=probability, dtype=types.BOOL)


def uniform(low: float, high: float):
    """A per-sample float32 drawn uniformly from ``[low, high)``."""
    return fn.random.uniform(range=[low, high])


def maybe(transform: Callable, probability: float, images):
    """``transform(images)`` for the samples whose coin (``probability``) comes up, as
    torchvision's ``RandomApply([transform], p=probability)``; the others pass unchanged.

    Args:
        transform: a function of a batch of images returning a batch of the same shapes.
        probability: the chance that a sample is transformed (1: all, 0: none).
        images: uint8 HWC batch.
    """
    if probability >= 1:
        return transform(images)
    if probability <= 0:
        return images
    applied = coin(probability)
    if applied:
        images = transform(images)
    return images


def either(first: Callable, second: Callable, probability: float, images):
    """``first(images)`` for the samples whose coin (``probability``) comes up, ``second(images)``
    for the others: the reference's per-image branch choice (``lt_data.py``,
    ``imbalance_cifar.py``: ``transform[0]`` if ``random.random() < 0.5`` else
    ``transform[1]``).

    Args:
        first, second: functions of a batch of images, returning batches of one shape.
        probability: the chance of ``first``.
        images: uint8 HWC batch.
    """
    if coin(probability):
        images = first(images)
    else:
        images = second(images)
    return images


def choose(transforms: Sequence[Callable], index, images):
    """``transforms[index](images)`` per sample: DALI's ``auto_aug`` ``select``, which splits the
    batch with conditionals so that every sample runs only its own transform.

    Args:
        transforms: functions of a batch of images.
        index: per-sample int32 in ``[0, len(transforms))``.
        images: uint8 HWC batch.
    """
    return select(list(transforms), index, images)


def permutation_slots(count: int) -> list:
    """A uniformly random order of ``count`` operations per sample, as one int32 per slot:
    slot ``k`` holds the operation applied ``k``-th (torchvision's ``torch.randperm``)."""
    orders = np.array(list(itertools.permutations(range(count))), dtype=np.int32)
    drawn = fn.random.uniform(values=list(range(len(orders))), dtype=types.INT32)
    table = types.Constant(orders)
    return [table[drawn, slot] for slot in range(count)]
