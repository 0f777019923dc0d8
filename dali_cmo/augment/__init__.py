"""The reference's training augmentations as DALI graph pieces (CPU and GPU), usable on their
own like the operator and by ``pipelines.training`` (``TrainConfig.augment``).

Every function takes and returns a batch of uint8 HWC images inside a DALI pipeline definition
(``enable_conditionals=True``); parameters are numbers or per-sample DALI nodes:

* :mod:`~dali_cmo.augment.color`: ``adjust_brightness/contrast/saturation/hue``,
  ``grayscale``, ``color_jitter``, ``random_grayscale`` (PIL's definitions, as torchvision's
  ``ColorJitter`` runs them on PIL images);
* :mod:`~dali_cmo.augment.filters`: ``gaussian_blur`` (PIL's three-box approximation),
  ``random_gaussian_blur``, ``adjust_sharpness``;
* :mod:`~dali_cmo.augment.geometry`: ``affine``, ``shear_x/_y``, ``translate_x/_y``,
  ``rotate`` (PIL conventions, per-channel fill), ``flip``, ``cutout``;
* :mod:`~dali_cmo.augment.tone`: ``invert``, ``posterize``, ``solarize``, ``solarize_add``,
  ``autocontrast``, ``equalize``;
* :mod:`~dali_cmo.augment.randaugment`: ``RandAugment`` (timm's ``rand-n2-m10-mstd0.5``);
* :mod:`~dali_cmo.augment.autoaugment`: ``cifar10_policy`` (AutoAugment's CIFAR-10 policy);
* :mod:`~dali_cmo.augment.crops`: ``pad_crop``, ``random_resized_crop``;
* :mod:`~dali_cmo.augment.draws`: ``coin``, ``maybe``, ``choose`` (per-sample choices);
* :mod:`~dali_cmo.augment.recipes`: ``RECIPES``, the reference's recipes on one stream.
"""
