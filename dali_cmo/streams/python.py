"""The Python sources: encoded bytes (or in-memory pixels) and labels in sampler order, read by
a thread pool and handed to DALI through ``external_source``.

Every source is a batch callable of DALI's ``external_source`` (``batch_info=True``) and a
pure function of ``(epoch, iteration)``: DALI checkpoints store exactly those two numbers, so
a pipeline restored from a checkpoint asks for the same batches again.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from nvidia.dali.pipeline import do_not_convert

from dali_cmo.data.datasets import ArrayDataset, LongTailDataset
from dali_cmo.data.integrity import (BadImageError, BatchRead, check_policy, culprit_error,
                                     quick_check, warn_skipped)
from dali_cmo.streams.base import RECENT_BATCHES, SampledStream, StreamPair, StreamSettings
from dali_cmo.streams.schedule import PasteSchedule

EMPTY_BYTES = np.zeros(0, dtype=np.uint8)


class FileReader:
    """Reads files as uint8 arrays, in parallel threads, checks them, and counts what it read.

    Every file read passes :func:`dali_cmo.data.integrity.quick_check` (empty, not an image format
    DALI decodes, truncated JPEG/PNG). ``on_bad_image="error"`` raises
    :class:`~dali_cmo.data.integrity.BadImageError` naming the file, its dataset index and the epoch;
    ``"skip"`` replaces it by the next sample of the same class (in dataset order, wrapping
    around) that passes the check, warns once per bad file and records it in ``bad_files``
    (path -> reason).
    """

    def __init__(self, threads: int = 4, on_bad_image: str = "error", check: bool = True):
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads),
                                        thread_name_prefix="dali_cmo_reader")
        self._lock = threading.Lock()
        self.files_read = 0
        self.on_bad_image = check_policy(on_bad_image)
        self.check = check
        self.bad_files: dict[str, str] = {}
        self._members: dict[tuple[int, int], np.ndarray] = {}  # (id(labels), label) -> indices

    def _read_one(self, path) -> tuple[np.ndarray, str | None]:
        known = self.bad_files.get(str(path)) if self.on_bad_image == "skip" else None
        if known is not None:
            return EMPTY_BYTES, known
        try:
            with open(path, "rb") as f:
                data = np.frombuffer(f.read(), dtype=np.uint8)
        except FileNotFoundError:
            return EMPTY_BYTES, "missing (file not found)"
        except OSError as error:
            return EMPTY_BYTES, f"unreadable ({error.strerror or error})"
        return data, (quick_check(data, path) if self.check else None)

    def _record(self, path, reason: str, index, epoch) -> None:
        """Counts a bad file; in skip mode warns the first time it is met."""
        with self._lock:
            first = str(path) not in self.bad_files
            if first:
                self.bad_files[str(path)] = reason
        if first and self.on_bad_image == "skip":
            warn_skipped(path, reason, index, epoch)

    def _replacement(self, dataset, index: int, epoch) -> tuple[int, np.ndarray]:
        """The next index of ``index``'s class (dataset order, wrapping) that reads cleanly."""
        label = int(dataset.labels[index])
        key = (id(dataset.labels), label)
        members = self._members.get(key)
        if members is None:
            members = self._members[key] = np.flatnonzero(dataset.labels == label)
        pos = int(np.searchsorted(members, index))
        for candidate in np.concatenate([members[pos + 1:], members[:pos]]):
            path = dataset.path(int(candidate))
            data, problem = self._read_one(path)
            with self._lock:
                self.files_read += 1
            if problem is None:
                return int(candidate), data
            self._record(path, problem, int(candidate), epoch)
        raise BadImageError(dataset.path(index), f"{self.bad_files.get(str(dataset.path(index)))}; "
                            f"and no valid image of class {label} is left to replace it",
                            index=index, epoch=epoch)

    def read_batch(self, dataset, indices, wanted, epoch: int | None = None,
                   iteration: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """The bytes of ``dataset.path(indices[i])`` where ``wanted[i]`` (empty elsewhere), and
        the indices actually read (bad files replaced in skip mode)."""
        indices = np.asarray(indices)
        paths = [dataset.path(int(i)) for i in indices]
        jobs = [self._pool.submit(self._read_one, p) if w else None
                for p, w in zip(paths, wanted)]
        results = [job.result() if job else (EMPTY_BYTES, None) for job in jobs]
        with self._lock:
            self.files_read += int(np.count_nonzero(wanted))
        out, used = [], indices.copy()
        for k, (data, problem) in enumerate(results):
            if problem is not None:
                index = int(indices[k])
                if self.on_bad_image == "error":
                    self._record(paths[k], problem, index, epoch)
                    raise BadImageError(paths[k], problem, index=index, epoch=epoch,
                                        iteration=iteration)
                self._record(paths[k], problem, index, epoch)
                used[k], data = self._replacement(dataset, index, epoch)
            out.append(data)
        return out, used

    def __getstate__(self):
        raise TypeError("FileReader holds threads; use it in-process (external_source parallel=False)")


class ArrayReader:
    """The :class:`FileReader` interface over an :class:`~dali_cmo.data.datasets.ArrayDataset`:
    ``read_batch`` returns the in-memory uint8 HWC pixels (no file, no decode, nothing bad to
    skip). Every sample is returned, flagged or not: the images must share one layout, and a
    sample nobody pastes costs one small copy."""

    def __init__(self):
        self.files_read = 0
        self.bad_files: dict[str, str] = {}

    def read_batch(self, dataset: ArrayDataset, indices, wanted, epoch: int | None = None,
                   iteration: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        indices = np.asarray(indices)
        self.files_read += int(np.count_nonzero(wanted))
        return [dataset.images[int(i)] for i in indices], indices.copy()


def make_reader(dataset: LongTailDataset, threads: int = 4, on_bad_image: str = "error"):
    """An :class:`ArrayReader` for in-memory pixels, else a :class:`FileReader`."""
    if dataset.in_memory:
        return ArrayReader()
    return FileReader(threads, on_bad_image=on_bad_image)




@dataclass
class StreamSource(SampledStream):
    """One sampled stream (P or Q) of a dataset, as an ``external_source`` batch callable.

    Returns ``(encoded images, labels)``, or with a ``schedule`` ``(encoded, labels, flags)``:
    then only the flagged samples are read (the others get empty arrays), unless
    ``read_unflagged``. ``max_batches_per_epoch > 0`` ends every epoch after that many batches
    (short runs read nothing more). ``with_index`` adds the dataset indices read (int64
    scalars, after bad images were replaced) as a last output.
    """
    reader: FileReader | ArrayReader = field(default_factory=FileReader)
    max_batches_per_epoch: int = 0  # > 0: the epoch ends after this many batches
    with_index: bool = False
    _epoch_cache: tuple[int, np.ndarray] | None = field(default=None, repr=False)
    # the last batches handed to DALI: when the decoder fails, the culprit is looked for among
    # these (DALI prefetches ahead)
    recent: deque[BatchRead] = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES),
                                     repr=False)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This shard's sample indices for ``epoch`` (cached: the sampler is a pure function)."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self.sampler.shard(epoch, self.shard_id, self.num_shards))
        return self._epoch_cache[1]

    def batches_per_epoch(self) -> int:
        full = super().batches_per_epoch()
        return min(full, self.max_batches_per_epoch) if self.max_batches_per_epoch else full

    def batch_indices(self, epoch: int, iteration: int) -> np.ndarray:
        start = iteration * self.batch_size
        indices = self.epoch_indices(epoch)
        if start >= len(indices) or (self.max_batches_per_epoch and
                                        iteration >= self.max_batches_per_epoch):
            raise StopIteration
        return indices[start:start + self.batch_size]

    def __call__(self, info):
        epoch, iteration = info.epoch_idx, info.iteration
        indices = self.batch_indices(epoch, iteration)
        labels = [np.array(label, dtype=np.int32) for label in self.dataset.labels[indices]]
        if self.schedule is None:
            flags, wanted = None, np.ones(len(indices), bool)
        else:
            flags = self.schedule.flags(epoch, iteration, len(indices), self.shard_id)
            wanted = flags | self.read_unflagged
        data, used = self.reader.read_batch(self.dataset, indices, wanted, epoch, iteration)
        read = used[wanted]
        self.recent.append(BatchRead(epoch, iteration, read,
                                     [self.dataset.path(int(i)) for i in read]))
        outputs = (data, labels) + (() if flags is None else ([np.array(f) for f in flags],))
        return outputs + (([np.array(i, dtype=np.int64) for i in used],) if self.with_index
                          else ())

    @do_not_convert  # no data conditionals; spares AutoGraph converting the list code
    def read(self, with_index: bool = False):
        """This source in a pipeline graph (an ``external_source``); in-memory pixels come with
        the layout ``HWC``. See :meth:`SampledStream.read`."""
        from nvidia.dali import fn
        self.with_index = with_index
        extra = (self.schedule is not None) + with_index
        layout = "HWC" if self.dataset.in_memory else ""
        return fn.external_source(self, num_outputs=2 + extra, batch=True, batch_info=True,
                                  layout=[layout, ""] + [""] * extra)


@dataclass
class PythonStreams(StreamPair):
    """A variant's streams as ``external_source`` callables (:class:`StreamSource`)."""
    background: StreamSource
    foreground: StreamSource | None

    name = "python"
    counts_epochs = False  # the sources end each epoch (StopIteration)

    @classmethod
    def stream_maker(cls, dataset: LongTailDataset, settings: StreamSettings, *,
                     reader_threads: int = 4, max_batches_per_epoch: int = 0) -> Callable:
        """Streams sharing one reader of ``reader_threads`` threads;
        ``max_batches_per_epoch > 0`` ends every epoch after that many batches."""
        reader = make_reader(dataset, reader_threads, settings.on_bad_image)

        def make(kind: str, name: str, paste_schedule: PasteSchedule | None) -> StreamSource:
            return StreamSource(dataset, settings.sampler(kind, dataset.labels, name),
                                settings.batch_size, settings.shard_id, settings.num_shards,
                                paste_schedule, settings.read_unflagged, reader=reader,
                                max_batches_per_epoch=max_batches_per_epoch)
        return make

    @property
    def reader(self) -> FileReader | ArrayReader:
        return self.background.reader

    def culprit(self, error: BaseException, epoch: int, position: int) -> BadImageError | None:
        """Searched among the sources' recent batches."""
        return culprit_error(error, [source.recent for source in self.streams()], epoch,
                             position, self.reader.bad_files)

    def recent_paths(self, epoch: int, position: int) -> list[str]:
        """The sources' recent batches."""
        return [str(path) for source in self.streams() for batch in list(source.recent)
                for path in batch.paths]

    def after_batch(self) -> None:
        """Nothing to do: the Python sources warn about a skipped file as they read it."""


class SequentialSource:
    """Evaluation source: shard ``shard_id`` of ``0..N-1`` in order, without duplicates, as an
    ``external_source`` batch callable returning ``(encoded or pixels, labels)``.

    Shard k holds ``[k * N // S, (k + 1) * N // S)``; the last batch of a shard may be short.
    ``on_bad_image`` applies when no ``reader`` is given (see :class:`FileReader`); in skip
    mode a bad file is evaluated as the next valid image of its class.
    """

    def __init__(self, dataset: LongTailDataset, batch_size: int, shard_id: int = 0,
                 num_shards: int = 1, reader: FileReader | ArrayReader | None = None,
                 on_bad_image: str = "error"):
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must lie in 0..{num_shards - 1}, got {shard_id}")
        n = len(dataset)
        self.dataset, self.batch_size = dataset, batch_size
        self.lo, self.hi = shard_id * n // num_shards, (shard_id + 1) * n // num_shards
        self.reader = reader or make_reader(dataset, on_bad_image=on_bad_image)
        self.recent: deque[BatchRead] = deque(maxlen=RECENT_BATCHES)

    @property
    def num_batches(self) -> int:
        return -(-(self.hi - self.lo) // self.batch_size)

    def __call__(self, info):
        start = self.lo + info.iteration * self.batch_size
        if start >= self.hi:
            raise StopIteration
        dataset = self.dataset
        indices = np.arange(start, min(start + self.batch_size, self.hi))
        data, used = self.reader.read_batch(dataset, indices, np.ones(len(indices), bool),
                                            info.epoch_idx, info.iteration)
        self.recent.append(BatchRead(info.epoch_idx, info.iteration, used,
                                     [dataset.path(int(i)) for i in used]))
        return data, [np.array(dataset.labels[i], np.int32) for i in indices]

    def culprit(self, error: BaseException, epoch: int, position: int) -> BadImageError | None:
        """The bad file behind a failed evaluation batch, searched among the recent ones."""
        return culprit_error(error, [self.recent], epoch, position, self.reader.bad_files)

    def recent_paths(self) -> list[str]:
        return [str(path) for batch in list(self.recent) for path in batch.paths]
