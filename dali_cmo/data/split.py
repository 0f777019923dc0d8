"""The reference per-batch paste schedule run on two DALI pipelines, so that unpasted batches
cost exactly what the baseline costs.

With one coin per batch (the CMO reference, github.com/naver-ai/cmo ``train.py``: ``r < p``
once per batch), the schedule decides before anything is read which batches of an epoch get a
foreground. :class:`SplitPipelines` runs a *plain* pipeline (the baseline graph: background
decode, ``crop_mirror_normalize``) for the unpasted batches and a *pasted* pipeline (the CMO
graph without a conditional: every batch of it is pasted) for the others, and hands their
outputs out in schedule order. Each pipeline reads through a :class:`ScheduledSource`, which maps
the pipeline's own iteration counter to the epoch's global batch index; both mappings are pure
functions of ``(seed, epoch)``, so DALI's prefetching and checkpoints stay valid, every P sample
is still seen once per epoch, and unpasted foregrounds are never read.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
from nvidia.dali.tensors import TensorListCPU

from dali_cmo.data.sampling import epoch_generator
from dali_cmo.data.sources import StreamSource


class GlobalBatch(NamedTuple):
    """The ``batch_info`` a :class:`StreamSource` sees: the epoch and the global batch index."""
    epoch_idx: int
    iteration: int


def pipeline_seed(seed: int, name: str) -> int:
    """A DALI pipeline seed for the pipeline ``name`` of a run seeded with ``seed``: distinct
    pipelines get unrelated operator random streams (crops, flips, boxes)."""
    return int(epoch_generator(seed, 0, f"pipeline/{name}").integers(1 << 31))


class BatchCoins:
    """The per-batch paste coins of every epoch, from the foreground stream's schedule.

    Args:
        foreground: the foreground :class:`StreamSource` (its ``schedule`` must be per batch).
        batches_per_epoch: global batches per epoch (the background stream's count).
    """

    def __init__(self, foreground: StreamSource, batches_per_epoch: int):
        if foreground.schedule is None or foreground.schedule.per_sample:
            raise ValueError("BatchCoins needs a foreground stream with a per-batch paste schedule")
        self.foreground = foreground
        self.batches_per_epoch = batches_per_epoch
        self._cache: tuple[int, np.ndarray] | None = None

    def __call__(self, epoch: int) -> np.ndarray:
        """Whether each global batch of ``epoch`` is pasted (bool, one per batch)."""
        cached = self._cache  # read once: sources of both pipelines call from their threads
        if cached is None or cached[0] != epoch:
            coins = np.array([bool(self.foreground.paste_flags(epoch, g, 1)[0])
                              for g in range(self.batches_per_epoch)], dtype=bool)
            cached = self._cache = (epoch, coins)
        return cached[1]

    def batches(self, epoch: int, pasted: bool) -> np.ndarray:
        """The global indices of ``epoch``'s batches whose coin equals ``pasted``, in order."""
        return np.flatnonzero(self(epoch) == pasted)


@dataclass
class ScheduledSource:
    """An ``external_source`` batch callable: ``stream``'s batches of one side of the coin.

    Iteration ``i`` of the pipeline in epoch ``e`` is the ``i``-th global batch of ``e`` whose
    coin equals ``pasted``; past the last one it raises ``StopIteration`` (the pipeline's epoch
    ends).
    """
    stream: StreamSource
    coins: BatchCoins
    pasted: bool

    def __call__(self, info):
        order = self.coins.batches(info.epoch_idx, self.pasted)
        if info.iteration >= len(order):
            raise StopIteration
        return self.stream(GlobalBatch(info.epoch_idx, int(order[info.iteration])))


class SplitPipelines:
    """Two DALI pipelines, plain and pasted, run as one in paste-schedule order.

    Offers the part of a DALI pipeline's interface that the iterators use: :meth:`run` (the
    next global batch as ``(images, target_b, target_f, lam[, box])``, ``StopIteration`` at the
    end of an epoch), :meth:`reset` (start the next epoch) and :meth:`checkpoint` (both
    pipelines' DALI checkpoints and the position, as one serialized state).

    Args:
        build_plain: ``checkpoint -> pipeline`` for the unpasted batches (outputs images,
            background labels).
        build_pasted: ``checkpoint -> pipeline`` for the pasted batches (the CMO outputs).
        coins: the schedule's per-batch coins.
        foreground: the foreground stream, whose labels fill ``target_f`` of unpasted batches.
        with_box: whether the pasted pipeline emits boxes (then unpasted batches get zeros).
        checkpoint: what :meth:`checkpoint` returned, to continue from there.
    """

    def __init__(self, build_plain: Callable, build_pasted: Callable, coins: BatchCoins,
                 foreground: StreamSource, with_box: bool = False, checkpoint: bytes | None = None):
        state = json.loads(checkpoint) if checkpoint else {}
        self.epoch, self.position = int(state.get("epoch", 0)), int(state.get("position", 0))
        saved = {name: base64.b64decode(state[name]) if name in state else None
                 for name in ("plain", "pasted")}
        self.plain = build_plain(saved["plain"])
        self.pasted = build_pasted(saved["pasted"])
        self.coins, self.foreground, self.with_box = coins, foreground, with_box

    def run(self):
        coins = self.coins(self.epoch)
        if self.position == len(coins):
            for pipe in (self.plain, self.pasted):
                self._expect_end(pipe)
            raise StopIteration
        pasted = bool(coins[self.position])
        outputs = self.pasted.run() if pasted else self._unpasted(self.plain.run())
        self.position += 1
        return outputs

    def _expect_end(self, pipe) -> None:
        try:
            pipe.run()
        except StopIteration:
            return
        raise RuntimeError(f"a split pipeline produced more batches than epoch {self.epoch}'s "
                           "paste schedule gives it")

    def _unpasted(self, outputs):
        """The plain pipeline's ``(images, target_b)`` completed to the CMO outputs."""
        images, target_b = outputs
        labels = self.foreground.batch_labels(self.epoch, self.position)
        n = len(labels)
        extra = (TensorListCPU(np.zeros((n, 4), np.int32)),) if self.with_box else ()
        return (images, target_b, TensorListCPU(labels.astype(np.int32)),
                TensorListCPU(np.ones(n, np.float32))) + extra

    def reset(self) -> None:
        self.plain.reset()
        self.pasted.reset()
        self.epoch, self.position = self.epoch + 1, 0

    def checkpoint(self) -> bytes:
        """Where both pipelines stand (their serialized DALI checkpoints) and the position."""
        pipes = {"plain": self.plain.checkpoint(), "pasted": self.pasted.checkpoint()}
        return json.dumps({"epoch": self.epoch, "position": self.position,
                           **{k: base64.b64encode(v).decode() for k, v in pipes.items()}}).encode()
