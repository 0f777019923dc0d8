"""Q weights, P/Q epoch samplers, sharding and resumption.

Statistical checks use Pearson's chi-square with fixed seeds. The threshold is the
``1 - 1e-6`` quantile of the chi-square law with ``cells - 1`` degrees of freedom: a correct
sampler fails it with probability 1e-6 per check, and :func:`test_chi_square_rejects_wrong_shares`
shows the same check rejects a neighbouring distribution.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from dali_cmo.data.sampling import (SCHEMES, EpochSampler, PermutationSampler, WeightedSampler,
                               epoch_generator, expected_class_shares, make_sampler,
                               sample_weights)

COUNTS = np.array([400, 150, 60, 25, 8, 3])
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(len(COUNTS)), COUNTS))
EPOCHS = 400  # 258,400 draws: >= 12 expected in every class, for every scheme below
P_FAIL = 1e-6

Q_CASES = ([(scheme, r, None) for scheme in ("reference", "class_power") for r in (0.5, 1.0, 2.0)]
           + [("effective_number", 1.0, beta) for beta in (None, "paper", 0.9)]
           + [("uniform", 1.0, None)])


def chi_square(observed: np.ndarray, probabilities: np.ndarray) -> float:
    expected = observed.sum() * probabilities
    assert expected.min() >= 5, "too few draws for the chi-square approximation"
    return float(((observed - expected) ** 2 / expected).sum())


def threshold(cells: int) -> float:
    return float(chi2.ppf(1 - P_FAIL, cells - 1))


def class_histogram(sampler: EpochSampler, labels: np.ndarray, epochs: int) -> np.ndarray:
    draws = np.concatenate([sampler.indices(e) for e in range(epochs)])
    return np.bincount(labels[draws], minlength=labels.max() + 1)


# --------------------------------------------------------------------------- weights

def test_expected_class_shares_hand_computed():
    counts = [1, 4, 16]
    cases = {
        ("reference", 1.0): [1 / 3, 1 / 3, 1 / 3],
        ("reference", 0.5): [1 / 7, 2 / 7, 4 / 7],  # n^(1/2) = 1, 2, 4
        ("reference", 2.0): [16 / 21, 4 / 21, 1 / 21],  # n^-1
        ("class_power", 0.5): [4 / 7, 2 / 7, 1 / 7],  # n^(-1/2) = 1, 1/2, 1/4
        ("class_power", 1.0): [16 / 21, 4 / 21, 1 / 21],
        ("class_power", 2.0): [256 / 273, 16 / 273, 1 / 273],
        ("uniform", 1.0): [1 / 21, 4 / 21, 16 / 21],
    }
    for (scheme, r), expected in cases.items():
        np.testing.assert_allclose(expected_class_shares(counts, scheme, r), expected, rtol=1e-12,
                                   err_msg=f"{scheme} r={r}")
    # beta = 1/2: n (1 - b) / (1 - b^n) = 1, 2 / (15/16) = 32/15, 8 / (1 - 2^-16).
    raw = np.array([1, 32 / 15, 8 * 65536 / 65535])
    np.testing.assert_allclose(expected_class_shares(counts, "effective_number", beta=0.5),
                               raw / raw.sum(), rtol=1e-12)
    # beta = "paper": (N - 1) / N with N = 21.
    b = 20 / 21
    raw = np.array([n * (1 - b) / (1 - b ** n) for n in counts])
    np.testing.assert_allclose(expected_class_shares(counts, "effective_number", beta="paper"),
                               raw / raw.sum(), rtol=1e-12)
    # The default beta is the paper's (N - 1) / N, here N = 7; 0.9999 is an option; empty
    # classes get no share.
    for beta, b in ((None, 6 / 7), (0.9999, 0.9999)):
        raw = np.array([n * (1 - b) / (1 - b ** n) for n in (2, 5)])
        np.testing.assert_allclose(expected_class_shares([2, 0, 5], "effective_number", beta=beta),
                                   [raw[0] / raw.sum(), 0, raw[1] / raw.sum()], rtol=1e-9)


@pytest.mark.parametrize("scheme, r, beta", Q_CASES)
def test_sample_weights_match_class_shares(scheme, r, beta):
    p = sample_weights(LABELS, scheme, r, beta)
    assert p.dtype == np.float64 and p.shape == LABELS.shape
    assert abs(p.sum() - 1) < 1e-12
    for k in range(len(COUNTS)):  # uniform within a class
        assert np.ptp(p[LABELS == k]) <= 1e-15
    np.testing.assert_allclose(np.bincount(LABELS, weights=p),
                               expected_class_shares(COUNTS, scheme, r, beta), rtol=1e-9)


def test_sample_weights_reference_values():
    labels = np.array([0, 0, 0, 1, 2, 2])  # n = 3, 1, 2
    np.testing.assert_allclose(sample_weights(labels), np.array([1, 1, 1, 3, 1.5, 1.5]) / 9)
    np.testing.assert_allclose(sample_weights(labels, "class_power"),
                               np.array([1 / 9] * 3 + [1] + [1 / 4] * 2) / (3 / 9 + 1 + 2 / 4))
    np.testing.assert_allclose(sample_weights(labels, "uniform"), np.full(6, 1 / 6))
    # Explicit class counts replace the label histogram (e.g. counts of the full dataset).
    np.testing.assert_allclose(sample_weights(np.array([0, 1]), class_counts=[1, 3]), [0.75, 0.25])


def test_weight_validation():
    with pytest.raises(ValueError, match="r must be"):
        sample_weights(LABELS, r=-0.5)
    with pytest.raises(ValueError, match="r must be"):
        expected_class_shares(COUNTS, "class_power", r=float("nan"))
    valid = ", ".join(SCHEMES)
    with pytest.raises(ValueError, match=f"unknown scheme 'inverse'; valid schemes: {valid}"):
        sample_weights(LABELS, "inverse")
    for beta in (0.0, 1.0, 1.5, -0.1, "cui"):
        with pytest.raises(ValueError, match="beta must lie in"):
            sample_weights(LABELS, "effective_number", beta=beta)
    with pytest.raises(ValueError, match="beta applies only to scheme='effective_number'"):
        sample_weights(LABELS, "reference", beta=0.99)
    with pytest.raises(ValueError, match="labels"):
        sample_weights(np.array([0, -1]))
    with pytest.raises(ValueError, match="class_counts must be > 0"):
        sample_weights(np.array([0, 1, 2]), class_counts=[1, 0, 1])
    with pytest.raises(ValueError, match="class_counts must be"):
        expected_class_shares([0, 0])


# --------------------------------------------------------------------------- Q

@pytest.mark.parametrize("scheme, r, beta", Q_CASES)
def test_q_class_histogram_matches_expected_shares(scheme, r, beta):
    sampler = make_sampler("Q", LABELS, seed=7, stream="foreground", scheme=scheme, r=r, beta=beta)
    observed = class_histogram(sampler, LABELS, EPOCHS)
    shares = expected_class_shares(COUNTS, scheme, r, beta)
    assert chi_square(observed, shares) < threshold(len(COUNTS))


def test_chi_square_rejects_wrong_shares():
    sampler = make_sampler("Q", LABELS, seed=7, stream="foreground", scheme="reference", r=1.0)
    observed = class_histogram(sampler, LABELS, EPOCHS)
    for wrong in (expected_class_shares(COUNTS, "reference", 0.9),
                  expected_class_shares(COUNTS, "class_power", 0.1),
                  expected_class_shares(COUNTS, "uniform")):
        assert chi_square(observed, wrong) > threshold(len(COUNTS))


def test_weighted_sampler_per_index_law_and_zero_weights():
    weights = np.array([0, 3, 0, 1, 6, 0.5, 0, 0])
    sampler = WeightedSampler(weights, seed=1)
    draws = np.concatenate([sampler.indices(e) for e in range(2000)])
    observed = np.bincount(draws, minlength=len(weights))
    assert observed[weights == 0].sum() == 0
    positive = weights > 0
    p = weights[positive] / weights.sum()
    assert chi_square(observed[positive], p) < threshold(positive.sum())


def test_weighted_sampler_draws_are_in_random_order():
    """Draws at a fixed position follow p too (a sorted or unshuffled draw would not)."""
    weights = np.arange(1.0, 11.0)
    sampler = WeightedSampler(weights, seed=2, stream="order")
    epochs = np.stack([sampler.indices(e) for e in range(3000)])
    p = weights / weights.sum()
    for position in (0, len(weights) - 1):
        observed = np.bincount(epochs[:, position], minlength=len(weights))
        assert chi_square(observed, p) < threshold(len(weights))


class _EdgeGenerator:
    """Makes the last exponential spacing 0, so the largest uniform equals the CDF's total."""

    def standard_exponential(self, size: int) -> np.ndarray:
        spacings = np.ones(size)
        spacings[-1] = 0.0
        return spacings

    def shuffle(self, values: np.ndarray) -> None:
        pass


def test_weighted_sampler_top_edge_maps_to_last_positive_weight():
    sampler = WeightedSampler(np.array([1.0, 2.0, 0.0, 0.0]), seed=0)
    drawn = sampler._draw(_EdgeGenerator())
    assert drawn.tolist() == [0, 1, 1, 1]  # u = 1/3, 2/3, 1 -> without the clamp: index 4


def test_weighted_sampler_validation():
    for weights in ([0.0, 0.0], [1.0, -1.0], [1.0, np.inf], [[1.0]]):
        with pytest.raises(ValueError, match="weights must be"):
            WeightedSampler(np.array(weights), seed=0)


def test_make_sampler():
    p = make_sampler("P", LABELS, seed=3, stream="background")
    q = make_sampler("Q", LABELS, seed=3, stream="foreground", scheme="class_power", r=2.0)
    assert isinstance(p, PermutationSampler) and len(p) == len(LABELS)
    assert isinstance(q, WeightedSampler)
    np.testing.assert_allclose(q.probabilities, sample_weights(LABELS, "class_power", 2.0),
                               rtol=1e-15)
    with pytest.raises(ValueError, match="kind must be 'P' or 'Q'"):
        make_sampler("R", LABELS, seed=3, stream="x")


# --------------------------------------------------------------------------- P

def test_permutation_sampler_epochs():
    sampler = PermutationSampler(1000, seed=5)
    epochs = [sampler.indices(e) for e in range(4)]
    for indices in epochs:
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(np.sort(indices), np.arange(1000))
    assert len({tuple(indices) for indices in epochs}) == 4
    np.testing.assert_array_equal(PermutationSampler(1000, seed=5).indices(2), epochs[2])
    assert not np.array_equal(PermutationSampler(1000, seed=6).indices(2), epochs[2])
    other_stream = PermutationSampler(1000, seed=5, stream="other")
    assert not np.array_equal(other_stream.indices(2), epochs[2])


def test_p_positions_are_uniform():
    """Each index lands on position 0 equally often over many epochs."""
    sampler = PermutationSampler(8, seed=9)
    first = np.array([sampler.indices(e)[0] for e in range(4000)])
    assert chi_square(np.bincount(first, minlength=8), np.full(8, 1 / 8)) < threshold(8)


def test_streams_are_pure_functions_of_seed_epoch_name():
    a = epoch_generator(1, 2, "foreground").random(4)
    np.testing.assert_array_equal(a, epoch_generator(1, 2, "foreground").random(4))
    for other in ((2, 2, "foreground"), (1, 3, "foreground"), (1, 2, "background"),
                  (12, 2, "foreground"), (1, 22, "foreground")):
        assert not np.array_equal(a, epoch_generator(*other).random(4)), other


def test_resume_matches_uninterrupted_run():
    n, batch = 37, 5
    for make in (lambda: PermutationSampler(n, seed=11),
                 lambda: WeightedSampler(np.arange(1.0, n + 1), seed=11)):
        uninterrupted = make()
        stream = np.concatenate([uninterrupted.indices(e) for e in range(4)])
        consumed = 17 * batch  # stop after 17 batches, in epoch 2
        epoch, position = divmod(consumed, n)
        resumed = make()  # a fresh process: no state carried over
        continuation = np.concatenate([resumed.indices(epoch)[position:],
                                       *(resumed.indices(e) for e in range(epoch + 1, 4))])
        np.testing.assert_array_equal(continuation, stream[consumed:])


def test_sampler_validation():
    with pytest.raises(ValueError, match="num_samples"):
        PermutationSampler(0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        PermutationSampler(3, seed=-1)
    with pytest.raises(ValueError, match="epoch"):
        PermutationSampler(3, seed=0).indices(-1)


# --------------------------------------------------------------------------- shards

@pytest.mark.parametrize("n, num_shards", [(10, 1), (10, 3), (12, 4), (3, 7), (1000, 8)])
def test_shards_partition_padded_epoch(n, num_shards):
    sampler = PermutationSampler(n, seed=4)
    indices = sampler.indices(1)
    length = sampler.epoch_length(num_shards)
    assert length == -(-n // num_shards)
    shards = [sampler.shard(1, s, num_shards) for s in range(num_shards)]
    assert all(len(shard) == length for shard in shards)
    # Wrapping: the padded epoch is the epoch followed by its start, repeated as needed.
    padded = np.concatenate([indices] * (num_shards // n + 2))[:num_shards * length]
    np.testing.assert_array_equal(np.concatenate(shards), padded)
    assert set(np.concatenate(shards)) == set(range(n))


def test_shard_wrapping_example():
    sampler = WeightedSampler(np.ones(10), seed=0)
    indices = sampler.indices(0)
    assert sampler.epoch_length() == 10 and sampler.epoch_length(3) == 4
    np.testing.assert_array_equal(sampler.shard(0, 2, 3), np.r_[indices[8:], indices[:2]])


def test_shard_validation():
    sampler = PermutationSampler(10, seed=0)
    with pytest.raises(ValueError, match="num_shards must be >= 1"):
        sampler.shard(0, 0, 0)
    for shard_id in (-1, 3):
        with pytest.raises(ValueError, match=r"shard_id must lie in 0..2 \(num_shards=3\)"):
            sampler.shard(0, shard_id, 3)
