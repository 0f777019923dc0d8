"""The native reader ``fn.readers.weighted_file`` on the Python side.

The reader (``dali_cmo/ops/csrc/cmo_reader.cc``) samples, reads and checks files in C++ inside
the DALI graph. This module gives the training pipelines the same view of it as of the Python
sources (:mod:`dali_cmo.streams.python`):

* :class:`NativeStream`: one P or Q stream as reader arguments, with a NumPy twin of the indices
  the reader draws (:meth:`NativeStream.epoch_indices`) for checks and debugging;
* :func:`reader_file_list`, :func:`reader_weights_file`: the list and Q's weights the reader
  takes by reference (files written once, named by their content, read by every rank);
* :class:`NativeStreams`: the background and foreground streams of a CMO variant;
* :class:`BadFileReport`: the bad files the reader skipped, with a :class:`BadImageWarning`
  once per file;
* :func:`named_by_reader`: a :class:`BadImageError` for a pipeline failure that names its file.

Indices: the reader draws the epoch's order exactly as :mod:`dali_cmo.data.sampling` does
(same generator, same algorithms), then shards it as DALI's readers do
(:func:`shard_positions`). Q's weights travel as float32, so the reader is index-for-index equal
to a ``WeightedSampler`` over the float32-rounded weights; against the float64 weights of the
Python source about 1 draw in 10,000 lands on a neighbouring sample.

Scale: the reader gets its list by reference (``file_list`` and ``weights_file``), never as
arguments: an argument list costs about 1 KB per sample and stream in every rank, a file list
the bytes of its paths, read once per process.
"""
from __future__ import annotations

import hashlib
import io
import re
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nvidia.dali.pipeline import do_not_convert

from dali_cmo.data.cache import lists_dir, write_once
from dali_cmo.data.datasets import LongTailDataset, labelled_lines
from dali_cmo.data.integrity import (BadImageError, BatchRead, check_policy, culprit_error,
                                     warn_skipped)
from dali_cmo.streams.base import RECENT_BATCHES, SampledStream, StreamPair, StreamSettings
from dali_cmo.streams.schedule import PasteSchedule

_READER_MESSAGE = re.compile(r"bad image (?P<path>.+?) \(dataset index (?P<index>\d+), "
                             r"epoch (?P<epoch>\d+)(?:, batch (?P<batch>\d+))?\): "
                             r"(?P<reason>.+?); remove or replace the file")
_DECODER_MESSAGE = re.compile(r"Failed to decode sample #\d+ ?: (?P<path>[^\n]+)")


def start_index(shard: int, num_shards: int, num_samples: int) -> int:
    """First position of shard ``shard`` in DALI's readers: ``floor(shard * N / S)``."""
    return num_samples * shard // num_shards


def shard_positions(num_samples: int, epoch: int, shard_id: int, num_shards: int,
                    stick_to_shard: bool = True) -> np.ndarray:
    """Positions of an epoch's order that shard ``shard_id`` reads, as DALI's readers shard
    with ``pad_last_batch=True``.

    The shard read in epoch ``e`` is ``shard_id`` with ``stick_to_shard``, else
    ``(shard_id + e) % num_shards``; it spans ``[start_index(k), start_index(k + 1))``, and its
    last position is repeated up to ``ceil(N / num_shards)`` entries, so that every shard has
    as many samples (and batches) per epoch.

    Args:
        num_samples: N, the length of the epoch's order.
        epoch: the epoch (0-based).
        shard_id, num_shards: this shard and how many there are.
        stick_to_shard: DALI's ``stick_to_shard``.
    """
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must lie in 0..{num_shards - 1}, got {shard_id}")
    shard = shard_id if stick_to_shard else (shard_id + epoch) % num_shards
    lo = start_index(shard, num_shards, num_samples)
    hi = start_index(shard + 1, num_shards, num_samples)
    length = -(-num_samples // num_shards)
    return np.concatenate([np.arange(lo, hi), np.full(length - (hi - lo), hi - 1)])


_FILE_LISTS: "weakref.WeakKeyDictionary[LongTailDataset, Path]" = weakref.WeakKeyDictionary()


def _check_listable(dataset: LongTailDataset) -> None:
    """Refuse paths a ``file_list`` line cannot hold as they are (a line break; whitespace
    at either end, or ``#`` first, which the list's reader would strip or skip)."""
    files = dataset.files
    first, last = files.first_and_last_bytes()
    odd = np.flatnonzero(np.isin(first, tuple(b" \t\r\x0b\x0c#")) | (files.lengths() == 0)
                         | np.isin(last, tuple(b" \t\r\x0b\x0c"))
                         | (files.last_position("\n") >= 0))
    if len(odd):
        raise ValueError(f"{dataset.source}: the path {files[odd[0]]!r} (sample {odd[0]}) "
                         "cannot be a file_list line; read it with reader='python'")


def reader_file_list(dataset: LongTailDataset, folder: Path | None = None) -> Path:
    """The dataset as the reader's ``file_list``: ``relative/path <label>`` per line, relative
    to ``dataset.root``; written once per content into ``folder`` (default :func:`lists_dir`),
    named by its digest, so every rank and stream of a run reads the same file."""
    folder = folder or lists_dir()
    known = _FILE_LISTS.get(dataset)
    if known is not None and known.parent == folder and known.exists():
        return known
    _check_listable(dataset)
    digest = hashlib.blake2b(dataset.files.digest().encode(), digest_size=12)
    digest.update(dataset.labels.tobytes())
    path = write_once(folder, f"list-{digest.hexdigest()}.txt",
                       labelled_lines(dataset.files, dataset.labels, " "))
    _FILE_LISTS[dataset] = path
    return path


def reader_weights_file(weights: np.ndarray, folder: Path | None = None) -> Path:
    """Q's per-sample weights as the reader's ``weights_file`` (a float32 ``.npy``), written
    once per content into ``folder`` (default :func:`lists_dir`)."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    name = f"weights-{hashlib.blake2b(weights.tobytes(), digest_size=12).hexdigest()}.npy"
    buffer = io.BytesIO()
    np.save(buffer, weights)
    return write_once(folder or lists_dir(), name, [buffer.getvalue()])


class BadFileReport:
    """The files the native readers skipped (``on_bad_image="skip"``).

    The readers append ``path<TAB>index<TAB>epoch<TAB>reason`` lines to :attr:`log_path` (in a
    temporary folder that lives as long as this object); :attr:`bad_files` reads them
    (path -> reason) and :meth:`warn_new` issues one
    :class:`~dali_cmo.data.integrity.BadImageWarning` per file not yet reported.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="dali_cmo_reader_")
        self.log_path = Path(self._folder.name) / "bad_files.tsv"
        self.log_path.touch()
        self._warned: set[str] = set()

    def _entries(self) -> list[tuple[str, int, int, str]]:
        entries = []
        for line in self.log_path.read_text().splitlines():
            path, index, epoch, reason = line.split("\t", 3)
            entries.append((path, int(index), int(epoch), reason))
        return entries

    @property
    def bad_files(self) -> dict[str, str]:
        return {path: reason for path, _, _, reason in self._entries()}

    def warn_new(self) -> None:
        """A :class:`BadImageWarning` for each file logged since the last call (the Python
        source's warning)."""
        if self.log_path.stat().st_size == 0:
            return
        for path, index, epoch, reason in self._entries():
            if path not in self._warned:
                self._warned.add(path)
                warn_skipped(path, reason, index, epoch, stacklevel=4)


@dataclass
class NativeStream(SampledStream):
    """One sampled stream (P or Q) of a dataset, read by ``fn.readers.weighted_file``.

    The reader shards as DALI's readers do, sticking to ``shard_id`` and padding every shard to
    ``ceil(N / num_shards)`` samples (:func:`shard_positions`). With a ``schedule`` it tosses the
    paste coins itself, exactly as ``PasteSchedule.flags``, and reads only the files of pasted
    samples unless ``read_unflagged``.

    Args:
        dataset: the files and labels.
        sampler: P or Q; its ``seed`` and ``stream`` are the reader's, and its indices those the
            reader draws (for Q, over ``weights``).
        batch_size: samples per batch (the pipeline's batch size).
        shard_id, num_shards: this rank's shard.
        schedule: the paste schedule, for a foreground stream.
        read_unflagged: read unpasted foregrounds too (``foreground_decode="naive"``).
        on_bad_image: ``"error"`` or ``"skip"``.
        report: where skipped files are reported (shared by a variant's streams).
        weights: Q's per-sample weights as float32, exactly as the reader receives them.
    """
    on_bad_image: str = "error"
    report: BadFileReport = field(default_factory=BadFileReport)
    weights: np.ndarray | None = None  # Q's float32 weights, as the reader gets them

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The dataset indices this shard's reader hands out in ``epoch`` (before bad files are
        replaced), in order: the twin of the C++ reader, for checks and debugging."""
        positions = shard_positions(len(self.dataset), epoch, self.shard_id, self.num_shards)
        return self.sampler.indices(epoch)[positions]

    def batches_read(self, epoch: int, position: int, count: int, skipped=frozenset()
                     ) -> list[BatchRead]:
        """The :class:`~dali_cmo.data.integrity.BatchRead` of the ``count`` batches from ``position`` of
        ``epoch`` on, as the reader reads them: only pasted foregrounds (unless
        ``read_unflagged``), without the ``skipped`` bad files."""
        batches, per_epoch = [], self.batches_per_epoch()
        for step in range(position, position + count):
            e, iteration = epoch + step // per_epoch, step % per_epoch
            indices = self.epoch_indices(e)[iteration * self.batch_size:
                                            (iteration + 1) * self.batch_size]
            if self.schedule is not None and not self.read_unflagged:
                indices = indices[self.schedule.flags(e, iteration, len(indices), self.shard_id)]
            paths = [str(self.dataset.path(int(i))) for i in indices]
            kept = [k for k, path in enumerate(paths) if path not in skipped]
            batches.append(BatchRead(e, iteration, indices[kept], [paths[k] for k in kept]))
        return batches

    def reader_arguments(self) -> dict:
        """Keyword arguments of ``fn.readers.weighted_file`` for this stream."""
        arguments = dict(file_root=str(self.dataset.root),
                         file_list=str(reader_file_list(self.dataset)), seed=self.sampler.seed,
                         stream=self.sampler.stream, shard_id=self.shard_id,
                         num_shards=self.num_shards, stick_to_shard=True, pad_last_batch=True,
                         on_bad_image=self.on_bad_image, bad_files_log=str(self.report.log_path))
        if self.weights is not None:
            arguments.update(sampling="weighted",
                             weights_file=str(reader_weights_file(self.weights)))
        if self.schedule is not None:
            arguments.update(self.schedule.reader_arguments(),
                             skip_tails=not self.read_unflagged)
        return arguments

    @do_not_convert  # no data conditionals; spares AutoGraph converting the list code
    def read(self, with_index: bool = False):
        """The reader's outputs in a pipeline graph: ``(encoded, labels)``, plus the paste flags
        with a schedule and the dataset indices read with ``with_index``; labels, flags and
        indices as scalars, like the Python sources'."""
        from nvidia.dali import fn
        encoded, *scalars = fn.readers.weighted_file(**self.reader_arguments())
        labels, index, *coin = (fn.reshape(value, shape=[]) for value in scalars)
        return (encoded, labels, *coin) + ((index,) if with_index else ())


@dataclass
class NativeStreams(StreamPair):
    """A variant's streams read natively (:class:`NativeStream`)."""
    background: NativeStream
    foreground: NativeStream | None

    name = "native"
    counts_epochs = True  # the reader runs on: the iterator counts each epoch's batches

    @classmethod
    def stream_maker(cls, dataset: LongTailDataset, settings: StreamSettings) -> Callable:
        """Streams sharing one :class:`BadFileReport`."""
        report = BadFileReport()

        def make(kind: str, name: str, paste_schedule: PasteSchedule | None) -> NativeStream:
            sampler, weights = settings.sampler(kind, dataset.labels, name).reader_twin()
            return NativeStream(dataset, sampler, settings.batch_size, settings.shard_id,
                                settings.num_shards, paste_schedule, settings.read_unflagged,
                                on_bad_image=check_policy(settings.on_bad_image),
                                report=report, weights=weights)
        return make

    @property
    def reader(self) -> BadFileReport:
        return self.background.report

    def culprit(self, error: BaseException, epoch: int, position: int) -> BadImageError | None:
        """See :func:`named_by_reader`."""
        return named_by_reader(error, self, epoch, position)

    def recent_paths(self, epoch: int, position: int) -> list[str]:
        """The readers' next batches from ``position`` on, from their NumPy twins."""
        return [path for stream in self.streams()
                for batch in stream.batches_read(epoch, position, RECENT_BATCHES)
                for path in batch.paths]

    def after_batch(self) -> None:
        """A :class:`~dali_cmo.data.integrity.BadImageWarning` for each file the readers
        skipped since the last batch."""
        self.reader.warn_new()


def named_by_reader(error: BaseException, streams: NativeStreams, epoch: int, position: int
                    ) -> BadImageError | None:
    """A :class:`BadImageError` for a failed ``pipe.run()`` of a native pipeline, or None.

    The reader's own message names the bad file, its index, epoch and batch. A decoder failure
    names the file when DALI knows it (the reader sets each sample's source info); otherwise
    the files of the batches the pipeline may have been working on (``position`` and the
    :data:`~dali_cmo.streams.base.RECENT_BATCHES` - 1 after it, from the streams' twins) are
    checked with PIL, as the Python sources' culprit search does.

    Args:
        error: what ``pipe.run()`` raised.
        streams: the pipeline's native streams.
        epoch, position: the batch the iterator asked for.
    """
    text = str(error)
    found = _READER_MESSAGE.search(text)
    if found:
        batch = found.group("batch")
        return BadImageError(found.group("path"), found.group("reason"),
                             index=int(found.group("index")), epoch=int(found.group("epoch")),
                             iteration=int(batch) if batch is not None else None)
    named = _DECODER_MESSAGE.search(text)
    dataset = streams.background.dataset
    if named:
        path = named.group("path").strip()
        index = next((i for i, file in enumerate(dataset.files)
                      if str(dataset.path(i)) == path), None)
        if index is not None:
            return culprit_error(error, [[BatchRead(epoch, position, [index], [path])]], epoch,
                                 position)
    skipped = set(streams.reader.bad_files)
    return culprit_error(error, [stream.batches_read(epoch, position, RECENT_BATCHES, skipped)
                                 for stream in streams.streams()], epoch, position)
