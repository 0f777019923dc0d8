"""Time one epoch of the P and Q samplers at iNaturalist 2018 size.

Synthetic labels: 437,513 samples over 8,142 classes with a shifted power-law profile
``n_k = round(1000 * (1 + k / s)^(-a))``: head 1,000 and tail 2 images as in iNat 2018 (``a``
fixes the tail), ``s`` found by bisection so the total matches, any shortfall added one image
per head class; shuffled (:func:`inat_like_labels` builds the profile for other sizes too). Reported per sampler: building it (weights, CDF) once and the
median of ``--repeats`` epochs. ``numpy_choice`` times ``Generator.choice(N, N, p=p)`` as a
baseline for Q.

    python benchmarks/sampler_speed.py [--repeats 7] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np

from dali_cmo.data.datasets import ClassGroups
from dali_cmo.data.sampling import (SCHEMES, EpochSampler, PermutationSampler, WeightedSampler,
                               sample_weights)

NUM_SAMPLES = 437_513
NUM_CLASSES = 8_142
N_MAX, N_MIN = 1000, 2


def _profile(scale: float, num_classes: int, n_max: int) -> np.ndarray:
    """``n_k = round(n_max * (1 + k / scale)^(-a))`` with ``a`` such that ``n_{C-1} = N_MIN``."""
    exponent = np.log(n_max / N_MIN) / np.log1p((num_classes - 1) / scale)
    ranks = np.arange(num_classes, dtype=np.float64)
    return np.round(n_max * (1 + ranks / scale) ** -exponent).astype(np.int64)


def inat_like_labels(seed: int = 0, num_samples: int = NUM_SAMPLES,
                     num_classes: int = NUM_CLASSES, n_max: int = N_MAX) -> np.ndarray:
    """Shuffled labels with the long-tailed profile of the module docstring (head ``n_max``,
    tail ``N_MIN``); ``num_samples`` must lie between the flattest and the steepest profile."""
    low, high = 1e-3, 1e6  # the total grows with the scale
    for _ in range(200):
        middle = np.sqrt(low * high)
        fits = _profile(middle, num_classes, n_max).sum() <= num_samples
        low, high = (middle, high) if fits else (low, middle)
    counts = _profile(low, num_classes, n_max)
    shortfall = num_samples - counts.sum()  # the bisection leaves 0 <= shortfall
    if not 0 <= shortfall <= num_classes:
        raise ValueError(f"{num_samples:,} samples do not fit {num_classes:,} classes of "
                         f"{N_MIN}..{n_max} images")
    counts[:shortfall] += 1
    labels = np.repeat(np.arange(num_classes), counts)
    return np.random.default_rng(seed).permutation(labels)


def median_seconds(function: Callable[[int], object], repeats: int) -> float:
    times = []
    for repeat in range(repeats):
        start = time.perf_counter()
        function(repeat)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_sampler(build: Callable[[], EpochSampler], repeats: int) -> dict:
    """Seconds to build the sampler once and the median seconds of one epoch."""
    start = time.perf_counter()
    sampler = build()
    build_s = time.perf_counter() - start
    return {"build_s": build_s, "epoch_s": median_seconds(sampler.indices, repeats)}


def run(repeats: int) -> dict:
    labels = inat_like_labels()
    counts = np.bincount(labels)
    n = len(labels)
    samplers = {"P": time_sampler(lambda: PermutationSampler(n, seed=0), repeats)}
    for scheme in SCHEMES:
        samplers[f"Q/{scheme}"] = time_sampler(
            lambda: WeightedSampler(sample_weights(labels, scheme), seed=0), repeats)
    probabilities = sample_weights(labels)
    generator = np.random.default_rng(0)
    samplers["numpy_choice (baseline)"] = {
        "build_s": None,
        "epoch_s": median_seconds(lambda _: generator.choice(n, n, p=probabilities), repeats)}
    groups = ClassGroups.from_counts(counts)
    return {"num_samples": n, "num_classes": len(counts), "largest_class": int(counts.max()),
            "smallest_class": int(counts.min()),
            "many_medium_few_classes": [len(groups.many), len(groups.medium), len(groups.few)],
            "repeats": repeats, "samplers": samplers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="epochs timed per sampler")
    parser.add_argument("--json", help="also write the results to this path")
    args = parser.parse_args(argv)
    results = run(args.repeats)
    many, medium, few = results["many_medium_few_classes"]
    print(f"{results['num_samples']:,} samples, {results['num_classes']:,} classes "
          f"(largest {results['largest_class']:,}, smallest {results['smallest_class']}; "
          f"many/medium/few classes {many}/{medium}/{few}), median of {args.repeats} epochs")
    print(f"{'sampler':<26}{'build (ms)':>12}{'epoch (ms)':>12}")
    for name, timing in results["samplers"].items():
        build = "" if timing["build_s"] is None else f"{timing['build_s'] * 1e3:.1f}"
        print(f"{name:<26}{build:>12}{timing['epoch_s'] * 1e3:>12.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
