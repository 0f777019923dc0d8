"""``python -m dali_cmo check``: scan a dataset up front for images a training run would trip on.

Loads the dataset (split file, iNat JSON or image folder; a malformed list is reported by the
loader), then checks every file in parallel: exists, readable, the cheap check the sources run
on every read (empty, not a format DALI decodes such as GIF, truncated JPEG/PNG) and, with
``--decode``, a full PIL decode and a decode with the trainer's decoder (DALI's: its failures
are bad files, its warnings about corrupt data are listed). Missing files are scanned and reported like every other
problem. Prints counts by problem, the bad files with the line that lists them (split files),
images smaller than ``--min-size`` (default 224), size statistics, JPEG quality (the IJG quality
the quantization tables fit: low quality at small sizes costs accuracy) and chroma subsampling,
the label range and empty classes; ``--report`` writes everything as JSON (also when the list
itself cannot be read).
Exit status 1 when a bad file (or a dataset error) was found.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dali_cmo.data.datasets import LongTailDataset, load_dataset
from dali_cmo.data.integrity import ImageReport, check_decoding, full_check
from dali_cmo.training.progress import ProgressLine

MAX_LISTED = 20  # bad files printed in the summary (the JSON report holds all of them)
CHUNK = 65_536   # files checked (and decoded) at a time: memory grows with the chunk, not the list


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``check`` command on ``subparsers``; returns its parser."""
    parser = subparsers.add_parser(
        "check", help="scan a dataset for missing, unreadable or undecodable images",
        description=__doc__.splitlines()[0])
    parser.add_argument("source", help="split file (path label per line), iNat JSON or image folder")
    parser.add_argument("--root", help="image root for split files and JSON (default: their folder)")
    parser.add_argument("--num-classes", type=int, help="number of classes (split files)")
    parser.add_argument("--decode", action="store_true",
                        help="decode every image fully, with PIL and with the trainer's "
                             "decoder (slower; finds corrupt data)")
    parser.add_argument("--workers", type=int, default=8, help="parallel reader threads")
    parser.add_argument("--min-size", type=int, default=224,
                        help="count images whose shorter side is below this")
    parser.add_argument("--report", help="write the full report as JSON to this path")
    parser.set_defaults(run=run)
    return parser


def _progress_text(done: int, total: int, progress: ProgressLine) -> str:
    rate = done / max(progress.elapsed(), 1e-9)
    return f"checked {done:,}/{total:,} files ({rate:,.0f} files/s)"


class Tally:
    """What the summary needs, folded in file by file: the bad files and the files the decoder
    warned about keep their reports, every other file only a few bytes (its width, height and
    JPEG quality), so that millions of files fit in memory."""

    def __init__(self) -> None:
        self.num_images = 0
        self.bad: list[tuple[int, ImageReport]] = []
        self.warned: list[tuple[int, ImageReport]] = []
        self.formats: Counter = Counter()
        self.modes: Counter = Counter()
        self.chroma: Counter = Counter()
        self.widths, self.heights, self.qualities = array("i"), array("i"), array("i")

    def add(self, index: int, report: ImageReport) -> None:
        self.num_images += 1
        if not report.ok:
            self.bad.append((index, report))
        if report.decoder_warnings:
            self.warned.append((index, report))
        if report.ok and report.width:
            self.widths.append(report.width)
        if report.ok and report.height:
            self.heights.append(report.height)
        self.formats[report.format or "unknown"] += 1
        if report.mode:
            self.modes[report.mode] += 1
        if report.jpeg_quality:
            self.qualities.append(report.jpeg_quality)
        if report.chroma:
            self.chroma[report.chroma] += 1


def scan(dataset: LongTailDataset, decode: bool = False, workers: int = 8,
         progress: ProgressLine | None = None, each=None) -> Tally:
    """:func:`~dali_cmo.data.integrity.full_check` of every file of ``dataset``, in dataset order
    and :data:`CHUNK` files at a time; with ``decode``, every file is decoded with the trainer's
    decoder too (:func:`~dali_cmo.data.integrity.check_decoding`). ``each(report)`` is called
    for every report, in order (the ``--report`` writer)."""
    tally, n = Tally(), len(dataset)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, n, CHUNK):
            paths = [dataset.path(i) for i in range(start, min(start + CHUNK, n))]
            reports: list[ImageReport] = []
            for report in pool.map(lambda p: full_check(p, decode=decode), paths, chunksize=16):
                reports.append(report)
                if progress is not None:
                    progress.show(_progress_text(start + len(reports), n, progress), final=False)
            if decode:
                check_decoding(reports, workers)
            for offset, report in enumerate(reports):
                tally.add(start + offset, report)
                if each is not None:
                    each(report)
    if progress is not None:
        progress.show(_progress_text(n, n, progress), final=True)
    return tally


def _reason_kind(problem: str) -> str:
    return problem.split(" (")[0].split(";")[0]


def summarise(dataset: LongTailDataset, tally: Tally, min_size: int, decode: bool) -> dict:
    bad = tally.bad
    widths = np.frombuffer(tally.widths, dtype=np.int32).astype(np.int64)
    heights = np.frombuffer(tally.heights, dtype=np.int32).astype(np.int64)
    qualities = np.frombuffer(tally.qualities, dtype=np.int32).astype(np.int64)
    counts = dataset.class_counts
    bad_labels = np.bincount([int(dataset.labels[i]) for i, _ in bad],
                             minlength=dataset.num_classes) if bad else np.zeros_like(counts)
    left = counts - bad_labels

    def stats(values):
        if len(values) == 0:
            return None
        return {"min": int(values.min()), "median": float(np.median(values)),
                "mean": float(values.mean()), "max": int(values.max())}

    def line(i: int) -> int | None:
        return int(dataset.lines[i]) if dataset.lines is not None else None

    return {
        "source": dataset.source,
        "root": str(dataset.root),
        "decoded": decode,
        "num_images": tally.num_images,
        "ok": tally.num_images - len(bad),
        "bad": len(bad),
        "bad_by_reason": dict(Counter(_reason_kind(r.problem) for _, r in bad).most_common()),
        "bad_files": [{"index": i, "line": line(i), "path": r.path,
                       "label": int(dataset.labels[i]), "problem": r.problem} for i, r in bad],
        "decoder_warnings": [{"index": i, "path": r.path, "warnings": r.decoder_warnings,
                              "line": line(i)} for i, r in tally.warned],
        "formats": dict(tally.formats.most_common()),
        "modes": dict(tally.modes.most_common()),
        "jpeg_quality": stats(qualities),
        "jpeg_quality_below_90": int(np.count_nonzero(qualities < 90)),
        "chroma": dict(tally.chroma.most_common()),
        "smaller_than_min_size": {"min_size": min_size,
                                  "count": int(np.count_nonzero(np.minimum(widths, heights)
                                                                < min_size))},
        "width": stats(widths),
        "height": stats(heights),
        "labels": {"min": int(dataset.labels.min()) if len(dataset) else None,
                   "max": int(dataset.labels.max()) if len(dataset) else None,
                   "num_classes": dataset.num_classes},
        "empty_classes": np.flatnonzero(counts == 0).tolist(),
        "classes_left_empty_by_bad_files": np.flatnonzero((left == 0) & (counts > 0)).tolist(),
    }


def _where(entry: dict) -> str:
    """Where a file of the summary is listed: its line, or its index."""
    return f"line {entry['line']}" if entry["line"] is not None else f"[{entry['index']}]"


def format_text(summary: dict) -> str:
    lines = [f"source        {summary['source']}",
             f"images        {summary['num_images']:,} "
             f"({'decoded' if summary['decoded'] else 'quick check; --decode for a full decode'})",
             f"ok            {summary['ok']:,}",
             f"bad           {summary['bad']:,}"]
    for reason, n in summary["bad_by_reason"].items():
        lines.append(f"  {n:>8,}  {reason}")
    for entry in summary["bad_files"][:MAX_LISTED]:
        lines.append(f"  {_where(entry)}: {entry['path']}: {entry['problem']}")
    if summary["bad"] > MAX_LISTED:
        lines.append(f"  ... and {summary['bad'] - MAX_LISTED:,} more (see --report)")
    warned = summary["decoder_warnings"]
    if warned:
        lines.append(f"decoder warnings {len(warned):,} (files the trainer's decoder decodes "
                     f"with a warning: corrupt data)")
        for entry in warned[:MAX_LISTED]:
            lines.append(f"  {_where(entry)}: {entry['path']}: {'; '.join(entry['warnings'])}")
    small = summary["smaller_than_min_size"]
    lines.append(f"small images  {small['count']:,} with a side below {small['min_size']}")
    for key in ("width", "height"):
        s = summary[key]
        if s:
            lines.append(f"{key:<13} min {s['min']}, median {s['median']:.0f}, "
                         f"mean {s['mean']:.1f}, max {s['max']}")
    lines.append("formats       " + ", ".join(f"{k} {v:,}" for k, v in summary["formats"].items()))
    if summary["modes"]:
        lines.append("modes         " + ", ".join(f"{k} {v:,}" for k, v in summary["modes"].items()))
    quality = summary["jpeg_quality"]
    if quality:
        lines.append(f"jpeg quality  min {quality['min']}, median {quality['median']:.0f}, "
                     f"max {quality['max']} (IJG scale, from the quantization tables); "
                     f"{summary['jpeg_quality_below_90']:,} below 90")
    if summary["chroma"]:
        lines.append("jpeg chroma   " + ", ".join(f"{k} {v:,}" for k, v in summary["chroma"].items()))
    labels = summary["labels"]
    lines.append(f"labels        {labels['min']}..{labels['max']} "
                 f"({labels['num_classes']} classes)")
    lines.append(f"empty classes {summary['empty_classes'] or 'none'}")
    if summary["classes_left_empty_by_bad_files"]:
        lines.append(f"classes with no valid image: {summary['classes_left_empty_by_bad_files']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``check``; 0 when every file is fine, 1 when a bad file or a dataset error was found,
    2 when ``--report`` cannot be written (found before the scan)."""
    if args.report and not Path(args.report).parent.is_dir():
        print(f"error: --report {args.report}: folder {Path(args.report).parent} does not "
              f"exist", file=sys.stderr)
        return 2
    try:
        dataset = load_dataset(args.source, args.root, num_classes=args.num_classes,
                               check_files=False)  # missing files: scanned and reported below
    except (ValueError, OSError) as error:  # DatasetError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        if args.report:
            _write_report(args.report, {"error": str(error)})
        return 1
    with StreamedReport(args.report) as report:
        tally = scan(dataset, decode=args.decode, workers=args.workers, progress=ProgressLine(),
                     each=report.add_file if args.report else None)
        summary = summarise(dataset, tally, args.min_size, args.decode)
        print(format_text(summary))
        report.finish(summary)
    if args.report:
        print(f"report        {args.report}")
    return 1 if summary["bad"] else 0


def _write_report(path: str, report: dict) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


class StreamedReport:
    """The ``--report`` JSON, ``{"files": [...], "summary": {...}}``, written as the scan goes
    (one file's report per line) into a private file that replaces ``path`` once the summary is
    written; nothing is written without a ``path``, and an interrupted scan leaves no report."""

    def __init__(self, path: str | None):
        self.path = path
        self.partial = Path(path).parent / f".{Path(path).name}.partial" if path else None
        self._out = None
        self._files = 0

    def __enter__(self) -> "StreamedReport":
        if self.partial is not None:
            self._out = open(self.partial, "w")
            self._out.write('{"files": [')
        return self

    def add_file(self, report: ImageReport) -> None:
        self._out.write(("," if self._files else "") + "\n" + json.dumps(report.to_dict()))
        self._files += 1

    def finish(self, summary: dict) -> None:
        if self._out is not None:
            self._out.write('\n],\n"summary": ' + json.dumps(summary, indent=1) + "}\n")
            self._out.close()
            os.replace(self.partial, self.path)

    def __exit__(self, *error) -> None:
        if self._out is not None and not self._out.closed:
            self._out.close()
            self.partial.unlink(missing_ok=True)
