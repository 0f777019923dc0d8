"""What reading costs: the native reader (``fn.readers.weighted_file``) against the Python source.

Two parts, in one run:

1. The reader alone: a pipeline that only reads the P stream (no decoding) and hands the
   encoded bytes to Python, with the native reader or with the Python source
   (``external_source`` over ``StreamSource``, its files read in a Python thread pool), with
   1 and 2 threads (DALI threads = the Python pool's threads). Figures: images/s, MB/s of
   encoded bytes and CPU milliseconds per image (user + system of the whole process: the
   source's own cost, since nothing else runs).
2. The training pipelines with each reader: ``baseline`` and ``cmo`` (p = 0.5, region decode)
   of ``benchmarks/throughput.py``, each with the native reader and with the Python source
   (``baseline_python``, ``cmo_python``), interleaved repetitions, images/s and CPU-ms/img.

Repetitions interleave the variants (rep 1 of all, then rep 2, ...); figures are medians.

Example::

    nice -n 10 python benchmarks/reader.py --json runs/reader-cpu.json
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
import throughput  # noqa: E402

READERS = ("native", "python")
PIPELINE_KEYS = ("baseline", "baseline_python", "cmo", "cmo_python")


def reader_stream(kind: str, dataset, batch_size: int, threads: int, seed: int):
    """The P stream of ``dataset`` as the native reader or as a Python source."""
    from dali_cmo.data.sampling import PermutationSampler
    from dali_cmo.streams.native import NativeStream
    from dali_cmo.streams.python import FileReader, StreamSource
    sampler = PermutationSampler(len(dataset), seed=seed)
    if kind == "native":
        return NativeStream(dataset, sampler, batch_size)
    return StreamSource(dataset, sampler, batch_size, reader=FileReader(threads))


def reader_pipeline(kind: str, dataset, batch_size: int, threads: int, seed: int):
    from nvidia.dali import pipeline_def

    stream = reader_stream(kind, dataset, batch_size, threads, seed)

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=None, seed=seed,
                  prefetch_queue_depth=2)
    def graph():
        return tuple(stream.read())

    pipe = graph()
    pipe.build()
    return pipe


def measure_reader(kind: str, dataset, args, threads: int, seed: int) -> dict:
    pipe = reader_pipeline(kind, dataset, args.batch_size, threads, seed)
    read = {"bytes": 0}

    def step():
        try:
            encoded, _ = pipe.run()
        except StopIteration:  # the Python source ends its epoch
            pipe.reset()
            encoded, _ = pipe.run()
        read["bytes"] += sum(shape[0] for shape in encoded.shape())

    start = {}

    def mark():
        start.update(cpu=common.cpu_seconds(), bytes=read["bytes"])
    try:
        seconds = common.time_steps(step, args.reader_warmup, args.reader_batches, on_start=mark)
        cpu = common.cpu_seconds() - start["cpu"]
    finally:
        del pipe
        gc.collect()
    images = args.reader_batches * args.batch_size
    return {"images_per_s": images / seconds,
            "mb_per_s": (read["bytes"] - start["bytes"]) / seconds / 1e6,
            "cpu_ms_per_image": 1000 * cpu / images}


def warm_page_cache(dataset) -> int:
    """Reads every distinct file once, so that no measurement pays for the first disk read;
    returns how many bytes that was."""
    total = 0
    for file in sorted(set(dataset.files)):
        total += len((dataset.root / file).read_bytes())
    return total


def reader_alone(dataset, args) -> dict:
    runs = {(kind, threads): [] for threads in args.thread_counts for kind in READERS}
    for rep in range(args.reps):
        for (kind, threads), results in runs.items():
            result = measure_reader(kind, dataset, args, threads, args.seed + rep)
            results.append(result)
            print(f"[reader rep {rep + 1}/{args.reps}] {kind:6s} {threads} thread(s) "
                  f"{result['images_per_s']:9.0f} img/s {result['mb_per_s']:8.1f} MB/s "
                  f"{result['cpu_ms_per_image']:6.3f} cpu-ms/img  load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
    out = {}
    for (kind, threads), results in runs.items():
        out[f"{kind}/{threads}"] = {
            "reader": kind, "threads": threads,
            **{name: common.summarize([r[name] for r in results])
               for name in ("images_per_s", "mb_per_s", "cpu_ms_per_image")}}
    for threads in args.thread_counts:
        native, python = out[f"native/{threads}"], out[f"python/{threads}"]
        native["speedup_over_python"] = common.summarize(
            [a["images_per_s"] / b["images_per_s"]
             for a, b in zip(runs[("native", threads)], runs[("python", threads)])])
        native["cpu_saving_ms_per_image"] = (python["cpu_ms_per_image"]["median"]
                                             - native["cpu_ms_per_image"]["median"])
    return out


def pipelines(dataset, args) -> dict:
    options = throughput.parse_args([  # throughput.py's settings for these pipelines
        "--device", "cpu", "--pipelines", ",".join(PIPELINE_KEYS),
        "--batch-size", str(args.batch_size), "--threads", str(args.pipeline_threads),
        "--image-size", str(args.image_size), "--reps", str(args.reps), "--seed", str(args.seed)])
    runs = throughput.run_reps(PIPELINE_KEYS, dataset, options, args.warmup, args.batches,
                               "pipelines")
    results = throughput.summarize_runs(runs)
    for key in PIPELINE_KEYS:
        results[key]["description"] = throughput.PIPELINES[key]["description"]
    for name in ("baseline", "cmo"):
        native, python = runs[name], runs[f"{name}_python"]
        results[name]["speedup_over_python"] = common.summarize(
            [a["images_per_s"] / b["images_per_s"] for a, b in zip(native, python)])
        results[name]["cpu_saving_ms_per_image"] = (
            results[f"{name}_python"]["cpu_ms_per_image"]["median"]
            - results[name]["cpu_ms_per_image"]["median"])
    return results


def render(report: dict) -> str:
    s = report["settings"]
    rows = []
    for key, r in report["reader_alone"].items():
        rows.append([f"reader alone, {r['reader']}", r["threads"],
                     common.fmt(r["images_per_s"]["median"], 0),
                     common.fmt(r["mb_per_s"]["median"], 1),
                     common.fmt(r["cpu_ms_per_image"]["median"], 3),
                     f"{r['speedup_over_python']['median']:.2f}" if "speedup_over_python" in r
                     else "-"])
    for key, r in report["pipelines"].items():
        rows.append([f"pipeline {key}", s["pipeline_threads"],
                     common.fmt(r["images_per_s"]["median"], 1), "-",
                     common.fmt(r["cpu_ms_per_image"]["median"], 3),
                     f"{r['speedup_over_python']['median']:.2f}" if "speedup_over_python" in r
                     else "-"])
    m = report["machine"]
    return "\n".join([
        f"reader on cpu: {m['cpu_count']} x {m['cpu_model']}; batch {s['batch_size']}, "
        f"{s['reps']} reps; reader alone {s['reader_batches']} batches "
        f"(+{s['reader_warmup']}), pipelines {s['batches']} batches (+{s['warmup']}) at "
        f"{s['image_size']}px", f"data: {s['dataset']}", "",
        common.format_table(["measurement", "threads", "images/s", "MB/s", "cpu-ms/img",
                             "x python"], rows)])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--images-dir", help="a folder of JPEGs (default: the shared ImageNet "
                        "samples), listed long-tailed as in benchmarks/throughput.py")
    parser.add_argument("--num-images", type=int, help="scale the long-tailed list to about "
                        "this many entries")
    parser.add_argument("--n-max", type=int, default=1280)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--thread-counts", default="1,2",
                        help="threads for the reader-alone part (default: %(default)s)")
    parser.add_argument("--pipeline-threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--reader-batches", type=int, default=150)
    parser.add_argument("--reader-warmup", type=int, default=10)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny counts, 1 rep")
    parser.add_argument("--json", help="write every figure, settings and the machine here")
    args = parser.parse_args(argv)
    if args.quick:
        args.reader_batches, args.reader_warmup, args.batches, args.warmup, args.reps = 3, 1, 2, 1, 1
    args.thread_counts = [int(t) for t in args.thread_counts.split(",")]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import dali_cmo
    dali_cmo.load_plugin()
    dataset, described = common.benchmark_dataset(args.images_dir, None, None, args.num_images,
                                                  256.0, args.n_max)
    print(f"data: {described}", file=sys.stderr)
    started = time.time()
    cached = warm_page_cache(dataset)
    report = {
        "benchmark": "reader",
        "machine": common.machine_description(),
        "reader_alone": reader_alone(dataset, args),
        "pipelines": pipelines(dataset, args),
    }
    report["settings"] = {
        "dataset": described, "distinct_file_bytes_cached": cached,
        "batch_size": args.batch_size, "thread_counts": args.thread_counts,
        "pipeline_threads": args.pipeline_threads, "image_size": args.image_size,
        "reader_batches": args.reader_batches, "reader_warmup": args.reader_warmup,
        "batches": args.batches, "warmup": args.warmup, "reps": args.reps, "seed": args.seed,
        "statistic": "median over repetitions; speedups are medians of per-repetition ratios; "
                     "cpu-ms/img is user + system time of the process per delivered image",
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "wall_seconds": round(time.time() - started, 1),
        "load_average_after": list(os.getloadavg()),
    }
    print(render(report))
    common.save_result(args.json, report)
    return report


if __name__ == "__main__":
    main()
