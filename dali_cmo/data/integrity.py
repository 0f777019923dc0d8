"""Image integrity: cheap checks on every read, full checks on demand, and errors that name files.

* :func:`quick_check` looks only at the bytes already read (magic number, end marker) and is cheap
  enough to run on every file the sources read: empty files, formats DALI cannot decode (GIF,
  HTML error pages, ...), JPEGs without the end-of-image marker and PNGs without ``IEND``
  (truncated downloads) are caught before they reach the decoder.
* :func:`full_check` opens and decodes one file with PIL (sizes, mode, decode errors); the
  iterators use it to find the culprit when DALI's decoder fails on data that passed the quick
  check, and ``python -m dali_cmo check`` runs it over a whole dataset.
* :class:`BadImageError` names the file, its dataset index and the epoch.

Policies (``on_bad_image``): ``"error"`` (default) raises :class:`BadImageError`; ``"skip"``
replaces a bad file by the next valid sample of the same class in dataset order, warns once per
file (:class:`BadImageWarning`) and records it in ``FileReader.bad_files``.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

ON_BAD_IMAGE = ("error", "skip")

# formats DALI's decoders (nvimgcodec) read
DALI_FORMATS = ("jpeg", "png", "bmp", "tiff", "webp", "jp2", "j2k", "pnm")

JPEG_TAIL = 4096   # the end-of-image marker must lie within this many bytes of the end
PNG_TAIL = 1024


def check_policy(on_bad_image: str) -> str:
    if on_bad_image not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}; "
                         f"got {on_bad_image!r}")
    return on_bad_image


class BadImageError(RuntimeError):
    """An image the pipeline cannot use; the message names the file, its index and the epoch."""

    def __init__(self, path, reason: str, *, index: int | None = None, epoch: int | None = None,
                 iteration: int | None = None, hint: bool = True):
        self.path, self.reason = str(path), reason
        self.index, self.epoch, self.iteration = index, epoch, iteration
        where = [f"dataset index {index}" if index is not None else None,
                 f"epoch {epoch}" if epoch is not None else None,
                 f"batch {iteration}" if iteration is not None else None]
        where = ", ".join(w for w in where if w)
        message = f"bad image {self.path}" + (f" ({where})" if where else "") + f": {reason}"
        if hint:
            message += ("; remove or replace the file, scan the whole dataset with "
                        "`python -m dali_cmo check <dataset> --decode`, or train with "
                        "on_bad_image='skip'")
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_error, (self.path, self.reason, self.index, self.epoch, self.iteration))


def _rebuild_error(path, reason, index, epoch, iteration):
    return BadImageError(path, reason, index=index, epoch=epoch, iteration=iteration)


class BadImageWarning(UserWarning):
    """A bad image was skipped (``on_bad_image="skip"``); issued once per file."""


def warn_skipped(path, reason: str, index: int | None = None, epoch: int | None = None,
                 stacklevel: int = 3) -> None:
    """The :class:`BadImageWarning` for a file replaced under ``on_bad_image="skip"``.

    Args:
        path: the bad file.
        reason: what is wrong with it.
        index, epoch: its dataset index and the epoch it was met in, when known.
        stacklevel: as :func:`warnings.warn`'s, counted from the caller of this function.
    """
    where = f" (dataset index {index}, epoch {epoch})" if index is not None else ""
    warnings.warn(f"skipping bad image {path}{where}: {reason}; a valid image of the same "
                  "class is used in its place", BadImageWarning, stacklevel=stacklevel)


def _as_bytes(data) -> bytes:
    if isinstance(data, np.ndarray):
        return data.tobytes()
    return bytes(data)


def sniff_format(data) -> str | None:
    """The image format of ``data`` (bytes or a uint8 array) by its magic number, or None."""
    head = _as_bytes(data[:16])
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return "jp2"
    if head[:4] == b"\xff\x4f\xff\x51":
        return "j2k"
    if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"123456" and \
            (len(head) < 3 or head[2:3].isspace()):
        return "pnm"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "heif"
    return None


def quick_check(data, path=None) -> str | None:
    """A description of what is wrong with the encoded image ``data``, or None if it looks fine.

    Cheap: looks at the first bytes and the last few KiB only. ``path`` is accepted for
    symmetry with :func:`full_check` (messages do not repeat it).
    """
    n = len(data)
    if n == 0:
        return "empty file (0 bytes)"
    fmt = sniff_format(data)
    if fmt is None:
        head = _as_bytes(data[:8])
        return f"unknown image format (first bytes {head.hex(' ')})"
    if fmt == "gif":
        return "GIF data (DALI cannot decode GIF)"
    if fmt not in DALI_FORMATS:
        return f"{fmt.upper()} data (DALI cannot decode {fmt.upper()})"
    if fmt == "jpeg":
        tail_start = max(0, n - JPEG_TAIL)
        tail = _as_bytes(data[tail_start:])
        eoi = tail.rfind(b"\xff\xd9")
        if eoi < 0:
            return f"truncated JPEG (no end-of-image marker FFD9 in the last {JPEG_TAIL} bytes)"
        if tail_start == 0:  # small file: the marker must come after the start of scan
            sos = tail.find(b"\xff\xda")
            if sos < 0:
                return "truncated JPEG (no start-of-scan marker)"
            if eoi < sos:
                return "truncated JPEG (end-of-image marker before the image data ends)"
    elif fmt == "png":
        if _as_bytes(data[max(0, n - PNG_TAIL):]).rfind(b"IEND") < 0:
            return "truncated PNG (no IEND chunk)"
    return None


@dataclass
class ImageReport:
    """What :func:`full_check` found out about one file."""
    path: str
    exists: bool = False
    readable: bool = False
    size_bytes: int = 0
    format: str | None = None
    decodable: bool | None = None   # None: not decoded
    width: int | None = None
    height: int | None = None
    mode: str | None = None         # PIL mode: RGB, L, CMYK, P, ...
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return asdict(self)


def full_check(path, decode: bool = True) -> ImageReport:
    """Exists, readable, quick check, sizes and mode and, with ``decode``, a full PIL decode."""
    report = ImageReport(str(path))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        report.problem = "missing (file not found)"
        return report
    except IsADirectoryError:
        report.exists, report.problem = True, "not a file (a directory)"
        return report
    except OSError as error:
        report.exists = os.path.exists(path)
        report.problem = f"unreadable ({error.strerror or error})"
        return report
    report.exists, report.readable, report.size_bytes = True, True, len(data)
    report.format = sniff_format(data) if data else None
    report.problem = quick_check(data, path)
    if report.problem is not None and report.size_bytes == 0:
        return report
    import io

    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                report.width, report.height = image.size
                report.mode = image.mode
                if decode and report.problem is None:
                    image.load()
                    rgb = image.convert("RGB")
                    if rgb.size[0] < 1 or rgb.size[1] < 1:
                        raise ValueError("image has no pixels")
                    report.decodable = True
    except Exception as error:  # noqa: BLE001 - any PIL failure is a decode failure
        if decode and report.problem is None:
            report.decodable = False
            report.problem = f"decode failed ({type(error).__name__}: {error})"
        elif report.problem is None:
            report.problem = f"unreadable header ({type(error).__name__}: {error})"
    return report


def find_culprit(candidates: Iterable[tuple[int, int, int, str]], workers: int = 8
                 ) -> tuple[tuple[int, int, int, str], ImageReport] | None:
    """The first of ``(epoch, iteration, index, path)`` whose file fails :func:`full_check`.

    Used after the decoder failed on a batch: every file the sources handed out recently is
    decoded with PIL and the first bad one (in the order given) is returned with its report.
    """
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        return None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reports = list(pool.map(lambda c: full_check(c[3], decode=True), candidates))
    for candidate, report in zip(candidates, reports):
        if not report.ok:
            return candidate, report
    return None


def culprit_error(error: BaseException, sources, epoch: int, iteration: int
                  ) -> BadImageError | None:
    """A :class:`BadImageError` for the file behind ``error`` (a failed ``pipe.run()``), or None.

    ``sources`` are objects with a ``recent`` deque of ``(epoch, iteration, indices, paths)``:
    the batch ``(epoch, iteration)`` is searched first, then the other recent batches (DALI
    prefetches, so the failing batch need not be the last one produced). A file that fails the
    check is recorded as bad in its source's reader.
    """
    first, rest = [], []
    for source in sources:
        if source is None:
            continue
        for (e, it, indices, paths) in reversed(list(getattr(source, "recent", ()))):
            target = first if (e, it) == (epoch, iteration) else rest
            target.extend((e, it, int(i), str(p)) for i, p in zip(indices, paths))
    found = find_culprit(first + rest)
    if found is None:
        return None
    (e, it, index, path), report = found
    for source in sources:
        reader = getattr(source, "reader", None)
        if reader is not None and hasattr(reader, "bad_files"):
            reader.bad_files.setdefault(path, report.problem)
    message = f"{report.problem}; the decoder failed with: {_first_line(error)}"
    return BadImageError(path, message, index=index, epoch=e, iteration=it)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # DALI errors are long; keep the line that says what failed
    for line in lines:
        if "rror" in line and len(line) < 300:
            return line
    return (lines[0] if lines else type(error).__name__)[:300]
