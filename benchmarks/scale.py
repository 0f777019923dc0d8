"""What a long list costs: loading, P and Q epochs, the native CMO pipeline's start-up and
memory, the checkpoint and the dataset tools, at 115.8K to 10M images.

Per list length N, a split file of N lines with ``sampler_speed.py``'s iNat-like profile
(:data:`SIZES`: classes and head size per N, tail 2 images), every path a distinct name for
one of the shared ImageNet JPEGs (``train_val/Plantae/<jjjjj>/<file>``, each ``<jjjjj>`` a
symbolic link to the JPEG folder). Each measurement runs in a fresh process, so its peak RSS
(``wait4``'s ``ru_maxrss``) is its own:

* ``load``: ``load_dataset`` as ``train.py`` calls it (every file checked to exist);
* ``samplers``: building P and Q (Q's weights and CDF) and the slowest of two epochs of each;
* ``pipeline``: load, ``TrainingPipeline(variant="cmo", reader="native")`` for shard 0 of
  ``R`` ranks, ``build()`` and the first batch; ``first_batch_s`` is load + build + first batch;
* ``checkpoint``: the bytes of the trainer's stream position (``CMOIterator.state_dict()``,
  torch.save'd) after one batch;
* ``stats`` / ``check``: ``python -m dali_cmo stats`` and ``check`` (no decode) wall time.

    python benchmarks/scale.py [--sizes 115846 437513 2700000 10000000] [--ranks 1 8]
        [--label after] [--json benchmarks/results/scale_cpu.json] [--work DIR]

``--json`` merges this run's rows under ``--label`` into the file (other labels are kept) and
writes the markdown table beside it (same name, ``.md``).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, machine_description, write_json  # noqa: F401 (sys.path)
from sampler_speed import inat_like_labels

# N -> (what it is like, classes, head class size)
SIZES = {115_846: ("ImageNet-LT", 1_000, 1_280), 437_513: ("iNat 2018", 8_142, 1_000),
         2_700_000: ("iNat 2021", 10_000, 4_000), 10_000_000: ("web scale", 10_000, 15_000)}
FILES_PER_LINK = 1_000  # one link folder per this many list entries (distinct paths)
STEPS = ("load", "samplers", "pipeline", "checkpoint", "stats", "check")


# --------------------------------------------------------------------------- the lists

def write_list(folder: Path, num_samples: int, images_dir: Path) -> Path:
    """``folder/list_<N>.txt`` (reused when present) and its link folders."""
    split = folder / f"list_{num_samples}.txt"
    if split.exists():
        return split
    _, num_classes, n_max = SIZES[num_samples]
    labels = inat_like_labels(0, num_samples, num_classes, n_max)
    jpegs = sorted(p.name for p in images_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    links = folder / "train_val" / "Plantae"
    links.mkdir(parents=True, exist_ok=True)
    for j in range(-(-num_samples // FILES_PER_LINK)):
        link = links / f"{j:05d}"
        if not link.exists():
            link.symlink_to(images_dir.resolve(), target_is_directory=True)
    partial = split.with_suffix(".partial")
    with open(partial, "w") as f:
        for start in range(0, num_samples, 100_000):
            f.write("".join(f"train_val/Plantae/{i // FILES_PER_LINK:05d}/"
                            f"{jpegs[i % len(jpegs)]} {label}\n"
                            for i, label in enumerate(labels[start:start + 100_000].tolist(),
                                                      start)))
    partial.rename(split)
    return split


# --------------------------------------------------------------------------- measurements

def _load(split: str, check_files: bool = True):
    from dali_cmo.data.datasets import load_dataset
    return load_dataset(split, check_files=check_files)


def _timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def measure_load(args) -> dict:
    _, seconds = _timed(_load, args.list)
    return {"load_s": seconds}


def measure_samplers(args) -> dict:
    from dali_cmo.data.sampling import PermutationSampler, WeightedSampler, sample_weights
    dataset = _load(args.list, check_files=False)
    out = {}
    for name, build in (("P", lambda: PermutationSampler(len(dataset), seed=0)),
                        ("Q", lambda: WeightedSampler(sample_weights(dataset.labels), seed=0))):
        sampler, out[f"{name}_build_s"] = _timed(build)
        out[f"{name}_epoch_s"] = max(_timed(sampler.indices, epoch)[1] for epoch in (0, 1))
    return out


def _training_pipeline(args, dataset):
    from pipelines.training import TrainConfig, TrainingPipeline
    config = TrainConfig(variant="cmo", batch_size=args.batch_size, image_size=args.image_size,
                         epochs=10, cmo_start=-1, probability=1.0, num_threads=2,
                         reader="native")
    return TrainingPipeline(dataset, config, shard_id=0, num_shards=args.ranks[0])


def measure_pipeline(args) -> dict:
    start = time.perf_counter()
    dataset, load_s = _timed(_load, args.list)
    pipe, build_s = _timed(lambda: _training_pipeline(args, dataset).build())
    _, batch_s = _timed(pipe.run)
    return {"load_s": load_s, "build_s": build_s, "batch_s": batch_s,
            "first_batch_s": time.perf_counter() - start}


def measure_checkpoint(args) -> dict:
    import torch

    from dali_cmo.data.iterator import CMOIterator
    iterator = CMOIterator(_training_pipeline(args, _load(args.list, check_files=False)))
    next(iterator.epoch_batches())
    buffer = io.BytesIO()
    torch.save(iterator.state_dict(), buffer)
    return {"checkpoint_bytes": buffer.getbuffer().nbytes}


MEASURES = {"load": measure_load, "samplers": measure_samplers, "pipeline": measure_pipeline,
            "checkpoint": measure_checkpoint}


def run_child(command: list[str], timeout: float) -> tuple[dict, float, float]:
    """``command``'s last stdout line as JSON (``{}`` when not JSON), its wall seconds and peak
    RSS (GB); fails naming the command when it fails."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode(errors="replace")
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} failed ({child.returncode}):\n"
                           f"{text[-3000:]}")
    try:
        result = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {}
    return result, seconds, usage.ru_maxrss / 2 ** 20  # KiB -> GiB


def measure_size(split: Path, args) -> dict:
    """Every step of :data:`STEPS` asked for, each in its own process."""
    me = [sys.executable, str(Path(__file__).resolve())]
    row: dict = {}
    for step in args.steps:
        if step in ("stats", "check"):
            command = [sys.executable, "-m", "dali_cmo", step, str(split)]
            command += ["--no-check-files"] if step == "stats" else []
            runs = [(step, command)]
        else:
            runs = [(f"pipeline_{ranks}_ranks" if step == "pipeline" else step,
                     me + ["--measure", step, "--list", str(split), "--ranks", str(ranks),
                           "--batch-size", str(args.batch_size),
                           "--image-size", str(args.image_size)])
                    for ranks in (args.ranks if step == "pipeline" else [1])]
        for key, command in runs:
            result, seconds, rss = run_child(command, args.timeout)
            row[key] = {**result, "wall_s": seconds, "peak_rss_gb": rss}
            print(f"  {key}: {json.dumps(row[key])}", file=sys.stderr, flush=True)
    return row


# --------------------------------------------------------------------------- tables

def _cell(row: dict, step: str, key: str, digits: int = 2) -> str:
    value = row.get(step, {}).get(key)
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    """One table row per label and list length."""
    head = ("| run | N | load (s) | P / Q epoch (s) | build (s) | to first batch (s) "
            "| peak RSS 1 / 8 ranks (GB) | checkpoint (KB) | stats / check (s) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for label, run in results["runs"].items():
        for n, row in run["sizes"].items():
            size = row.get("checkpoint", {}).get("checkpoint_bytes")
            lines.append(
                f"| {label} | {int(n):,} | {_cell(row, 'load', 'load_s')} "
                f"| {_cell(row, 'samplers', 'P_epoch_s')} / {_cell(row, 'samplers', 'Q_epoch_s')} "
                f"| {_cell(row, 'pipeline_1_ranks', 'build_s')} "
                f"| {_cell(row, 'pipeline_1_ranks', 'first_batch_s')} "
                f"| {_cell(row, 'pipeline_1_ranks', 'peak_rss_gb')} / "
                f"{_cell(row, 'pipeline_8_ranks', 'peak_rss_gb')} "
                f"| {'-' if size is None else f'{size / 1e3:,.1f}'} "
                f"| {_cell(row, 'stats', 'wall_s', 1)} / {_cell(row, 'check', 'wall_s', 1)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 8],
                        help="shard 0 of this many ranks, one pipeline measurement each")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images-dir", type=Path,
                        help="the JPEGs the lists point at (default: the shared ImageNet samples)")
    parser.add_argument("--work", type=Path,
                        help="folder for the lists (kept; default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--label", default="run", help="the rows' name in --json")
    parser.add_argument("--json", type=Path, help="merge the results into this file")
    parser.add_argument("--measure", choices=list(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # one measurement, in this fresh process
        print(json.dumps(MEASURES[args.measure](args)))
        return 0

    if args.images_dir is None:
        from dali_cmo.data.shared_data import imagenet_samples_dir
        args.images_dir = imagenet_samples_dir()
    temporary = None if args.work else tempfile.TemporaryDirectory(prefix="dali_cmo_scale_")
    work = args.work or Path(temporary.name)
    work.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for n in args.sizes:
        print(f"N = {n:,} ({SIZES[n][0]})", file=sys.stderr)
        sizes[str(n)] = {"like": SIZES[n][0], "classes": SIZES[n][1], "head": SIZES[n][2],
                         **measure_size(write_list(work, n, args.images_dir), args)}
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() \
        else {"runs": {}}
    run = results["runs"].setdefault(args.label, {"sizes": {}})
    run["sizes"].update(sizes)
    run.update(settings={"batch_size": args.batch_size, "image_size": args.image_size,
                         "ranks": args.ranks, "num_threads": 2},
               machine=machine_description())
    print(markdown({"runs": {args.label: {"sizes": sizes}}}))
    if args.json:
        write_json(args.json, results)
        args.json.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
