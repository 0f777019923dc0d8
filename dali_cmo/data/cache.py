"""The user's cache folder: ``DALI_CMO_CACHE``, default ``~/.cache/dali_cmo`` (the demo data,
decoded CIFAR JPEG trees, the native reader's lists, the foreground cache's admissions)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder, created if missing."""
    path = Path(os.environ.get("DALI_CMO_CACHE", Path.home() / ".cache" / "dali_cmo"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def lists_dir() -> Path:
    """Where the native reader's lists and the foreground cache's admissions are written:
    ``<cache>/reader_lists``."""
    folder = cache_dir() / "reader_lists"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_once(folder: Path, name: str, chunks) -> Path:
    """``folder/name`` with the bytes of ``chunks`` (written to a private file, then renamed:
    ranks and runs that write the same content at once all end with one complete file)."""
    target = folder / name
    if not target.exists():
        partial = folder / f".{name}.{os.getpid()}.partial"
        with open(partial, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(partial, target)
    return target
