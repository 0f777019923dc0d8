"""The streams wing: which stream, read by whom, pasted when.

* :mod:`~dali_cmo.streams.schedule`: the variant table (which sampler feeds the backgrounds and
  the foregrounds), the paste window and the paste schedule (one coin per batch or per sample),
  each computed once;
* :mod:`~dali_cmo.streams.base`: :class:`StreamSettings` and :class:`StreamPair`, the one
  interface of a variant's background and foreground streams;
* :mod:`~dali_cmo.streams.python`: the Python sources (``external_source`` over a thread pool,
  in-memory pixels, short epochs) and the evaluation source;
* :mod:`~dali_cmo.streams.native`: the native reader ``fn.readers.weighted_file`` (sampling,
  reading and checking in C++);
* :func:`make_streams`: picks the implementation, once.
"""
from __future__ import annotations

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.streams.base import StreamPair, StreamSettings
from dali_cmo.streams.native import NativeStreams
from dali_cmo.streams.python import PythonStreams
from dali_cmo.streams.schedule import (VARIANTS, PasteSchedule, check_variant, paste_window,
                                       rank_seed)

READERS = ("native", "python")


def make_streams(dataset: LongTailDataset, variant: str, settings: StreamSettings,
                 reader: str = "native", *, reader_threads: int = 4,
                 max_batches_per_epoch: int = 0) -> StreamPair:
    """The streams of ``variant`` over ``dataset``, read by ``reader``.

    The native reader reads files, whole epochs: in-memory pixels (``dataset.in_memory``) and
    short epochs (``max_batches_per_epoch > 0``, which read nothing past their batches) always
    come from the Python sources.

    Args:
        dataset: the training set.
        variant: a key of :data:`VARIANTS`.
        settings: sampling, sharding, the paste schedule and the bad-image policy.
        reader: ``"native"`` or ``"python"``.
        reader_threads: the Python sources' reading threads.
        max_batches_per_epoch: > 0 ends every epoch after that many batches.
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}; got {reader!r}")
    if reader == "native" and not dataset.in_memory and not max_batches_per_epoch:
        return NativeStreams.for_variant(dataset, variant, settings)
    return PythonStreams.for_variant(dataset, variant, settings, reader_threads=reader_threads,
                                     max_batches_per_epoch=max_batches_per_epoch)


__all__ = ["READERS", "VARIANTS", "NativeStreams", "PasteSchedule", "PythonStreams",
           "StreamPair", "StreamSettings", "check_variant", "make_streams", "paste_window",
           "rank_seed"]
