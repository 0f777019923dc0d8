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
from PIL import Image, ImageEnhance, ImageOps
from scipy import stats

from graphs import difference, run_graph, structured_images
from dali_cmo.augment import autoaugment
from dali_cmo.augment.randaugment import IMAGENET_FILL, NAMES, RandAugment, operation

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
    """The reference's operation at ``level`` (util/randaugment.py's level-to-argument rules),
    with PIL; bilinear where it draws bilinear or bicubic."""
    signed = lambda scale: level / 10 * scale * sign  # noqa: E731
    enhance = level / 10 * 1.8 + 0.1
    affine = lambda c: img.transform(img.size, Image.AFFINE, c, Image.BILINEAR,  # noqa: E731
                                     fillcolor=IMAGENET_FILL)
    return {
        "AutoContrast": lambda: ImageOps.autocontrast(img),
        "Equalize": lambda: ImageOps.equalize(img),
        "Invert": lambda: ImageOps.invert(img),
        "Rotate": lambda: img.rotate(signed(30), Image.BILINEAR, fillcolor=IMAGENET_FILL),
        "PosterizeTpu": lambda: ImageOps.posterize(img, int(level / 10 * 4)),
        "Solarize": lambda: ImageOps.solarize(img, int(level / 10 * 256)),
        "SolarizeAdd": lambda: img.point([min(255, v + int(level / 10 * 110)) if v < 128 else v
                                          for v in range(256)] * 3),
        "Color": lambda: ImageEnhance.Color(img).enhance(enhance),
        "Contrast": lambda: ImageEnhance.Contrast(img).enhance(enhance),
        "Brightness": lambda: ImageEnhance.Brightness(img).enhance(enhance),
        "Sharpness": lambda: ImageEnhance.Sharpness(img).enhance(enhance),
        "ShearX": lambda: affine((1, signed(0.3), 0, 0, 1, 0)),
        "ShearY": lambda: affine((1, 0, 0, signed(0.3), 1, 0)),
        "TranslateXRel": lambda: affine((1, 0, signed(0.45) * img.size[0], 0, 1, 0)),
        "TranslateYRel": lambda: affine((1, 0, 0, 0, 1, signed(0.45) * img.size[1])),
    }[name]()


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
    DALI also lists them (DALI drops the one stage of probability 0)."""
    ours = [[(aug.name.rstrip("_"), p, level) for aug, p, level in sub if p > 0]
            for sub in autoautgment_sub_policies()]
    dali = [[(aug.name, p, level) for aug, p, level in sub]
            for sub in auto_augment.get_reduced_cifar10_policy().sub_policies]
    assert ours == dali


def autoautgment_sub_policies():
    return autoaugment.CIFAR10_POLICY.sub_policies


@pytest.mark.parametrize("name, level, reference", [
    ("posterize", 7, lambda img: ImageOps.posterize(img, 5)),
    ("solarize", 2, lambda img: ImageOps.solarize(img, 256 - 2 * 256 / 9)),
    ("rotate", 2, lambda img: img.rotate(2 * 30 / 9, Image.NEAREST, fillcolor=(128,) * 3)),
    ("translate_x", 9, lambda img: img.transform(img.size, Image.AFFINE,
                                                 (1, 0, 150 / 331 * SIZE, 0, 1, 0),
                                                 Image.NEAREST, fillcolor=(128,) * 3)),
    ("shear_y", 8, lambda img: img.transform(img.size, Image.AFFINE,
                                             (1, 0, 0, 8 * 0.3 / 9, 1, 0), Image.BILINEAR,
                                             fillcolor=(128,) * 3)),
    ("brightness", 7, lambda img: ImageEnhance.Brightness(img).enhance(1 + 7 * 0.9 / 9)),
    ("color_", 3, lambda img: ImageEnhance.Color(img).enhance(1 + 3 * 0.9 / 9)),
])
def test_cifar10_policy_magnitudes_are_the_references(name, level, reference):
    """SubPolicy's np.linspace tables at one level (positive sign), against PIL."""
    augmentation = getattr(autoaugment, name)

    def graph(images):
        magnitude = signed_bin(level, random_sign=fn.constant(idata=0, shape=[]))
        return augmentation(images, magnitude_bin=magnitude, num_magnitude_bins=10,
                            size=(SIZE, SIZE))
    out = run_graph(graph, IMAGES)
    assert difference(out, [reference(img) for img in PIL_IMAGES]).max() <= 1
