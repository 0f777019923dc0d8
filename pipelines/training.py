"""The CMO training pipeline (and, as its ``none`` variant, the baseline pipeline).

Per stream: encoded bytes read in sampler order (``dali_cmo.streams``), decode fused with the
training crop (ImageNet style: random-resized-crop to ``image_size``; CIFAR style: pad-4 random
crop), an independent horizontal flip, then ``cmo_paste`` fused with normalisation to CHW
float32/float16. Variants without a foreground end in ``crop_mirror_normalize`` instead, with the
same decode and crop operators.

Bytes come from the native reader ``fn.readers.weighted_file`` (``reader="native"``: sampling,
reading and checking in C++, in DALI's threads) or from the Python sources (``reader="python"``:
``external_source`` callables with a Python thread pool); both draw the same P permutations and
paste coins for the same seed (:mod:`dali_cmo.streams`). In-memory pixels and short epochs
always come from the Python sources (:func:`dali_cmo.streams.make_streams`).

Work nobody uses is skipped: the paste schedule is decided before reading, so foregrounds that
will not be pasted (outside the augmentation window, or a lost coin) are neither read nor
decoded (the native reader tosses the schedule's coins itself); with
``foreground_decode="region"`` only the pasted box of a foreground is decoded
(``decoders.image_slice`` of the matching window of its random-resized-crop, resampled into the
box by ``cmo_paste(..., resize_foreground=True)``).
``"full"`` decodes pasted foregrounds whole; ``"naive"`` reads and decodes every foreground every
step, as the reference code does (for benchmarks).
With ``fg_cache_gb`` a region-decoded foreground whose image is held in memory is cut from it
instead of decoded (``dali_cmo.data.fg_cache``; exact, CPU only).

``augment`` picks the reference recipe's augmentation (``dali_cmo.augment.recipes``), applied to
each stream independently before the paste. Region decoding needs a pointwise augmentation
(``standard``); with the others a foreground's pixels depend on pixels outside its box (the
contrast's grayscale mean, warps, blur), so pasted foregrounds are decoded whole instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.pipeline import do_not_convert

import dali_cmo
from dali_cmo.augment.crops import pad_crop
from dali_cmo.augment.randaugment import RandAugment
from dali_cmo.augment.recipes import DEFAULT_RANDAUGMENT, RECIPES
from dali_cmo.constants import mean_std
from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.fg_cache import ForegroundCache
from dali_cmo.data.integrity import check_policy
from dali_cmo.streams import (READERS, PasteSchedule, StreamSettings, make_streams, rank_seed)

STYLES = ("imagenet", "cifar")
FOREGROUND_DECODES = ("region", "full", "naive")
OUTPUT_DTYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}
RRC_AREA = [0.08, 1.0]
RRC_ASPECT = [3 / 4, 4 / 3]
CACHE_HIT, CACHE_ADMIT = 1, 2  # fn.cmo_cache_lookup's states (0: a miss, decoded as without)


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
    augment: str = "standard"
    randaugment: str = DEFAULT_RANDAUGMENT
    normalisation: str | None = None  # imagenet, inat or cifar (None: the style's)
    q_scheme: str = "reference"
    q_r: float = 1.0
    q_beta: float | str | None = None
    seed: int = 0
    num_threads: int = 2
    prefetch: int = 2
    on_bad_image: str = "error"
    max_batches_per_epoch: int = 0  # > 0: each epoch ends after this many batches (short runs)
    reader: str = "native"  # or "python" (in-memory pixels and short epochs: make_streams)
    fg_cache_gb: float = 0.0  # > 0: decoded foregrounds kept up to this many GiB (CPU)

    def __post_init__(self):
        self.paste_schedule()  # the variant, the probability and the window
        check_policy(self.on_bad_image)
        for name, value, choices in (("style", self.style, STYLES),
                                     ("foreground_decode", self.foreground_decode,
                                      FOREGROUND_DECODES),
                                     ("dtype", self.dtype, tuple(OUTPUT_DTYPES)),
                                     ("reader", self.reader, READERS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        if self.normalisation is not None:
            mean_std(self.normalisation)  # refuses an unknown name
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not (math.isfinite(self.fg_cache_gb) and self.fg_cache_gb >= 0):
            raise ValueError(f"fg_cache_gb must be a finite number >= 0, got "
                             f"{self.fg_cache_gb:g}")
        if self.fg_cache_gb and not self.region_decode:
            raise ValueError("fg_cache_gb: the foreground cache serves region-decoded "
                             "foregrounds (foreground_decode 'region', style 'imagenet', a "
                             "pointwise augment); use fg_cache_gb 0")
        if self.max_batches_per_epoch < 0:
            raise ValueError(f"max_batches_per_epoch must be >= 0, got "
                             f"{self.max_batches_per_epoch}")
        if self.augment not in RECIPES:
            raise ValueError(f"augment must be one of {', '.join(RECIPES)}; got {self.augment!r}")
        if self.recipe.style not in (None, self.style):
            raise ValueError(f"augment {self.augment!r} is the reference's {self.recipe.style} "
                             f"recipe; it needs style {self.recipe.style!r}, got {self.style!r}")
        try:
            RandAugment.parse(self.randaugment)
        except ValueError as error:
            raise ValueError(f"randaugment: {error}") from None

    @property
    def recipe(self):
        """The augmentation (``dali_cmo.augment.recipes``) applied to both streams."""
        return RECIPES[self.augment]

    @property
    def region_decode(self) -> bool:
        """Whether pasted foregrounds decode only their box: asked for, ImageNet-style crops,
        and a pointwise augmentation (any other reads pixels outside the box, so the pasted
        foregrounds are decoded whole and see exactly what a full decode gives)."""
        return (self.foreground_decode == "region" and self.style == "imagenet"
                and self.recipe.pointwise)

    @property
    def mean_std(self):
        return mean_std(self.normalisation or self.style)

    def paste_schedule(self) -> PasteSchedule:
        return PasteSchedule.for_variant(self.variant, self.epochs, self.cmo_start,
                                         self.cmo_end, self.probability, self.per_sample,
                                         self.seed)


@do_not_convert  # no data conditionals: spares AutoGraph's conversion
def decoder_device(device: str) -> str:
    return "mixed" if device == "gpu" else "cpu"


@do_not_convert  # no data conditionals: spares AutoGraph's conversion
def train_crop(encoded, config: TrainConfig, device: str, raw: bool = False):
    """Decode fused with the training crop, as uint8 HWC RGB on ``device``; ``raw``: the input
    is already uint8 HWC pixels (an ``ArrayDataset``), nothing is decoded."""
    size = config.image_size
    if raw:
        pixels = encoded.gpu() if device == "gpu" else encoded
        if config.style == "imagenet":
            images = fn.random_resized_crop(pixels, size=[size, size], random_area=RRC_AREA,
                                            random_aspect_ratio=RRC_ASPECT, num_attempts=10)
        else:
            images = pad_crop(pixels, size)
    elif config.style == "imagenet":
        images = fn.decoders.image_random_crop(encoded, device=decoder_device(device),
                                               output_type=types.RGB, random_area=RRC_AREA,
                                               random_aspect_ratio=RRC_ASPECT, num_attempts=10)
        images = fn.resize(images, size=[size, size])
    else:  # torchvision RandomCrop(size, padding=4)
        images = pad_crop(fn.decoders.image(encoded, device=decoder_device(device),
                                            output_type=types.RGB), size)
    return images


def train_images(encoded, mirror, config: TrainConfig, device: str, raw: bool = False):
    """One stream's training images: decode (unless ``raw`` pixels), crop and the config's
    augmentation (uint8 HWC). Recipes that flip (``recipe.flips``) apply ``mirror`` here; the
    others leave it to the paste."""
    recipe = config.recipe
    if recipe.decoded_input and raw:
        images = encoded.gpu() if device == "gpu" else encoded
    elif recipe.decoded_input:
        images = fn.decoders.image(encoded, device=decoder_device(device), output_type=types.RGB)
    else:
        images = train_crop(encoded, config, device, raw)
    return recipe(images, mirror, config.image_size, config.randaugment)


@do_not_convert  # no data conditionals: spares AutoGraph's conversion
def slice_decode(encoded, start, extent, device: str):
    """The window ``start`` + ``extent`` (source pixels, ``cmo_region``'s) of each image."""
    return fn.decoders.image_slice(encoded, start, extent, axes=[0, 1], normalized_anchor=False,
                                   normalized_shape=False, device=decoder_device(device),
                                   output_type=types.RGB)


def region_decode(encoded, box, mirror, config: TrainConfig, device: str,
                  cache: ForegroundCache | None = None, index=None):
    """Decode only the part of a foreground's random-resized-crop that lands on ``box``.

    The crop window is drawn as the full decode would draw it; ``cmo_region`` maps the box's
    columns (mirrored when the foreground is flipped) linearly into it. The window is decoded
    as is: ``cmo_paste(..., resize_foreground=True)`` resamples it into the box (fn.resize's
    filter) and flips it there. With a ``cache`` (keyed by the dataset ``index``) a held image
    gives its window without decoding, an admitted miss is decoded whole and stored
    (:mod:`dali_cmo.data.fg_cache`); the pixels are the same.
    """
    shape = fn.peek_image_shape(encoded)
    anchor, window = fn.random_crop_generator(shape, random_area=RRC_AREA,
                                              random_aspect_ratio=RRC_ASPECT, num_attempts=10)
    start, extent, _ = fn.cmo_region(anchor, window, box, size=config.image_size,
                                     foreground_mirror=mirror)
    if cache is None:
        return slice_decode(encoded, start, extent, device)
    state = fn.cmo_cache_lookup(index, shape, **cache.operator_arguments())
    if state == CACHE_HIT:
        region = fn.cmo_cache_window(index, start, extent, cache=cache.name)
    elif state == CACHE_ADMIT:
        whole = fn.decoders.image(encoded, device="cpu", output_type=types.RGB)
        region = fn.cmo_cache_window(index, start, extent, whole, cache=cache.name)
    else:
        region = slice_decode(encoded, start, extent, device)
    return region


def pasted_foreground(encoded, box, mirror, config: TrainConfig, device: str, raw: bool,
                      cache: ForegroundCache | None = None, index=None):
    """A foreground that will be pasted on ``box``: only its box region decoded
    (:attr:`TrainConfig.region_decode`, encoded input; through ``cache`` if given), else its
    whole training images."""
    if config.region_decode and not raw:
        return region_decode(encoded, box, mirror, config, device, cache, index)
    return train_images(encoded, mirror, config, device, raw)


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
        # crops, flips and per-sample draws differ on every rank; per-batch boxes do not
        self.seed = rank_seed(config.seed, "pipeline", shard_id)
        self.schedule = config.paste_schedule()
        self.box_seed = self.schedule.box_seed(shard_id)
        settings = StreamSettings(config.batch_size, config.seed, self.schedule, shard_id,
                                  num_shards, config.q_scheme, config.q_r, config.q_beta,
                                  config.on_bad_image,
                                  read_unflagged=config.foreground_decode == "naive")
        self.streams = make_streams(dataset, config.variant, settings, config.reader,
                                    reader_threads=max(2, config.num_threads),
                                    max_batches_per_epoch=config.max_batches_per_epoch)
        self.fg_cache = None
        if config.fg_cache_gb and self.has_foreground:
            if device != "cpu":
                raise ValueError("fg_cache_gb: the foreground cache is CPU-only for now; use "
                                 "fg_cache_gb 0 on the GPU")
            probabilities = self.streams.foreground.sampler.draw_probabilities()
            self.fg_cache = ForegroundCache.for_stream(dataset, probabilities,
                                                       config.fg_cache_gb)

    @property
    def reader(self) -> str:
        """The reader the streams use (``"native"`` or ``"python"``)."""
        return self.streams.name

    @property
    def has_foreground(self) -> bool:
        return self.streams.foreground is not None

    def batches_per_epoch(self) -> int:
        return self.streams.background.batches_per_epoch()

    @property
    def counts_epochs(self) -> bool:
        """True when the pipeline never ends an epoch itself (the native reader runs on): the
        iterator counts :meth:`batches_per_epoch` batches and cuts the last one to
        :meth:`last_batch_size` (the reader pads it by repeating a sample)."""
        return self.streams.counts_epochs

    def last_batch_size(self) -> int:
        return self.streams.last_batch_size()

    def build(self, checkpoint: str | None = None, with_box: bool = False):
        """The DALI pipeline (restored from a DALI ``checkpoint`` if given); ``with_box`` adds
        the pasted boxes as a last output (for pictures and checks)."""
        config = self.config

        @pipeline_def(batch_size=config.batch_size, num_threads=config.num_threads,
                      device_id=self.device_id, seed=self.seed,
                      prefetch_queue_depth=config.prefetch, enable_conditionals=True,
                      enable_checkpointing=True)
        def pipeline():
            return self._graph(with_box)

        pipe = pipeline(checkpoint=checkpoint) if checkpoint else pipeline()
        pipe.build()
        return pipe

    def _graph(self, with_box: bool):
        """The baseline graph (``crop_mirror_normalize``) for variants without a foreground
        stream, the CMO graph for the others."""
        config, device = self.config, self.device
        mean, std = config.mean_std
        out_dtype = OUTPUT_DTYPES[config.dtype]
        raw = self.dataset.in_memory  # uint8 HWC pixels, not encoded bytes
        encoded_b, label_b = self.streams.background.read()
        mirror_b = fn.random.coin_flip(probability=0.5)
        background = train_images(encoded_b, mirror_b, config, device, raw)
        paste_mirror_b = 0 if config.recipe.flips else mirror_b  # flips the recipe left
        if not self.has_foreground:
            images = fn.crop_mirror_normalize(background, mirror=paste_mirror_b, mean=mean,
                                              std=std, dtype=out_dtype, output_layout="CHW")
            return images, label_b
        cache = self.fg_cache
        encoded_f, label_f, flags, *index_f = self.streams.foreground.read(
            with_index=cache is not None)
        mirror_f = fn.random.coin_flip(probability=0.5)
        paste_mirror_f = 0 if config.recipe.flips else mirror_f
        size = config.image_size
        box, lam = fn.cmo_box(size=[size, size], alpha=config.alpha,
                              probability=fn.cast(flags, dtype=types.FLOAT),
                              per_sample=config.per_sample, seed=self.box_seed)
        if config.foreground_decode == "naive":
            foreground = train_images(encoded_f, mirror_f, config, device, raw)
        elif (box[2] > box[0]) & (box[3] > box[1]):
            foreground = pasted_foreground(encoded_f, box, mirror_f, config, device, raw, cache,
                                           *index_f)
        else:
            foreground = background  # nothing is pasted: cmo_paste reads no pixel of it
        # a region-decoded foreground is resampled into its box while pasting
        resized = config.foreground_decode != "naive" and config.region_decode and not raw
        images, _ = fn.cmo_paste(background, foreground, box=box, mirror=paste_mirror_b,
                                 foreground_mirror=paste_mirror_f, mean=mean, std=std,
                                 dtype=out_dtype, output_layout="CHW",
                                 resize_foreground=resized)
        return (images, label_b, label_f, lam) + ((box,) if with_box else ())
