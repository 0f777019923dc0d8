"""What feeds the DALI graph: encoded bytes and labels in sampler order, and the paste schedule.

Every source is a batch callable of DALI's ``external_source`` (``batch_info=True``) and a
pure function of ``(epoch, iteration)``: DALI checkpoints store exactly those two numbers, so
a pipeline restored from a checkpoint asks for the same batches again.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dali_cmo.data.datasets import ArrayDataset, LongTailDataset
from dali_cmo.data.integrity import (BadImageError, check_policy, culprit_error, quick_check,
                                     warn_skipped)
from dali_cmo.data.sampling import EpochSampler, epoch_generator, make_sampler

# variant -> (background stream, foreground stream or None): Park et al., CVPR 2022, Tables 9 and 11.
VARIANTS: dict[str, tuple[str, str | None]] = {
    "cmo": ("P", "Q"),        # backgrounds from the data, foregrounds minority-weighted
    "cmo_back": ("Q", "P"),
    "cmo_minor": ("Q", "Q"),
    "cutmix": ("P", "P"),
    "ros": ("Q", None),       # plain training on Q (random oversampling)
    "none": ("P", None),      # plain training on P
}


def paste_window(epochs: int, start: int, end: int) -> range:
    """The epochs (counted from 0) in which CMO may paste: ``start < e < epochs - end``, the
    reference's ``start_data_aug < epoch < epochs - end_data_aug`` (naver-ai/cmo,
    ``cifar_train.py``); ``start=-1`` includes epoch 0. Empty when the margins leave none."""
    first = max(start + 1, 0)
    return range(first, max(epochs - end, first))


def pasting_epochs(variant: str, probability: float, epochs: int, start: int,
                   end: int) -> range:
    """The epochs (counted from 0) in which a run of ``variant`` pastes: its
    :func:`paste_window`, or none for a variant without foregrounds or ``probability`` 0."""
    if VARIANTS[variant][1] is None or probability == 0:
        return range(0)
    return paste_window(epochs, start, end)


EMPTY_BYTES = np.zeros(0, dtype=np.uint8)
RECENT_BATCHES = 6  # batches remembered per source for finding a file the decoder failed on


def check_variant(variant: str) -> tuple[str, str | None]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def rank_seed(seed: int, stream: str, shard_id: int | None = None) -> int:
    """A DALI seed (0 .. 2^31 - 1) for the random stream ``stream`` of a run seeded ``seed``:
    the same on every rank with ``shard_id=None``, one per rank otherwise (a hash of all three,
    :func:`dali_cmo.data.sampling.epoch_generator`)."""
    key = stream if shard_id is None else f"{stream}/rank{shard_id}"
    return int(epoch_generator(seed, 0, f"seed/{key}").integers(2 ** 31))


@dataclass(frozen=True)
class PasteSchedule:
    """Which samples get a foreground pasted: a pure function of ``(seed, epoch, position)``.

    Pasting happens only inside the augmentation window ``start < epoch < epochs - end``
    (epochs counted from 0; ``start=-1`` includes epoch 0), and there with ``probability``: one
    coin per batch (the reference) or one per sample (``per_sample``). Deciding this before
    decoding lets the pipeline skip reading and decoding every foreground that would not be
    pasted.

    Several ranks (shards): the reference runs one process, so its batch is the global step's,
    with one coin, one lambda and one box for all of it. Per batch, the coin of step
    ``iteration`` and the seed of the box sampler (:meth:`box_seed`) are therefore the same on
    every rank; per sample, every rank draws its own.
    """
    epochs: int
    start: int = 3
    end: int = 3
    probability: float = 0.5
    per_sample: bool = False
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {self.probability}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.probability > 0 and not self.any_active():
            raise ValueError(f"the CMO window start < epoch < epochs - end (cmo_start={self.start}, "
                             f"cmo_end={self.end}, epochs={self.epochs}) leaves no epoch to paste in")

    def active(self, epoch: int) -> bool:
        return epoch in paste_window(self.epochs, self.start, self.end)

    def any_active(self) -> bool:
        return len(paste_window(self.epochs, self.start, self.end)) > 0

    def flags(self, epoch: int, iteration: int, count: int, shard_id: int = 0) -> np.ndarray:
        """Paste flags of the ``count`` samples of batch ``iteration`` of shard ``shard_id``
        (per batch: one coin for the global step, the same on every shard)."""
        if not self.active(epoch) or self.probability == 0.0:
            return np.zeros(count, dtype=bool)
        if self.per_sample:
            rng = epoch_generator(self.seed, epoch, f"paste/{shard_id}/{iteration}")
            return rng.random(count) < self.probability
        rng = epoch_generator(self.seed, epoch, f"paste/{iteration}")
        return np.full(count, rng.random() < self.probability)

    def box_seed(self, shard_id: int = 0) -> int:
        """The seed of the lambda-and-box sampler (``cmo_box``) of shard ``shard_id``: shared by
        every shard per batch, one per shard per sample."""
        return rank_seed(self.seed, "box", None if not self.per_sample else shard_id)


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
    """The :class:`FileReader` interface over an :class:`~dali_cmo.datasets.ArrayDataset`:
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
    if isinstance(dataset, ArrayDataset):
        return ArrayReader()
    return FileReader(threads, on_bad_image=on_bad_image)


@dataclass
class SampledStream:
    """One sampled stream (P or Q) of a dataset: the samples of shard ``shard_id`` of
    ``num_shards`` in ``sampler`` order, ``batch_size`` at a time. With a paste ``schedule``
    (a foreground stream) only the samples to be pasted are read, unless ``read_unflagged``
    (``foreground_decode="naive"``, the reference's behaviour)."""
    dataset: LongTailDataset
    sampler: EpochSampler
    batch_size: int
    shard_id: int = 0
    num_shards: int = 1
    schedule: PasteSchedule | None = None
    read_unflagged: bool = False

    def batches_per_epoch(self) -> int:
        return -(-self.sampler.epoch_length(self.num_shards) // self.batch_size)


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
    # (epoch, iteration, indices read, paths read) of the last batches handed to DALI: when the
    # decoder fails, the iterators look for the culprit among these (DALI prefetches ahead)
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES), repr=False)

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
        self.recent.append((epoch, iteration, read, [self.dataset.path(int(i)) for i in read]))
        outputs = (data, labels) + (() if flags is None else ([np.array(f) for f in flags],))
        return outputs + (([np.array(i, dtype=np.int64) for i in used],) if self.with_index
                          else ())


@dataclass(frozen=True)
class StreamSettings:
    """How a CMO variant's streams are sampled, sharded and checked: the same for the Python
    sources (:class:`TrainingStreams`) and the native reader
    (:class:`dali_cmo.data.reader.NativeStreams`).

    Args:
        batch_size: samples per batch of this rank.
        seed: the run's seed (the samplers' and the paste coins').
        schedule: the paste schedule; only the foreground stream follows it.
        shard_id, num_shards: this rank's shard.
        q_scheme, q_r, q_beta: Q's weighting (:func:`dali_cmo.data.sampling.make_sampler`).
        on_bad_image: ``"error"`` or ``"skip"``.
    """
    batch_size: int
    seed: int
    schedule: PasteSchedule
    shard_id: int = 0
    num_shards: int = 1
    q_scheme: str = "reference"
    q_r: float = 1.0
    q_beta: float | None = None
    on_bad_image: str = "error"

    def sampler(self, kind: str, labels: np.ndarray, stream: str) -> EpochSampler:
        """The ``"P"`` or ``"Q"`` sampler of the random stream ``stream``."""
        return make_sampler(kind, labels, seed=self.seed, stream=stream, scheme=self.q_scheme,
                            r=self.q_r, beta=self.q_beta)


@dataclass
class StreamPair(ABC):
    """The background and (optional) foreground streams of a CMO variant over one dataset: the
    one interface the iterators see, whichever reader reads (:class:`TrainingStreams`, the
    Python sources; :class:`dali_cmo.data.reader.NativeStreams`, the native reader).

    Subclasses say how one stream is made (:meth:`stream_maker`) and answer :meth:`culprit`,
    :meth:`recent_paths`, :meth:`after_batch` and :attr:`reader` (``.bad_files``).
    """
    background: object
    foreground: object | None

    @classmethod
    def for_variant(cls, dataset: LongTailDataset, variant: str, settings: StreamSettings,
                    **options) -> "StreamPair":
        """The streams of ``variant`` (a key of :data:`VARIANTS`): the background stream of
        its sampler kind, and the foreground stream, which alone follows the paste schedule.
        ``options`` go to :meth:`stream_maker`."""
        bg_kind, fg_kind = check_variant(variant)
        make = cls.stream_maker(dataset, settings, **options)
        background = make(bg_kind, "background", None)
        foreground = make(fg_kind, "foreground", settings.schedule) if fg_kind else None
        return cls(background, foreground)

    @classmethod
    @abstractmethod
    def stream_maker(cls, dataset: LongTailDataset, settings: StreamSettings, **options
                     ) -> Callable:
        """``make(kind, name, schedule or None)``: one stream of sampler kind ``"P"``/``"Q"``
        whose random stream is ``name`` (``"background"``, ``"foreground"``)."""

    def streams(self) -> list:
        return [s for s in (self.background, self.foreground) if s is not None]

    @property
    @abstractmethod
    def reader(self):
        """Where bad files are recorded (``.bad_files``: path -> reason)."""

    @abstractmethod
    def culprit(self, error: BaseException, epoch: int, position: int) -> BadImageError | None:
        """The :class:`BadImageError` behind a failed ``pipe.run()`` for batch ``position`` of
        ``epoch``, or None."""

    @abstractmethod
    def recent_paths(self, epoch: int, position: int) -> list[str]:
        """The files of the batches the pipeline may be working on (DALI prefetches ahead)."""

    @abstractmethod
    def after_batch(self) -> None:
        """Called after every batch (warnings about skipped files)."""


@dataclass
class TrainingStreams(StreamPair):
    """A variant's streams as ``external_source`` callables (:class:`StreamSource`)."""
    background: StreamSource
    foreground: StreamSource | None

    @classmethod
    def stream_maker(cls, dataset: LongTailDataset, settings: StreamSettings, *,
                     reader_threads: int = 4, max_batches_per_epoch: int = 0) -> Callable:
        """Streams sharing one reader of ``reader_threads`` threads;
        ``max_batches_per_epoch > 0`` ends every epoch after that many batches."""
        reader = make_reader(dataset, reader_threads, settings.on_bad_image)

        def make(kind: str, name: str, paste_schedule: PasteSchedule | None) -> StreamSource:
            return StreamSource(dataset, settings.sampler(kind, dataset.labels, name),
                                settings.batch_size, settings.shard_id, settings.num_shards,
                                paste_schedule, reader=reader,
                                max_batches_per_epoch=max_batches_per_epoch)
        return make

    @property
    def reader(self) -> FileReader:
        return self.background.reader

    def culprit(self, error: BaseException, epoch: int, position: int) -> BadImageError | None:
        """Searched among the sources' recent batches."""
        return culprit_error(error, self.streams(), epoch, position)

    def recent_paths(self, epoch: int, position: int) -> list[str]:
        """The sources' recent batches."""
        return [str(path) for source in self.streams() for (*_, paths) in list(source.recent)
                for path in paths]

    def after_batch(self) -> None:
        """Nothing to do: the Python sources warn about a skipped file as they read it."""


def sequential_batches(dataset: LongTailDataset, batch_size: int, shard_id: int = 0,
                       num_shards: int = 1, reader: FileReader | None = None,
                       on_bad_image: str = "error") -> Callable:
    """Evaluation source: shard ``shard_id`` of ``0..N-1`` in order, without duplicates.

    Shard k holds ``[k * N // S, (k + 1) * N // S)``; the last batch of a shard may be short.
    ``on_bad_image`` applies when no ``reader`` is given (see :class:`FileReader`); in skip
    mode a bad file is evaluated as the next valid image of its class.
    """
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"shard_id must lie in 0..{num_shards - 1}, got {shard_id}")
    n = len(dataset)
    lo, hi = shard_id * n // num_shards, (shard_id + 1) * n // num_shards
    reader = reader or make_reader(dataset, on_bad_image=on_bad_image)
    recent: deque = deque(maxlen=RECENT_BATCHES)

    def source(info):
        start = lo + info.iteration * batch_size
        if start >= hi:
            raise StopIteration
        indices = np.arange(start, min(start + batch_size, hi))
        data, used = reader.read_batch(dataset, indices, np.ones(len(indices), bool),
                                       info.epoch_idx, info.iteration)
        recent.append((info.epoch_idx, info.iteration, used,
                       [dataset.path(int(i)) for i in used]))
        return data, [np.array(dataset.labels[i], np.int32) for i in indices]

    source.reader, source.recent = reader, recent
    source.num_batches = -(-(hi - lo) // batch_size)
    return source
