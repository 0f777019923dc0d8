"""The user's cache folder: ``DALI_CMO_CACHE``, default ``~/.cache/dali_cmo`` (the demo data,
decoded CIFAR JPEG trees, the native reader's lists)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder, created if missing."""
    path = Path(os.environ.get("DALI_CMO_CACHE", Path.home() / ".cache" / "dali_cmo"))
    path.mkdir(parents=True, exist_ok=True)
    return path
