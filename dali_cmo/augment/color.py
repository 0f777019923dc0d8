"""Colour transforms with the semantics torchvision gives them on PIL images, as DALI graph pieces.

The CMO reference code (github.com/naver-ai/cmo) augments PIL images, so torchvision's
``ColorJitter`` and ``RandomGrayscale`` there run PIL's own definitions
(``torchvision/transforms/_functional_pil.py``). On uint8 HWC batches, CPU or GPU:

* ``adjust_brightness(x, f) = trunc(f * x)`` (``ImageEnhance.Brightness``: ``Image.blend``
  with black);
* ``adjust_contrast(x, f) = trunc(m + f * (x - m))`` with ``m = int(mean(L) + 0.5)``, ``L`` the
  image's grayscale (``ImageEnhance.Contrast``: the centre is the image's own grayscale mean);
* ``adjust_saturation(x, f) = trunc(L + f * (x - L))`` per pixel (``ImageEnhance.Color``);
* ``adjust_hue(x, h)``: PIL's RGB -> HSV (8-bit) conversion, ``H += uint8(int(h * 255))``
  modulo 256, HSV -> RGB (``_functional_pil.adjust_hue``);
* ``grayscale(x) = (L, L, L)`` with ``L = (299 R + 587 G + 114 B) / 1000`` rounded
  (``Image.convert("L")``);

every result clamped to 0..255. ``color_jitter`` draws the factors and a random order per sample
as ``torchvision.transforms.ColorJitter`` does.

Agreement with PIL (tests/augment/test_color.py): hue exact; brightness, contrast, saturation
and grayscale within 1 level (DALI's grayscale uses float weights where PIL uses 16-bit fixed
point, so ``L`` differs by 1 in about 0.05% of pixels; PIL truncates each blend, which DALI's
round-to-nearest matches after a -0.499 shift except where the fraction exceeds 0.999).
"""
from __future__ import annotations

import functools

from nvidia.dali import fn, types
import nvidia.dali.math as dmath

from dali_cmo.augment.draws import choose, maybe, permutation_slots, uniform

TRUNCATE = -0.499  # added before DALI rounds to nearest: PIL's Image.blend truncates


def on_gpu(images) -> bool:
    return images.device == "gpu"


def luma(images):
    """PIL's ``Image.convert("L")``: the grayscale of an RGB batch, uint8 HW1."""
    return fn.color_space_conversion(images, image_type=types.RGB, output_type=types.GRAY)


def grayscale(images):
    """The grayscale replicated to three channels (``RandomGrayscale``'s output)."""
    return fn.color_space_conversion(luma(images), image_type=types.GRAY, output_type=types.RGB)


def adjust_brightness(images, factor):
    """``trunc(factor * x)``, clamped (``ImageEnhance.Brightness``).

    Args:
        images: uint8 HWC batch.
        factor: per-sample float (or a number); 1 leaves the image unchanged.
    """
    return fn.brightness_contrast(images, brightness=factor, brightness_shift=TRUNCATE / 255)


def adjust_contrast(images, factor):
    """``trunc(m + factor * (x - m))`` with ``m`` the rounded mean of the image's grayscale
    (``ImageEnhance.Contrast``).

    Args:
        images: uint8 HWC batch.
        factor: per-sample float (or a number); 0 gives a flat grey image of the mean.
    """
    centre = dmath.floor(fn.reductions.mean(luma(images)) + 0.5)
    if on_gpu(images):  # a GPU centre cannot be an argument input: arithmetic instead
        return fn.cast(centre + TRUNCATE + (images - centre) * factor, dtype=types.UINT8)
    return fn.brightness_contrast(images, contrast=factor, contrast_center=centre,
                                  brightness_shift=TRUNCATE / 255)


def adjust_saturation(images, factor):
    """``trunc(L + factor * (x - L))`` per pixel, ``L`` the pixel's grayscale
    (``ImageEnhance.Color``).

    Args:
        images: uint8 HWC batch.
        factor: per-sample float (or a number); 0 gives the grayscale image.
    """
    grey = fn.color_space_conversion(luma(images), image_type=types.GRAY, output_type=types.RGB)
    mixed = (fn.brightness_contrast(images, brightness=factor, dtype=types.FLOAT)
             + fn.brightness_contrast(grey, brightness=1 - factor, brightness_shift=TRUNCATE,
                                      dtype=types.FLOAT))
    return fn.cast(mixed, dtype=types.UINT8)


def _rgb_to_hsv(images):
    """PIL's 8-bit RGB -> HSV (``rgb2hsv_row`` in Pillow's Convert.c), float64 planes."""
    r, g, b = (fn.cast(images[:, :, c], dtype=types.FLOAT) for c in range(3))
    maxc = dmath.max(r, dmath.max(g, b))
    minc = dmath.min(r, dmath.min(g, b))
    grey = maxc == minc
    span = maxc - minc + grey  # avoid dividing by zero where the pixel is grey
    sat = fn.cast(span / (maxc + grey), dtype=types.FLOAT64) * 255.0
    rc, gc, bc = ((maxc - c) / span for c in (r, g, b))
    at_r = maxc == r
    at_g = (maxc == g) & (maxc != r)
    at_b = (maxc != g) & (maxc != r)
    h = fn.cast(at_r * (bc - gc), dtype=types.FLOAT64) \
        + at_g * (2.0 + fn.cast(rc, dtype=types.FLOAT64) - bc) \
        + at_b * (4.0 + fn.cast(gc, dtype=types.FLOAT64) - rc)
    h = fn.cast(fn.cast(h, dtype=types.FLOAT), dtype=types.FLOAT64)  # PIL keeps h in a float
    h = h / 6.0 + 1.0  # in double, as C promotes it
    h = fn.cast(h - dmath.floor(h), dtype=types.FLOAT)  # fmod(h, 1.0) > 0, stored as float
    hue8 = dmath.floor(fn.cast(h, dtype=types.FLOAT64) * 255.0) * (grey == 0)
    sat8 = dmath.floor(sat) * (grey == 0)
    return hue8, sat8, fn.cast(maxc, dtype=types.FLOAT64)


def _hsv_to_rgb(h, s, v):
    """PIL's 8-bit HSV -> RGB (``hsv2rgb`` in Pillow's Convert.c), on float64 planes holding
    integers; returns uint8 HWC."""
    sector = dmath.floor(h * 6.0 / 255.0)
    frac = fn.cast(h * 6.0 / 255.0 - sector, dtype=types.FLOAT)
    fs = fn.cast(s / 255.0, dtype=types.FLOAT)
    fs64, frac64 = fn.cast(fs, dtype=types.FLOAT64), fn.cast(frac, dtype=types.FLOAT64)

    def rounded(value):  # C's round(): half away from zero (values here are >= 0)
        return dmath.clamp(dmath.floor(value + 0.5), 0.0, 255.0)
    p = rounded(v * (1.0 - fs64))
    q = rounded(v * (1.0 - fn.cast(fs * frac, dtype=types.FLOAT64)))  # float product in C
    t = rounded(v * (1.0 - fs64 * (1.0 - frac64)))
    sector = sector - 6.0 * dmath.floor(sector / 6.0)
    # (r, g, b) for sectors 0..5: (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
    table = {0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), 5: (v, p, q)}
    planes = []
    for channel in range(3):
        plane = None
        for k, values in table.items():
            term = (sector == float(k)) * values[channel]
            plane = term if plane is None else plane + term
        plane = plane * (s != 0) + v * (s == 0)
        planes.append(fn.cast(plane, dtype=types.UINT8))
    return fn.stack(*planes, axis=2, axis_name="C")


def adjust_hue(images, factor):
    """PIL's hue shift (``torchvision`` ``adjust_hue`` on a PIL image): RGB -> 8-bit HSV,
    ``H += uint8(int(factor * 255))`` (wrapping), HSV -> RGB.

    Args:
        images: uint8 HWC batch.
        factor: per-sample float in ``[-0.5, 0.5]`` (or a number).
    """
    h, s, v = _rgb_to_hsv(images)
    scaled = fn.cast(factor, dtype=types.FLOAT64) * 255.0
    shift = dmath.floor(scaled) * (scaled >= 0) + dmath.ceil(scaled) * (scaled < 0)  # int32()
    h = h + shift
    h = h - 256.0 * dmath.floor(h / 256.0)  # uint8 wrap-around
    return _hsv_to_rgb(h, s, v)


def jitter_factors(brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                   hue: float = 0.0) -> list:
    """The active ColorJitter operations with per-sample factors drawn as torchvision draws
    them: ``U[max(0, 1 - s), 1 + s]`` for brightness, contrast and saturation, ``U[-h, h]`` for
    hue; an operation of strength 0 is left out (torchvision sets it to ``None``)."""
    active = []
    for strength, op in ((brightness, adjust_brightness), (contrast, adjust_contrast),
                         (saturation, adjust_saturation)):
        if strength:
            active.append((op, uniform(max(0.0, 1.0 - strength), 1.0 + strength)))
    if hue:
        active.append((adjust_hue, uniform(-hue, hue)))
    return active


def _with_factor(op, factor, images):
    return op(images, factor)


def apply_in_order(active: list, slots: list, images):
    """Applies the operations of ``active`` (``(op, factor)`` pairs) to every sample in the
    order its ``slots`` say (slot ``k``: the index of the ``k``-th operation).

    Each slot routes every sample to its operation (``choose``), so a cheap operation is built
    once per slot. The hue shift, when active (always last in ``active``), is built once: the
    other operations run in two passes over the slots, those before the sample's hue position,
    then the hue shift, then those after it."""
    transforms = [functools.partial(_with_factor, op, factor) for op, factor in active]
    if active[-1][0] is not adjust_hue:
        for slot in slots:
            images = choose(transforms, slot, images)
        return images
    hue_index = len(active) - 1
    position = sum(k * (slot == hue_index) for k, slot in enumerate(slots))
    others = [slots[j] * (j < position) + slots[j + 1] * (j >= position)
              for j in range(hue_index)]  # the order of the other operations
    for before_hue in (True, False):
        for j, slot in enumerate(others):
            if (j < position) == before_hue:
                images = choose(transforms[:-1], slot, images)
        if before_hue:
            images = transforms[-1](images)
    return images


def color_jitter(images, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.0, probability: float = 1.0):
    """torchvision's ``ColorJitter(brightness, contrast, saturation, hue)`` on PIL images,
    wrapped in ``RandomApply(p=probability)``: per sample, the factors of :func:`jitter_factors`
    and the active operations in a uniformly random order (``torch.randperm``).

    Args:
        images: uint8 HWC batch (CPU or GPU).
        brightness, contrast, saturation: strengths ``s`` (factor ``U[max(0, 1-s), 1+s]``).
        hue: strength ``h`` in ``[0, 0.5]`` (shift ``U[-h, h]``).
        probability: the chance that a sample is jittered at all.
    """
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must lie in [0, 0.5]; got {hue}")
    active = jitter_factors(brightness, contrast, saturation, hue)
    if not active:
        return images
    slots = permutation_slots(len(active))
    return maybe(functools.partial(apply_in_order, active, slots), probability, images)


def random_grayscale(images, probability: float = 0.2):
    """``RandomGrayscale(p=probability)``: the grayscale of the image, three channels, for the
    samples whose coin comes up."""
    return maybe(grayscale, probability, images)
