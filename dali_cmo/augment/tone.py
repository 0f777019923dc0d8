"""PIL's per-pixel tone operations (``ImageOps``) as DALI graph pieces, mostly DALI's own
``nvidia.dali.auto_aug.augmentations`` called with an explicit parameter.

=============== =================================== ============================================
operation       PIL (the reference)                 here
=============== =================================== ============================================
invert          ``255 - x``                         DALI's ``invert``: the same
posterize(b)    ``x & ~(2**(8-b) - 1)``             the same mask, ``b`` per sample
solarize(t)     ``x if x < t else 255 - x``         DALI's ``solarize``: the same
solarize_add(a) ``min(255, x + a) if x < 128``      DALI's ``solarize_add``: the same (a < 128)
autocontrast    per channel ``int((x - lo) * s)``,  DALI's ``auto_contrast``: the same stretch,
                ``s = 255 / (hi - lo)``             rounded instead of truncated (within 1)
equalize        PIL's histogram LUT                 DALI's ``equalize`` (OpenCV's formula: the
                                                    LUT differs, see tests/augment)
=============== =================================== ============================================
"""
from __future__ import annotations

from nvidia.dali import fn, types
import nvidia.dali.math as dmath
from nvidia.dali.auto_aug import augmentations as dali_aug


def invert(images):
    """``ImageOps.invert``: ``255 - x``."""
    return dali_aug.invert.op(images, None)


def posterize(images, bits):
    """``ImageOps.posterize(img, bits)``: keep the ``bits`` highest bits of every channel.

    Args:
        images: uint8 HWC batch.
        bits: per-sample number of bits to keep, 0..8 (a number or an integer-valued float).
    """
    mask = fn.cast(256.0 - dmath.pow(2.0, 8.0 - bits), dtype=types.UINT8)
    return images & mask


def solarize(images, threshold):
    """``ImageOps.solarize(img, threshold)``: invert the pixels at or above ``threshold``."""
    return dali_aug.solarize.op(images, threshold)


def solarize_add(images, addition):
    """timm's ``solarize_add(img, add, thresh=128)``: ``min(255, x + add)`` below 128.

    Args:
        images: uint8 HWC batch.
        addition: per-sample amount in ``[0, 128)``.
    """
    return dali_aug.solarize_add.op(images, fn.cast(addition, dtype=types.UINT8))


def autocontrast(images):
    """``ImageOps.autocontrast(img)``: stretch every channel's [min, max] to [0, 255]."""
    return dali_aug.auto_contrast.op(images, None)


def equalize(images):
    """Per-channel histogram equalisation (DALI's ``fn.equalize``, which its ``auto_aug``
    equalize calls under its old experimental name; see the module docstring)."""
    return fn.equalize(images)
