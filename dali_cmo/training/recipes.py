"""Learning-rate schedule and the reference CMO training recipes.

Epochs are counted from 0; ``epoch`` may be fractional (``epoch + i / iters_per_epoch``) for a
per-iteration schedule. With ``b`` the base lr, ``W`` the warm-up epochs, ``E`` the epochs:

* warm-up, ``e < W``: ``lr = b * min(1, (e + 1) / W)`` -- at integer epochs this is the
  reference's ``b * (e + 1) / W`` (b/5, 2b/5, ..., b for W = 5); between them it is linear.
* ``step``: ``lr = b * decay_factor ** #{m in decay_epochs : e >= m}`` (times the warm-up
  factor while ``e < W``). The reference CIFAR recipe multiplies by 0.01 at epochs 160 and 180
  (0.1 -> 0.001 -> 0.00001); the ImageNet-LT one by 0.1 at 60 and 80.
* ``cosine``, ``e >= W``: ``lr = 0.5 * b * (1 + cos(pi * (e - W) / (E - W)))``, from ``b`` at
  ``e = W`` to 0 at ``e = E``. (The reference's PaCo-style cosine uses ``(e - W + 1) /
  (E - W + 1)`` per epoch; the difference is under one epoch's shift.)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

DECAYS = ("step", "cosine")


class LRSchedule:
    """Warm-up followed by step or cosine decay; see the module docstring for the formulas."""

    def __init__(self, base_lr: float, epochs: int, *, warmup_epochs: int = 5,
                 decay: str = "step", decay_epochs: Sequence[int] = (160, 180),
                 decay_factor: float = 0.1) -> None:
        if base_lr <= 0:
            raise ValueError(f"base_lr must be positive; got {base_lr}")
        if epochs <= 0:
            raise ValueError(f"epochs must be positive; got {epochs}")
        if not 0 <= warmup_epochs < epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}); got {warmup_epochs}")
        if decay not in DECAYS:
            raise ValueError(f"unknown decay {decay!r}; choose one of {', '.join(DECAYS)}")
        decay_epochs = tuple(decay_epochs)
        if decay == "step":
            if any(b <= a for a, b in zip(decay_epochs, decay_epochs[1:])):
                raise ValueError(f"decay_epochs must be strictly increasing; got {decay_epochs}")
            if any(not 0 < m < epochs for m in decay_epochs):
                raise ValueError(f"decay_epochs must lie in (0, epochs={epochs}); "
                                 f"got {decay_epochs}")
            if not 0 < decay_factor <= 1:
                raise ValueError(f"decay_factor must be in (0, 1]; got {decay_factor}")
        self.base_lr = base_lr
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.decay = decay
        self.decay_epochs = decay_epochs
        self.decay_factor = decay_factor

    def lr_at(self, epoch: float) -> float:
        """The learning rate at (possibly fractional) ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}")
        if epoch < self.warmup_epochs:
            warmup = min(1.0, (epoch + 1) / self.warmup_epochs)
        else:
            warmup = 1.0
        if self.decay == "step":
            steps = sum(epoch >= m for m in self.decay_epochs)
            return self.base_lr * warmup * self.decay_factor ** steps
        if epoch < self.warmup_epochs:
            return self.base_lr * warmup
        progress = min(1.0, (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs))
        return 0.5 * self.base_lr * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, epoch: float) -> float:
        """Set the lr of every parameter group of ``optimizer`` for ``epoch``; returns it."""
        lr = self.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


# The reference recipes (github.com/naver-ai/cmo: README commands, opts.py defaults and the
# adjust_learning_rate of each *_train.py), as trainer settings. SGD throughout.
# `batch_size` is the GLOBAL batch, all ranks together (the reference runs one process with
# DataParallel); each of R ranks takes batch_size / R (`rank_batch_size`), and `lr` stays the
# reference's for that global batch.
# `cmo_start`/`cmo_end`: CMO is active in epochs start < e < epochs - end.
# `drw_epoch`: None = no re-weighting. `drw_switch`: the epoch `--drw` switches to the
# class-balanced weights at, the reference's CE-DRW recipe (`idx = epoch // 160` in
# cifar_train.py and inat18_train.py, `epoch // 80` in imagenet_train.py); None where the
# reference has no such recipe. `decay_factor` multiplies the lr at each of `decay_epochs`.
# `groups`: the Many/Medium/Few convention of the reference script (`GROUP_RULES`: lt20 is
# few < 20, le20 is few <= 20). `normalisation`: mean/std by name (`dali_cmo.constants`).
# `pretrained`: the recipe fine-tunes weights given with --pretrained PATH.
# `source`: where the recipe comes from, said at start-up.
_COMMON = dict(momentum=0.9, cmo_start=3, cmo_end=3, loss="bs", drw_epoch=None,
               pretrained=False)

# cifar_train.py: 200 epochs, lr 0.1, batch 128, wd 2e-4, warm-up 5, x0.01 at 160 and 180.
# README runs BS + CMO and CE-DRW + CMO (DRW from epoch 160); BS is the default here.
_CIFAR_LT = dict(_COMMON, model="resnet32", epochs=200, batch_size=128, lr=0.1,
                 weight_decay=2e-4, warmup_epochs=5, decay="step", decay_epochs=(160, 180),
                 decay_factor=0.01, drw_switch=160, image_size=32, groups="lt20",
                 normalisation="cifar",
                 source="cifar_train.py (README: BS + CMO; --drw: CE-DRW + CMO)")

PRESETS: dict[str, dict] = {
    # The built-in demo (`python train.py`): short, CMO active in epochs 1..3 of 5.
    "demo": dict(_COMMON, model="resnet32", epochs=5, batch_size=32, lr=0.1,
                 weight_decay=2e-4, warmup_epochs=1, decay="cosine", decay_epochs=(),
                 decay_factor=1.0, cmo_start=0, cmo_end=1, loss="ce", drw_switch=None,
                 image_size=32, groups="lt20", normalisation="cifar",
                 source="the built-in demo, not a reference recipe"),
    "cifar100-lt": dict(_CIFAR_LT),
    # Unsure: the CMO repository has no CIFAR-10 script; this is the CIFAR-100 recipe, which
    # LDAM-DRW also uses for CIFAR-10.
    "cifar10-lt": dict(_CIFAR_LT, source="cifar_train.py's CIFAR-100-LT recipe (the reference "
                                         "has no CIFAR-10 script)"),
    # imagenet_train.py, README "BS + CMO": 100 epochs, lr 0.1, warm-up 5, x0.1 at 60 and 80.
    # batch 128 and wd 2e-4 are opts.py defaults (the README command sets neither).
    "imagenet-lt": dict(_COMMON, model="resnet50", epochs=100, batch_size=128, lr=0.1,
                        weight_decay=2e-4, warmup_epochs=5, decay="step", decay_epochs=(60, 80),
                        decay_factor=0.1, drw_switch=80, image_size=224, groups="le20",
                        normalisation="imagenet",
                        source="imagenet_train.py (README: BS + CMO; --drw: CE-DRW + CMO)"),
    # README "BS + CMO (400 epochs, RandAug)", PaCo's setting: lr 0.02, wd 5e-4, cosine,
    # warm-up 10 (paco_adjust_learning_rate); its RandAugment branches: see AUGMENT below. No
    # DRW: the reference's `betas[epoch // 80]` has two entries.
    "imagenet-lt-400": dict(_COMMON, model="resnet50", epochs=400, batch_size=128, lr=0.02,
                            weight_decay=5e-4, warmup_epochs=10, decay="cosine",
                            decay_epochs=(), decay_factor=1.0, drw_switch=None,
                            image_size=224, groups="le20", normalisation="imagenet",
                            source="imagenet_train.py --cos (README: BS + CMO, 400 epochs)"),
    # inat18_train.py, README "BS + CMO": 100 epochs, batch 256, lr 0.1, warm-up 5, x0.1 at 75
    # (its second milestone, 160, and its DRW switch, 160, lie past epoch 100). wd 2e-4 is
    # the opts.py default.
    "inat2018": dict(_COMMON, model="resnet50", epochs=100, batch_size=256, lr=0.1,
                     weight_decay=2e-4, warmup_epochs=5, decay="step", decay_epochs=(75,),
                     decay_factor=0.1, drw_switch=160, image_size=224, groups="le20",
                     normalisation="inat",
                     source="inat18_train.py, the README's 100-epoch command (BS + CMO)"),
    # The paper's iNaturalist rows: 200 epochs of inat18_train.py's adjust_learning_rate
    # (x0.1 after epoch 75, x0.01 after 160) with DRW from 160 under --drw.
    "inat2018-200": dict(_COMMON, model="resnet50", epochs=200, batch_size=256, lr=0.1,
                         weight_decay=2e-4, warmup_epochs=5, decay="step",
                         decay_epochs=(75, 160), decay_factor=0.1, drw_switch=160,
                         image_size=224, groups="le20", normalisation="inat",
                         source="inat18_train.py, the paper's 200 epochs (BS + CMO; --drw: "
                                "CE-DRW + CMO)"),
    # NOT from the CMO paper or its code. The usual Places-LT protocol (Liu et al., CVPR 2019)
    # fine-tunes an ImageNet-pretrained ResNet-152 (given with --pretrained PATH); 30 epochs,
    # lr 0.01, cosine, batch 256, wd 5e-4, and few < 20, follow that protocol's common setup.
    "places-lt": dict(_COMMON, model="resnet152", epochs=30, batch_size=256, lr=0.01,
                      weight_decay=5e-4, warmup_epochs=0, decay="cosine", decay_epochs=(),
                      decay_factor=1.0, drw_switch=None, image_size=224, groups="lt20",
                      normalisation="imagenet", pretrained=True,
                      source="NOT from the CMO paper or its code: the usual Places-LT "
                             "fine-tuning of an ImageNet-pretrained ResNet-152"),
}


# ------------------------------------------------------------------ training augmentation
# `augment`: the reference's training augmentation of both streams (dali_cmo.augment.recipes).
# Without --use_randaug, imagenet_train.py adds ColorJitter(0.4, 0.4, 0.4, 0) after the flip
# ("jitter"); inat18_train.py (its ColorJitter is commented out) and cifar_train.py crop and
# flip only ("standard"). places-lt is not from the reference: OLTR's transform (Liu et al.,
# CVPR 2019), which the Places-LT protocol uses, has the same ColorJitter.
AUGMENT = {"demo": "standard", "cifar100-lt": "standard", "cifar10-lt": "standard",
           "imagenet-lt": "jitter", "imagenet-lt-400": "randaugment", "inat2018": "standard",
           "inat2018-200": "standard", "places-lt": "jitter"}
for _name, _augment in AUGMENT.items():
    PRESETS[_name]["augment"] = _augment

# The 400-epoch recipes (--use_randaug), each derived from its 100/200-epoch preset.
def _derived(base: str, source: str, **changes) -> dict:
    """``PRESETS[base]`` with ``changes``. Where presets record their ``source`` and the epoch
    of the reference's DRW switch (``drw_switch``), the derived one states its own source and no
    DRW (the reference's ``epoch // 160`` or ``// 80`` index runs past its two betas in 400
    epochs)."""
    preset = dict(PRESETS[base], **changes)
    for key, value in (("source", source), ("drw_switch", None)):
        if key in preset:
            preset[key] = value
    return preset


# inat18_train.py, README "BS + CMO (400 epochs, RandAug)": --wd 1e-4 --lr 0.02 --cos, batch
# 128 (opts.py default: unlike the 100-epoch command the README sets no -b), cosine with
# warm-up 10 (paco_adjust_learning_rate); the branches of imagenet_train.py.
PRESETS["inat2018-400"] = _derived(
    "inat2018", "inat18_train.py --cos --use_randaug (README: BS + CMO, 400 epochs, RandAug)",
    epochs=400, batch_size=128, lr=0.02, weight_decay=1e-4, warmup_epochs=10, decay="cosine",
    decay_epochs=(), decay_factor=1.0, augment="randaugment")
# cifar_train.py, README "BS + CMO (400 epochs, AutoAug)": lr 0.1, batch 128, wd 2e-4, and
# PaCo's paco_adjust_learning_rate: warm-up 10, x0.1 after epoch 320, x0.01 after 360 (epochs
# 321 and 361 here). One difference: the reference's warm-up test `epoch <= 10` gives epoch 10
# 1.1 x lr; LRSchedule's warm-up ends at 1.0 x lr.
_CIFAR_400 = dict(epochs=400, warmup_epochs=10, decay="step", decay_epochs=(321, 361),
                  decay_factor=0.1, augment="autoaugment")
PRESETS["cifar100-lt-400"] = _derived(
    "cifar100-lt", "cifar_train.py --use_randaug (README: BS + CMO, 400 epochs, AutoAug)",
    **_CIFAR_400)
# Unsure, as cifar10-lt: the reference has no CIFAR-10 script; its CIFAR-100 recipe.
PRESETS["cifar10-lt-400"] = _derived(
    "cifar10-lt", "cifar_train.py --use_randaug's CIFAR-100-LT recipe (the reference has no "
                  "CIFAR-10 script)", **_CIFAR_400)


def rank_batch_size(global_batch: int, world_size: int) -> int:
    """Each rank's share of the global batch; refuses a batch that does not divide.

    Args:
        global_batch: images per step, all ranks together (the recipe's batch).
        world_size: the number of ranks.
    """
    if global_batch % world_size:
        raise ValueError(f"the global batch {global_batch} does not divide over {world_size} "
                         f"ranks; choose a multiple of {world_size}")
    return global_batch // world_size


def drw_switch_epoch(name: str) -> int:
    """The epoch the reference's CE-DRW recipe of preset ``name`` switches to re-weighting."""
    epoch = PRESETS[name]["drw_switch"]
    if epoch is None:
        with_drw = ", ".join(n for n, p in PRESETS.items() if p["drw_switch"] is not None)
        raise ValueError(f"preset {name!r} has no DRW recipe in the reference code; presets with "
                         f"one: {with_drw}")
    return epoch
