"""Image integrity: cheap checks on every read, full checks on demand, and errors that name files.

(The quick check, the full check, the error that names a file and the tracing of decoder
warnings to their file are one concern: finding the bad file. Hence its length.)

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
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass
from typing import Iterable, NamedTuple, Sequence

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
    """An image the pipeline cannot use; the message names the file, where it is listed, the
    epoch and the batch (both counted from 1).

    Args:
        path: the file.
        reason: what is wrong with it.
        index: its index in the dataset.
        epoch: the epoch it was read in, counted from 0 (as DALI counts).
        iteration: the batch of that epoch, counted from 0.
        hint: end the message with what a Python caller can do about it.
        decoded: the decoder failed on the file (the reader's check passed it); False: the
            reader's check refused it.
    """

    def __init__(self, path, reason: str, *, index: int | None = None, epoch: int | None = None,
                 iteration: int | None = None, hint: bool = True, decoded: bool = False):
        self.path, self.reason = str(path), reason
        self.index, self.epoch, self.iteration = index, epoch, iteration
        self.decoded = decoded
        message = self.describe()
        if hint:
            message += ("; remove or replace the file, scan the whole dataset with "
                        "`python -m dali_cmo check <dataset> --decode`, or train with "
                        "on_bad_image='skip'")
        super().__init__(message)

    def describe(self, location: str | None = None) -> str:
        """``bad image PATH (WHERE): REASON``; ``location`` (e.g. ``"line 17 of train.txt"``)
        replaces the dataset index."""
        where = [location or (f"dataset index {self.index}" if self.index is not None else None),
                 f"epoch {self.epoch + 1}" if self.epoch is not None else None,
                 f"batch {self.iteration + 1}" if self.iteration is not None else None]
        where = ", ".join(w for w in where if w)
        return f"bad image {self.path}" + (f" ({where})" if where else "") + f": {self.reason}"

    def __reduce__(self):
        return (_rebuild_error, (self.path, self.reason, self.index, self.epoch, self.iteration,
                                 self.decoded))


def _rebuild_error(path, reason, index, epoch, iteration, decoded=False):
    return BadImageError(path, reason, index=index, epoch=epoch, iteration=iteration,
                         decoded=decoded)


def command_line_advice(error: BadImageError, *, on_bad_image: str, dataset: str) -> str:
    """What a command-line user can do about ``error``, naming the flags.

    Args:
        error: the bad image.
        on_bad_image: the policy in force (``--on-bad-image``).
        dataset: the dataset argument to give ``python -m dali_cmo check``.
    """
    scan = f"`python -m dali_cmo check {dataset} --decode` lists every such file"
    if on_bad_image != "skip":
        return (f"remove or replace the file, or pass --on-bad-image skip to train without it; "
                f"{scan}")
    if error.decoded:
        return (f"--on-bad-image skip replaces only the files the read check catches "
                f"(unreadable, empty, truncated, not an image); this one passed it and failed "
                f"to decode: remove or replace it; {scan}")
    # under skip the reader stops on a file it refused only when its class has no valid one left
    return f"remove or replace the bad files of its class; {scan}"


class BadImageWarning(UserWarning):
    """A bad image was skipped (``on_bad_image="skip"``); issued once per file, shown as one
    line ``BadImageWarning: skipping bad image ...`` (no source line: the file is named)."""


_FORMAT_WARNING = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, BadImageWarning):
        return f"{category.__name__}: {message}\n"
    return _FORMAT_WARNING(message, category, filename, lineno, line)


warnings.formatwarning = _format_warning  # every other warning as before


def warn_skipped(path, reason: str, index: int | None = None, epoch: int | None = None,
                 stacklevel: int = 3) -> None:
    """The :class:`BadImageWarning` for a file replaced under ``on_bad_image="skip"``.

    Args:
        path: the bad file.
        reason: what is wrong with it.
        index, epoch: its dataset index and the epoch it was met in (counted from 0, as
            :class:`BadImageError`'s), when known.
        stacklevel: as :func:`warnings.warn`'s, counted from the caller of this function.
    """
    where = ", ".join(w for w in (f"dataset index {index}" if index is not None else None,
                                  f"epoch {epoch + 1}" if epoch is not None else None) if w)
    where = f" ({where})" if where else ""
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
    tail_start = max(0, n - JPEG_TAIL)
    return _check_ends(_as_bytes(data[:16]), _as_bytes(data[tail_start:]), n)


def quick_check_file(path) -> str | None:
    """:func:`quick_check` of the file ``path``, reading only its first and last bytes; also
    reports a missing or unreadable file."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
            f.seek(max(0, size - JPEG_TAIL))
            tail = f.read()
    except FileNotFoundError:
        return "missing (file not found)"
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    return _check_ends(head, tail, size)


def _check_ends(head: bytes, tail: bytes, n: int) -> str | None:
    """The quick check from the first 16 bytes, the last ``min(n, JPEG_TAIL)`` bytes and the
    size ``n``."""
    if n == 0:
        return "empty file (0 bytes)"
    fmt = sniff_format(head)
    if fmt is None:
        return f"unknown image format (first bytes {head[:8].hex(' ')})"
    if fmt == "gif":
        return "GIF data (DALI cannot decode GIF)"
    if fmt not in DALI_FORMATS:
        return f"{fmt.upper()} data (DALI cannot decode {fmt.upper()})"
    if fmt == "jpeg":
        eoi = tail.rfind(b"\xff\xd9")
        if eoi < 0:
            return f"truncated JPEG (no end-of-image marker FFD9 in the last {JPEG_TAIL} bytes)"
        if n <= JPEG_TAIL:  # small file: the marker must come after the start of scan
            sos = tail.find(b"\xff\xda")
            if sos < 0:
                return "truncated JPEG (no start-of-scan marker)"
            if eoi < sos:
                return "truncated JPEG (end-of-image marker before the image data ends)"
    elif fmt == "png":
        if tail[-PNG_TAIL:].rfind(b"IEND") < 0:
            return "truncated PNG (no IEND chunk)"
    return None


def quick_check_files(paths, workers: int = 8, stop=None, progress=None) -> dict[int, str]:
    """:func:`quick_check_file` of every path, in parallel: ``{position: problem}`` of the bad.

    Args:
        paths: the files.
        workers: reader threads.
        stop: a callable; when it returns True the scan ends early (what was found so far is
            returned).
        progress: a callable given the number of files checked so far.
    """
    paths = list(paths)
    bad: dict[int, str] = {}
    chunk = 256
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(paths), chunk):
            if stop is not None and stop():
                break
            problems = pool.map(quick_check_file, paths[start:start + chunk])
            bad.update({start + k: p for k, p in enumerate(problems) if p is not None})
            if progress is not None:
                progress(min(start + chunk, len(paths)))
    return bad


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
    jpeg_quality: int | None = None  # JPEG: the IJG quality its tables fit (jpeg_quality())
    chroma: str | None = None       # JPEG colour: chroma subsampling, "4:4:4", "4:2:2", "4:2:0"
    problem: str | None = None
    decoder_warnings: list[str] | None = None  # what the trainer's decoder prints (check_decoding)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return asdict(self)


#: The IJG (libjpeg) luminance quantization table at quality 50, row by row (ITU T.81 K.1).
IJG_LUMINANCE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def ijg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes at ``quality`` (1..100; ``jpeg_set_quality``)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.array(IJG_LUMINANCE) * scale + 50) // 100, 1, 255)


_IJG_TABLES = np.stack([ijg_table(q) for q in range(1, 101)])  # row q - 1: quality q


def jpeg_quality(image) -> int | None:
    """The IJG quality (1..100) whose luminance table is closest to the JPEG's (PIL image,
    tables in row order): exact for files written by libjpeg, PIL or OpenCV, an estimate for
    encoders with tables of their own. None without tables."""
    tables = getattr(image, "quantization", None) or {}
    if 0 not in tables or len(tables[0]) != 64:
        return None
    errors = np.abs(_IJG_TABLES - np.array(tables[0])).sum(axis=1)
    return 1 + int(np.argmin(errors))


def jpeg_chroma(image) -> str | None:
    """The chroma subsampling of a colour JPEG (PIL image): ``"4:4:4"``, ``"4:2:2"``,
    ``"4:2:0"``, ``"other"``; None for one channel."""
    from PIL import JpegImagePlugin
    if image.mode in ("L", "1"):
        return None
    return {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(image), "other")


def full_check(path, decode: bool = True) -> ImageReport:
    """Exists, readable, quick check, sizes, mode, JPEG quality and chroma subsampling and,
    with ``decode``, a full PIL decode."""
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
                if image.format == "JPEG":
                    report.jpeg_quality, report.chroma = jpeg_quality(image), jpeg_chroma(image)
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


class BatchRead(NamedTuple):
    """A batch's provenance: its epoch and iteration, and the dataset indices and paths of the
    files it read (after bad files were replaced)."""
    epoch: int
    iteration: int
    indices: Sequence[int]
    paths: Sequence


def culprit_error(error: BaseException, histories: Iterable[Sequence[BatchRead]], epoch: int,
                  iteration: int, bad_files: dict[str, str] | None = None
                  ) -> BadImageError | None:
    """A :class:`BadImageError` for the file behind ``error`` (a failed ``pipe.run()``), or None.

    ``histories`` hold each stream's recent batches, oldest first: the batch
    ``(epoch, iteration)`` is searched first, then the others, newest first (DALI prefetches, so
    the failing batch need not be the last one produced). A file that fails the check is
    recorded in ``bad_files`` (path -> problem) when given.
    """
    first, rest = [], []
    for history in histories:
        for (e, it, indices, paths) in reversed(list(history)):
            target = first if (e, it) == (epoch, iteration) else rest
            target.extend((e, it, int(i), str(p)) for i, p in zip(indices, paths))
    found = find_culprit(first + rest)
    if found is None:
        return None
    (e, it, index, path), report = found
    if bad_files is not None:
        bad_files.setdefault(path, report.problem)
    message = f"{report.problem}; the decoder failed with: {_first_line(error)}"
    return BadImageError(path, message, index=index, epoch=e, iteration=it, decoded=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # DALI errors are long; keep the line that says what failed
    for line in lines:
        if "rror" in line and len(line) < 300:
            return line
    return (lines[0] if lines else type(error).__name__)[:300]


# ------------------------------------------------------------------ decoder warnings

#: libjpeg's warnings (it prints them to stderr without naming the file)
DECODER_WARNING = re.compile(r"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS "
                             r"parameters|Unsupported marker type|Warning: )")
_MARK = "\x00dali_cmo file "


_FAILED = "\x00dali_cmo failed "
DECODE_FAILED = "decode failed: "  # how decoder_messages lists a failure


def decoder_messages(paths, timeout: float | None = 600.0, workers: int = 1
                     ) -> dict[str, list[str]]:
    """What the trainer's decoder (DALI's, on the CPU, as the training pipelines call it) says
    about each of ``paths``: its warnings and, after :data:`DECODE_FAILED`, its error (only
    files with messages are listed).

    The files are decoded one by one, each on its own, in ``workers`` separate processes
    (a share of the files each), whose stderr is then split by file.
    """
    paths = list(map(str, paths))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = "from dali_cmo.data.integrity import _decode_each; _decode_each()"
    shares = [paths[k::workers] for k in range(max(1, min(workers, len(paths))))]
    children = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=env) for _ in shares]
    with ThreadPoolExecutor(max_workers=len(children) or 1) as pool:
        errors = list(pool.map(lambda c: c[0].communicate("\n".join(c[1]), timeout=timeout)[1],
                               zip(children, shares)))
    messages: dict[str, dict[str, None]] = {}  # path -> its distinct lines, in order
    for stderr in errors:
        current = None
        for line in stderr.splitlines():
            if line.startswith(_MARK):
                current = line[len(_MARK):]
            elif current is not None and line.startswith(_FAILED):
                messages.setdefault(current, {})[DECODE_FAILED + line[len(_FAILED):]] = None
            elif current is not None and DECODER_WARNING.match(line):
                messages.setdefault(current, {})[line] = None
    return {path: list(lines) for path, lines in messages.items()}


def _decode_each() -> None:
    """The child of :func:`decoder_messages`: decode the files named on stdin, one by one,
    writing a marker line to stderr before each (and one after a failure)."""
    from nvidia.dali import fn, pipeline_def, types

    paths = [line for line in sys.stdin.read().splitlines() if line]
    current = {"data": np.zeros(0, np.uint8)}

    @pipeline_def(batch_size=1, num_threads=1, device_id=None, exec_async=False,
                  exec_pipelined=False, prefetch_queue_depth=1)
    def graph():
        encoded = fn.external_source(lambda: [current["data"]], batch=True)
        return fn.decoders.image(encoded, device="cpu", output_type=types.RGB)

    pipe = graph()
    pipe.build()
    for path in paths:
        os.write(2, f"{_MARK}{path}\n".encode())
        try:
            current["data"] = np.fromfile(path, dtype=np.uint8)
            pipe.run()
        except Exception as error:  # noqa: BLE001 - reported, then the next file
            os.write(2, f"{_FAILED}{_first_line(error)}\n".encode())
            pipe = graph()
            pipe.build()


def check_decoding(reports: list[ImageReport], workers: int = 8) -> None:
    """Decode the files of ``reports`` that passed :func:`full_check` with the trainer's decoder
    too (:func:`decoder_messages`), so that a check finds every file training would stop on
    or warn about: a failure becomes the report's problem, warnings its
    ``decoder_warnings``."""
    good = {report.path: report for report in reports if report.ok}
    for path, messages in decoder_messages(list(good), timeout=None, workers=workers).items():
        report = good[path]
        failed = [m for m in messages if m.startswith(DECODE_FAILED)]
        if failed:
            report.decodable = False
            report.problem = (f"decode failed (the trainer's decoder: "
                              f"{failed[0][len(DECODE_FAILED):]})")
        report.decoder_warnings = [m for m in messages if m not in failed] or None


class DecoderWarningTracer:
    """Traces the decoder's anonymous warnings to files: given every stderr line (see
    ``dali_cmo.training.progress.StderrRelay``), it decodes the files of the recent batches one
    by one in the background (:func:`decoder_messages`) and names those that cause a warning.

    Args:
        report: called with one message per traced file.
    """

    def __init__(self, report):
        self.report = report
        self.candidates = lambda: []  # set by the caller: paths of recent batches
        self._seen: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dali_cmo_trace")
        self._traces = []  # the futures of the traces submitted

    def __call__(self, line: str) -> None:
        if not DECODER_WARNING.match(line):
            return
        paths = [p for p in dict.fromkeys(map(str, self.candidates())) if p not in self._seen]
        self._seen.update(paths)
        if paths:
            self._traces.append(self._pool.submit(self._trace, paths))

    def _trace(self, paths) -> None:
        for path, messages in decoder_messages(paths).items():
            messages = [m for m in messages if not m.startswith(DECODE_FAILED)]
            if not messages:
                continue  # the training pipeline reports a failure itself
            self.report(f"decoder warning traced to {path}: {'; '.join(messages)} (`python -m "
                        f"dali_cmo check <dataset> --decode` finds such files up front)")

    def wait(self) -> None:
        """Wait for the traces submitted so far (their reports made)."""
        submitted, self._traces = self._traces, []
        futures_wait(submitted)

    def close(self) -> None:
        """Wait for the traces under way."""
        self._pool.shutdown(wait=True)
