"""The CMO training pipeline (and, as its ``none`` variant, the baseline pipeline).

Per stream: encoded bytes read in sampler order (``dali_cmo.data.sources``), decode fused with the
training crop (ImageNet style: random-resized-crop to ``image_size``; CIFAR style: pad-4 random
crop), an independent horizontal flip, then ``cmo_paste`` fused with normalisation to CHW
float32/float16. Variants without a foreground end in ``crop_mirror_normalize`` instead, with the
same decode and crop operators.

Work nobody uses is skipped: the paste schedule is decided before reading, so foregrounds that
will not be pasted (outside the augmentation window, or a lost coin) are neither read nor
decoded; with ``foreground_decode="region"`` only the pasted box of a foreground is decoded
(``decoders.image_slice`` of the matching window of its random-resized-crop, resized to the box).
``"full"`` decodes pasted foregrounds whole; ``"naive"`` reads and decodes every foreground every
step, as the reference code does (for benchmarks).
"""
from __future__ import annotations

from dataclasses import dataclass

from nvidia.dali import fn, pipeline_def, types

import dali_cmo
from dali_cmo.constants import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD
from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.integrity import check_policy
from dali_cmo.data.sources import PasteSchedule, TrainingStreams, check_variant

STYLES = ("imagenet", "cifar")
FOREGROUND_DECODES = ("region", "full", "naive")
OUTPUT_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}
RRC_AREA = [0.08, 1.0]
RRC_ASPECT = [3 / 4, 4 / 3]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes the training stream; see the module docstring."""
    style: str = "imagenet"
    variant: str = "cmo"
    batch_size: int = 128
    epochs: int = 100
    cmo_start: int = 3
    cmo_end: int = 3
    probability: float = 0.5
    alpha: float = 1.0
    per_sample: bool = False
    image_size: int = 224
    foreground_decode: str = "region"
    dtype: str = "float32"
    color_jitter: float = 0.0
    q_scheme: str = "reference"
    q_r: float = 1.0
    q_beta: float | str | None = None
    seed: int = 0
    num_threads: int = 2
    prefetch: int = 2
    on_bad_image: str = "error"

    def __post_init__(self):
        check_variant(self.variant)
        check_policy(self.on_bad_image)
        for name, value, choices in (("style", self.style, STYLES),
                                     ("foreground_decode", self.foreground_decode,
                                      FOREGROUND_DECODES),
                                     ("dtype", self.dtype, tuple(OUTPUT_DTYPES))):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must lie in [0, 1), got {self.color_jitter}")

    @property
    def mean_std(self):
        return (IMAGENET_MEAN, IMAGENET_STD) if self.style == "imagenet" else (CIFAR_MEAN, CIFAR_STD)

    def paste_schedule(self) -> PasteSchedule:
        return PasteSchedule(self.epochs, self.cmo_start, self.cmo_end, self.probability,
                             self.per_sample, self.seed)


def decoder_device(device: str) -> str:
    return "mixed" if device == "gpu" else "cpu"


def train_crop(encoded, config: TrainConfig, device: str):
    """Decode fused with the training crop, as uint8 HWC RGB on ``device``."""
    size = config.image_size
    if config.style == "imagenet":
        images = fn.decoders.image_random_crop(encoded, device=decoder_device(device),
                                               output_type=types.RGB, random_area=RRC_AREA,
                                               random_aspect_ratio=RRC_ASPECT, num_attempts=10)
        images = fn.resize(images, size=[size, size])
    else:  # torchvision RandomCrop(size, padding=4): offsets -4..4 with zero padding
        images = fn.decoders.image(encoded, device=decoder_device(device), output_type=types.RGB)
        offsets = [fn.cast(fn.random.uniform(values=list(range(-4, 5))), dtype=types.INT32)
                   for _ in range(2)]
        images = fn.slice(images, start=fn.stack(*offsets), shape=[size, size], axes=[0, 1],
                          out_of_bounds_policy="pad", fill_values=0)
    if config.color_jitter:
        lo, hi = 1 - config.color_jitter, 1 + config.color_jitter
        images = fn.color_twist(images, brightness=fn.random.uniform(range=[lo, hi]),
                                contrast=fn.random.uniform(range=[lo, hi]),
                                saturation=fn.random.uniform(range=[lo, hi]))
    return images


def region_decode(encoded, box, mirror, config: TrainConfig, device: str):
    """Decode only the part of a foreground's random-resized-crop that lands on ``box``.

    The crop window is drawn as the full decode would draw it; ``cmo_region`` maps the box's
    columns (mirrored when the foreground is flipped) linearly into it. The window is decoded
    and resized to the box's extent; ``cmo_paste`` flips it within the box.
    """
    anchor, window = fn.random_crop_generator(fn.peek_image_shape(encoded), random_area=RRC_AREA,
                                              random_aspect_ratio=RRC_ASPECT, num_attempts=10)
    start, extent, box_size = fn.cmo_region(anchor, window, box, size=config.image_size,
                                            foreground_mirror=mirror)
    region = fn.decoders.image_slice(encoded, start, extent, axes=[0, 1], normalized_anchor=False,
                                     normalized_shape=False, device=decoder_device(device),
                                     output_type=types.RGB)
    return fn.resize(region, size=box_size)


def pasted_foreground(encoded, box, mirror, config: TrainConfig, device: str):
    """A foreground that will be pasted on ``box``: only its box region decoded
    (``foreground_decode="region"``, ImageNet style), else its whole training crop."""
    if config.foreground_decode == "region" and config.style == "imagenet":
        return region_decode(encoded, box, mirror, config, device)
    return train_crop(encoded, config, device)


class TrainingPipeline:
    """A configured training pipeline over one dataset shard; :meth:`build` makes the DALI
    pipeline (optionally restored from a DALI checkpoint)."""

    def __init__(self, dataset: LongTailDataset, config: TrainConfig, *, device: str = "cpu",
                 device_id: int | None = None, shard_id: int = 0, num_shards: int = 1):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if config.batch_size > len(dataset):
            raise ValueError(f"batch_size ({config.batch_size}) is larger than the dataset "
                             f"({len(dataset)} images)")
        dali_cmo.load_plugin()
        self.dataset, self.config, self.device = dataset, config, device
        self.device_id = (device_id or 0) if device == "gpu" else None
        self.schedule = config.paste_schedule()
        self.streams = TrainingStreams.for_variant(
            dataset, config.variant, batch_size=config.batch_size, seed=config.seed,
            schedule=self.schedule, shard_id=shard_id, num_shards=num_shards,
            q_scheme=config.q_scheme, q_r=config.q_r, q_beta=config.q_beta,
            on_bad_image=config.on_bad_image, reader_threads=max(2, config.num_threads))
        if self.streams.foreground is not None:
            self.streams.foreground.read_unflagged = config.foreground_decode == "naive"

    @property
    def has_foreground(self) -> bool:
        return self.streams.foreground is not None

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("images", "target_b", "target_f", "lam") if self.has_foreground \
            else ("images", "target_b")

    def batches_per_epoch(self) -> int:
        return self.streams.background.batches_per_epoch()

    def build(self, checkpoint: str | None = None, with_box: bool = False):
        """The DALI pipeline; ``with_box`` adds the pasted boxes as a last output (for pictures
        and checks)."""
        config, device = self.config, self.device

        @pipeline_def(batch_size=config.batch_size, num_threads=config.num_threads,
                      device_id=self.device_id, seed=config.seed,
                      prefetch_queue_depth=config.prefetch, enable_conditionals=True,
                      enable_checkpointing=True)
        def graph():
            encoded_b, label_b = fn.external_source(self.streams.background, num_outputs=2,
                                                    batch=True, batch_info=True)
            return self.graph_over(train_crop(encoded_b, config, device), label_b, with_box)

        pipe = graph(checkpoint=checkpoint) if checkpoint else graph()
        pipe.build()
        return pipe

    def graph_over(self, background, label_b, with_box: bool = False):
        """The graph after the background's decode and crop (``background``: uint8 HWC batch):
        ``crop_mirror_normalize``, or with a foreground stream the CMO paste. Benchmarks feed it
        decoded images to time this part alone."""
        config, device = self.config, self.device
        mean, std = config.mean_std
        out_dtype = OUTPUT_DTYPES[config.dtype]
        mirror_b = fn.random.coin_flip(probability=0.5)
        if not self.has_foreground:
            images = fn.crop_mirror_normalize(background, mirror=mirror_b, mean=mean, std=std,
                                              dtype=out_dtype, output_layout="CHW")
            return images, label_b
        encoded_f, label_f, flags = fn.external_source(self.streams.foreground, num_outputs=3,
                                                       batch=True, batch_info=True)
        mirror_f = fn.random.coin_flip(probability=0.5)
        size = config.image_size
        box, lam = fn.cmo_box(size=[size, size], alpha=config.alpha,
                              probability=fn.cast(flags, dtype=types.FLOAT),
                              per_sample=config.per_sample)
        if config.foreground_decode == "naive":
            foreground = train_crop(encoded_f, config, device)
        elif (box[2] > box[0]) & (box[3] > box[1]):
            foreground = pasted_foreground(encoded_f, box, mirror_f, config, device)
        else:
            foreground = background  # nothing is pasted: cmo_paste reads no pixel of it
        images, _ = fn.cmo_paste(background, foreground, box=box, mirror=mirror_b,
                                 foreground_mirror=mirror_f, mean=mean, std=std,
                                 dtype=out_dtype, output_layout="CHW")
        return (images, label_b, label_f, lam) + ((box,) if with_box else ())
