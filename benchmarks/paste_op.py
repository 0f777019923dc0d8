"""Micro-benchmark: the fused ``cmo_paste`` operator alone against ``crop_mirror_normalize``.

Both get the same fixed, pre-made uint8 HWC batch from memory (``external_source``; on the CPU
without a copy) and produce what a training pipeline ends with: CHW, normalised with the
ImageNet mean/std, float32 (or ``--dtype float16``), with a random horizontal flip.

  feed       the inputs alone (background and foreground; only their shapes are output): the
             pipeline's fixed overhead
  cmn        fn.crop_mirror_normalize(background, mirror=coin, mean, std, dtype, "CHW")
  paste      fn.cmo_paste(background, foreground, probability=1.0, mirror=coin,
             foreground_mirror=coin, mean, std, dtype, "CHW"): a box pasted on every image
  paste_box  the same with a fixed box argument (the central half of the area) and a
             foreground of the box's size; half the area is more than the average box of
             alpha = 1 (about a third after clipping), so this is the heavier case
  resize_paste  the unfused region path: a foreground region RESIZE_FACTOR times the box's side
             (as decoders.image_slice returns it), fn.resize to the box, then paste_box
  fused_resize  the same region resampled into the box by cmo_paste(resize_foreground=True),
             as the region-decoding training pipeline does it

The promise (README, Performance): the fused paste + normalise adds no memory pass, so its time
is at most 1.2x that of crop_mirror_normalize. ``time_ratio`` is ``t(paste) / t(cmn)``;
``net_time_ratio`` subtracts the ``feed`` time from both. ``fused_vs_unfused`` is
``t(fused_resize) / t(resize_paste)``.

    python benchmarks/paste_op.py --device cpu --json runs/paste-op-cpu.json
    python benchmarks/paste_op.py --device gpu --json runs/paste-op-gpu.json
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts the repository root on sys.path)

import numpy as np  # noqa: E402

from dali_cmo.constants import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

MEAN, STD = IMAGENET_MEAN, IMAGENET_STD
PIPELINES = ("feed", "cmn", "paste", "paste_box", "resize_paste", "fused_resize")
TARGET = 1.2
RESIZE_FACTOR = 1.4  # region side / box side: a region decode shrunk into its box


def make_batch(batch_size: int, size: int, seed: int) -> np.ndarray:
    """A smooth-ish random uint8 N x H x W x 3 batch (content does not change the ops' cost)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (batch_size, size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(coarse.repeat(8, 1).repeat(8, 2)[:, :size, :size])


def central_box(size: int) -> np.ndarray:
    """``[y1, x1, y2, x2]`` of the central square with half the image's area."""
    side = int(round(size / np.sqrt(2)))
    lo = (size - side) // 2
    return np.array([lo, lo, lo + side, lo + side], dtype=np.int32)


def build(name: str, args, background, foreground, region, box, big_region):
    """A pipeline ``name`` over the fixed batches (numpy on CPU, torch CUDA tensors on GPU)."""
    from nvidia.dali import fn, pipeline_def, types

    gpu = args.device == "gpu"
    dtype = types.FLOAT16 if args.dtype == "float16" else types.FLOAT

    def feed(batch):
        # CPU: DALI reads the caller's memory (no copy). GPU: a device-to-device copy.
        return fn.external_source(source=lambda: batch, batch=True, layout="HWC",
                                  device="gpu" if gpu else "cpu", no_copy=not gpu)

    @pipeline_def(batch_size=args.batch_size, num_threads=args.threads,
                  device_id=0 if gpu else None, seed=args.seed, prefetch_queue_depth=2)
    def graph():
        bg = feed(background)
        flip_b = fn.random.coin_flip(probability=0.5)
        if name == "feed":  # both inputs fed, only their shapes (a few bytes) come out
            return bg.shape(), feed(foreground).shape()
        if name == "cmn":
            return fn.crop_mirror_normalize(bg, mirror=flip_b, mean=MEAN, std=STD, dtype=dtype,
                                            output_layout="CHW")
        flip_f = fn.random.coin_flip(probability=0.5)
        common_args = dict(mirror=flip_b, foreground_mirror=flip_f, mean=MEAN, std=STD,
                           dtype=dtype, output_layout="CHW")
        if name == "paste":
            return tuple(fn.cmo_paste(bg, feed(foreground), probability=1.0, **common_args))
        boxes = fn.external_source(source=lambda: box, batch=True)
        if name == "paste_box":
            fg = feed(region)
        elif name == "resize_paste":
            y1, x1, y2, x2 = box[0].tolist()
            fg = fn.resize(feed(big_region), size=[y2 - y1, x2 - x1])
        else:  # fused_resize
            fg = feed(big_region)
            common_args["resize_foreground"] = True
        return tuple(fn.cmo_paste(bg, fg, box=boxes, **common_args))

    pipe = graph()
    pipe.build()
    return pipe


def measure(name: str, args, inputs) -> float:
    """Seconds for ``args.batches`` iterations after ``args.warmup`` untimed ones."""
    sync = None
    if args.device == "gpu":
        import torch
        sync = torch.cuda.synchronize
    pipe = build(name, args, *inputs)
    try:
        return common.time_steps(pipe.run, args.warmup, args.batches, sync=sync)
    finally:
        del pipe
        gc.collect()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-size", type=int, help="default 64 (cpu) / 256 (gpu)")
    parser.add_argument("--size", type=int, default=224, help="image height = width")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--batches", type=int, help="timed iterations (default 50 cpu / 500 gpu)")
    parser.add_argument("--warmup", type=int, help="untimed iterations (default 5 cpu / 50 gpu)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 iterations, 1 rep")
    parser.add_argument("--json", help="write the figures, settings and the machine here")
    args = parser.parse_args(argv)
    gpu = args.device == "gpu"
    defaults = dict(batch_size=256 if gpu else 64, batches=500 if gpu else 50,
                    warmup=50 if gpu else 5)
    if args.quick:
        defaults.update(batches=3, warmup=1)
        args.reps = 1
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if gpu:
        import torch
        if not torch.cuda.is_available():
            parser.error("--device gpu needs a CUDA GPU (torch.cuda.is_available() is False)")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import dali_cmo
    dali_cmo.load_plugin()
    machine = common.machine_description()
    n, size = args.batch_size, args.size
    box = central_box(size)
    background = make_batch(n, size, args.seed)
    foreground = make_batch(n, size, args.seed + 1)
    region = np.ascontiguousarray(foreground[:, box[0]:box[2], box[1]:box[3]])
    big_side = int(round((box[2] - box[0]) * RESIZE_FACTOR))
    big_region = make_batch(n, big_side, args.seed + 2)
    boxes = [box] * n
    if args.device == "gpu":
        import torch
        background, foreground, region, big_region = (
            torch.from_numpy(a).cuda() for a in (background, foreground, region, big_region))
    else:
        background, foreground, region, big_region = (
            [a for a in batch] for batch in (background, foreground, region, big_region))
    inputs = (background, foreground, region, boxes, big_region)

    started = time.time()
    seconds = {name: [] for name in PIPELINES}
    for rep in range(args.reps):  # interleaved, so that outside load hits every pipeline alike
        for name in PIPELINES:
            seconds[name].append(measure(name, args, inputs))
            print(f"[rep {rep + 1}/{args.reps}] {name:10s} "
                  f"{args.batches * n / seconds[name][-1]:12.1f} img/s",
                  file=sys.stderr, flush=True)

    results = {}
    for name in PIPELINES:
        results[name] = {
            "images_per_s": common.summarize([args.batches * n / s for s in seconds[name]]),
            "ms_per_batch": common.summarize([1000 * s / args.batches for s in seconds[name]]),
        }
    ratios = {}
    for name in ("paste", "paste_box", "resize_paste", "fused_resize"):
        pairs = list(zip(seconds[name], seconds["cmn"], seconds["feed"]))
        ratios[name] = {
            "time_ratio": common.summarize([p / c for p, c, _ in pairs]),
            "net_time_ratio": common.summarize([(p - f) / (c - f) for p, c, f in pairs
                                                if c > f]) if any(c > f for _, c, f in pairs)
            else None,
        }
    ratios["fused_vs_unfused"] = {"time_ratio": common.summarize(
        [f / u for f, u in zip(seconds["fused_resize"], seconds["resize_paste"])])}
    ratio = ratios["paste"]["time_ratio"]["median"]
    report = {
        "benchmark": "paste_op",
        "settings": {"device": args.device, "batch_size": n, "size": size,
                     "threads": args.threads, "dtype": args.dtype, "layout": "CHW",
                     "warmup_batches": args.warmup, "timed_batches": args.batches,
                     "reps": args.reps, "seed": args.seed, "quick": args.quick,
                     "paste_box": box.tolist(), "resize_region_side": big_side,
                     "statistic": "median over repetitions; ratios are medians of "
                                  "per-repetition time ratios",
                     "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                     "wall_seconds": round(time.time() - started, 1)},
        "machine": machine,
        "load_average_after": list(os.getloadavg()),
        "results": results,
        "ratios": ratios,
        "target": {"paste time <= 1.2 x cmn time": {"ratio": ratio, "met": ratio <= TARGET}},
    }
    rows = []
    for name in PIPELINES:
        ims, ms = results[name]["images_per_s"], results[name]["ms_per_batch"]
        r = ratios.get(name)
        rows.append([name, common.fmt(ims["median"]), common.fmt(ims["min"]), common.fmt(ims["max"]),
                     common.fmt(ms["median"], 2),
                     f"{r['time_ratio']['median']:.2f}" if r else ("1.00" if name == "cmn" else "-"),
                     f"{r['net_time_ratio']['median']:.2f}" if r and r["net_time_ratio"] else "-"])
    print(f"paste_op on {args.device}: {machine['cpu_count']} x {machine['cpu_model']}"
          f"{', GPU ' + machine['gpu']['name'] if machine.get('gpu') else ''}; batch {n} of "
          f"{size}x{size}x3 uint8 -> CHW {args.dtype}, {args.threads} threads, "
          f"{args.reps} reps x {args.batches} batches\n")
    print(common.format_table(["pipeline", "images/s", "min", "max", "ms/batch", "t / t(cmn)",
                               "net of feed"], rows))
    print(f"\ntarget paste time <= {TARGET} x cmn: {ratio:.2f} -> "
          f"{'met' if ratio <= TARGET else 'MISSED'}")
    fused = ratios["fused_vs_unfused"]["time_ratio"]["median"]
    print(f"fused resize: {fused:.2f} x the time of fn.resize + paste ({big_side} px regions "
          f"into {box[2] - box[0]} px boxes)")
    common.save_result(args.json, report)
    return report


if __name__ == "__main__":
    main()
