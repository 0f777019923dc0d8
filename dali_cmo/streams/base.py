"""The one interface of a variant's streams, whichever reader reads them.

A CMO variant has a background stream and, if it pastes, a foreground stream (the variant table
of :mod:`dali_cmo.streams.schedule`); each is a P or Q sampler over one dataset, sharded, read
``batch_size`` at a time. :class:`StreamPair` is what the pipelines and iterators see; the
Python sources (:class:`dali_cmo.streams.python.PythonStreams`) and the native reader
(:class:`dali_cmo.streams.native.NativeStreams`) implement it, and
:func:`dali_cmo.streams.make_streams` picks one, once.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.integrity import BadImageError
from dali_cmo.data.sampling import EpochSampler, make_sampler
from dali_cmo.streams.schedule import PasteSchedule, check_variant

RECENT_BATCHES = 6  # batches remembered per stream for finding a file the decoder failed on


@dataclass(frozen=True)
class StreamSettings:
    """How a CMO variant's streams are sampled, sharded and checked: the same for both readers.

    Args:
        batch_size: samples per batch of this rank.
        seed: the run's seed (the samplers' and the paste coins').
        schedule: the paste schedule; only the foreground stream follows it.
        shard_id, num_shards: this rank's shard.
        q_scheme, q_r, q_beta: Q's weighting (:func:`dali_cmo.data.sampling.make_sampler`).
        on_bad_image: ``"error"`` or ``"skip"``.
        read_unflagged: read (and decode) foregrounds that are not pasted too
            (``foreground_decode="naive"``, the reference's behaviour).
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
    read_unflagged: bool = False

    def sampler(self, kind: str, labels: np.ndarray, stream: str) -> EpochSampler:
        """The ``"P"`` or ``"Q"`` sampler of the random stream ``stream``."""
        return make_sampler(kind, labels, seed=self.seed, stream=stream, scheme=self.q_scheme,
                            r=self.q_r, beta=self.q_beta)


@dataclass
class SampledStream:
    """One sampled stream (P or Q) of a dataset: the samples of shard ``shard_id`` of
    ``num_shards`` in ``sampler`` order, ``batch_size`` at a time. With a paste ``schedule``
    (a foreground stream) only the samples to be pasted are read, unless ``read_unflagged``."""
    dataset: LongTailDataset
    sampler: EpochSampler
    batch_size: int
    shard_id: int = 0
    num_shards: int = 1
    schedule: PasteSchedule | None = None
    read_unflagged: bool = False

    def batches_per_epoch(self) -> int:
        return -(-self.sampler.epoch_length(self.num_shards) // self.batch_size)

    def read(self, with_index: bool = False):
        """The stream's outputs in a pipeline graph: ``(encoded or pixels, labels)``, plus the
        paste flags with a schedule and the dataset indices read with ``with_index`` (labels,
        flags and indices as scalars)."""
        raise NotImplementedError


@dataclass
class StreamPair(ABC):
    """The background and (optional) foreground streams of a CMO variant over one dataset.

    Subclasses say how one stream is made (:meth:`stream_maker`), whether the pipeline ends
    its epochs (:attr:`counts_epochs`), and answer :meth:`culprit`, :meth:`recent_paths`,
    :meth:`after_batch` and :attr:`reader` (``.bad_files``).
    """
    background: SampledStream
    foreground: SampledStream | None

    #: the reader's name, recorded in checkpoints (a run resumes with the reader it began with)
    name: ClassVar[str]
    #: True when the pipeline never ends an epoch itself (the native reader runs on): the
    #: iterator counts the batches and cuts the last one (the reader pads it)
    counts_epochs: ClassVar[bool]

    @classmethod
    def for_variant(cls, dataset: LongTailDataset, variant: str, settings: StreamSettings,
                    **options) -> "StreamPair":
        """The streams of ``variant`` (a key of :data:`~dali_cmo.streams.schedule.VARIANTS`):
        the background stream of its sampler kind, and the foreground stream, which alone
        follows the paste schedule. ``options`` go to :meth:`stream_maker`."""
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

    def streams(self) -> list[SampledStream]:
        return [s for s in (self.background, self.foreground) if s is not None]

    def last_batch_size(self) -> int:
        """Samples in an epoch's last batch of this shard."""
        background = self.background
        length = background.sampler.epoch_length(background.num_shards)
        return length - (background.batches_per_epoch() - 1) * background.batch_size

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
