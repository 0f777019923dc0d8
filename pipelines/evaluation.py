"""Evaluation pipeline: every sample of a shard exactly once per pass, in order.

ImageNet style: resize the shorter side to 256 (for 224; ``image_size * 8 / 7`` in general),
centre crop ``image_size``, normalise (``normalisation``, by default the style's, as in
training). CIFAR style: decode and normalise. Raw pixels (an ``ArrayDataset``) skip the
decoder. Shards split ``0..N-1`` into contiguous, disjoint ranges (no padding, no duplicates), so per-class counts
summed over ranks are exact.
"""
from __future__ import annotations

from nvidia.dali import fn, pipeline_def, types

from dali_cmo.constants import mean_std
from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.streams.python import SequentialSource
from pipelines.training import STYLES, decoder_device


class EvalPipeline:
    def __init__(self, dataset: LongTailDataset, *, style: str = "imagenet", batch_size: int = 128,
                 image_size: int = 224, device: str = "cpu", device_id: int | None = None,
                 shard_id: int = 0, num_shards: int = 1, num_threads: int = 2,
                 on_bad_image: str = "error", normalisation: str | None = None):
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
        self.dataset, self.style, self.batch_size = dataset, style, batch_size
        self.mean_std = mean_std(normalisation or style)
        self.image_size, self.device, self.num_threads = image_size, device, num_threads
        self.device_id = (device_id or 0) if device == "gpu" else None
        self.sequence = SequentialSource(dataset, batch_size, shard_id, num_shards,
                                         on_bad_image=on_bad_image)

    def batches_per_epoch(self) -> int:
        return self.sequence.num_batches

    def build(self):
        size = self.image_size

        @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads,
                      device_id=self.device_id, seed=0)
        def graph():
            if self.dataset.in_memory:  # raw uint8 HWC pixels
                images, labels = fn.external_source(self.sequence, num_outputs=2, batch=True,
                                                    batch_info=True, layout=["HWC", ""])
                images = images.gpu() if self.device == "gpu" else images
            else:
                encoded, labels = fn.external_source(self.sequence, num_outputs=2, batch=True,
                                                     batch_info=True)
                images = fn.decoders.image(encoded, device=decoder_device(self.device),
                                           output_type=types.RGB)
            if self.style == "imagenet":
                images = fn.resize(images, resize_shorter=round(size * 256 / 224))
            mean, std = self.mean_std
            # Images smaller than the crop are padded with zeros around the centre.
            images = fn.crop_mirror_normalize(images, crop=[size, size], mean=mean, std=std,
                                              dtype=types.FLOAT, output_layout="CHW",
                                              out_of_bounds_policy="pad")
            return images, labels

        pipe = graph()
        pipe.build()
        return pipe
