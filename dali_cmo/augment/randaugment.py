"""RandAugment as the CMO reference uses it: ``rand_augment_transform('rand-n2-m10-mstd0.5',
ra_params)`` from its ``util/randaugment.py`` (PaCo's copy of an early timm version by Ross
Wightman), with ``ra_params = dict(translate_const=int(224 * 0.45), img_mean=(124, 116, 104))``.

Per image, ``n`` operations drawn uniformly *with replacement* from the 15 below; each is applied
with probability 0.5; each draws its level ``clip(N(m, mstd), 0, 10)`` and, where signed, a
random sign; fill for the warps is ``img_mean``:

================ ============================================ ========================
operation        parameter at level ``v`` (of ``MAX_LEVEL``)  here
================ ============================================ ========================
AutoContrast     --                                           tone.autocontrast
Equalize         --                                           tone.equalize
Invert           --                                           tone.invert
Rotate           ``+-30 v / 10`` degrees                      geometry.rotate
PosterizeTpu     keep ``int(4 v / 10)`` bits                  tone.posterize
Solarize         threshold ``int(256 v / 10)``                tone.solarize
SolarizeAdd      add ``int(110 v / 10)`` below 128            tone.solarize_add
Color            factor ``1.8 v / 10 + 0.1`` (no sign)        color.adjust_saturation
Contrast         factor ``1.8 v / 10 + 0.1``                  color.adjust_contrast
Brightness       factor ``1.8 v / 10 + 0.1``                  color.adjust_brightness
Sharpness        factor ``1.8 v / 10 + 0.1``                  filters.adjust_sharpness
ShearX, ShearY   ``+-0.3 v / 10``                             geometry.shear_x/_y
TranslateXRel/Y  ``+-0.45 v / 10`` of the width / height      geometry.translate_x/_y
================ ============================================ ========================

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

from nvidia.dali import fn, types
import nvidia.dali.math as dmath

from dali_cmo.augment import color, filters, geometry, tone
from dali_cmo.augment.draws import choose, coin

MAX_LEVEL = 10.0
IMAGENET_FILL = (124, 116, 104)  # tuple(min(255, round(255 * x)) for x in (0.485, 0.456, 0.406))


def _enhance_factor(level):
    return level / MAX_LEVEL * 1.8 + 0.1


def _signed(level, sign, scale):
    return level / MAX_LEVEL * scale * sign


def _auto_contrast(images, level, sign, spec):
    return tone.autocontrast(images)


def _equalize(images, level, sign, spec):
    return tone.equalize(images)


def _invert(images, level, sign, spec):
    return tone.invert(images)


def _rotate(images, level, sign, spec):
    return geometry.rotate(images, _signed(level, sign, 30.0), spec.size, spec.fill)


def _posterize(images, level, sign, spec):
    return tone.posterize(images, dmath.floor(level / MAX_LEVEL * 4))


def _solarize(images, level, sign, spec):
    return tone.solarize(images, dmath.floor(level / MAX_LEVEL * 256))


def _solarize_add(images, level, sign, spec):
    return tone.solarize_add(images, dmath.floor(level / MAX_LEVEL * 110))


def _color(images, level, sign, spec):
    return color.adjust_saturation(images, _enhance_factor(level))


def _contrast(images, level, sign, spec):
    return color.adjust_contrast(images, _enhance_factor(level))


def _brightness(images, level, sign, spec):
    return color.adjust_brightness(images, _enhance_factor(level))


def _sharpness(images, level, sign, spec):
    return filters.adjust_sharpness(images, _enhance_factor(level))


def _shear_x(images, level, sign, spec):
    return geometry.shear_x(images, _signed(level, sign, 0.3), spec.fill)


def _shear_y(images, level, sign, spec):
    return geometry.shear_y(images, _signed(level, sign, 0.3), spec.fill)


def _translate_x(images, level, sign, spec):
    return geometry.translate_x(images, _signed(level, sign, spec.translate * spec.size[1]),
                                spec.fill)


def _translate_y(images, level, sign, spec):
    return geometry.translate_y(images, _signed(level, sign, spec.translate * spec.size[0]),
                                spec.fill)


# the reference's _RAND_TRANSFORMS, in its order
OPERATIONS = {
    "AutoContrast": _auto_contrast, "Equalize": _equalize, "Invert": _invert, "Rotate": _rotate,
    "PosterizeTpu": _posterize, "Solarize": _solarize, "SolarizeAdd": _solarize_add,
    "Color": _color, "Contrast": _contrast, "Brightness": _brightness, "Sharpness": _sharpness,
    "ShearX": _shear_x, "ShearY": _shear_y, "TranslateXRel": _translate_x,
    "TranslateYRel": _translate_y,
}


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
        """Per layer, the per-sample draws: ``op`` (index into :data:`OPERATIONS`, uniform),
        ``applied`` (coin of ``probability``), ``level`` and ``sign`` (+-1, for the signed
        operations)."""
        draws = []
        for _ in range(self.n):
            op = fn.random.uniform(values=list(range(len(OPERATIONS))), dtype=types.INT32)
            applied = coin(self.probability)
            level = self.level()
            sign = 1.0 - 2.0 * fn.cast(coin(0.5), dtype=types.FLOAT)
            draws.append(dict(op=op, applied=applied, level=level, sign=sign))
        return draws

    def apply(self, images, draws: list):
        """The layers of :meth:`draw` (or given draws) in turn."""
        operations = list(OPERATIONS.values())
        for layer in draws:
            transforms = [functools.partial(_apply, operation, layer["level"], layer["sign"], self)
                          for operation in operations]
            if layer["applied"]:
                images = choose(transforms, layer["op"], images)
        return images

    def level(self):
        """``clip(N(m, mstd), 0, MAX_LEVEL)`` per sample (the fixed ``m`` when mstd is 0)."""
        if not self.mstd:
            return fn.constant(fdata=float(self.m), shape=[])
        noisy = fn.random.normal(mean=float(self.m), stddev=float(self.mstd))
        return dmath.clamp(noisy, 0.0, MAX_LEVEL)


def _apply(operation, level, sign, spec, images):
    return operation(images, level, sign, spec)
