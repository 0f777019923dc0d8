"""Would a cache of decoded foregrounds lift CMO past the exact-decode ceiling? A model.

Q draws class k's images with probability ``q_i`` (``dali_cmo.data.sampling.sample_weights``;
the reference scheme gives every class the same share), so a tail image is pasted again and
again, always decoding to the same pixels. A cache that keeps the images of highest ``q_i``
(smallest classes first) within a memory budget serves a pasted foreground from memory with
probability ``H = sum of q_i over the cached images`` (steady state; each cached image misses
once per run, when it is first decoded).

Cost per delivered image, in CPU-ms, from the measured cost terms (``benchmarks/throughput.py
--pipelines baseline,read,fg_decode,fg_prepared`` and ``baseline,cmo_p0``, CPU)::

    baseline                      B
    CMO at probability p          B + F + p * ((1 - H) * M + H * h)

``F`` is CMO's fixed cost at p = 0 (foreground source, box sampling, the conditional,
``cmo_paste``), ``M`` a pasted foreground decoded as today (``fg_prepared``: read, region
decode, resize), ``h`` one served from the cache: the resize that ``fg_prepared`` adds to
``fg_decode``, plus copying the cached window (timed here with NumPy on the average window).
The predicted ratio is ``B / cost``: what the CPU-bound pipeline delivers against the baseline.

Those isolated terms leave out what the pipeline pays around a decode: since the resize moved
into ``cmo_paste(..., resize_foreground=True)``, ``fg_prepared`` no longer resizes, so ``h``
came out as the copy alone (0.01 ms), while a hit still reads the file, draws its crop, is
resampled into its box while pasting and is copied out of the store. ``--in-situ JSON`` takes
every term from one run of the training pipelines instead (``throughput.py --pipelines
baseline,cmo_p0,cmo_p1,cmo_cache_p1`` over a list the cache holds whole, so that every pasted
foreground of ``cmo_cache_p1`` is a hit): ``B`` the baseline, ``F = cmo_p0 - B``,
``M = cmo_p1 - cmo_p0``, ``h = (cmo_cache_p1 - cmo_p0 - (1 - H1) M) / H1`` with ``H1`` that
row's hit rate.

Profiles (``--profiles``):
  imagenet-lt  1,000 classes, 115,846 images, 1,280 down to 5 per class, with ImageNet-LT's
               group sizes (385 classes > 100 images, 479 with 20..100, 136 < 20): a
               reconstruction through those anchors (a shifted power law in the head fitted to
               the total, log-linear below), not the split file's own counts
  inat2018     8,142 classes, 437,513 images, 1,000 down to 2 (``sampler_speed.py``'s profile)
Decoded size: the mean ``H x W x 3`` bytes of the JPEGs in ``--images`` (headers only).

    python benchmarks/fg_cache_model.py --json benchmarks/results/fg_cache_model.json \\
        --markdown benchmarks/results/fg_cache_model.md

``--write-split FILE`` also writes the ImageNet-LT profile as a split file over ``--images``
(class k: the k-th JPEG in name order, listed ``n_k`` times), for ``throughput.py --split FILE
--root <images>`` to measure the cache on that profile.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# common puts the repository root on sys.path
from common import REPO_ROOT, format_table, machine_description, write_json
from dali_cmo.data.sampling import sample_weights  # noqa: E402
from sampler_speed import inat_like_labels  # noqa: E402

GIB = 2 ** 30
RESULTS = REPO_ROOT / "benchmarks" / "results"


def imagenet_lt_counts() -> np.ndarray:
    """Per-class counts through ImageNet-LT's anchors: 1,280 at the head, just above 100 at
    rank 384, 100 down to 20 over the next 479 classes, 19 down to 5 over the last 136; the
    head is ``1280 * (1 + k / s)^-a`` with ``s`` fitted so that the total is 115,846."""
    medium = np.round(np.geomspace(100, 20, 479)).astype(np.int64)
    few = np.round(np.geomspace(19, 5, 136)).astype(np.int64)
    head_total = 115_846 - medium.sum() - few.sum()
    ranks = np.arange(385, dtype=np.float64)

    def head(scale: float) -> np.ndarray:
        exponent = np.log(1280 / 101) / np.log1p(384 / scale)
        return np.round(1280 * (1 + ranks / scale) ** -exponent).astype(np.int64)

    low, high = 1e-3, 1e6  # the head's total grows with the scale
    for _ in range(200):
        middle = np.sqrt(low * high)
        low, high = (middle, high) if head(middle).sum() <= head_total else (low, middle)
    counts = np.concatenate([head(low), medium, few])
    counts[:head_total - head(low).sum()] += 1  # the bisection's shortfall, one per head class
    return counts


PROFILES = {"imagenet-lt": imagenet_lt_counts,
            "inat2018": lambda: np.bincount(inat_like_labels())}


def jpeg_files(images: Path) -> list[Path]:
    return [p for p in sorted(images.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]


def write_split(path: Path, images: Path, counts: np.ndarray) -> None:
    """A split file over ``images``: class k is its k-th JPEG, listed ``counts[k]`` times."""
    files = jpeg_files(images)
    if len(files) < len(counts):
        raise SystemExit(f"error: --images {images}: {len(files)} JPEGs for {len(counts)} classes")
    with open(path, "w") as out:
        for k, (file, n) in enumerate(zip(files, counts)):
            out.write(f"{file.relative_to(images).as_posix()} {k}\n" * int(n))


def decoded_bytes(images: Path) -> np.ndarray:
    """``H * W * 3`` of every JPEG under ``images`` (decoders deliver RGB), from headers."""
    from PIL import Image
    sizes = []
    for path in jpeg_files(images):
        with Image.open(path) as image:
            sizes.append(image.width * image.height * 3)
    if not sizes:
        raise SystemExit(f"error: --images {images}: no JPEG files")
    return np.array(sizes, dtype=np.float64)


def cache_curve(counts: np.ndarray, scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``q_i`` in the order a highest-``q_i``-first cache admits classes, and the
    images and the share of Q's draws held before each class (every image of a class has the
    same ``q_i``)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    q_class = np.bincount(labels, weights=sample_weights(labels, scheme)) / counts
    order = np.argsort(-q_class, kind="stable")
    images_before = np.concatenate([[0], np.cumsum(counts[order])])
    share_before = np.concatenate([[0.0], np.cumsum((q_class * counts)[order])])
    return q_class[order], images_before, share_before


def hit_rates(counts: np.ndarray, image_bytes: float, budgets_gib, scheme: str) -> list[dict]:
    """For each budget: the images and whole classes the cache holds and the share of Q's
    draws it serves."""
    q_sorted, images_before, share_before = cache_curve(counts, scheme)
    rows = []
    for budget in budgets_gib:
        capacity = int(budget * GIB // image_bytes)
        whole = int(np.searchsorted(images_before, capacity, side="right")) - 1  # classes whole
        hit = share_before[whole]
        if whole < len(q_sorted):  # part of the next class
            hit += (capacity - images_before[whole]) * q_sorted[whole]
        rows.append({"budget_gib": budget, "cached_images": min(capacity, int(counts.sum())),
                     "cached_classes": whole, "hit_rate": float(min(hit, 1.0))})
    return rows


def budget_for(counts: np.ndarray, image_bytes: float, hit_rate: float, scheme: str) -> float:
    """GiB a highest-``q_i``-first cache needs to serve ``hit_rate`` of Q's draws."""
    q_sorted, images_before, share_before = cache_curve(counts, scheme)
    if hit_rate <= 0:
        return 0.0
    k = int(np.searchsorted(share_before, hit_rate)) - 1  # whole classes short of the rate
    images = images_before[k] + np.ceil((hit_rate - share_before[k]) / q_sorted[k] - 1e-9)
    return float(images * image_bytes / GIB)


def window_copy_ms(image_bytes: float, window_share: float = 0.5, repeats: int = 200) -> float:
    """Milliseconds to copy an average window (``window_share`` of an image of ``image_bytes``)
    out of a cached HWC image: what a hit does instead of reading and decoding."""
    side = int(np.sqrt(image_bytes / 3))
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    w = int(side * np.sqrt(window_share))
    start = time.perf_counter()
    for i in range(repeats):
        np.ascontiguousarray(image[i % 7:i % 7 + w, 3:3 + w])
    return 1e3 * (time.perf_counter() - start) / repeats


def predicted_ratio(terms: dict, hit: float, probability: float) -> float:
    cost = terms["B"] + terms["F"] + probability * ((1 - hit) * terms["M"] + hit * terms["h"])
    return terms["B"] / cost


def cost_terms(terms_json: Path, throughput_json: Path, copy_ms: float) -> dict:
    """B, F, M, h (CPU-ms per image, see the module docstring) from the committed results."""
    cpu = {k: v["cpu_ms_per_image"]["median"]
           for k, v in json.loads(terms_json.read_text())["results"].items()}
    p0_ratio = json.loads(throughput_json.read_text())["cpu_ratios"]["cmo_p0"]
    base = cpu["baseline"]
    return {"B": base, "F": base / p0_ratio - base, "M": cpu["fg_prepared"],
            # the resize fg_prepared adds to fg_decode; noise can make it negative
            "h": max(cpu["fg_prepared"] - cpu["fg_decode"], 0.0) + copy_ms}


def in_situ_terms(throughput_json: Path) -> dict:
    """B, F, M, h (CPU-ms per image) as the training pipelines pay them, from one
    ``throughput.py`` run with rows ``baseline``, ``cmo_p0``, ``cmo_p1`` and ``cmo_cache_p1``
    (see the module docstring)."""
    results = json.loads(throughput_json.read_text())["results"]
    cpu = {k: v["cpu_ms_per_image"]["median"] for k, v in results.items()}
    hit = results["cmo_cache_p1"]["fg_cache_hit_rate"]["median"]
    if hit <= 0:
        raise SystemExit(f"error: --in-situ {throughput_json}: cmo_cache_p1 hit nothing")
    miss = cpu["cmo_p1"] - cpu["cmo_p0"]
    return {"B": cpu["baseline"], "F": cpu["cmo_p0"] - cpu["baseline"], "M": miss,
            "h": (cpu["cmo_cache_p1"] - cpu["cmo_p0"] - (1 - hit) * miss) / hit,
            "cmo_cache_p1_hit_rate": hit}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--profiles", nargs="+", choices=tuple(PROFILES), default=list(PROFILES))
    add("--images", type=Path, default=None,
        help="JPEGs whose mean decoded size the cache holds (default: the shared ImageNet "
             "samples)")
    add("--budgets", type=float, nargs="+", default=[0, 1, 2, 4, 8], help="GiB")
    add("--probabilities", type=float, nargs="+", default=[0.5, 1.0])
    add("--scheme", default="reference", help="Q's weighting (sampling.sample_weights)")
    add("--terms", type=Path, default=RESULTS / "throughput_terms_cpu.json")
    add("--throughput", type=Path, default=RESULTS / "throughput_cpu.json")
    add("--in-situ", type=Path, default=None,
        help="take B, F, M and h from this throughput run (baseline, cmo_p0, cmo_p1, "
             "cmo_cache_p1) instead of --terms and --throughput")
    add("--target", type=float, default=0.90, help="ratio to the baseline asked of CMO p = 0.5")
    add("--json", type=Path, default=None)
    add("--markdown", type=Path, default=None)
    add("--write-split", type=Path, default=None,
        help="write the imagenet-lt profile over --images as a split file")
    args = parser.parse_args(argv)
    if args.images is None:
        from dali_cmo.data.shared_data import imagenet_samples_dir
        args.images = imagenet_samples_dir()
    if args.write_split:
        write_split(args.write_split, args.images, imagenet_lt_counts())
    sizes = decoded_bytes(args.images)
    terms = (in_situ_terms(args.in_situ) if args.in_situ else
             cost_terms(args.terms, args.throughput, window_copy_ms(sizes.mean())))
    # the hit rate the target needs at p = 0.5: B / (B + F + p (M - H (M - h))) = target
    p = 0.5
    needed = (terms["M"] - (terms["B"] / args.target - terms["B"] - terms["F"]) / p) \
        / (terms["M"] - terms["h"])
    measured = json.loads((args.in_situ or args.throughput).read_text())["cpu_ratios"]
    summary = {"decoded_mb_mean": sizes.mean() / 1e6, "decoded_mb_median": np.median(sizes) / 1e6,
               "terms_cpu_ms": terms, "terms_from": [str(path) for path in (
                   [args.in_situ] if args.in_situ else [args.terms, args.throughput])],
               "target": args.target,
               "hit_rate_needed_at_p05": needed, "ceiling_at_full_hits_p05":
                   predicted_ratio(terms, 1.0, p), "profiles": {}}
    lines = [f"Mean decoded image {sizes.mean() / 1e6:.2f} MB ({len(sizes)} JPEGs); CPU-ms per "
             f"image: baseline {terms['B']:.3f}, CMO fixed {terms['F']:.3f}, pasted foreground "
             f"decoded {terms['M']:.3f}, from the cache {terms['h']:.3f}. CMO p = 0.5 reaches "
             f"{args.target:.2f}x only with hit rate >= {needed:.2f} (every paste a hit: "
             f"{summary['ceiling_at_full_hits_p05']:.3f}x). Without a cache the model gives "
             f"{predicted_ratio(terms, 0, 0.5):.3f}x (p = 0.5) and {predicted_ratio(terms, 0, 1):.3f}x "
             f"(p = 1); measured: "
             + " and ".join(f"{measured[k]:.3f}x" if k in measured else "-"
                            for k in ("cmo", "cmo_p1")) + ".", ""]
    for name in args.profiles:
        counts = PROFILES[name]()
        rows = hit_rates(counts, sizes.mean(), args.budgets, args.scheme)
        for row in rows:
            row.update({f"ratio_p{q:g}": predicted_ratio(terms, row["hit_rate"], q)
                        for q in args.probabilities})
            # the other lever: CMO's fixed cost at p = 0 gone
            row["ratio_p0.5_no_fixed_cost"] = predicted_ratio({**terms, "F": 0.0},
                                                              row["hit_rate"], 0.5)
        groups = [int((counts > 100).sum()), int(((counts >= 20) & (counts <= 100)).sum()),
                  int((counts < 20).sum())]
        needed_gib = budget_for(counts, sizes.mean(), needed, args.scheme) if needed <= 1 \
            else None
        summary["profiles"][name] = {"classes": len(counts), "images": int(counts.sum()),
                                     "many_medium_few": groups, "budgets": rows,
                                     "budget_gib_for_target": needed_gib}
        lines += [f"{name}: {len(counts)} classes, {counts.sum()} images, many/medium/few "
                  f"classes {groups[0]}/{groups[1]}/{groups[2]}; the target needs "
                  + (f"{needed_gib:.1f} GiB" if needed_gib is not None else "more than hits")
                  + " of cache", "",
                  format_table(["budget GiB", "cached images", "whole classes", "hit rate",
                                *[f"ratio p={q:g}" for q in args.probabilities],
                                "p=0.5 without F"],
                               [[f"{r['budget_gib']:g}", r["cached_images"], r["cached_classes"],
                                 f"{r['hit_rate']:.3f}",
                                 *[f"{r[f'ratio_p{q:g}']:.3f}" for q in args.probabilities],
                                 f"{r['ratio_p0.5_no_fixed_cost']:.3f}"]
                                for r in rows]), ""]
    summary["machine"] = machine_description()
    table = "\n".join(lines)
    print(table)
    if args.json:
        write_json(args.json, summary)
    if args.markdown:
        args.markdown.write_text("```\n" + table + "\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
