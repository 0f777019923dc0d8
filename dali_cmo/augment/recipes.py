"""The reference's training augmentations, per recipe, as DALI graph pieces on one stream.

Each recipe is what github.com/naver-ai/cmo applies to every training image (both loaders: the
data-distributed one for backgrounds and the weighted one for foregrounds run the same
``transform_train``), after the stream's decode and crop:

* ``standard``: crop and flip only (``cifar_train.py`` and ``inat18_train.py`` without
  ``--use_randaug``; ImageNet-style crop: RandomResizedCrop, CIFAR-style: pad-4 RandomCrop).
* ``jitter``: + ``ColorJitter(0.4, 0.4, 0.4, 0)`` after the flip (``imagenet_train.py`` without
  ``--use_randaug``).
* ``randaugment``: ``imagenet_train.py`` / ``inat18_train.py --use_randaug`` through
  ``imbalance_data/lt_data.py``: per image, with probability 1/2 each,
  (a) RandomResizedCrop(0.08-1), flip, ColorJitter(0.4, 0.4, 0.4, 0), RandAugment
  ``rand-n2-m10-mstd0.5`` (fill = ImageNet mean); (b) RandomResizedCrop, ColorJitter(0.4, 0.4,
  0.4, 0), RandomGrayscale(0.2), GaussianBlur(sigma 0.1-2) with p 0.5, flip.
* ``autoaugment``: ``cifar_train.py --use_randaug`` (PaCo's CIFAR setting) through
  ``imbalance_cifar.py``: per image, with probability 1/2 each, (a) RandomCrop(32, padding 4),
  flip, AutoAugment CIFAR10Policy, Cutout(1 hole, 16 px); (b) RandomResizedCrop(32, 0.2-1),
  flip, ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, RandomGrayscale(0.2), GaussianBlur with
  p 0.5.

Both branches of a recipe start with the same crop where the reference's do (``randaugment``:
RandomResizedCrop with the default scale in both), so the crop is shared; ``autoaugment`` crops
per branch. Flips: transforms that commute with a horizontal flip (colour, blur) leave it to the
paste operator, which fuses it; recipes with warps or Cutout flip first, as the reference does
(a shear about the left edge is not a flipped shear), and the paste does not flip again.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from dali_cmo.augment import color, crops, filters, geometry
from dali_cmo.augment.autoaugment import cifar10_policy
from dali_cmo.augment.draws import either
from dali_cmo.augment.randaugment import RandAugment

DEFAULT_RANDAUGMENT = "rand-n2-m10-mstd0.5"


def _standard(images, mirror, size, randaugment):
    return images


def _jitter(images, mirror, size, randaugment):
    return color.color_jitter(images, 0.4, 0.4, 0.4, 0.0)


def _randaugment_branches(images, mirror, size, randaugment):
    images = geometry.flip(images, mirror)
    images = color.color_jitter(images, 0.4, 0.4, 0.4, 0.0)
    rand_augment = RandAugment.parse(randaugment, size=(size, size))
    return either(rand_augment, _simclr_imagenet, 0.5, images)


def _simclr_imagenet(images):  # lt_data.py's second branch, after the shared crop and jitter
    images = color.random_grayscale(images, 0.2)
    return filters.random_gaussian_blur(images, (0.1, 2.0), 0.5)


def _autoaugment_branches(decoded, mirror, size, randaugment):
    return either(functools.partial(_autoaugment_cifar, mirror, size),
                  functools.partial(_simclr_cifar, mirror, size), 0.5, decoded)


def _autoaugment_cifar(mirror, size, decoded):  # cifar_train.py's augmentation_regular
    images = crops.pad_crop(decoded, size)
    images = geometry.flip(images, mirror)
    images = cifar10_policy(images, (size, size))
    return geometry.cutout(images, (size, size), 16)


def _simclr_cifar(mirror, size, decoded):  # cifar_train.py's augmentation_sim_cifar
    images = crops.random_resized_crop(decoded, size, (0.2, 1.0))
    images = geometry.flip(images, mirror)
    images = color.color_jitter(images, 0.4, 0.4, 0.4, 0.1, probability=0.8)
    images = color.random_grayscale(images, 0.2)
    return filters.random_gaussian_blur(images, (0.1, 2.0), 0.5)


@dataclass(frozen=True)
class Recipe:
    """One training augmentation.

    Args:
        name: the ``TrainConfig.augment`` value.
        transform: ``(images, mirror, size, randaugment) -> images`` on uint8 HWC images of
            ``size`` x ``size`` (or, with ``decoded_input``, the decoded images it crops itself).
        flips: the transform applies the flip ``mirror`` itself (the paste must not).
        pointwise: every output pixel depends on its own input pixel only, so a foreground
            decoded only inside its pasted box sees the same pixels as a full decode.
        decoded_input: the transform crops the decoded image itself (per branch).
        style: the crop style it belongs to (``None``: either).
    """
    name: str
    transform: Callable
    flips: bool = False
    pointwise: bool = False
    decoded_input: bool = False
    style: str | None = None

    def __call__(self, images, mirror, size: int, randaugment: str = DEFAULT_RANDAUGMENT):
        return self.transform(images, mirror, size, randaugment)


RECIPES = {
    "standard": Recipe("standard", _standard, pointwise=True),
    "jitter": Recipe("jitter", _jitter),
    "randaugment": Recipe("randaugment", _randaugment_branches, flips=True, style="imagenet"),
    "autoaugment": Recipe("autoaugment", _autoaugment_branches, flips=True, decoded_input=True,
                          style="cifar"),
}
