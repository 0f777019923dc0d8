"""What a reduced-scale (DCT-domain) JPEG decode of pasted foregrounds could buy.

A pasted foreground needs only its box's source window, resized to the box. When that window
is at least k times the box in both axes (k = 2, 4, 8), libjpeg-turbo can run a k-times smaller
inverse DCT (``scale_denom = k``) instead of decoding at full scale and shrinking. Entropy
(Huffman) decoding is the same either way, and with region decoding the rows above the window
are still entropy-decoded; only IDCT, upsampling and colour conversion of the window shrink.

This script reports:
  * whether the installed DALI decoders or nvImageCodec expose such a decode (schema and
    ``DecodeParams`` arguments with "scale" in their name);
  * how often a pasted foreground allows it (Monte Carlo over the real image sizes: the
    random-resized-crop window, scale 0.08..1, aspect 3/4..4/3, a box of ``1 - lam``,
    ``lam ~ Beta(1, 1)``, at ``--size``);
  * libjpeg-turbo's cost split measured with Pillow (same library family): the entropy share
    ``e`` (a 1/8-scale decode runs entropy decoding and DC-only IDCTs) and the cost of the
    scaled IDCT stages relative to the full-scale ones;
  * the expected share of region-decode time a scaled decode would save, and the share spent
    in entropy decoding, from the model
    ``t_region = T * (e * rows + (1 - e) * area)`` (``rows``: fraction of MCU rows down to the
    window's bottom; ``area``: window share of the image);
  * how far a scaled decode is from the exact path (full decode, antialiased resize to the
    box): mean and max absolute uint8 difference over sampled windows.

Example::

    python benchmarks/reduced_decode.py --json runs/reduced-decode.json
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts the repository root on sys.path)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

SCALES = (2, 4, 8)


def exposed_scale_arguments() -> dict:
    """Arguments with "scale" in their name of DALI's decoders and nvImageCodec's DecodeParams."""
    from nvidia.dali import backend
    found = {}
    for op in ("decoders__Image", "decoders__ImageSlice", "decoders__ImageRandomCrop"):
        names = backend.GetSchema(op).GetArgumentNames()
        found[op] = [n for n in names if "scale" in n.lower()]
    try:
        import nvidia.nvimgcodec as nvimgcodec
        found["nvimgcodec.DecodeParams"] = [n for n in dir(nvimgcodec.DecodeParams)
                                            if "scale" in n.lower()]
    except ImportError:
        found["nvimgcodec.DecodeParams"] = None
    return found


def rrc_window(rng, h: int, w: int) -> tuple[int, int, int, int]:
    """A random-resized-crop window ``(y, x, ch, cw)`` (torchvision's rule, 10 attempts, then
    the whole image clipped to the aspect range)."""
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    return 0, 0, h, w


def pasted_windows(sizes, size: int, draws: int, seed: int):
    """Per draw: image index, source window ``(y, x, h, w)`` of the box, box ``(bh, bw)``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        i = int(rng.integers(len(sizes)))
        h, w = sizes[i]
        y, x, ch, cw = rrc_window(rng, h, w)
        cut = np.sqrt(1 - rng.beta(1.0, 1.0))
        bh, bw = int(size * cut), int(size * cut)
        cy, cx = int(rng.integers(size)), int(rng.integers(size))
        y1, y2 = np.clip([cy - bh // 2, cy + bh // 2], 0, size)
        x1, x2 = np.clip([cx - bw // 2, cx + bw // 2], 0, size)
        if y2 <= y1 or x2 <= x1:
            continue
        sy, sx = ch / size, cw / size
        out.append((i, (y + y1 * sy, x + x1 * sx, (y2 - y1) * sy, (x2 - x1) * sx),
                    (int(y2 - y1), int(x2 - x1))))
    return out


def best_scale(window, box) -> int:
    """The largest k in SCALES with the window at least k times the box in both axes (else 1)."""
    factor = min(window[2] / box[0], window[3] / box[1])
    return max([k for k in SCALES if factor >= k], default=1)


def decode_seconds(data: bytes, k: int, repeat: int) -> float:
    """Best-of-``repeat`` seconds of a Pillow decode at scale 1/k."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        image = Image.open(io.BytesIO(data))
        if k > 1:
            image.draft("RGB", (image.width // k, image.height // k))
        image.convert("RGB").load()
        best = min(best, time.perf_counter() - start)
    return best


def cost_split(files, repeat: int) -> dict:
    """Entropy share ``e`` and per-scale IDCT-stage cost ``c_k`` (relative to full scale):
    medians over files of per-file time ratios (each file's decodes run back to back, so load
    from other processes largely cancels)."""
    full, ratios = [], {k: [] for k in SCALES}
    for path in files:
        data = Path(path).read_bytes()
        t1 = decode_seconds(data, 1, repeat)
        full.append(t1)
        for k in SCALES:
            ratios[k].append(decode_seconds(data, k, repeat) / t1)
    entropy = float(np.median(ratios[8]))  # 1/8 scale: entropy decoding + DC-only IDCTs
    c = {k: max(0.0, (float(np.median(ratios[k])) - entropy) / (1 - entropy)) for k in SCALES}
    return {"entropy_share": entropy, "scaled_stage_cost": c,
            "full_decode_ms_median": 1000 * float(np.median(full))}


def saved_share(windows, sizes, split: dict) -> dict:
    """Shares of the expected region-decode time that a scaled decode saves and that entropy
    decoding takes (the part no exact decode of the file can skip), under the model."""
    e, c = split["entropy_share"], split["scaled_stage_cost"]
    spent = saved = entropy = 0.0
    counts = {k: 0 for k in (1,) + SCALES}
    for i, window, box in windows:
        h, w = sizes[i]
        area = window[2] * window[3] / (h * w)
        rows = min(1.0, (window[0] + window[2]) / h)
        cost = h * w * (e * rows + (1 - e) * area)  # in units of full-decode time per pixel
        k = best_scale(window, box)
        counts[k] += 1
        spent += cost
        entropy += h * w * e * rows
        if k > 1:
            saved += h * w * (1 - e) * area * (1 - c[k])
    n = len(windows)
    return {"draws": n, "fraction_by_scale": {str(k): counts[k] / n for k in counts},
            "saved_share_of_region_decode": saved / spent,
            "entropy_share_of_region_decode": entropy / spent}


def exactness(files, sizes, windows, limit: int) -> dict:
    """uint8 difference of scaled decode + resize vs full decode + resize, both antialiased."""
    diffs, maxima = [], []
    for i, window, box in [w for w in windows if best_scale(w[1], w[2]) > 1][:limit]:
        data = Path(files[i]).read_bytes()
        y, x, wh, ww = window
        k = best_scale(window, box)
        full = Image.open(io.BytesIO(data)).convert("RGB")
        exact = full.resize((box[1], box[0]), Image.BILINEAR, box=(x, y, x + ww, y + wh))
        small = Image.open(io.BytesIO(data))
        small.draft("RGB", (small.width // k, small.height // k))
        small = small.convert("RGB")
        fy, fx = small.height / sizes[i][0], small.width / sizes[i][1]
        approx = small.resize((box[1], box[0]), Image.BILINEAR,
                              box=(x * fx, y * fy, (x + ww) * fx, (y + wh) * fy))
        d = np.abs(np.asarray(exact, np.int16) - np.asarray(approx, np.int16))
        diffs.append(float(d.mean()))
        maxima.append(int(d.max()))
    return {"windows": len(diffs), "mean_abs_diff": float(np.mean(diffs)) if diffs else None,
            "max_abs_diff": int(np.max(maxima)) if maxima else None,
            "p99_of_window_max": float(np.percentile(maxima, 99)) if maxima else None}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--images-dir", help="JPEG folder (default: the shared ImageNet samples)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--draws", type=int, default=20000)
    parser.add_argument("--timed-files", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--exactness-windows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.images_dir:
        folder = Path(args.images_dir)
    else:
        from dali_cmo.data.shared_data import imagenet_samples_dir
        folder = imagenet_samples_dir()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    sizes = []
    for p in files:
        with Image.open(p) as image:
            sizes.append((image.height, image.width))
    windows = pasted_windows(sizes, args.size, args.draws, args.seed)
    step = max(1, len(files) // args.timed_files)
    split = cost_split(files[::step][:args.timed_files], args.repeat)
    report = {"benchmark": "reduced_decode", "images": str(folder), "size": args.size,
              "exposed_scale_arguments": exposed_scale_arguments(), "cost_split": split,
              "model": saved_share(windows, sizes, split),
              "exactness": exactness(files, sizes, windows, args.exactness_windows),
              "machine": common.machine_description()}
    for key in ("exposed_scale_arguments", "cost_split", "model", "exactness"):
        print(f"{key}: {report[key]}")
    if args.json:
        common.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
