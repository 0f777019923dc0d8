"""When and what CMO pastes: the variant table, the paste window and the paste schedule.

Park et al., "The Majority Can Help the Minority: Context-rich Minority Oversampling for
Long-tailed Classification", CVPR 2022; the reference code is naver-ai/cmo. Every value here is
computed once, in Python: the native reader receives the window and the coin probability, not
the rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dali_cmo.data.sampling import epoch_generator

#: The random stream of the paste coins: ``epoch_generator(seed, epoch, "paste/<b>")`` per batch,
#: ``"paste/<shard>/<b>"`` per sample (the native reader tosses the same coins).
PASTE_COIN_STREAM = "paste"

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

    ``pastes`` is False for a variant without foregrounds (:meth:`for_variant`): its schedule
    never pastes, whatever the window and probability.
    """
    epochs: int
    start: int = 3
    end: int = 3
    probability: float = 0.5
    per_sample: bool = False
    seed: int = 0
    pastes: bool = True

    @classmethod
    def for_variant(cls, variant: str, epochs: int, start: int = 3, end: int = 3,
                    probability: float = 0.5, per_sample: bool = False,
                    seed: int = 0) -> "PasteSchedule":
        """The schedule of a run of ``variant`` (a key of :data:`VARIANTS`)."""
        return cls(epochs, start, end, probability, per_sample, seed,
                   pastes=check_variant(variant)[1] is not None)

    def __post_init__(self):
        # the one check of these values on their way from the command line to the operators
        # (whose own checks guard direct callers); messages name the fields as TrainConfig does
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1]; got {self.probability}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.pastes and self.probability > 0 and not self.window:
            raise ValueError(
                f"cmo_start {self.start} / cmo_end {self.end}: the CMO window 'start < epoch < "
                f"epochs - end' (epochs={self.epochs}, counted from 0) leaves no augmented "
                f"epoch (cmo_start -1 with cmo_end 0 pastes in every epoch)")

    @property
    def window(self) -> range:
        """The epochs (from 0) that may paste: :func:`paste_window`."""
        return paste_window(self.epochs, self.start, self.end)

    @property
    def pasting_epochs(self) -> range:
        """The epochs (from 0) in which this schedule pastes: its window, or none when it
        never pastes (``pastes`` False or ``probability`` 0)."""
        return self.window if self.pastes and self.probability > 0 else range(0)

    def reader_arguments(self) -> dict:
        """The schedule as ``fn.readers.weighted_file`` arguments: the reader tosses the same
        coins (:meth:`flags`) inside the window computed here."""
        return dict(coin_probability=self.probability, coin_per_sample=self.per_sample,
                    coin_epochs=[self.window.start, self.window.stop],
                    coin_stream=PASTE_COIN_STREAM)

    def flags(self, epoch: int, iteration: int, count: int, shard_id: int = 0) -> np.ndarray:
        """Paste flags of the ``count`` samples of batch ``iteration`` of shard ``shard_id``
        (per batch: one coin for the global step, the same on every shard)."""
        if epoch not in self.pasting_epochs:
            return np.zeros(count, dtype=bool)
        if self.per_sample:
            rng = epoch_generator(self.seed, epoch, f"{PASTE_COIN_STREAM}/{shard_id}/{iteration}")
            return rng.random(count) < self.probability
        rng = epoch_generator(self.seed, epoch, f"{PASTE_COIN_STREAM}/{iteration}")
        return np.full(count, rng.random() < self.probability)

    def box_seed(self, shard_id: int = 0) -> int:
        """The seed of the lambda-and-box sampler (``cmo_box``) of shard ``shard_id``: shared by
        every shard per batch, one per shard per sample."""
        return rank_seed(self.seed, "box", None if not self.per_sample else shard_id)


