"""AutoAugment's CIFAR-10 policy as the CMO reference uses it: ``CIFAR10Policy()`` from its
``util/autoaug.py`` (PaCo's copy of DeepVoltaire's AutoAugment, the 25 sub-policies of Cubuk et
al., 2019), run with DALI's own AutoAugment machinery (``nvidia.dali.auto_aug.core.Policy`` and
``auto_augment.apply_auto_augment``: a uniformly drawn sub-policy per image, each stage applied
with its probability).

The sub-policies are the ones DALI ships as ``get_reduced_cifar10_policy`` (like DALI, without
the one stage of probability 0), but the magnitudes follow the reference, not DALI: 10 levels,
``np.linspace`` tables of ``SubPolicy``, and

========================= ============================== =======================================
operation                 reference (PIL)                DALI's reduced_cifar10 policy
========================= ============================== =======================================
shearX/Y                  ``+-linspace(0, 0.3)``, bicubic  ``+-linspace(0, 0.3, 11)``, linear
translateX/Y              ``+-linspace(0, 150/331)`` of    250 px (or the whole side), linear
                          the side, nearest
rotate                    ``linspace(0, 30)`` degrees,     ``+-linspace(0, 30, 11)``, linear
                          counter-clockwise only, nearest
color/contrast/           ``1 +- linspace(0, 0.9)``        ``linspace(0.1, 1.9, 11)`` (no sign)
brightness/sharpness
posterize                 ``round(linspace(8, 4))`` bits   ``linspace(0, 4, 11)`` bits removed
solarize                  threshold ``linspace(256, 0)``   ``linspace(0, 256, 11)``
========================= ============================== =======================================

fill 128 for every warp, as the reference's ``fillcolor=(128, 128, 128)``. The shears interpolate
linearly here (DALI's warp has no bicubic).
"""
from __future__ import annotations

import numpy as np
from nvidia.dali.auto_aug.auto_augment import apply_auto_augment
from nvidia.dali.auto_aug.core import Policy, augmentation

from dali_cmo.augment import color, filters, geometry, tone

LEVELS = 10
FILL = 128


def _enhance(magnitude):  # the reference's 1 + magnitude * random.choice([-1, 1])
    return 1.0 + magnitude


@augmentation(mag_range=np.linspace(0, 0.3, LEVELS), randomly_negate=True)
def shear_x(images, factor, fill=FILL):
    return geometry.shear_x(images, factor, fill)


@augmentation(mag_range=np.linspace(0, 0.3, LEVELS), randomly_negate=True)
def shear_y(images, factor, fill=FILL):
    return geometry.shear_y(images, factor, fill)


@augmentation(mag_range=np.linspace(0, 150 / 331, LEVELS), randomly_negate=True)
def translate_x(images, fraction, size, fill=FILL):
    return geometry.translate_x(images, fraction * size[1], fill, geometry.NEAREST)


@augmentation(mag_range=np.linspace(0, 150 / 331, LEVELS), randomly_negate=True)
def translate_y(images, fraction, size, fill=FILL):
    return geometry.translate_y(images, fraction * size[0], fill, geometry.NEAREST)


@augmentation(mag_range=np.linspace(0, 30, LEVELS))
def rotate(images, degrees, size, fill=FILL):
    return geometry.rotate(images, degrees, size, fill, geometry.NEAREST)


ENHANCE = dict(mag_range=np.linspace(0, 0.9, LEVELS), randomly_negate=True, mag_to_param=_enhance)
color_ = augmentation(color.adjust_saturation, name="color", **ENHANCE)
contrast = augmentation(color.adjust_contrast, name="contrast", **ENHANCE)
brightness = augmentation(color.adjust_brightness, name="brightness", **ENHANCE)
sharpness = augmentation(filters.adjust_sharpness, name="sharpness", **ENHANCE)
posterize = augmentation(tone.posterize, mag_range=np.round(np.linspace(8, 4, LEVELS)))
solarize = augmentation(tone.solarize, mag_range=np.linspace(256, 0, LEVELS))


@augmentation
def auto_contrast(images, _):
    return tone.autocontrast(images)


@augmentation
def equalize(images, _):
    return tone.equalize(images)


@augmentation
def invert(images, _):
    return tone.invert(images)


# CIFAR10Policy's SubPolicy(p1, op1, level1, p2, op2, level2), in its order
CIFAR10_POLICY = Policy(name="CIFAR10Policy", num_magnitude_bins=LEVELS, sub_policies=[
    [(invert, 0.1, None), (contrast, 0.2, 6)],
    [(rotate, 0.7, 2), (translate_x, 0.3, 9)],
    [(sharpness, 0.8, 1), (sharpness, 0.9, 3)],
    [(shear_y, 0.5, 8), (translate_y, 0.7, 9)],
    [(auto_contrast, 0.5, None), (equalize, 0.9, None)],
    [(shear_y, 0.2, 7), (posterize, 0.3, 7)],
    [(color_, 0.4, 3), (brightness, 0.6, 7)],
    [(sharpness, 0.3, 9), (brightness, 0.7, 9)],
    [(equalize, 0.6, None), (equalize, 0.5, None)],
    [(contrast, 0.6, 7), (sharpness, 0.6, 5)],
    [(color_, 0.7, 7), (translate_x, 0.5, 8)],
    [(equalize, 0.3, None), (auto_contrast, 0.4, None)],
    [(translate_y, 0.4, 3), (sharpness, 0.2, 6)],
    [(brightness, 0.9, 6), (color_, 0.2, 8)],
    [(solarize, 0.5, 2)],  # the reference's second stage has probability 0.0
    [(equalize, 0.2, None), (auto_contrast, 0.6, None)],
    [(equalize, 0.2, None), (equalize, 0.6, None)],
    [(color_, 0.9, 9), (equalize, 0.6, None)],
    [(auto_contrast, 0.8, None), (solarize, 0.2, 8)],
    [(brightness, 0.1, 3), (color_, 0.7, 0)],
    [(solarize, 0.4, 5), (auto_contrast, 0.9, None)],
    [(translate_y, 0.9, 9), (translate_y, 0.7, 9)],
    [(auto_contrast, 0.9, None), (solarize, 0.8, 3)],
    [(equalize, 0.8, None), (invert, 0.1, None)],
    [(translate_y, 0.7, 9), (auto_contrast, 0.9, None)],
])


def cifar10_policy(images, size=(32, 32)):
    """The reference's ``CIFAR10Policy()`` on a uint8 HWC batch of images of ``size``."""
    return apply_auto_augment(CIFAR10_POLICY, images, size=size)
