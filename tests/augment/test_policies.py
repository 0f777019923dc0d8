"""RandAugment (timm's rand-n2-m10-mstd0.5, as the reference uses it) and AutoAugment's CIFAR-10
policy: parameters per level against the reference's tables, each operation against PIL, the
draws' distributions counted, and the sub-policies against DALI's own copy of the policy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from nvidia.dali import fn, types
from nvidia.dali.auto_aug import auto_augment
from nvidia.dali.auto_aug.core import signed_bin
from PIL import Image
from scipy import stats

from graphs import difference, run_graph, structured_images
from reference_transforms import policy_operation, timm_operation
from dali_cmo.augment import autoaugment
from dali_cmo.augment.randaugment import NAMES, RandAugment, operation

SIZE = 40
IMAGES = structured_images(6, SIZE, seed=2)
PIL_IMAGES = [Image.fromarray(i) for i in IMAGES]
LEVELS = np.array([9.3, 10.0, 8.6, 9.9, 10.0, 9.45], np.float32)
SIGNS = np.array([1, -1, 1, -1, -1, 1], np.float32)


def test_config_string_is_parsed_as_timm_does():
    spec = RandAugment.parse("rand-n2-m10-mstd0.5", size=(SIZE, SIZE))
    assert (spec.n, spec.m, spec.mstd, spec.probability, spec.size) == (2, 10, 0.5, 0.5,
                                                                        (SIZE, SIZE))
    assert RandAugment.parse("rand-mstd1-m7").m == 7 and RandAugment.parse("rand-m7").mstd == 0.5
    with pytest.raises(ValueError, match=r"^unknown RandAugment config section 'w0' in "
                                         r"'rand-m9-w0' \(known: n, m, mstd\)$"):
        RandAugment.parse("rand-m9-w0")
    with pytest.raises(ValueError, match=r"^RandAugment m must lie in \[0, 10\]; got 12.0$"):
        RandAugment.parse("rand-m12")


def timm_reference(name, img, level, sign):
    """The reference's operation at ``level`` with PIL, bilinear where it draws bilinear or
    bicubic (benchmarks/reference_transforms.py)."""
    return timm_operation(name, img, level, sign, Image.BILINEAR)


EXACT = {"Invert", "PosterizeTpu", "Solarize", "SolarizeAdd"}


def test_every_operation_at_its_level_matches_the_reference():
    spec = RandAugment(size=(SIZE, SIZE))

    def graph(images, level, sign):
        return tuple(operation(images, name, level, sign, spec) for name in NAMES)
    outputs = run_graph(graph, IMAGES, LEVELS, SIGNS)
    for name, out in zip(NAMES, outputs):
        expected = [timm_reference(name, img, float(v), float(s))
                    for img, v, s in zip(PIL_IMAGES, LEVELS, SIGNS)]
        diff = difference(out, expected)
        bound = 0 if name in EXACT else 80 if name == "Equalize" else 1
        assert diff.max() <= bound, (name, diff.max())


def test_apply_routes_each_sample_to_its_drawn_operation():
    """Given draws: the sample takes NAMES[op] when applied, is unchanged otherwise."""
    spec = RandAugment(n=1, size=(SIZE, SIZE))
    ops = np.array([3, 11, 2, 14, 0, 9])
    applied = np.array([1, 1, 0, 1, 1, 0])

    def graph(images, op, on, level, sign):
        layer = dict(op=fn.cast(op, dtype=types.INT32), applied=fn.cast(on, dtype=types.BOOL),
                     level=level, sign=sign)
        return spec.apply(images, [layer])
    out = run_graph(graph, IMAGES, ops, applied, LEVELS, SIGNS)
    for i, img in enumerate(PIL_IMAGES):
        expected = timm_reference(NAMES[ops[i]], img, float(LEVELS[i]), float(SIGNS[i])) \
            if applied[i] else img
        assert difference([out[i]], [expected]).max() <= 1, i


def test_draws_follow_timms_distributions():
    """Counted over 6,000 samples: operation uniform over 15 (with replacement), applied with
    probability 0.5, sign +-1 evenly, level clip(N(10, 0.5), 0, 10): half exactly 10, the
    rest half-normal below."""
    spec = RandAugment(n=2)

    def graph(images):
        layers = spec.draw()
        return tuple(layer[key] for layer in layers for key in ("op", "applied", "level", "sign"))
    outputs = run_graph(graph, [IMAGES[0][:2, :2]] * 1000, iterations=3)
    op, applied, level, sign = (np.concatenate([np.array(outputs[k + 4 * layer], float)
                                                for layer in range(2)]) for k in range(4))
    n = len(op)
    assert stats.chisquare(np.bincount(op.astype(int), minlength=15)).pvalue > 1e-3
    for share in (applied.mean(), (sign > 0).mean(), (level == 10).mean()):
        assert abs(share - 0.5) < 4 * math.sqrt(0.25 / n), share
    assert set(np.unique(sign)) == {-1.0, 1.0} and level.min() >= 0 and level.max() <= 10
    below = 10 - level[level < 10]
    assert stats.kstest(below, stats.halfnorm(scale=0.5).cdf).pvalue > 1e-3


def test_cifar10_policy_has_dalis_reduced_cifar10_sub_policies():
    """The sub-policies (operations, probabilities, levels) are the AutoAugment paper's, as
    DALI also lists them (both without the one stage of probability 0)."""
    ours = [[(aug.name, p, level) for aug, p, level in sub]
            for sub in autoaugment.CIFAR10_POLICY.sub_policies]
    dali = [[(aug.name, p, level) for aug, p, level in sub]
            for sub in auto_augment.get_reduced_cifar10_policy().sub_policies]
    assert ours == dali


POLICY_AUGMENTATIONS = {aug.name: aug for sub in autoaugment.CIFAR10_POLICY.sub_policies
                        for aug, _, _ in sub}


@pytest.mark.parametrize("name, level, magnitude", [
    ("posterize", 7, 5), ("solarize", 2, 256 - 2 * 256 / 9), ("rotate", 2, 2 * 30 / 9),
    ("translate_x", 9, 150 / 331), ("translate_y", 3, 3 * 150 / 331 / 9),
    ("brightness", 7, 7 * 0.9 / 9), ("color", 3, 3 * 0.9 / 9), ("contrast", 6, 6 * 0.9 / 9),
    ("sharpness", 1, 0.1)])
def test_cifar10_policy_magnitudes_are_the_references(name, level, magnitude):
    """SubPolicy's np.linspace tables at one level (positive sign), against the reference's
    operations with PIL (shears: tested in test_pixels.py; their bicubic is not available)."""
    augmentation = POLICY_AUGMENTATIONS[name]

    def graph(images):
        magnitude_bin = signed_bin(level, random_sign=fn.constant(idata=0, shape=[]))
        return augmentation(images, magnitude_bin=magnitude_bin, num_magnitude_bins=10,
                            size=(SIZE, SIZE))
    out = run_graph(graph, IMAGES)
    expected = [policy_operation(name, img, magnitude, 1) for img in PIL_IMAGES]
    assert difference(out, expected).max() <= 1
