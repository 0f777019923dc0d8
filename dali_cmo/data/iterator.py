"""PyTorch iterators over the training and evaluation pipelines.

Epochs: P decides the epoch (each shard sees ``ceil(N / num_shards)`` positions, see
:meth:`dali_cmo.data.sampling.EpochSampler.shard` and, for the native reader,
:func:`dali_cmo.streams.native.shard_positions`); Q follows it position by position. The last
batch of an epoch is partial (``len()`` counts it), so every P sample of a shard appears exactly
once per epoch. Python sources end an epoch themselves (StopIteration); the native reader runs
on, so the iterator counts the epoch's batches and cuts the padding off the last one.

Exact resume uses DALI checkpointing: :meth:`CMOIterator.state_dict` holds the pipeline's
serialized checkpoint (operator RNG states and the sources' epoch and iteration; the sources are
pure functions of those), so a restored iterator yields the same next batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from dali_cmo.data.integrity import BadImageError
from dali_cmo.data.targets import soft_targets


def to_torch(batch, device: str) -> torch.Tensor:
    """A DALI TensorList (uniform shape) as a torch tensor, shared rather than copied.

    The tensor takes DALI's memory through DLPack. DALI's default (dynamic) executor gives
    every iteration fresh output memory, which the tensor keeps alive, so later iterations do
    not overwrite it. GPU outputs are ready on the stream the pipeline was run with:
    :func:`run_naming_bad_files` runs GPU pipelines with torch's current stream, so work queued
    on that stream sees the data without any host wait. CPU outputs of GPU pipelines (labels
    from the sources, ``lam`` from ``cmo_box``) are copied to the current CUDA device.

    Args:
        batch: a pipeline output (``TensorListCPU`` or ``TensorListGPU``).
        device: the pipeline's device, ``"cpu"`` or ``"gpu"``.
    """
    from nvidia.dali.backend import TensorListGPU

    tensor = torch.from_dlpack(batch.as_tensor())
    if isinstance(batch, TensorListGPU) or device != "gpu":
        return tensor
    return tensor.to("cuda", non_blocking=True)


def run_naming_bad_files(pipe, device: str = "cpu", name_culprit=None):
    """``pipe.run()`` (GPU pipelines on torch's current stream, see :func:`to_torch`); a decoder
    failure is re-raised as the :class:`BadImageError` that ``name_culprit(error)`` finds, when
    it finds one (StopIteration passes through).

    Args:
        pipe: a built DALI pipeline.
        device: the pipeline's device, ``"cpu"`` or ``"gpu"``.
        name_culprit: ``error -> BadImageError | None``, the search for the file behind a
            failure (e.g. ``StreamPair.culprit`` for the batch asked for); None: no search.
    """
    try:
        return pipe.run(torch.cuda.current_stream()) if device == "gpu" else pipe.run()
    except BadImageError:
        raise
    except RuntimeError as error:
        culprit = name_culprit(error) if name_culprit is not None else None
        if culprit is None:
            raise
        raise culprit from error


@dataclass
class CMOBatch:
    """One training batch: ``images`` (N, C, H, W), targets of background and foreground, and the
    background share ``lam`` (1.0 where nothing was pasted). The loss is
    ``lam * L(out, target_b) + (1 - lam) * L(out, target_f)``."""
    images: torch.Tensor
    target_b: torch.Tensor
    target_f: torch.Tensor
    lam: torch.Tensor
    epoch: int

    def soft_targets(self, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
        return soft_targets(self.target_b, self.target_f, self.lam, num_classes, smoothing)

    def __len__(self) -> int:
        return len(self.target_b)

    def head(self, count: int) -> "CMOBatch":
        """The first ``count`` samples."""
        return CMOBatch(self.images[:count], self.target_b[:count], self.target_f[:count],
                        self.lam[:count], self.epoch)


class CMOIterator:
    """Yields :class:`CMOBatch` epoch by epoch from a ``pipelines.training.TrainingPipeline``."""

    def __init__(self, training_pipeline, state: dict | None = None):
        self.pipeline = training_pipeline
        self.epoch = 0      # the epoch the next batch belongs to
        self.position = 0   # batches of that epoch already yielded
        self._pipe = None
        if state is not None:
            self.load_state_dict(state)

    def __len__(self) -> int:
        return self.pipeline.batches_per_epoch()

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = self.pipeline.build()
        return self._pipe

    def _convert(self, outputs) -> CMOBatch:
        device = self.pipeline.device
        images = to_torch(outputs[0], device)
        target_b = to_torch(outputs[1], device).long().reshape(-1)
        if self.pipeline.has_foreground:
            target_f = to_torch(outputs[2], device).long().reshape(-1)
            lam = to_torch(outputs[3], device).float().reshape(-1)
        else:  # a variant without foregrounds: nothing pasted
            target_f, lam = target_b, torch.ones(len(target_b), device=images.device)
        return CMOBatch(images, target_b, target_f, lam, self.epoch)

    def epoch_batches(self) -> Iterator[CMOBatch]:
        """The remaining batches of the current epoch; afterwards the next epoch is current."""
        streams = self.pipeline.streams
        counted = self.pipeline.counts_epochs
        while not counted or self.position < len(self):
            epoch, position = self.epoch, self.position
            try:
                outputs = run_naming_bad_files(
                    self.pipe, self.pipeline.device,
                    lambda error: streams.culprit(error, epoch, position))
            except StopIteration:
                self.pipe.reset()
                break
            self.position += 1
            batch = self._convert(outputs)
            streams.after_batch()
            if counted and self.position == len(self):
                batch = batch.head(self.pipeline.last_batch_size())
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def recent_paths(self) -> list[str]:
        """The files of the batches the pipeline may be working on (DALI prefetches ahead)."""
        return self.pipeline.streams.recent_paths(self.epoch, self.position)

    def state_dict(self) -> dict:
        """Where the stream stands: enough to continue exactly (JSON-serialisable)."""
        return {"epoch": self.epoch, "position": self.position,
                "reader": self.pipeline.reader, "dali_checkpoint": self.pipe.checkpoint()}

    def load_state_dict(self, state: dict) -> None:
        # a DALI checkpoint holds the reader's own state: it restores the same reader only
        saved = state.get("reader", "python")  # states from before the native reader
        if saved != self.pipeline.reader:
            raise ValueError(f"this stream position was saved with reader={saved!r}, not "
                             f"{self.pipeline.reader!r}; resume with reader={saved!r} "
                             f"(train.py --reader {saved})")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._pipe = self.pipeline.build(checkpoint=state["dali_checkpoint"])


class EvalIterator:
    """Yields ``(images, targets)`` once over an ``pipelines.evaluation.EvalPipeline`` shard."""

    def __init__(self, eval_pipeline):
        self.pipeline = eval_pipeline
        self._pipe = None

    def __len__(self) -> int:
        return self.pipeline.batches_per_epoch()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._pipe is None:
            self._pipe = self.pipeline.build()
        device = self.pipeline.device
        position = 0
        while True:
            try:
                images, labels = run_naming_bad_files(
                    self._pipe, device,
                    lambda error: self.pipeline.sequence.culprit(error, 0, position))
            except StopIteration:
                self._pipe.reset()
                return
            position += 1
            yield to_torch(images, device), to_torch(labels, device).long().reshape(-1)
