"""Colour transforms against torchvision on PIL images (the reference's path), same factors.

Tolerances (stated in dali_cmo/augment/color.py): hue exact; brightness, contrast, saturation
and grayscale within 1 level on at most 1% of the pixels; four operations in a row within
6 levels and more than 1 level on under 0.1% of the pixels (a 1-level difference before the
8-bit HSV conversion of the hue shift can move a pixel by a few levels).
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import torchvision.transforms.functional as TF
from PIL import Image
from scipy import stats

from graphs import difference, run_graph, structured_images
from dali_cmo.augment import color

IMAGES = structured_images(12, 48)
PIL_IMAGES = [Image.fromarray(i) for i in IMAGES]


@pytest.mark.parametrize("name, ours, reference, low, high", [
    ("brightness", color.adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
    ("contrast", color.adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
    ("saturation", color.adjust_saturation, TF.adjust_saturation, 0.0, 1.4),
    ("hue", color.adjust_hue, TF.adjust_hue, -0.5, 0.5),
])
def test_each_operation_matches_torchvision_on_pil(name, ours, reference, low, high):
    factors = np.linspace(low, high, len(IMAGES)).astype(np.float32)
    out = run_graph(ours, IMAGES, factors)
    expected = [reference(img, float(f)) for img, f in zip(PIL_IMAGES, factors)]
    diff = difference(out, expected)
    if name == "hue":
        assert diff.max() == 0
    else:
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, (diff.max(), (diff > 0).mean())
    assert out[0].shape == (48, 48, 3) and out[0].dtype == np.uint8


def test_grayscale_is_pil_luma_in_three_channels():
    out = run_graph(color.grayscale, IMAGES)
    expected = [np.asarray(TF.rgb_to_grayscale(img, num_output_channels=3)) for img in PIL_IMAGES]
    diff = difference(out, expected)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.005
    assert all((o[..., 0] == o[..., 1]).all() and (o[..., 0] == o[..., 2]).all() for o in out)


ORDERS = list(itertools.permutations(range(4)))


def test_operations_run_in_each_samples_order():
    """apply_in_order with given factors and orders equals torchvision's sequence on PIL."""
    n = len(IMAGES)
    rng = np.random.default_rng(3)
    factors = [rng.uniform(0.6, 1.4, n), rng.uniform(0.6, 1.4, n), rng.uniform(0.6, 1.4, n),
               rng.uniform(-0.1, 0.1, n)]
    orders = [ORDERS[k] for k in rng.integers(0, len(ORDERS), n)]
    ops = (color.adjust_brightness, color.adjust_contrast, color.adjust_saturation,
           color.adjust_hue)
    slots = [[order[k] for order in orders] for k in range(4)]

    def graph(images, b, c, s, h, *slot_values):
        from nvidia.dali import fn, types
        active = list(zip(ops, (b, c, s, h)))
        return color.apply_in_order(active, [fn.cast(v, dtype=types.INT32) for v in slot_values],
                                    images)
    out = run_graph(graph, IMAGES, *factors, *slots)
    references = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    expected = []
    for i, img in enumerate(PIL_IMAGES):
        for op in orders[i]:
            img = references[op](img, float(np.float32(factors[op][i])))
        expected.append(img)
    diff = difference(out, expected)
    assert diff.max() <= 6 and (diff > 1).mean() < 1e-3, (diff.max(), (diff > 1).mean())


def test_jitter_draws_factors_uniformly_and_orders_uniformly():
    """jitter_factors and permutation_slots, counted over 4,000 samples."""
    def graph(images):
        active = color.jitter_factors(0.4, 0.4, 0.4, 0.1)
        slots = color.permutation_slots(4)
        return tuple(factor for _, factor in active) + tuple(slots)
    outputs = run_graph(graph, [IMAGES[0]] * 500, iterations=8)
    b, c, s, h = (np.array(o, float) for o in outputs[:4])
    slots = np.stack([np.array(o, int) for o in outputs[4:]], axis=1)
    for values, low, high in ((b, 0.6, 1.4), (c, 0.6, 1.4), (s, 0.6, 1.4), (h, -0.1, 0.1)):
        assert values.min() >= low and values.max() < high
        counts, _ = np.histogram(values, bins=8, range=(low, high))
        assert stats.chisquare(counts).pvalue > 1e-3, counts
    assert (np.sort(slots, axis=1) == np.arange(4)).all()  # every sample: a permutation
    codes = slots @ (4 ** np.arange(4))
    counts = np.array([(codes == np.dot(order, 4 ** np.arange(4))).sum() for order in ORDERS])
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_random_apply_and_grayscale_probabilities():
    """RandomApply(p=0.8) jitters 80% of the images, RandomGrayscale(0.2) greys 20%: counted."""
    grey = np.full((8, 8, 3), (200, 40, 90), np.uint8)
    batch = [grey] * 1000

    def graph(images):
        jittered = color.color_jitter(images, 0.4, 0.0, 0.0, 0.0, probability=0.8)
        return jittered, color.random_grayscale(images, 0.2)
    jittered, greyed = run_graph(graph, batch)
    changed = np.mean([not np.array_equal(j, grey) for j in jittered])
    greys = np.mean([(g[..., 0] == g[..., 1]).all() for g in greyed])
    for share, p in ((changed, 0.8), (greys, 0.2)):
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / 1000), (share, p)


def test_hue_outside_half_is_refused():
    with pytest.raises(ValueError) as error:
        run_graph(functools.partial(color.color_jitter, hue=0.6), IMAGES[:1])
    assert str(error.value).strip().splitlines()[-1].strip() == \
        "ValueError: hue must lie in [0, 0.5]; got 0.6"
