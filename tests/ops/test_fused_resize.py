"""cmo_paste(..., resize_foreground=True): the foreground region resampled into its box while it
is pasted, instead of ``fn.resize`` before the paste.

The filter is ``fn.resize``'s default (linear, antialiased when shrinking). Against the NumPy
statement of that filter and against ``fn.resize`` with float output the fused values agree to
float32 rounding (2e-3 of a level). Against the unfused pipeline path (decoders.image_slice ->
fn.resize -> cmo_paste), which rounds the resized region to uint8 before normalising, the
stated tolerance is that rounding: at most 0.5 level (of 255) plus float noise per value for
float32 output, plus one float16 ulp of the output for float16; outside the box the outputs are
identical.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from numpy_reference import reference_resize
from PIL import Image

from nvidia.dali import fn, pipeline_def, types

from dali_cmo.constants import IMAGENET_MEAN, IMAGENET_STD

FLOAT_NOISE = 2e-3  # levels: float32 sums in another order
ROUNDING = 0.5      # levels: the unfused path's uint8 rounding of the resized region


def run(p):
    return [[np.array(t) for t in o] for o in p.run()]


def random_cases(rng, n):
    """Backgrounds, boxes, regions (shrunk up to 4x, enlarged up to 8x, single pixels) and
    flips."""
    bgs, boxes, regions = [], [], []
    for i in range(n):
        H, W = rng.integers(8, 70, 2)
        y1, x1 = rng.integers(0, H - 1), rng.integers(0, W - 1)
        y2, x2 = rng.integers(y1 + 1, H + 1), rng.integers(x1 + 1, W + 1)
        bh, bw = y2 - y1, x2 - x1
        shape = [(1, 1), (bh, bw), (4 * bh, 3 * bw), (max(bh // 8, 1), max(bw // 5, 1)),
                 tuple(rng.integers(1, 120, 2))][i % 5]
        bgs.append(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        boxes.append(np.array([y1, x1, y2, x2], np.int32))
        regions.append(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
    flips = [np.array(i % 2, np.int32) for i in range(n)]
    return bgs, boxes, regions, flips


def test_resampled_region_follows_the_resize_filter_and_the_flip(plugin):
    rng = np.random.default_rng(0)
    bgs, boxes, regions, flips = random_cases(rng, 20)

    @pipeline_def(batch_size=len(bgs), num_threads=2, device_id=None)
    def pipe():
        bg, region = (fn.external_source(source=[v], cycle=True, layout="HWC")
                      for v in (bgs, regions))
        box, flip = (fn.external_source(source=[v], cycle=True) for v in (boxes, flips))
        resized = fn.resize(region, size=fn.cast(fn.stack(box[2] - box[0], box[3] - box[1]),
                                                 dtype=types.FLOAT), dtype=types.FLOAT)
        images, _ = fn.cmo_paste(bg, region, box=box, foreground_mirror=flip,
                                 resize_foreground=True, dtype=types.FLOAT)
        return images, resized

    p = pipe()
    p.build()
    images, resized = run(p)
    for bg, (y1, x1, y2, x2), region, flip, img, dali_resized in zip(bgs, boxes, regions, flips,
                                                                      images, resized):
        expected = reference_resize(region, y2 - y1, x2 - x1)
        expected = expected[:, ::-1] if flip else expected
        inside = img[y1:y2, x1:x2]
        np.testing.assert_allclose(inside, expected, rtol=0, atol=FLOAT_NOISE)
        dali = dali_resized[:, ::-1] if flip else dali_resized
        np.testing.assert_allclose(inside, dali, rtol=0, atol=FLOAT_NOISE)
        outside = np.ones(bg.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        np.testing.assert_array_equal(img[outside], bg[outside].astype(np.float32))


def test_box_sized_region_is_pasted_exactly(plugin):
    """At scale 1 the filter is the identity: the same output as without resize_foreground."""
    rng = np.random.default_rng(1)
    bgs, boxes, _, flips = random_cases(rng, 6)
    regions = [rng.integers(0, 256, (b[2] - b[0], b[3] - b[1], 3), dtype=np.uint8) for b in boxes]

    @pipeline_def(batch_size=len(bgs), num_threads=2, device_id=None)
    def pipe():
        bg, region = (fn.external_source(source=[v], cycle=True, layout="HWC")
                      for v in (bgs, regions))
        box, flip = (fn.external_source(source=[v], cycle=True) for v in (boxes, flips))
        args = dict(box=box, foreground_mirror=flip, mean=list(IMAGENET_MEAN),
                    std=list(IMAGENET_STD), dtype=types.FLOAT16, output_layout="CHW")
        return (fn.cmo_paste(bg, region, resize_foreground=True, **args)[0],
                fn.cmo_paste(bg, region, **args)[0])

    p = pipe()
    p.build()
    fused, plain = run(p)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))


def test_a_region_with_other_channels_is_refused(plugin):
    bg = [np.zeros((8, 8, 3), np.uint8)]
    region = [np.zeros((5, 6, 1), np.uint8)]

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        return fn.cmo_paste(fn.external_source(source=[bg], cycle=True, layout="HWC"),
                            fn.external_source(source=[region], cycle=True, layout="HWC"),
                            box=fn.external_source(source=[[np.array([1, 1, 4, 5], np.int32)]],
                                                   cycle=True),
                            resize_foreground=True)[0]

    p = pipe()
    p.build()
    with pytest.raises(RuntimeError, match=r"sample 0: with resize_foreground=True the foreground "
                                           r"must be a non-empty HWC region with the background's "
                                           r"3 channels and at most 2146435071 values; got shape "
                                           r"5 x 6 x 1\n"):
        p.run()


@pytest.fixture(scope="module")
def jpegs():
    """Eight smooth random-texture JPEGs of varied sizes, as encoded byte arrays."""
    rng = np.random.default_rng(2)
    out = []
    for _ in range(8):
        h, w = rng.integers(90, 300, 2)
        coarse = rng.integers(0, 256, (h // 12 + 2, w // 12 + 2, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(coarse).resize((int(w), int(h)), Image.BICUBIC).save(buffer, "JPEG",
                                                                               quality=90)
        out.append(np.frombuffer(buffer.getvalue(), np.uint8))
    return out


@pytest.mark.parametrize("dtype", [types.FLOAT, types.FLOAT16], ids=["float32", "float16"])
def test_fused_path_within_the_stated_tolerance_of_the_unfused_path(plugin, jpegs, dtype):
    """The training pipeline's region decode, fused and unfused, from the same windows and boxes."""
    size = 64
    backgrounds = [np.random.default_rng(3).integers(0, 256, (size, size, 3), dtype=np.uint8)] * 8

    @pipeline_def(batch_size=8, num_threads=2, device_id=None, seed=4)
    def pipe():
        encoded = fn.external_source(source=[jpegs], cycle=True)
        bg = fn.external_source(source=[backgrounds], cycle=True, layout="HWC")
        flip = fn.random.coin_flip(probability=0.5)
        box, _ = fn.cmo_box(size=[size, size], per_sample=True)
        anchor, window = fn.random_crop_generator(fn.peek_image_shape(encoded),
                                                  random_area=[0.08, 1.0],
                                                  random_aspect_ratio=[3 / 4, 4 / 3])
        start, extent, box_size = fn.cmo_region(anchor, window, box, size=size,
                                                foreground_mirror=flip)
        region = fn.decoders.image_slice(encoded, start, extent, axes=[0, 1],
                                         normalized_anchor=False, normalized_shape=False,
                                         output_type=types.RGB)
        args = dict(box=box, foreground_mirror=flip, mean=list(IMAGENET_MEAN),
                    std=list(IMAGENET_STD), dtype=dtype, output_layout="CHW")
        fused, _ = fn.cmo_paste(bg, region, resize_foreground=True, **args)
        unfused, _ = fn.cmo_paste(bg, fn.resize(region, size=box_size), **args)
        return fused, unfused, box, region

    p = pipe()
    p.build()
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    worst, resized_any, shrunk_any = 0.0, False, False
    for _ in range(3):
        fused, unfused, boxes, regions = run(p)
        for a, b, (y1, x1, y2, x2), region in zip(fused, unfused, boxes, regions):
            inside = np.zeros((size, size), bool)
            inside[y1:y2, x1:x2] = True
            np.testing.assert_array_equal(a[:, ~inside], b[:, ~inside])
            levels = np.abs(a.astype(np.float64) - b) * std  # back to 0..255 units
            ulp = (np.spacing(np.abs(b).astype(np.float16)).astype(np.float64) * std
                   if dtype == types.FLOAT16 else 0.0)
            assert (levels <= ROUNDING + FLOAT_NOISE + ulp).all(), float(levels.max())
            worst = max(worst, float(levels.max()))
            if y2 > y1:
                resized_any |= region.shape[:2] != (y2 - y1, x2 - x1)
                shrunk_any |= region.shape[0] > y2 - y1
    assert resized_any and shrunk_any  # both directions of the filter were exercised
    assert worst > 0.25  # the unfused rounding shows: the comparison is not vacuous
