"""RandAugment as the CMO reference uses it: ``rand_augment_transform('rand-n2-m10-mstd0.5',
ra_params)`` from its ``util/randaugment.py`` (PaCo's copy of an early timm version by Ross
Wightman), with ``ra_params = dict(translate_const=int(224 * 0.45), img_mean=(124, 116, 104))``.

Per image, ``n`` operations drawn uniformly *with replacement* from the 15 below; each is applied
with probability 0.5; each draws its level ``clip(N(m, mstd), 0, 10)`` and, where signed, a
random sign; fill for the warps is ``img_mean``:

================ ============================================ =====================
operation        parameter at level ``v`` (of ``MAX_LEVEL``)  here (group)
================ ============================================ =====================
AutoContrast     --                                           tone.autocontrast
Equalize         --                                           tone.equalize
Invert           --                                           tone curve
Rotate           ``+-30 v / 10`` degrees                      affine warp
PosterizeTpu     keep ``int(4 v / 10)`` bits                  tone curve
Solarize         threshold ``int(256 v / 10)``                tone curve
SolarizeAdd      add ``int(110 v / 10)`` below 128            tone curve
Color            factor ``1.8 v / 10 + 0.1`` (no sign)        color.adjust_saturation
Contrast         factor ``1.8 v / 10 + 0.1``                  color.adjust_contrast
Brightness       factor ``1.8 v / 10 + 0.1``                  color.adjust_brightness
Sharpness        factor ``1.8 v / 10 + 0.1``                  filters.adjust_sharpness
ShearX, ShearY   ``+-0.3 v / 10``                             affine warp
TranslateXRel/Y  ``+-0.45 v / 10`` of the width / height      affine warp
================ ============================================ =====================

(``translate_const`` is unused: the list holds the relative translations.) How this differs from
DALI's ``nvidia.dali.auto_aug.rand_augment`` (torchvision's RandAugment): that one applies every
drawn operation, has no ``mstd``, uses magnitude bins, signs the enhance factors (``1 +- 0.9 v``)
where timm's grow from 0.1 to 1.9, posterizes 8..4 bits and solarizes from 256 down, fills with
one grey value, and lists Identity but not Invert or SolarizeAdd. The warps here interpolate
linearly where timm draws bilinear or bicubic per call (DALI's warp has no bicubic).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from nvidia.dali import fn, types
import nvidia.dali.math as dmath

from dali_cmo.augment import color, filters, geometry, tone
from dali_cmo.augment.draws import choose, coin

MAX_LEVEL = 10.0
IMAGENET_FILL = (124, 116, 104)  # tuple(min(255, round(255 * x)) for x in (0.485, 0.456, 0.406))

# the reference's _RAND_TRANSFORMS, in its order
NAMES = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeTpu", "Solarize",
         "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
         "TranslateXRel", "TranslateYRel")
# Operations sharing an implementation run as one group, built once per layer, with per-sample
# parameters (see parameters()): the warps as one affine warp, Invert, PosterizeTpu, Solarize
# and SolarizeAdd as one tone curve.
GROUPS = ("autocontrast", "equalize", "tone", "affine", "color", "contrast", "brightness",
          "sharpness")
GROUP_OF = {"AutoContrast": "autocontrast", "Equalize": "equalize", "Invert": "tone",
            "Rotate": "affine", "PosterizeTpu": "tone", "Solarize": "tone",
            "SolarizeAdd": "tone", "Color": "color", "Contrast": "contrast",
            "Brightness": "brightness", "Sharpness": "sharpness", "ShearX": "affine",
            "ShearY": "affine", "TranslateXRel": "affine", "TranslateYRel": "affine"}


def _is(op, name):
    """1.0 where the sample's operation is ``name``, else 0.0."""
    return fn.cast(op == NAMES.index(name), dtype=types.FLOAT)


def parameters(op, level, sign, spec) -> dict:
    """Every group's per-sample parameters for operation ``op`` at ``level`` with ``sign``, by
    the reference's level-to-argument rules; the other operations get identity values (no
    rotation, shear or shift; solarize threshold 256, addition 0, 8 bits; solarize at 0 is
    Invert)."""
    fraction = level / MAX_LEVEL
    signed = fraction * sign
    height, width = spec.size
    coeffs = geometry.rotation_matrix(_is(op, "Rotate") * signed * 30.0, spec.size)
    for name, unit, scale in (("ShearX", (0, 1, 0, 0, 0, 0), 0.3),
                              ("ShearY", (0, 0, 0, 1, 0, 0), 0.3),
                              ("TranslateXRel", (0, 0, 1, 0, 0, 0), spec.translate * width),
                              ("TranslateYRel", (0, 0, 0, 0, 0, 1), spec.translate * height)):
        coeffs = coeffs + geometry.matrix((_is(op, name) * signed * scale, unit))
    threshold = (256.0 - _is(op, "Invert") * 256.0
                 - _is(op, "Solarize") * (256.0 - dmath.floor(fraction * 256)))
    bits = 8.0 - _is(op, "PosterizeTpu") * (8.0 - dmath.floor(fraction * 4))
    addition = _is(op, "SolarizeAdd") * dmath.floor(fraction * 110)
    return dict(coeffs=coeffs, threshold=threshold, bits=bits, addition=addition,
                factor=fraction * 1.8 + 0.1)


def operation(images, name: str, level, sign, spec):
    """timm's operation ``name`` at ``level`` (per-sample floats) and ``sign`` (+-1) for every
    sample, through the group that runs it.

    Args:
        images: uint8 HWC batch of images of ``spec.size``.
        name: one of :data:`NAMES`.
        level, sign: per-sample float nodes.
        spec: the :class:`RandAugment` settings (size, translate, fill).
    """
    op = fn.constant(idata=NAMES.index(name), shape=[])
    return _run_group(GROUP_OF[name], parameters(op, level, sign, spec), spec, images)


def _run_group(group, params, spec, images):
    if group == "autocontrast":
        return tone.autocontrast(images)
    if group == "equalize":
        return tone.equalize(images)
    if group == "tone":
        images = tone.solarize(images, params["threshold"])
        images = tone.solarize_add(images, params["addition"])
        return tone.posterize(images, params["bits"])
    if group == "affine":
        return geometry.affine(images, params["coeffs"], spec.fill)
    enhance = {"color": color.adjust_saturation, "contrast": color.adjust_contrast,
               "brightness": color.adjust_brightness, "sharpness": filters.adjust_sharpness}
    return enhance[group](images, params["factor"])


@dataclass(frozen=True)
class RandAugment:
    """timm-style RandAugment settings (``rand-n{n}-m{m}-mstd{mstd}``) for images of ``size``.

    Args:
        n: operations drawn per image (with replacement).
        m: the level, 0..10.
        mstd: standard deviation of the per-operation level noise (0: fixed level).
        probability: the chance each drawn operation is applied (timm: 0.5).
        size: ``(height, width)`` of the images.
        translate: the largest translation as a fraction of the side.
        fill: the warps' fill colour.
    """
    n: int = 2
    m: float = 10.0
    mstd: float = 0.5
    probability: float = 0.5
    size: tuple = (224, 224)
    translate: float = 0.45
    fill: tuple = IMAGENET_FILL

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"RandAugment n must be >= 0; got {self.n}")
        if not 0 <= self.m <= MAX_LEVEL:
            raise ValueError(f"RandAugment m must lie in [0, {MAX_LEVEL:g}]; got {self.m}")
        if self.mstd < 0:
            raise ValueError(f"RandAugment mstd must be >= 0; got {self.mstd}")

    @classmethod
    def parse(cls, config: str, **settings) -> "RandAugment":
        """From timm's config string, e.g. ``"rand-n2-m10-mstd0.5"`` (sections in any order)."""
        sections = config.split("-")
        if sections[0] != "rand":
            raise ValueError(f"RandAugment config must start with 'rand-'; got {config!r}")
        keys = {"n": ("n", int), "m": ("m", float), "mstd": ("mstd", float)}
        for section in sections[1:]:
            match = re.fullmatch(r"([a-z]+)(\d.*)", section)
            if not match or match.group(1) not in keys:
                raise ValueError(f"unknown RandAugment config section {section!r} in {config!r} "
                                 f"(known: n, m, mstd)")
            name, kind = keys[match.group(1)]
            settings[name] = kind(match.group(2))
        return cls(**settings)

    def __call__(self, images):
        """Applies the ``n`` operations to a uint8 HWC batch (CPU or GPU)."""
        return self.apply(images, self.draw())

    def draw(self) -> list:
        """Per layer, the per-sample draws: ``op`` (index into :data:`NAMES`, uniform),
        ``applied`` (coin of ``probability``), ``level`` and ``sign`` (+-1, for the signed
        operations)."""
        draws = []
        for _ in range(self.n):
            op = fn.random.uniform(values=list(range(len(NAMES))), dtype=types.INT32)
            applied = coin(self.probability)
            level = self.level()
            sign = 1.0 - 2.0 * fn.cast(coin(0.5), dtype=types.FLOAT)
            draws.append(dict(op=op, applied=applied, level=level, sign=sign))
        return draws

    def apply(self, images, draws: list):
        """The layers of :meth:`draw` (or given draws) in turn: each sample whose coin came up
        runs its operation's group with its parameters."""
        group_of = types.Constant(np.array([GROUPS.index(GROUP_OF[n]) for n in NAMES], np.int32))
        for layer in draws:
            params = parameters(layer["op"], layer["level"], layer["sign"], self)
            transforms = [functools.partial(_run_group, group, params, self) for group in GROUPS]
            if layer["applied"]:
                images = choose(transforms, group_of[layer["op"]], images)
        return images

    def level(self):
        """``clip(N(m, mstd), 0, MAX_LEVEL)`` per sample (the fixed ``m`` when mstd is 0)."""
        if not self.mstd:
            return fn.constant(fdata=float(self.m), shape=[])
        noisy = fn.random.normal(mean=float(self.m), stddev=float(self.mstd))
        return dmath.clamp(noisy, 0.0, MAX_LEVEL)
