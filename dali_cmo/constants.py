"""Normalisation constants, in DALI's 0..255 pixel units (torchvision's values times 255).

ImageNet: torchvision's ``Normalize`` values used by the CMO reference code for ImageNet-LT
(and Places-LT). CIFAR: the values of the CMO/LDAM-DRW reference ``cifar_train.py``.
"""
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CIFAR_MEAN = (0.4914 * 255, 0.4822 * 255, 0.4465 * 255)
CIFAR_STD = (0.2023 * 255, 0.1994 * 255, 0.2010 * 255)
