"""Normalisation constants, in DALI's 0..255 pixel units (torchvision's values times 255).

ImageNet: torchvision's ``Normalize`` values used by the CMO reference code for ImageNet-LT
(and Places-LT). iNaturalist 2018: the values of the reference ``inat18_train.py``
(``Normalize([0.466, 0.471, 0.380], [0.195, 0.194, 0.192])``). CIFAR: the values of the
CMO/LDAM-DRW reference ``cifar_train.py``.
"""
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
INAT_MEAN = (0.466 * 255, 0.471 * 255, 0.380 * 255)
INAT_STD = (0.195 * 255, 0.194 * 255, 0.192 * 255)
CIFAR_MEAN = (0.4914 * 255, 0.4822 * 255, 0.4465 * 255)
CIFAR_STD = (0.2023 * 255, 0.1994 * 255, 0.2010 * 255)

#: name -> (mean, std), the normalisations a run can choose.
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inat": (INAT_MEAN, INAT_STD),
                  "cifar": (CIFAR_MEAN, CIFAR_STD)}


def mean_std(normalisation: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of a normalisation by name (``imagenet``, ``inat``, ``cifar``)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}; "
                         f"got {normalisation!r}")
    return NORMALISATIONS[normalisation]
