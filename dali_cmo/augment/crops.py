"""The training crops that run on decoded images: torchvision's ``RandomCrop(size, padding=4)``
(the CIFAR recipes) and ``RandomResizedCrop`` on an already decoded image (the CIFAR SimCLR-style
branch; ImageNet-style pipelines fuse the crop into the decoder instead).
"""
from __future__ import annotations

from nvidia.dali import fn, types

RRC_ASPECT = [3 / 4, 4 / 3]


def pad_crop(images, size: int, padding: int = 4):
    """``RandomCrop(size, padding=padding)``: offsets ``-padding..padding`` per axis, zero fill.

    Args:
        images: uint8 HWC batch (the decoded ``size`` x ``size`` images).
        size: output side.
        padding: zero border added on every side before cropping.
    """
    offsets = [fn.cast(fn.random.uniform(values=list(range(-padding, padding + 1))),
                       dtype=types.INT32) for _ in range(2)]
    return fn.slice(images, start=fn.stack(*offsets), shape=[size, size], axes=[0, 1],
                    out_of_bounds_policy="pad", fill_values=0)


def random_resized_crop(images, size: int, area=(0.08, 1.0)):
    """``RandomResizedCrop(size, scale=area)`` of decoded images (area share and aspect ratio
    ``3/4..4/3`` drawn as torchvision does: 10 attempts, then the centre crop)."""
    return fn.random_resized_crop(images, size=[size, size], random_area=list(area),
                                  random_aspect_ratio=RRC_ASPECT, num_attempts=10)
