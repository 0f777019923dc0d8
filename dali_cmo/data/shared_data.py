"""Locate the read-only real data (``../shared/data``) of the development checkout, for tests
and benchmarks only: nothing in the product defaults to it (``train.py --dataset cifar10-lt``
needs ``--data``).

The folder sits beside the repository; ``DALI_CMO_SHARED_DATA`` overrides it. Archives are
extracted once into the user's cache folder (:func:`dali_cmo.data.cache.cache_dir`) so that
repeated test runs do not pay for extraction again.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from dali_cmo.data.cache import cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
IMAGENET_SAMPLES = "imagenet-samples"
DONE_MARKER = ".extracted"


class SharedDataMissing(FileNotFoundError):
    """Raised when the shared data folder or one of its entries is absent."""


def shared_data_dir() -> Path:
    """The shared data folder; raises :class:`SharedDataMissing` naming where it looked."""
    override = os.environ.get("DALI_CMO_SHARED_DATA")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        raise SharedDataMissing(
            f"shared data folder not found at {path} (set DALI_CMO_SHARED_DATA to its location)")
    return path


def imagenet_samples_dir() -> Path:
    """Folder of 1,000 real ImageNet JPEGs, one per class."""
    path = shared_data_dir() / IMAGENET_SAMPLES
    if not path.is_dir():
        raise SharedDataMissing(f"{path} not found")
    return path


def cifar10_dir() -> Path:
    """Extracted CIFAR-10 JPEG tree (``train/<class>/*.jpg``, ``test/<class>/*.jpg``)."""
    archive = shared_data_dir() / CIFAR10_ARCHIVE
    if not archive.is_file():
        raise SharedDataMissing(f"{archive} not found")
    target = cache_dir() / "cifar10-jpeg"
    if not (target / DONE_MARKER).exists():
        extract_once(archive, target)
    return target


def extract_once(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target``, safe when several processes do it at once.

    Each process extracts into its own temporary folder beside ``target``, marks it complete and
    renames it into place; a process that loses the race (``target`` already there) removes its
    copy and uses the winner's. A leftover incomplete ``target`` (no marker) is replaced.
    """
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial."))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        # The archive may hold one top-level folder around train/ and test/.
        inner = next((p.parent for p in partial.rglob("train") if p.is_dir()), partial)
        (inner / DONE_MARKER).touch()
        if target.exists() and not (target / DONE_MARKER).exists():
            shutil.rmtree(target, ignore_errors=True)  # an interrupted older extraction
        try:
            inner.rename(target)
        except OSError:
            if not (target / DONE_MARKER).exists():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def imagenet_samples_dataset(num_images: int | None = None, imbalance_ratio: float = 256.0,
                             n_max: int = 1280):
    """A long-tailed list over the real ImageNet sample JPEGs (one file per class).

    Class k's file is repeated ``max(1, int(n_max * (1/ratio) ** (k / (C - 1))))`` times: the
    exponential profile from 1,280 down to 5 images per class over 1,000 classes by default
    (229,853 entries; ImageNet-LT's own list has 115,846 with a steeper head), with ImageNet's
    real decode costs. ``num_images`` scales the profile down (for quick runs) keeping its shape.
    """
    from dali_cmo.data.datasets import repeated_file_dataset

    return repeated_file_dataset(imagenet_samples_dir(), imbalance_ratio, n_max, num_images)
