"""Geometric transforms with PIL's conventions as DALI graph pieces: affine warps (shear,
translate, rotate), Cutout and the horizontal flip.

PIL's ``Image.transform(size, AFFINE, (a, b, c, d, e, f))`` fills output pixel ``(x, y)`` from
input point ``(a x + b y + c, d x + e y + f)``, coordinates measured from the corner of the first
pixel; ``fn.warp_affine``'s destination-to-source matrix has the same convention, so the
coefficients are passed as they are. PIL fills the pixels whose source point falls outside the
image with ``fillcolor`` and interpolates the others from the edge-clamped image; DALI's
``fill_value`` is one scalar and its linear interpolation blends it into the edge pixels. So the
warp here runs with clamped edges and a nearest-neighbour warp of a white image marks the pixels
to fill with the (per-channel: the reference's RandAugment fills with the ImageNet mean,
``(124, 116, 104)``) colour, as
PIL does (also for a scalar fill with linear interpolation; with nearest, DALI's scalar fill
is PIL's). Interpolation is nearest or linear: DALI's warp has no bicubic, so where the reference
draws bilinear or bicubic per call (timm's RandAugment) or uses bicubic (AutoAugment's shears),
linear is used (within a few levels inside, see tests/augment/test_geometry.py).
"""
from __future__ import annotations

import numpy as np
from nvidia.dali import fn, types
import nvidia.dali.math as dmath

LINEAR, NEAREST = types.INTERP_LINEAR, types.INTERP_NN


def affine(images, coeffs, fill, interp=LINEAR):
    """``Image.transform(size, AFFINE, coeffs, resample, fillcolor=fill)``.

    Args:
        images: uint8 HWC batch (CPU or GPU).
        coeffs: per-sample 2x3 float32 ``[[a, b, c], [d, e, f]]`` (PIL's inverse-map
            coefficients ``(a, b, c, d, e, f)``).
        fill: a number, or one value per channel.
        interp: ``LINEAR`` or ``NEAREST``.
    """
    if interp == NEAREST and np.ndim(fill) == 0:  # DALI's fill is then PIL's
        return fn.warp_affine(images, matrix=coeffs, fill_value=float(fill), interp_type=interp)
    warped = fn.warp_affine(images, matrix=coeffs, interp_type=interp)  # edges clamped, as PIL
    white = fn.brightness_contrast(images, brightness=0.0, brightness_shift=1.0)
    inside = fn.warp_affine(white, matrix=coeffs, fill_value=0.0, interp_type=NEAREST)
    colour = np.broadcast_to(np.asarray(fill, np.uint8), (3,))
    outside = inside ^ types.Constant(np.uint8(255))
    return (warped & inside) | (types.Constant(np.array(colour), device=images.device) & outside)


def matrix(*terms):
    """``sum(value * unit)`` over ``(value, unit)`` pairs (units: six coefficients, values:
    per-sample scalars or numbers) as per-sample 2x3 float32 matrices."""
    total = None
    for value, unit in terms:
        term = value * types.Constant(np.asarray(unit, np.float32).reshape(2, 3))
        total = term if total is None else total + term
    return total


IDENTITY = (1, 0, 0, 0, 1, 0)


def shear_x(images, factor, fill, interp=LINEAR):
    """PIL ``(1, factor, 0, 0, 1, 0)``: rows shifted by ``factor * y`` (about the top edge)."""
    return affine(images, matrix((1.0, IDENTITY), (factor, (0, 1, 0, 0, 0, 0))), fill, interp)


def shear_y(images, factor, fill, interp=LINEAR):
    """PIL ``(1, 0, 0, factor, 1, 0)``: columns shifted by ``factor * x`` (about the left edge)."""
    return affine(images, matrix((1.0, IDENTITY), (factor, (0, 0, 0, 1, 0, 0))), fill, interp)


def translate_x(images, pixels, fill, interp=LINEAR):
    """PIL ``(1, 0, pixels, 0, 1, 0)``: the content moves ``pixels`` to the left."""
    return affine(images, matrix((1.0, IDENTITY), (pixels, (0, 0, 1, 0, 0, 0))), fill, interp)


def translate_y(images, pixels, fill, interp=LINEAR):
    """PIL ``(1, 0, 0, 0, 1, pixels)``: the content moves ``pixels`` up."""
    return affine(images, matrix((1.0, IDENTITY), (pixels, (0, 0, 0, 0, 0, 1))), fill, interp)


def rotation_matrix(degrees, size):
    """PIL's ``rotate`` coefficients: counter-clockwise by ``degrees`` about the centre of
    images of ``size`` (``(height, width)``), as per-sample 2x3 matrices."""
    cy, cx = size[0] / 2.0, size[1] / 2.0
    theta = degrees * (-np.pi / 180.0)
    return matrix((dmath.cos(theta), (1, 0, -cx, 0, 1, -cy)),
                  (dmath.sin(theta), (0, 1, -cy, -1, 0, cx)), (1.0, (0, 0, cx, 0, 0, cy)))


def rotate(images, degrees, size, fill, interp=LINEAR):
    """PIL's ``img.rotate(degrees, resample, fillcolor=fill)``: counter-clockwise about the
    image centre, same size.

    Args:
        images: uint8 HWC batch of images of ``size``.
        degrees: per-sample float (or a number).
        size: ``(height, width)`` of every image.
        fill: a number, or one value per channel.
        interp: ``LINEAR`` or ``NEAREST``.
    """
    return affine(images, rotation_matrix(degrees, size), fill, interp)


def flip(images, mirror):
    """Horizontal flip of the samples whose ``mirror`` is set (``RandomHorizontalFlip``)."""
    return fn.flip(images, horizontal=mirror)


def cutout(images, size, length: int = 16):
    """The reference's ``Cutout(n_holes=1, length)`` (``util/autoaug.py``, after DeVries & Taylor
    2017): centre ``(y, x)`` uniform over the pixels, rows ``[clip(y - length // 2),
    clip(y + length // 2))`` and the same columns set to 0.

    Args:
        images: uint8 HWC batch of images of ``size``.
        size: ``(height, width)`` of every image.
        length: the hole's side before clipping.
    """
    corners = []
    for extent in size:
        centre = fn.random.uniform(values=list(range(extent)), dtype=types.INT32)
        low = dmath.clamp(centre - length // 2, 0, extent)
        high = dmath.clamp(centre + length // 2, 0, extent)
        corners.append((low, high))
    (y1, y2), (x1, x2) = corners
    anchor = fn.cast(fn.stack(y1, x1), dtype=types.FLOAT)
    shape = fn.cast(fn.stack(y2 - y1, x2 - x1), dtype=types.FLOAT)
    return fn.erase(images, anchor=anchor, shape=shape, axis_names="HW", fill_value=0)
