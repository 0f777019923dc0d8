"""The CMO reference data path re-created with torchvision, for comparison with DALI.

As in the CMO reference code (``train.py`` of Park et al.): one ``DataLoader`` over the data
(shuffled: P) and a second over ``WeightedRandomSampler`` with per-sample weights ``n_{y_i}^-1``,
``num_samples = N``, with replacement (Q). Both decode with PIL and apply the same transforms:
the recipe's (``reference_transforms.recipe_transform``; ``standard``: ``RandomResizedCrop``,
``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``). A foreground
batch is loaded every step, pasted or not; the CutMix box (the rule of the CMO reference code,
github.com/naver-ai/cmo) is pasted in the training loop with probability 0.5 per batch, after
the move to the GPU.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from dali_cmo.constants import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from reference_transforms import recipe_transform

NORMALISE = {style: (tuple(m / 255 for m in mean), tuple(s / 255 for s in std))  # 0..1 units
             for style, (mean, std) in (("imagenet", (IMAGENET_MEAN, IMAGENET_STD)),
                                        ("cifar", (CIFAR_MEAN, CIFAR_STD)))}


class ImageList(Dataset):
    """``(image tensor, label)`` of a ``LongTailDataset``, decoded with PIL."""

    def __init__(self, dataset, transform):
        self.paths = [str(dataset.path(i)) for i in range(len(dataset))]
        self.labels = dataset.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with open(self.paths[i], "rb") as f:
            image = Image.open(f).convert("RGB")
        return self.transform(image), self.labels[i]


def minority_weights(labels: np.ndarray) -> torch.Tensor:
    """Per-sample weights ``n_{y_i}^-1`` (the reference's Q: every class equally often)."""
    counts = np.bincount(labels)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.double)


def rand_bbox(height: int, width: int, lam: float, rng: np.random.Generator):
    """The CutMix box ``(y1, x1, y2, x2)`` of the CMO reference code
    (github.com/naver-ai/cmo, ``rand_bbox`` in ``cifar_train.py``)."""
    cut = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(width * cut), int(height * cut)
    cx, cy = int(rng.integers(width)), int(rng.integers(height))
    x1, x2 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    y1, y2 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    return int(y1), int(x1), int(y2), int(x2)


class ReferenceLoader:
    """Batches ``(images, target_b, target_f, lam)`` as the CMO reference training loop makes
    them (``variant="cmo"``), or ``(images, target_b)`` of the plain loader (``"none"``).

    ``workers`` worker processes per ``DataLoader`` (the reference gives both loaders
    ``args.workers``); ``augment`` and ``style``: the recipe's transform
    (``reference_transforms``).
    ``coin(step)`` decides whether batch ``step`` is pasted (default: a ``probability`` coin
    from ``seed``). Loaders restart when exhausted, as in the reference.
    """

    def __init__(self, dataset, *, variant: str = "cmo", batch_size: int = 64, workers: int = 2,
                 image_size: int = 224, probability: float = 0.5, alpha: float = 1.0,
                 device: str = "cpu", seed: int = 0, coin=None, augment: str = "standard",
                 style: str = "imagenet"):
        if variant not in ("cmo", "none"):
            raise ValueError(f"variant must be 'cmo' or 'none', got {variant!r}")
        self.variant, self.alpha, self.probability = variant, alpha, probability
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        self.rng = np.random.default_rng(seed)
        self.coin = coin or (lambda step: self.rng.random() < self.probability)
        self.step = 0
        mean, std = NORMALISE[style]
        images = ImageList(dataset, recipe_transform(augment, image_size, mean, std, style))
        common = dict(batch_size=batch_size, num_workers=workers, drop_last=True,
                      pin_memory=device == "gpu", persistent_workers=workers > 0)
        generator = torch.Generator().manual_seed(seed)
        self.background = DataLoader(images, shuffle=True, generator=generator, **common)
        self.foreground = None
        if variant == "cmo":
            sampler = WeightedRandomSampler(minority_weights(dataset.labels), len(dataset),
                                            replacement=True,
                                            generator=torch.Generator().manual_seed(seed + 1))
            self.foreground = DataLoader(images, sampler=sampler, **common)
        self._bg_iter = self._fg_iter = None
        self.pasted = 0

    @staticmethod
    def _next(loader, it):
        try:
            return next(it), it
        except (StopIteration, TypeError):  # exhausted, or not started yet
            it = iter(loader)
            return next(it), it

    def __iter__(self):
        return self

    def __next__(self):
        (x_b, y_b), self._bg_iter = self._next(self.background, self._bg_iter)
        x_b = x_b.to(self.device, non_blocking=True)
        y_b = y_b.to(self.device, non_blocking=True)
        if self.foreground is None:
            self.step += 1
            return x_b, y_b
        (x_f, y_f), self._fg_iter = self._next(self.foreground, self._fg_iter)
        x_f = x_f.to(self.device, non_blocking=True)
        y_f = y_f.to(self.device, non_blocking=True)
        lam = 1.0
        if self.coin(self.step):
            height, width = x_b.shape[-2:]
            y1, x1, y2, x2 = rand_bbox(height, width, self.rng.beta(self.alpha, self.alpha),
                                       self.rng)
            x_b[:, :, y1:y2, x1:x2] = x_f[:, :, y1:y2, x1:x2]
            lam = 1.0 - (x2 - x1) * (y2 - y1) / (width * height)
            self.pasted += lam < 1.0
        self.step += 1
        return x_b, y_b, y_f, torch.full((len(y_b),), lam, device=self.device)

    def worker_pids(self) -> list[int]:
        """Process ids of the running DataLoader workers."""
        return [w.pid for it in (self._bg_iter, self._fg_iter) if it is not None
                for w in getattr(it, "_workers", ())]

    def close(self) -> None:
        """Stops the worker processes."""
        for it in (self._bg_iter, self._fg_iter):
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
        self._bg_iter = self._fg_iter = None
