"""The two epoch samplers of CMO: P (backgrounds) and Q (foregrounds).

* P, :class:`PermutationSampler`: each epoch a fresh uniform permutation of the N samples, so
  class k supplies a share ``n_k / N`` of the backgrounds.
* Q, :class:`WeightedSampler`: each epoch N independent draws with replacement, sample i drawn
  with probability ``p_i`` (:func:`sample_weights`).

Weight schemes for Q (``n_k`` = number of training samples of class k, ``y_i`` = label of i):

* ``"reference"``: ``w_i = n_{y_i}^(-r)``, class share ``q_k ∝ n_k^(1-r)``;
* ``"class_power"``: ``w_i = n_{y_i}^(-r) / n_{y_i}``, ``q_k ∝ n_k^(-r)``;
* ``"effective_number"``: ``w_i = (1 - beta) / (1 - beta^(n_{y_i}))``,
  ``q_k ∝ n_k (1 - beta) / (1 - beta^(n_k))``;
* ``"uniform"``: ``w_i = 1``, ``q_k ∝ n_k`` (each draw has the marginal law of P's, but with
  replacement).

``"reference"`` is what the CMO reference code does (``WeightedRandomSampler`` with per-sample
weights ``1 / n_{y_i}^r``, r = 1: every class equally often). ``"class_power"`` is the paper's
Eq. 2 read literally, a per-class probability ``∝ n_k^(-r)`` spread uniformly over the class's
samples. Effective-number weights (Cui et al. 2019) are not in the reference code; by default
they use the CMO paper's ``beta = (N - 1) / N`` (``beta="paper"``); ``beta=0.9999`` (Cui et al.'s
usual value, also the beta of the reference's DRW class weights) or any beta in (0, 1) is an
option.

Determinism: the random stream of an epoch is a pure function of ``(seed, epoch, stream)``
(:func:`epoch_generator`); samplers hold no state, so resuming at any epoch and position
reproduces an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

SCHEMES = ("reference", "class_power", "effective_number", "uniform")


# --------------------------------------------------------------------------- weights

def _validate(scheme: str, r: float, beta: float | str | None) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    if not (np.isfinite(r) and r >= 0):
        raise ValueError(f"r must be a finite number >= 0, got {r}")
    if beta is not None and scheme != "effective_number":
        raise ValueError(f"beta applies only to scheme='effective_number', not {scheme!r}")


def effective_number_beta(beta: float | str | None, num_samples: int) -> float:
    """Resolve ``beta``: ``None`` or ``"paper"`` -> the paper's ``(N - 1) / N``; a number in
    (0, 1) as given (e.g. Cui et al.'s 0.9999)."""
    if beta is None or beta == "paper":
        if num_samples < 2:
            raise ValueError("beta='paper' needs at least 2 samples ((N - 1) / N > 0)")
        return (num_samples - 1) / num_samples
    if isinstance(beta, str) or not 0 < beta < 1:
        raise ValueError(f"beta must lie in (0, 1) or be 'paper', got {beta!r}")
    return float(beta)


def _class_counts(class_counts: np.ndarray | list[int]) -> np.ndarray:
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError("class_counts must be a non-empty 1-D array of counts >= 0, not all 0")
    return counts


def _per_sample_weight(counts: np.ndarray, scheme: str, r: float, beta: float) -> np.ndarray:
    """Unnormalised weight ``w`` of one sample of class k, for each k with ``n_k > 0``."""
    if scheme == "reference":
        return counts ** -r
    if scheme == "class_power":
        return counts ** -(r + 1)
    if scheme == "effective_number":
        return (1 - beta) / -np.expm1(counts * np.log(beta))
    return np.ones_like(counts)


def sample_weights(labels: np.ndarray, scheme: str = "reference", r: float = 1.0,
                   beta: float | str | None = None,
                   class_counts: np.ndarray | None = None) -> np.ndarray:
    """Per-sample probabilities ``p_i = w_i / sum_j w_j`` of Q (float64, sum 1).

    ``w_i`` depends on the scheme, see the module docstring. ``n_k`` are ``class_counts``
    when given (length > max label), else the label histogram. ``r`` is used by
    ``"reference"`` and ``"class_power"``, ``beta`` only by ``"effective_number"``.
    """
    _validate(scheme, r, beta)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be a non-empty 1-D integer array")
    if labels.min() < 0:
        raise ValueError("labels must be >= 0")
    counts = _class_counts(np.bincount(labels) if class_counts is None else class_counts)
    if len(counts) <= labels.max() or (counts[labels] == 0).any():
        raise ValueError("class_counts must be > 0 for every label that occurs")
    present = counts > 0
    per_class = np.zeros_like(counts)
    per_class[present] = _per_sample_weight(
        counts[present], scheme, r, effective_number_beta(beta, len(labels)))
    weights = per_class[labels]
    return weights / weights.sum()


def expected_class_shares(class_counts: np.ndarray | list[int], scheme: str = "reference",
                          r: float = 1.0, beta: float | str | None = None) -> np.ndarray:
    """Closed-form share ``q_k`` of Q's draws that fall in class k (sums to 1).

    ``reference``: ``n_k^(1-r)``; ``class_power``: ``n_k^(-r)``; ``effective_number``:
    ``n_k (1-beta) / (1-beta^n_k)``; ``uniform``: ``n_k``; each normalised over the classes
    with ``n_k > 0`` (empty classes get 0). ``beta="paper"`` uses ``N = sum_k n_k``.
    """
    _validate(scheme, r, beta)
    counts = _class_counts(class_counts)
    n = counts[counts > 0]
    if scheme == "reference":
        share = n ** (1 - r)
    elif scheme == "class_power":
        share = n ** -r
    elif scheme == "effective_number":
        b = effective_number_beta(beta, int(counts.sum()))
        share = n * (1 - b) / (1 - b ** n)
    else:
        share = n
    shares = np.zeros_like(counts)
    shares[counts > 0] = share / share.sum()
    return shares


# --------------------------------------------------------------------------- samplers

def epoch_generator(seed: int, epoch: int, stream: str) -> np.random.Generator:
    """The generator of one epoch: PCG64 seeded from a hash of ``(seed, epoch, stream)``.

    The key is ``blake2b`` (128 bits) of the JSON text ``[seed, epoch, stream]``, so distinct
    triples give unrelated streams and nothing depends on earlier calls.
    """
    key = json.dumps([int(seed), int(epoch), str(stream)]).encode()
    entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


class EpochSampler:
    """Base of the per-epoch index samplers: ``num_samples`` indices per epoch.

    Subclasses implement :meth:`_draw`; everything is a pure function of
    ``(seed, epoch, stream)``.

    Args:
        num_samples: indices per epoch (N).
        seed: the run's seed (>= 0).
        stream: the stream's name; distinct names give unrelated streams.
    """

    def __init__(self, num_samples: int, *, seed: int, stream: str) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.stream = str(stream)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def indices(self, epoch: int) -> np.ndarray:
        """The epoch's ``num_samples`` sample indices (int64), in visiting order."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        drawn = self._draw(epoch_generator(self.seed, epoch, self.stream))
        return drawn.astype(np.int64, copy=False)

    def epoch_length(self, num_shards: int = 1) -> int:
        """Indices per shard, ``L = ceil(N / num_shards)`` (``N`` for one shard)."""
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        return -(-self.num_samples // num_shards)

    def shard(self, epoch: int, shard_id: int, num_shards: int) -> np.ndarray:
        """Shard ``shard_id``'s slice of the epoch.

        The epoch is padded to ``num_shards * L`` (``L = ceil(N / num_shards)``) by wrapping
        around to its start (``padded[j] = indices[j % N]``), then cut into contiguous slices
        ``padded[shard_id * L:(shard_id + 1) * L]``. The slices are disjoint positions of the
        padded epoch and together cover every index of the epoch; the ``num_shards * L - N``
        padded positions repeat the epoch's first indices.
        """
        length = self.epoch_length(num_shards)
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must lie in 0..{num_shards - 1} (num_shards={num_shards}), "
                             f"got {shard_id}")
        positions = np.arange(shard_id * length, (shard_id + 1) * length)
        return self.indices(epoch)[positions % self.num_samples]

    def draw_probabilities(self) -> np.ndarray:
        """Each sample's chance per draw (float64, sums to 1): uniform here."""
        return np.full(self.num_samples, 1.0 / self.num_samples)

    def reader_twin(self) -> tuple["EpochSampler", np.ndarray | None]:
        """The sampler the native reader follows and the weights it is given (None: it
        permutes): this sampler, without weights."""
        return self, None

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_samples={self.num_samples}, seed={self.seed}, "
                f"stream={self.stream!r})")


class PermutationSampler(EpochSampler):
    """P: each epoch a fresh uniform random permutation of ``0..N-1``.

    Args:
        num_samples: N.
        seed: the run's seed; with ``stream`` and the epoch it determines every epoch.
        stream: the name of the stream (e.g. ``"background"``).
    """

    def __init__(self, num_samples: int, *, seed: int, stream: str = "background") -> None:
        super().__init__(num_samples, seed=seed, stream=stream)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.num_samples)


class WeightedSampler(EpochSampler):
    """Q: each epoch N independent draws with replacement, index i with probability ``p_i``.

    ``p = weights / sum(weights)``. A draw is the inverse CDF ``min{i : u < c_i}``
    (``c`` the cumulative weights) of a uniform ``u``. For speed the N uniforms of an
    epoch are generated already sorted, as normalised partial sums of N + 1 standard
    exponentials (the joint law of uniform order statistics), so the lookups walk the CDF in
    order; a uniform shuffle of the result then gives i.i.d. draws in random order.
    O(N) memory; exact up to float64 rounding of the cumulative sum. Zero weights are never
    drawn.

    Args:
        weights: (N,) finite, non-negative per-sample weights with a positive sum (e.g. from
            :func:`sample_weights`).
        seed: the run's seed; with ``stream`` and the epoch it determines every epoch.
        stream: the name of the stream (e.g. ``"foreground"``).
    """

    def __init__(self, weights: np.ndarray, *, seed: int, stream: str = "foreground") -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or not np.isfinite(weights).all() or (weights < 0).any() \
                or weights.sum() <= 0:
            raise ValueError("weights must be a 1-D array of finite values >= 0 "
                             "with a positive sum")
        super().__init__(len(weights), seed=seed, stream=stream)
        self.probabilities = weights / weights.sum()
        self._cdf = np.cumsum(self.probabilities)
        self._last_positive = int(np.flatnonzero(weights)[-1])

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        partial_sums = np.cumsum(rng.standard_exponential(self.num_samples + 1))
        uniforms = partial_sums[:-1] * (self._cdf[-1] / partial_sums[-1])
        drawn = np.searchsorted(self._cdf, uniforms, side="right")
        np.minimum(drawn, self._last_positive, out=drawn)  # u rounded up to c_{N-1}
        rng.shuffle(drawn)
        return drawn

    def draw_probabilities(self) -> np.ndarray:
        return self.probabilities

    def reader_twin(self) -> tuple["WeightedSampler", np.ndarray]:
        """A twin over the weights rounded to float32, as the native reader receives them (about
        1 draw in 10,000 lands on a neighbouring sample against the float64 weights)."""
        weights = self.probabilities.astype(np.float32)
        return WeightedSampler(weights, seed=self.seed, stream=self.stream), weights


def make_sampler(kind: str, labels: np.ndarray, *, seed: int, stream: str,
                 scheme: str = "reference", r: float = 1.0,
                 beta: float | str | None = None) -> EpochSampler:
    """The sampler of one stream.

    Args:
        kind: ``"P"`` for a :class:`PermutationSampler` over the labels' samples, ``"Q"`` for a
            :class:`WeightedSampler` with :func:`sample_weights` ``(labels, scheme, r, beta)``.
        labels: (N,) integer labels.
        seed, stream: see :class:`EpochSampler`.
        scheme, r, beta: Q's weights (see the module docstring); ignored for P.
    """
    if kind == "P":
        return PermutationSampler(len(labels), seed=seed, stream=stream)
    if kind == "Q":
        return WeightedSampler(sample_weights(labels, scheme, r, beta), seed=seed, stream=stream)
    raise ValueError(f"kind must be 'P' or 'Q', got {kind!r}")
