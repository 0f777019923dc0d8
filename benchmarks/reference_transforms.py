"""The CMO reference's training transforms re-created with torchvision and PIL, per recipe, for
the throughput comparison (``torch_reference.ReferenceLoader``).

Written from what github.com/naver-ai/cmo runs (not copied): ``imagenet_train.py`` /
``inat18_train.py`` / ``cifar_train.py`` with and without ``--use_randaug``, the per-image branch
of ``imbalance_data/lt_data.py`` and ``imbalance_cifar.py``, the timm RandAugment of
``util/randaugment.py`` (``rand-n2-m10-mstd0.5``, fill (124, 116, 104)), the AutoAugment
CIFAR10 policy and Cutout of ``util/autoaug.py``, and ``util/moco_loader.GaussianBlur`` (PIL's
GaussianBlur, sigma U[0.1, 2]). The AutoAugment sub-policies and magnitude tables are read from
``dali_cmo.augment.autoaugment`` (tests/augment checks them against DALI's copy and the
reference's tables); everything else is PIL.
"""
from __future__ import annotations

import random

import torchvision.transforms as T
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

RANDAUG_FILL = (124, 116, 104)
POLICY_FILL = (128, 128, 128)


class GaussianBlur:
    """PIL's GaussianBlur with sigma drawn from ``U[low, high]`` (MoCo/SimCLR's)."""

    def __init__(self, low: float = 0.1, high: float = 2.0):
        self.low, self.high = low, high

    def __call__(self, img):
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.low, self.high)))


def _solarize_add(img, amount, threshold=128):
    return img.point([min(255, v + amount) if v < threshold else v for v in range(256)] * 3)


def _affine(img, coeffs, resample, fill):
    return img.transform(img.size, Image.AFFINE, coeffs, resample, fillcolor=fill)


def timm_operation(name: str, img, level: float, sign: float, resample, fill=RANDAUG_FILL,
                   translate: float = 0.45):
    """timm's (early) RandAugment operation ``name`` at ``level`` of 10, PIL."""
    v = level / 10
    enhance = v * 1.8 + 0.1
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(ImageEnhance, name)(img).enhance(enhance)
    simple = {"AutoContrast": ImageOps.autocontrast, "Equalize": ImageOps.equalize,
              "Invert": ImageOps.invert}
    if name in simple:
        return simple[name](img)
    if name == "PosterizeTpu":
        bits = int(v * 4)
        return img if bits >= 8 else ImageOps.posterize(img, max(bits, 1))
    if name == "Solarize":
        return ImageOps.solarize(img, int(v * 256))
    if name == "SolarizeAdd":
        return _solarize_add(img, int(v * 110))
    if name == "Rotate":
        return img.rotate(v * 30 * sign, resample, fillcolor=fill)
    width, height = img.size
    coeffs = {"ShearX": (1, v * 0.3 * sign, 0, 0, 1, 0), "ShearY": (1, 0, 0, v * 0.3 * sign, 1, 0),
              "TranslateXRel": (1, 0, v * translate * sign * width, 0, 1, 0),
              "TranslateYRel": (1, 0, 0, 0, 1, v * translate * sign * height)}[name]
    return _affine(img, coeffs, resample, fill)


class TimmRandAugment:
    """``rand-n{n}-m{m}-mstd{mstd}``: ``n`` operations drawn with replacement, each applied with
    probability 0.5 at level ``clip(N(m, mstd), 0, 10)``, a random sign, bilinear or bicubic."""

    def __init__(self, n: int = 2, m: float = 10, mstd: float = 0.5):
        from dali_cmo.augment.randaugment import NAMES
        self.names, self.n, self.m, self.mstd = NAMES, n, m, mstd

    def __call__(self, img):
        for name in random.choices(self.names, k=self.n):
            if random.random() < 0.5:
                level = min(10.0, max(0.0, random.gauss(self.m, self.mstd)))
                sign = -1.0 if random.random() > 0.5 else 1.0
                resample = random.choice((Image.BILINEAR, Image.BICUBIC))
                img = timm_operation(name, img, level, sign, resample)
        return img


def policy_operation(name: str, img, magnitude, sign: float):
    """One operation of the reference's CIFAR10Policy (its SubPolicy functions), PIL."""
    width, height = img.size
    if name in ("color", "contrast", "brightness", "sharpness"):
        enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
                    "brightness": ImageEnhance.Brightness,
                    "sharpness": ImageEnhance.Sharpness}[name]
        return enhancer(img).enhance(1 + magnitude * sign)
    simple = {"auto_contrast": ImageOps.autocontrast, "equalize": ImageOps.equalize,
              "invert": ImageOps.invert}
    if name in simple:
        return simple[name](img)
    if name == "posterize":
        return ImageOps.posterize(img, int(magnitude))
    if name == "solarize":
        return ImageOps.solarize(img, magnitude)
    if name == "rotate":
        return img.rotate(magnitude, Image.NEAREST, fillcolor=POLICY_FILL)
    coeffs, resample = {
        "shear_x": ((1, magnitude * sign, 0, 0, 1, 0), Image.BICUBIC),
        "shear_y": ((1, 0, 0, magnitude * sign, 1, 0), Image.BICUBIC),
        "translate_x": ((1, 0, magnitude * width * sign, 0, 1, 0), Image.NEAREST),
        "translate_y": ((1, 0, 0, 0, 1, magnitude * height * sign), Image.NEAREST)}[name]
    return _affine(img, coeffs, resample, POLICY_FILL)


class CIFAR10Policy:
    """AutoAugment's CIFAR-10 policy: a uniformly drawn sub-policy, each stage applied with its
    probability at its level of the reference's tables."""

    def __init__(self):
        from dali_cmo.augment.autoaugment import CIFAR10_POLICY
        self.sub_policies = [[(aug.name, p, None if level is None else aug.mag_range[level])
                              for aug, p, level in sub] for sub in CIFAR10_POLICY.sub_policies]

    def __call__(self, img):
        for name, p, magnitude in random.choice(self.sub_policies):
            if random.random() < p:
                img = policy_operation(name, img, magnitude, random.choice((-1, 1)))
        return img


class Cutout:
    """One ``length`` x ``length`` hole (clipped) set to 0 in a CHW tensor."""

    def __init__(self, length: int = 16):
        self.length = length

    def __call__(self, tensor):
        _, h, w = tensor.shape
        y, x = random.randrange(h), random.randrange(w)
        half = self.length // 2
        tensor = tensor.clone()
        tensor[:, max(0, y - half):min(h, y + half), max(0, x - half):min(w, x + half)] = 0
        return tensor


class EitherBranch:
    """The reference's per-image choice: ``first`` if ``random.random() < 0.5``, else
    ``second``."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __call__(self, img):
        return self.first(img) if random.random() < 0.5 else self.second(img)


def recipe_transform(augment: str, size: int, mean, std, style: str = "imagenet"):
    """The reference's training transform of ``augment`` (see ``dali_cmo.augment.recipes``) for
    ``size`` crops of ``style`` (imagenet: RandomResizedCrop, cifar: pad-4 RandomCrop), ending
    in a normalised float tensor (``mean``/``std`` in 0..1 units)."""
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.0)
    crop = T.RandomResizedCrop(size) if style == "imagenet" else T.RandomCrop(size, padding=4)
    if augment == "standard":
        return T.Compose([crop, T.RandomHorizontalFlip(), *tail])
    if augment == "jitter":
        return T.Compose([crop, T.RandomHorizontalFlip(), jitter, *tail])
    if augment == "randaugment":
        return EitherBranch(
            T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                       jitter, TimmRandAugment(), *tail]),
            T.Compose([T.RandomResizedCrop(size), jitter, T.RandomGrayscale(0.2),
                       T.RandomApply([GaussianBlur()], p=0.5), T.RandomHorizontalFlip(), *tail]))
    if augment == "autoaugment":
        return EitherBranch(
            T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), CIFAR10Policy(),
                       T.ToTensor(), Cutout(16), T.Normalize(mean, std)]),
            T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                       T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                       T.RandomGrayscale(0.2), T.RandomApply([GaussianBlur()], p=0.5), *tail]))
    raise ValueError(f"unknown augment {augment!r}")
