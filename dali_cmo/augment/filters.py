"""PIL's blur filters as DALI graph pieces: the Gaussian blur of the SimCLR/MoCo branch and the
smoothing behind ``ImageEnhance.Sharpness``.

``gaussian_blur`` is PIL's ``ImageFilter.GaussianBlur(radius=sigma)`` (what the reference's
``moco_loader.GaussianBlur`` calls), which is not a sampled Gaussian: Pillow (BoxBlur.c) runs
three box blurs per axis whose common width gives variance ``sigma**2`` (Gwosdek et al., 2011):
box radius ``r = l + a`` with ``l = floor((sqrt(12 s2 + 1) - 1) / 2)``, ``s2 = sigma**2 / 3``,
``a = (2l + 1)(l(l + 1) - 3 s2) / (6 (s2 - (l + 1)**2))``; each pass weighs the ``2 floor(r) + 1``
inner pixels by ``ww = floor(2**24 / (2r + 1))`` and the two next ones by
``fw = (2**24 - (2 floor(r) + 1) ww) / 2``, rounds to uint8 and repeats the edge pixels. Here the
same per-sample kernel runs through ``fn.filter`` three times horizontally, then three times
vertically, with the same rounding: the result equals PIL's up to float rounding (within 1 level
on the test images, 2 on at most 0.03% of real ImageNet pixels: benchmarks/augment_agreement.py).
(DALI's ``fn.gaussian_blur`` samples a true Gaussian: a different transform, and on CPU ten times
slower than these six short passes.)
"""
from __future__ import annotations

import functools

import numpy as np
from nvidia.dali import fn, types
import nvidia.dali.math as dmath

from dali_cmo.augment.draws import maybe, uniform

PASSES = 3
ONE = float(1 << 24)  # Pillow's fixed-point unit


def box_radius(sigma):
    """Pillow's ``_gaussian_blur_radius(sigma, 3)``: the (fractional) box radius."""
    s2 = sigma * sigma / PASSES
    length = dmath.sqrt(12.0 * s2 + 1.0)
    whole = dmath.floor((length - 1.0) / 2.0)
    frac = (2 * whole + 1) * (whole * (whole + 1) - 3 * s2) / (6 * (s2 - (whole + 1) * (whole + 1)))
    return whole + frac


def box_radius_bound(max_sigma: float) -> int:
    """The kernel half-width that holds every box of a sigma up to ``max_sigma``."""
    s2 = max_sigma * max_sigma / PASSES
    whole = np.floor((np.sqrt(12.0 * s2 + 1.0) - 1.0) / 2.0)
    return int(whole) + 1


def box_kernel(sigma, half_width: int):
    """Pillow's box weights for ``sigma`` on taps ``-half_width..half_width`` (float32, summing to
    1 up to Pillow's fixed-point remainder), one row per sample."""
    radius = box_radius(sigma)
    whole = dmath.floor(radius)
    ww = dmath.floor(ONE / (radius * 2 + 1))
    fw = dmath.floor((ONE - (whole * 2 + 1) * ww) / 2)
    taps = types.Constant(np.abs(np.arange(-half_width, half_width + 1)).astype(np.float32))
    weights = (taps <= whole) * ww + (taps == whole + 1) * fw
    return weights / ONE


def gaussian_blur(images, sigma, max_sigma: float = 2.0):
    """PIL's ``GaussianBlur(radius=sigma)`` (three box blurs per axis, see the module docstring).

    Args:
        images: uint8 HWC batch (CPU or GPU).
        sigma: per-sample float (or a number) in ``(0, max_sigma]``.
        max_sigma: the largest sigma the kernels must hold (sets their width).
    """
    half = box_radius_bound(max_sigma)
    kernel = box_kernel(sigma, half)
    if images.device == "gpu":
        kernel = kernel.gpu()
    rows = fn.reshape(kernel, shape=[1, 2 * half + 1])
    cols = fn.reshape(kernel, shape=[2 * half + 1, 1])
    for pass_kernel in (rows,) * PASSES + (cols,) * PASSES:
        images = fn.filter(images, pass_kernel, border="clamp")
    return images


def random_gaussian_blur(images, sigma_range=(0.1, 2.0), probability: float = 0.5):
    """The reference's ``RandomApply([moco_loader.GaussianBlur([.1, 2.])], p=0.5)``: sigma
    ``U[sigma_range]`` per sample, applied with ``probability``."""
    sigma = uniform(*sigma_range)
    blur = functools.partial(_blur_with, sigma, sigma_range[1])
    return maybe(blur, probability, images)


def _blur_with(sigma, max_sigma, images):
    return gaussian_blur(images, sigma, max_sigma)


SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13  # ImageFilter.SMOOTH
IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)


def adjust_sharpness(images, factor):
    """``ImageEnhance.Sharpness``: ``blend(SMOOTH(x), x, factor)`` inside, the one-pixel border
    unchanged (PIL's 3x3 filters leave it unfiltered). One filter pass with the blended kernel
    ``factor * identity + (1 - factor) * SMOOTH`` on the inner pixels; PIL rounds the smoothed
    image before blending and truncates the blend, so the result is within 1 level of PIL's.

    Args:
        images: uint8 HWC batch (CPU or GPU), at least 3x3.
        factor: per-sample float (or a number); 1 leaves the image unchanged.
    """
    kernel = factor * types.Constant(IDENTITY) + (1 - factor) * types.Constant(SMOOTH)
    if images.device == "gpu":
        kernel = kernel.gpu()
    inner = fn.filter(images, kernel, mode="valid")
    middle = fn.cat(images[1:-1, 0:1], inner, images[1:-1, -1:], axis=1)
    return fn.cat(images[0:1], middle, images[-1:], axis=0)
