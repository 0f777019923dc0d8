"""Blur, sharpness, tone operations and warps against PIL with the same parameters.

Tolerances, as stated in the modules: Gaussian blur (PIL's three box passes) within 1 level on
at most 1% of the pixels; sharpness within 1 level, the one-pixel border unchanged as in PIL;
posterize, solarize, solarize_add, invert exact; autocontrast within 1 level; warps exact with
nearest-neighbour sampling (rotation: up to 0.2% of pixels where the source point lands on a
pixel boundary, which PIL computes in double and DALI in float) and within 1 level with linear
interpolation, fill included. Equalize: DALI's (OpenCV's LUT), bounded as measured.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from scipy import stats

from graphs import difference, run_graph, structured_images
from dali_cmo.augment import filters, geometry, tone

SIZE = 40
IMAGES = structured_images(8, SIZE, seed=1)
PIL_IMAGES = [Image.fromarray(i) for i in IMAGES]
FILL = (124, 116, 104)


def f32(values):
    return [float(np.float32(v)) for v in values]


def test_gaussian_blur_is_pils_box_approximation():
    sigmas = np.linspace(0.1, 2.0, len(IMAGES))
    out = run_graph(filters.gaussian_blur, IMAGES, sigmas)
    expected = [img.filter(ImageFilter.GaussianBlur(s)) for img, s in zip(PIL_IMAGES, f32(sigmas))]
    diff = difference(out, expected)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, (diff.max(), (diff > 0).mean())


def test_sharpness_blends_pils_smooth_filter_and_keeps_the_border():
    factors = np.linspace(0.1, 1.9, len(IMAGES))
    out = run_graph(filters.adjust_sharpness, IMAGES, factors)
    expected = [ImageEnhance.Sharpness(img).enhance(f) for img, f in zip(PIL_IMAGES, f32(factors))]
    diff = difference(out, expected)
    assert diff.max() <= 1
    border = np.ones((SIZE, SIZE), bool)
    border[1:-1, 1:-1] = False
    assert all((o[border] == i[border]).all() for o, i in zip(out, IMAGES))


def solarize_add_reference(img, add):
    return img.point([min(255, v + add) if v < 128 else v for v in range(256)] * 3)


@pytest.mark.parametrize("ours, reference, values", [
    (tone.posterize, lambda img, v: ImageOps.posterize(img, int(v)), range(1, 9)),
    (tone.solarize, ImageOps.solarize, np.linspace(0, 256, 8)),
    (tone.solarize_add, lambda img, v: solarize_add_reference(img, int(v)), range(0, 120, 15)),
])
def test_tone_operations_are_exact(ours, reference, values):
    values = list(values)
    out = run_graph(ours, IMAGES, values)
    assert difference(out, [reference(img, v) for img, v in zip(PIL_IMAGES, values)]).max() == 0


def test_invert_exact_autocontrast_within_one_level():
    inverted, stretched = run_graph(lambda x: (tone.invert(x), tone.autocontrast(x)), IMAGES)
    assert difference(inverted, [ImageOps.invert(i) for i in PIL_IMAGES]).max() == 0
    assert difference(stretched, [ImageOps.autocontrast(i) for i in PIL_IMAGES]).max() <= 1


def test_equalize_is_dalis_not_pils_lut():
    """DALI's equalize (OpenCV's formula) is not PIL's: the measured gap, so that a change shows."""
    diff = difference(run_graph(tone.equalize, IMAGES), [ImageOps.equalize(i) for i in PIL_IMAGES])
    assert 0 < diff.max() <= 80


def pil_warp(kind, value, resample, fill):
    def warp(img):
        if kind == "rotate":
            return img.rotate(value, resample, fillcolor=fill)
        coeffs = {"shear_x": (1, value, 0, 0, 1, 0), "shear_y": (1, 0, 0, value, 1, 0),
                  "translate_x": (1, 0, value, 0, 1, 0),
                  "translate_y": (1, 0, 0, 0, 1, value)}[kind]
        return img.transform(img.size, Image.AFFINE, coeffs, resample, fillcolor=fill)
    return warp


WARPS = {"shear_x": (geometry.shear_x, 0.3), "shear_y": (geometry.shear_y, 0.3),
         "translate_x": (geometry.translate_x, 0.45 * SIZE),
         "translate_y": (geometry.translate_y, 0.45 * SIZE), "rotate": (geometry.rotate, 30.0)}


@pytest.mark.parametrize("interp, resample", [(geometry.LINEAR, Image.BILINEAR),
                                              (geometry.NEAREST, Image.NEAREST)])
@pytest.mark.parametrize("fill", [FILL, 128])
def test_warps_follow_pil_coordinates_and_fill(interp, resample, fill):
    values = np.linspace(-1, 1, len(IMAGES))
    pil_fill = fill if isinstance(fill, tuple) else (fill,) * 3

    def graph(images, v):
        outs = []
        for kind, (op, scale) in WARPS.items():
            extra = dict(size=(SIZE, SIZE)) if kind == "rotate" else {}
            outs.append(op(images, v * scale, fill=fill, interp=interp, **extra))
        return tuple(outs)
    outputs = run_graph(graph, IMAGES, values)
    for (kind, (_, scale)), out in zip(WARPS.items(), outputs):
        expected = [pil_warp(kind, float(np.float32(v * scale)), resample, pil_fill)(img)
                    for img, v in zip(PIL_IMAGES, values)]
        diff = difference(out, expected)
        if interp == geometry.NEAREST:
            bound = 0.002 if kind == "rotate" else 0
            assert (diff > 0).mean() <= bound, (kind, (diff > 0).mean())
        else:
            assert diff.max() <= 1, (kind, diff.max())


def test_cutout_centres_are_uniform_and_holes_clipped():
    """Cutout(1, 16) on white 32x32 images: the hole's centre (recovered from its clipped
    rows and columns) is uniform over the pixels; counted over 1,600 images."""
    white = np.full((32, 32, 3), 255, np.uint8)
    out = np.stack(run_graph(functools.partial(geometry.cutout, size=(32, 32), length=16),
                             [white] * 1600))
    hole = (out == 0).all(axis=3)
    rows, cols = hole.any(axis=2), hole.any(axis=1)
    y1, y2 = rows.argmax(axis=1), 32 - rows[:, ::-1].argmax(axis=1)
    x1, x2 = cols.argmax(axis=1), 32 - cols[:, ::-1].argmax(axis=1)
    assert (hole.sum(axis=(1, 2)) == (y2 - y1) * (x2 - x1)).all()  # one rectangle, all channels
    assert ((y2 - y1) >= 8).all() and ((y2 - y1) <= 16).all()
    centres = np.where(y1 > 0, y1 + 8, y2 - 8), np.where(x1 > 0, x1 + 8, x2 - 8)
    for axis in range(2):
        counts = np.bincount(centres[axis], minlength=32)
        assert len(counts) == 32 and stats.chisquare(counts).pvalue > 1e-3, counts
