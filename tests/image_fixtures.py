"""Small images built in tests (no real data needed): good JPEGs, broken ones, split files."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, size=(32, 32)) -> Image.Image:
    """An RGB image with smooth gradients and noise (JPEG-compresses like a photo)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = rng.uniform(0, 255, 3) + rng.uniform(-3, 3, 3) * (x[..., None] + y[..., None])
    pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **{"quality": 90, **kwargs})
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    """The first half: no end-of-image marker (the quick check catches it)."""
    return data[:len(data) // 2]


def garbled_tables(data: bytes) -> bytes:
    """The tables before the scan overwritten, end marker kept: passes the quick check, fails
    the decoder."""
    data = bytearray(data)
    sos = data.find(b"\xff\xda")
    data[sos - 200:sos - 2] = b"\x5a" * 198
    return bytes(data)


def garbled_scan(data: bytes) -> bytes:
    """Every 7th byte of a stretch of the scan set to FF: decodes, with libjpeg's anonymous
    "Corrupt JPEG data" warnings."""
    data = bytearray(data)
    sos = data.find(b"\xff\xda")
    for i in range(sos + 200, sos + 260):
        if i % 7 == 0:
            data[i] = 0xFF
    return bytes(data)


def split_dataset(folder: Path, name: str, per_class=(6, 4, 3), size=(32, 32), seed=0,
                  extra: dict[str, tuple[bytes, int]] | None = None) -> Path:
    """``folder/<name>.txt`` listing ``per_class[k]`` good JPEGs of class k (written under
    ``folder/<name>/``), then each ``extra`` file (relative path -> (bytes, label))."""
    entries = []
    for label, count in enumerate(per_class):
        for j in range(count):
            relative = f"{name}/c{label}/{j}.jpg"
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg_bytes(picture(seed * 1000 + label * 100 + j, size)))
            entries.append((relative, label))
    for relative, (data, label) in (extra or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
        entries.append((relative, label))
    listing = folder / f"{name}.txt"
    listing.write_text("".join(f"{p} {k}\n" for p, k in entries))
    return listing
