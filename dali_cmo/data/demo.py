"""The built-in demo data set: a small, long-tailed, learnable image folder made without downloads.

Ten classes of 32x32 RGB JPEGs. Each class is a coloured shape or pattern (disc, square,
triangle, cross, ring, stripes, ...) of its own hue, drawn at a random position and size on a
noisy background of random colour, so a small CNN can learn it but not trivially. Training
counts follow the CIFAR-LT profile (:func:`dali_cmo.data.datasets.long_tailed_counts`): 300 images
for class 0 down to 3 for class 9 (imbalance ratio 100, 740 images); the test split is balanced
(30 per class). Class sizes 300, 179, 107 fall in Many (> 100 training images), 64, 38, 23 in
Medium (20..100) and 13, 8, 5, 3 in Few (< 20), the usual long-tailed groups. (Small on
purpose: a ResNet-32 epoch over it takes seconds on a laptop CPU.)

The images are written once into ``<cache>/demo-lt-v3`` (``DALI_CMO_CACHE``, default
``~/.cache/dali_cmo``) as ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``. The content is a
pure function of the generator seed, so every machine gets the same pictures.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dali_cmo.data.datasets import long_tailed_counts

VERSION = "demo-lt-v3"
SIZE = 32
NUM_CLASSES = 10
N_MAX = 300
IMBALANCE_RATIO = 100
TEST_PER_CLASS = 30
CLASS_NAMES = ("disc", "square", "triangle", "cross", "ring", "h_stripes", "v_stripes",
               "diagonal", "checker", "x_mark")
# One hue per class (RGB), far apart from each other.
COLOURS = ((230, 40, 40), (40, 200, 60), (50, 80, 230), (240, 200, 30), (200, 50, 220),
           (30, 210, 210), (250, 130, 20), (140, 90, 40), (255, 255, 255), (120, 120, 255))


def _draw_class(draw: ImageDraw.ImageDraw, label: int, rng: np.random.Generator) -> None:
    """Draw class ``label``'s shape at a random position and size."""
    size = int(rng.integers(16, 25))
    x0 = int(rng.integers(0, SIZE - size + 1))
    y0 = int(rng.integers(0, SIZE - size + 1))
    x1, y1 = x0 + size - 1, y0 + size - 1
    jitter = rng.integers(-20, 21, 3)
    colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[label], jitter))
    width = max(2, size // 6)
    name = CLASS_NAMES[label]
    if name == "disc":
        draw.ellipse([x0, y0, x1, y1], fill=colour)
    elif name == "square":
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    elif name == "triangle":
        draw.polygon([(x0 + size // 2, y0), (x0, y1), (x1, y1)], fill=colour)
    elif name == "cross":
        mid_x, mid_y = x0 + size // 2, y0 + size // 2
        draw.rectangle([mid_x - width, y0, mid_x + width, y1], fill=colour)
        draw.rectangle([x0, mid_y - width, x1, mid_y + width], fill=colour)
    elif name == "ring":
        draw.ellipse([x0, y0, x1, y1], outline=colour, width=width)
    elif name == "h_stripes":
        for y in range(y0, y1 + 1, 2 * width):
            draw.rectangle([x0, y, x1, min(y + width - 1, y1)], fill=colour)
    elif name == "v_stripes":
        for x in range(x0, x1 + 1, 2 * width):
            draw.rectangle([x, y0, min(x + width - 1, x1), y1], fill=colour)
    elif name == "diagonal":
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=width + 1)
    elif name == "checker":
        step = max(3, size // 4)
        for i, y in enumerate(range(y0, y1 + 1, step)):
            for j, x in enumerate(range(x0, x1 + 1, step)):
                if (i + j) % 2 == 0:
                    draw.rectangle([x, y, min(x + step - 1, x1), min(y + step - 1, y1)],
                                   fill=colour)
    else:  # x_mark
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
        draw.line([(x0, y1), (x1, y0)], fill=colour, width=width)


def make_image(label: int, rng: np.random.Generator) -> Image.Image:
    """One 32x32 picture of class ``label``: noisy random background, then the class's shape."""
    base = rng.integers(0, 110, 3)
    noise = rng.normal(0, 15, (SIZE, SIZE, 3))
    background = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    _draw_class(ImageDraw.Draw(image), label, rng)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 8, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def train_counts() -> np.ndarray:
    """Training images per class: 300, 179, 107, 64, 38, 23, 13, 8, 5, 3."""
    return long_tailed_counts(NUM_CLASSES, IMBALANCE_RATIO, N_MAX)


def _write_split(folder: Path, counts, seed: int) -> None:
    for label, count in enumerate(counts):
        class_dir = folder / f"{label}_{CLASS_NAMES[label]}"
        class_dir.mkdir(parents=True)
        rng = np.random.default_rng([seed, label])
        for i in range(int(count)):
            make_image(label, rng).save(class_dir / f"{i:04d}.jpg", quality=90)


def demo_dir(cache: str | os.PathLike | None = None) -> Path:
    """The demo image folder (``train/``, ``test/``), generated on first use (a few seconds).

    Generation writes into a private temporary folder and renames it into place, so concurrent
    callers (several ranks, parallel tests) never see a half-written data set.
    """
    if cache is None:
        from dali_cmo.data.cache import cache_dir
        cache = cache_dir()
    target = Path(cache) / VERSION
    if (target / ".complete").exists():
        return target
    partial = Path(cache) / f".{VERSION}.{uuid.uuid4().hex}.partial"
    try:
        _write_split(partial / "train", train_counts(), seed=1)
        _write_split(partial / "test", [TEST_PER_CLASS] * NUM_CLASSES, seed=2)
        (partial / ".complete").touch()
        try:
            partial.rename(target)
        except OSError:  # someone else finished first (or a stale incomplete folder is there)
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
