"""Training-input throughput of CMO with DALI, against the baseline and the reference approach.

Pipelines (``--pipelines``, comma-separated; the baseline always runs, ratios are to it):

  baseline         DALI, variant "none": decode + random-resized-crop, crop_mirror_normalize
  cmo              DALI CMO at the reference setting: alpha 1, probability 0.5 per batch,
                   only the pasted box of a foreground decoded (foreground_decode="region")
  cmo_p1           the same at probability 1.0 (every batch pasted)
  naive            DALI CMO decoding both streams fully every step, as the reference code
                   does (foreground_decode="naive"), probability 0.5
  full             DALI CMO decoding pasted foregrounds whole (foreground_decode="full"),
                   probability 0.5: what region decoding buys
  cmo_p0           (not run by default) the CMO pipeline at probability 0: its fixed cost over
                   the baseline (foreground source, box sampling, conditional, cmo_paste)
  cmo_cache        (not run by default) cmo with the foreground cache (``--fg-cache-gb`` GiB,
                   ``dali_cmo.data.fg_cache``), filled before timing (the steady state a run
                   reaches once every admitted image was pasted once; the fill is kept across
                   repetitions); the JSON has the hit rate of the timed batches and the one
                   ``fg_cache_model.py`` predicts for the list's class profile
  cmo_cache_p1     (not run by default) the same at probability 1.0: with a list the budget
                   holds whole (``--images-dir DIR --imbalance-ratio 1 --n-max 1``: each JPEG
                   once) every pasted foreground is a hit, so against ``cmo_p0`` and ``cmo_p1``
                   it times a hit and a miss in the pipeline (``fg_cache_model.py --in-situ``)
  torch_reference  the reference approach in torchvision: PIL decode, RandomResizedCrop, flip,
                   ToTensor, Normalize in DataLoader workers; a second DataLoader over a
                   WeightedRandomSampler (n_y^-1) for foregrounds, loaded every step; CutMix
                   pasted in the loop with probability 0.5 (benchmarks/torch_reference.py)
  torch_baseline   (not run by default) the torchvision loader alone, no CMO

Cost terms (not run by default; DALI work only, nothing converted to torch; images/s counts
samples): ``read`` reads P-stream bytes through ``external_source`` without decoding;
``fg_decode`` decodes the box window of pasted foregrounds (every sample pasted, its own box)
and nothing else: the least an exact region-decoding pipeline does per pasted foreground;
``fg_prepared`` prepares them as the CMO pipeline does for ``cmo_paste``
(``pipelines.training.pasted_foreground``).
  torch_reference  the reference approach in torchvision: PIL decode, RandomResizedCrop, flip,
                   ToTensor, Normalize in DataLoader workers; a second DataLoader over a
                   WeightedRandomSampler (n_y^-1) for foregrounds, loaded every step; CutMix
                   pasted in the loop with probability 0.5 (benchmarks/torch_reference.py)
  torch_baseline   (not run by default) the torchvision loader alone, no CMO
  baseline_python, cmo_python
                   (not run by default) baseline and cmo reading through the Python sources
                   (external_source, reader="python") instead of the native reader

Every pipeline delivers torch tensors (images N x 3 x S x S float32, labels, lam) on the
training device; images/s counts delivered images. Each repetition builds every pipeline
afresh, runs ``--warmup`` untimed batches, then times ``--batches`` batches; repetitions are
interleaved across pipelines (rep 1 of all, then rep 2, ...) so that load from other processes
spreads over all of them. Repetition r uses seed ``--seed + r`` moved to the nearest seed whose
per-batch paste coins hit exactly ``round(probability * batches)`` timed batches, so that a
short run is not skewed by a lucky coin; baseline and CMO pipelines of a repetition share the
seed and thus the background images. The printed and written figures are the median over
repetitions, with min and max; ratios are medians over repetitions too.

Besides wall-clock images/s, every measurement records the CPU time (user + system) spent by
the process and its DataLoader workers per delivered image. On a machine shared with other
work, wall-clock figures swing with the others' load; the CPU cost, and its ratio to the
baseline's (``cpu_ratios``, the throughput ratio when CPU is the bottleneck), stay steady.

``--augment jitter,randaugment`` adds, per recipe R (``dali_cmo.augment.recipes``), the rows
``baseline+R`` (DALI baseline with R on its stream), ``cmo+R`` (DALI CMO p=0.5 with R on both
streams, pasted foregrounds decoded whole: R is not pointwise) and ``torch_reference+R`` (the
torchvision re-creation of R, ``benchmarks/reference_transforms.py``, in the reference's two
DataLoaders); their ratios are to ``baseline+R``. ``--style cifar --augment autoaugment`` does
the same for the CIFAR recipe (32 px images: ``--split`` a CIFAR JPEG folder).

``--end-to-end`` adds training steps/s of a model fed by each loader (ResNet-50, AMP float16,
channels-last on the GPU; ``--model`` on the CPU, default mobilenet_v3_small channels-last):
the ratio to the baseline there is what a user feels.

Examples::

    python benchmarks/throughput.py --device cpu --json runs/throughput-cpu.json
    python benchmarks/throughput.py --device gpu --end-to-end --json runs/throughput-gpu.json
    python benchmarks/throughput.py --images-dir /data/jpegs --pipelines cmo,torch_reference
    python benchmarks/throughput.py --split ImageNet_LT_train.txt --root /data/imagenet
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts the repository root on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dali_cmo.augment.recipes import RECIPES  # noqa: E402

PIPELINES = {
    "baseline": dict(kind="dali", variant="none",
                     description="DALI baseline (decode+RRC, crop_mirror_normalize)"),
    "cmo": dict(kind="dali", variant="cmo", probability=0.5, foreground_decode="region",
                description="DALI CMO p=0.5, region decode (reference setting)"),
    "cmo_p1": dict(kind="dali", variant="cmo", probability=1.0, foreground_decode="region",
                   description="DALI CMO p=1.0, region decode"),
    "naive": dict(kind="dali", variant="cmo", probability=0.5, foreground_decode="naive",
                  description="DALI CMO p=0.5, both streams fully decoded every step"),
    "full": dict(kind="dali", variant="cmo", probability=0.5, foreground_decode="full",
                 description="DALI CMO p=0.5, pasted foregrounds decoded whole"),
    "cmo_p0": dict(kind="dali", variant="cmo", probability=0.0, foreground_decode="region",
                   description="DALI CMO p=0: its fixed cost"),
    "cmo_cache": dict(kind="dali", variant="cmo", probability=0.5, foreground_decode="region",
                      fg_cache=True, description="DALI CMO p=0.5, region decode, foreground "
                      "cache (filled)"),
    "cmo_cache_p1": dict(kind="dali", variant="cmo", probability=1.0, foreground_decode="region",
                         fg_cache=True, description="DALI CMO p=1.0, region decode, foreground "
                         "cache (filled)"),
    "read": dict(kind="term", graph="read", description="reading P-stream bytes, no decode"),
    "fg_decode": dict(kind="term", graph="fg_decode",
                      description="pasted foregrounds: region decode of the box window alone"),
    "fg_prepared": dict(kind="term", graph="fg_prepared",
                        description="pasted foregrounds as prepared for cmo_paste"),
    "torch_reference": dict(kind="torch", variant="cmo", probability=0.5,
                            description="torchvision reference CMO (PIL, 2 DataLoaders) p=0.5"),
    "torch_baseline": dict(kind="torch", variant="none",
                           description="torchvision loader alone (PIL), no CMO"),
    "baseline_python": dict(kind="dali", variant="none", reader="python",
                            description="DALI baseline, bytes from the Python source"),
    "cmo_python": dict(kind="dali", variant="cmo", probability=0.5, foreground_decode="region",
                       reader="python", description="DALI CMO p=0.5, bytes from the Python source"),
}
DEFAULT_PIPELINES = ("baseline", "cmo", "cmo_p1", "naive", "full", "torch_reference")
TARGETS = {"cmo": 0.80, "cmo_p1": 0.65, "cmo_cache": 0.90}  # README promise, ratio to baseline
EPOCHS = 1000  # with cmo_start=-1, cmo_end=0: pasting active from the first batch
_FILLED = {}  # cache name -> the pipeline that filled it: keeps the store across repetitions


# --------------------------------------------------------------------------- loaders

def spec_of(key: str) -> dict:
    """A pipeline key's settings: ``PIPELINES[base]`` plus the recipe after ``+`` (if any)."""
    base, _, augment = key.partition("+")
    return dict(PIPELINES[base], augment=augment or "standard")


def baseline_of(key: str) -> str:
    """The key a pipeline's ratios are to: the baseline with the same augmentation."""
    _, plus, augment = key.partition("+")
    return f"baseline{plus}{augment}"


class InProcessLoader:
    """A loader running one DALI pipeline (``self.pipe``) in this process: no worker pids."""

    def pids(self) -> list[int]:
        return []

    def close(self):
        del self.pipe
        self.pipe = None


class DaliLoader(InProcessLoader):
    """One of the repository's training pipelines, yielding ``(images, y_b, y_f, lam)``."""

    def __init__(self, dataset, config, device: str):
        from pipelines.training import TrainingPipeline
        self.training = TrainingPipeline(dataset, config, device=device,
                                         device_id=0 if device == "gpu" else None)
        self.pipe = self.training.build()
        cache = self.training.fg_cache
        if cache is not None and cache.name not in _FILLED:
            _FILLED[cache.name] = cache.fill(dataset, num_threads=config.num_threads)
        self.device = device
        self.batches = self.pasted = 0

    def cache_stats(self) -> dict | None:
        cache = self.training.fg_cache
        return None if cache is None else dict(cache.stats(), admitted=len(cache.admitted),
                                               expected_hit_rate=cache.expected_hit_rate)

    def __next__(self):
        from dali_cmo.data.iterator import run_naming_bad_files, to_torch
        try:
            outputs = run_naming_bad_files(self.pipe, self.device)
        except StopIteration:  # end of an epoch (small datasets)
            self.pipe.reset()
            outputs = run_naming_bad_files(self.pipe, self.device)
        images = to_torch(outputs[0], self.device)

        def small(batch):
            return to_torch(batch, self.device).reshape(-1)
        target_b = small(outputs[1]).long()
        self.batches += 1
        if len(outputs) == 2:
            return images, target_b, target_b, None
        lam = small(outputs[3])
        self.pasted += bool((lam.cpu() < 1.0).any())
        return images, target_b, small(outputs[2]).long(), lam


class TermLoader(InProcessLoader):
    """A cost-term pipeline (``read``, ``fg_decode``, ``fg_prepared``; see the module docstring)
    on the CPU; its outputs stay in DALI."""

    def __init__(self, dataset, config, graph: str):
        from nvidia.dali import fn, pipeline_def, types
        from dali_cmo.streams import PythonStreams, StreamSettings
        from pipelines.training import RRC_AREA, RRC_ASPECT, pasted_foreground
        streams = PythonStreams.for_variant(
            dataset, "cmo", StreamSettings(config.batch_size, config.seed, config.paste_schedule()))
        size = config.image_size

        @pipeline_def(batch_size=config.batch_size, num_threads=config.num_threads, device_id=None,
                      seed=config.seed, prefetch_queue_depth=config.prefetch)
        def term():
            if graph == "read":
                encoded, _ = fn.external_source(streams.background, num_outputs=2, batch=True,
                                                batch_info=True)
                return fn.peek_image_shape(encoded)
            encoded, _, _ = fn.external_source(streams.foreground, num_outputs=3, batch=True,
                                               batch_info=True)
            mirror = fn.random.coin_flip(probability=0.5)
            box, _ = fn.cmo_box(size=[size, size], alpha=config.alpha, per_sample=True)
            if graph == "fg_prepared":
                return pasted_foreground(encoded, box, mirror, config, "cpu", raw=False)
            anchor, window = fn.random_crop_generator(
                fn.peek_image_shape(encoded), random_area=RRC_AREA,
                random_aspect_ratio=RRC_ASPECT, num_attempts=10)
            start, extent, _ = fn.cmo_region(anchor, window, box, size=size,
                                             foreground_mirror=mirror)
            return fn.decoders.image_slice(encoded, start, extent, axes=[0, 1],
                                           normalized_anchor=False, normalized_shape=False,
                                           output_type=types.RGB)

        self.pipe = term()
        self.pipe.build()
        self.batches = self.pasted = 0

    def __next__(self):
        try:
            self.pipe.run()
        except StopIteration:
            self.pipe.reset()
            self.pipe.run()
        self.batches += 1



class TorchLoader:
    """The torchvision reference (``torch_reference.ReferenceLoader``) with the same interface."""

    def __init__(self, dataset, spec, args, seed: int, schedule):
        from torch_reference import ReferenceLoader
        coin = (lambda step: bool(schedule.flags(0, step, 1)[0])) if schedule else None
        self.loader = ReferenceLoader(dataset, variant=spec["variant"], batch_size=args.batch_size,
                                      workers=args.threads, image_size=args.image_size,
                                      probability=spec.get("probability", 0.5), alpha=args.alpha,
                                      device=args.device, seed=seed, coin=coin,
                                      augment=spec["augment"], style=args.style)
        self.batches = 0

    @property
    def pasted(self) -> int:
        return int(self.loader.pasted)

    def __next__(self):
        out = next(self.loader)
        self.batches += 1
        if len(out) == 2:
            return out[0], out[1], out[1], None
        return out

    def pids(self) -> list[int]:
        return self.loader.worker_pids()

    def close(self):
        self.loader.close()


def paste_schedule(probability: float, seed: int, per_sample: bool = False):
    from dali_cmo.streams.schedule import PasteSchedule
    return PasteSchedule(EPOCHS, -1, 0, probability, per_sample, seed)


def balanced_seed(seed: int, probability: float, first: int, count: int,
                  per_sample: bool = False) -> int:
    """The first seed >= ``seed`` whose per-batch coins paste exactly
    ``round(probability * count)`` of batches ``first .. first + count - 1``."""
    if per_sample or not 0 < probability < 1:
        return seed
    want = round(probability * count)
    for candidate in range(seed, seed + 100_000):
        schedule = paste_schedule(probability, candidate)
        if sum(bool(schedule.flags(0, it, 1)[0]) for it in range(first, first + count)) == want:
            return candidate
    return seed


def train_config(spec: dict, args, seed: int):
    from pipelines.training import TrainConfig
    return TrainConfig(style=args.style, variant=spec["variant"], batch_size=args.batch_size,
                       epochs=EPOCHS, cmo_start=-1, cmo_end=0,
                       probability=spec.get("probability", 0.5), alpha=args.alpha,
                       per_sample=args.per_sample, image_size=args.image_size,
                       foreground_decode=spec.get("foreground_decode", "region"),
                       dtype="float32", seed=seed, num_threads=args.threads,
                       prefetch=args.prefetch, augment=spec.get("augment", "standard"),
                       reader=spec.get("reader", "native"),
                       fg_cache_gb=args.fg_cache_gb if spec.get("fg_cache") else 0.0)


def make_loader(key: str, dataset, args, seed: int):
    spec = spec_of(key)
    if spec["kind"] == "dali":
        return DaliLoader(dataset, train_config(spec, args, seed), args.device)
    if spec["kind"] == "term":
        config = train_config(dict(variant="cmo", probability=1.0), args, seed)
        return TermLoader(dataset, config, spec["graph"])
    schedule = (paste_schedule(spec.get("probability", 0.5), seed, args.per_sample)
                if spec["variant"] == "cmo" else None)
    return TorchLoader(dataset, spec, args, seed, schedule)


# --------------------------------------------------------------------------- end to end

class Trainer:
    """One SGD step of a classifier on a CMO batch: ``lam * CE(y_b) + (1 - lam) * CE(y_f)``."""

    def __init__(self, name: str, num_classes: int, device: str):
        import torchvision
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        if name == "resnet32":
            from dali_cmo.training.models import resnet32
            model = resnet32(num_classes)
        else:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        self.model = model.to(self.device, memory_format=torch.channels_last).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                         weight_decay=1e-4)
        self.amp = device == "gpu"
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None

    def step(self, batch) -> None:
        images, target_b, target_f, lam = batch
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.model(images)
            if lam is None:
                loss = torch.nn.functional.cross_entropy(logits, target_b)
            else:
                ce = torch.nn.functional.cross_entropy
                loss = (lam * ce(logits, target_b, reduction="none")
                        + (1 - lam) * ce(logits, target_f, reduction="none")).mean()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()


# --------------------------------------------------------------------------- running

def measure(key: str, dataset, args, seed: int, warmup: int, batches: int, trainer=None) -> dict:
    """One repetition of one pipeline: seconds for ``batches`` timed batches (or train steps)."""
    sync = torch.cuda.synchronize if args.device == "gpu" else None
    loader = make_loader(key, dataset, args, seed)
    try:
        if trainer is None:
            def step():
                next(loader)
        else:
            def step():
                trainer.step(next(loader))
        start = {}

        def cache_stats():
            return getattr(loader, "cache_stats", lambda: None)()

        def mark():  # after warm-up: count pastes and CPU time of the timed batches only
            start.update(pasted=loader.pasted, pids=loader.pids(), cache=cache_stats())
            start["cpu"] = common.cpu_seconds(start["pids"])
        seconds = common.time_steps(step, warmup, batches, sync=sync, on_start=mark)
        cpu = common.cpu_seconds(start["pids"]) - start["cpu"]
        pasted = loader.pasted - start["pasted"]
        cache = cache_stats()
        if cache is not None:  # the timed batches' lookups (and the few prefetched after)
            hits, misses = (cache[k] - start["cache"][k] for k in ("hits", "misses"))
            cache.update(hits=hits, misses=misses, hit_rate=hits / max(hits + misses, 1))
    finally:
        loader.close()
        del loader
        gc.collect()
    images = batches * args.batch_size
    return {"seconds": seconds, "images_per_s": images / seconds,
            "steps_per_s": batches / seconds, "cpu_ms_per_image": 1000 * cpu / images,
            "paste_fraction": pasted / batches, "seed": seed,
            **({"fg_cache": cache} if cache is not None else {})}


def run_reps(keys, dataset, args, warmup, batches, label, trainer=None) -> dict:
    per_key = {key: [] for key in keys}
    for rep in range(args.reps):
        seed = balanced_seed(args.seed + 1000 * rep, 0.5, warmup, batches, args.per_sample)
        for key in keys:
            result = measure(key, dataset, args, seed, warmup, batches, trainer)
            per_key[key].append(result)
            print(f"[{label} rep {rep + 1}/{args.reps}] {key:16s} "
                  f"{result['images_per_s']:9.1f} img/s  {result['steps_per_s']:7.3f} steps/s  "
                  f"{result['cpu_ms_per_image']:6.2f} cpu-ms/img  "
                  f"pasted {result['paste_fraction']:.2f}  load {os.getloadavg()[0]:.1f}"
                  + (f"  cache hits {result['fg_cache']['hit_rate']:.2f}"
                     if "fg_cache" in result else ""),
                  file=sys.stderr, flush=True)
    return per_key


def summarize_runs(runs: dict) -> dict:
    out = {}
    for key, reps in runs.items():
        baseline = baseline_of(key)
        rates = [r["images_per_s"] for r in reps]
        entry = {"images_per_s": common.summarize(rates),
                 "steps_per_s": common.summarize([r["steps_per_s"] for r in reps]),
                 "cpu_ms_per_image": common.summarize([r["cpu_ms_per_image"] for r in reps]),
                 "paste_fraction": [r["paste_fraction"] for r in reps],
                 "seeds": [r["seed"] for r in reps]}
        if "fg_cache" in reps[0]:
            entry["fg_cache"] = [r["fg_cache"] for r in reps]
            entry["fg_cache_hit_rate"] = common.summarize([r["fg_cache"]["hit_rate"]
                                                           for r in reps])
        if baseline in runs:
            base = [r["images_per_s"] for r in runs[baseline]]
            paired = [a / b for a, b in zip(rates, base)]  # same repetition, same seed
            entry["ratio_to_baseline"] = common.summarize(paired)
            # the same ratio in CPU cost: baseline CPU per image over this one's
            base_cpu = [r["cpu_ms_per_image"] for r in runs[baseline]]
            entry["cpu_ratio_to_baseline"] = common.summarize(
                [b / r["cpu_ms_per_image"] for r, b in zip(reps, base_cpu)])
        out[key] = entry
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    data = parser.add_argument_group("data (default: the long-tailed list over the shared "
                                     "ImageNet samples)")
    data.add_argument("--images-dir", help="a folder of JPEGs, one class per file, repeated by "
                      "the ImageNet-LT-like profile (--imbalance-ratio, --n-max)")
    data.add_argument("--split", help="a split file, iNat JSON or image folder (load_dataset)")
    data.add_argument("--root", help="image root of --split")
    data.add_argument("--num-images", type=int, help="scale the long-tailed profile to about "
                      "this many images")
    data.add_argument("--imbalance-ratio", type=float, default=256.0)
    data.add_argument("--n-max", type=int, default=1280)
    parser.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES),
                        help=f"comma-separated subset of {', '.join(PIPELINES)} "
                        f"(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, help="default 64 (cpu) / 256 (gpu)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="DALI threads = DataLoader workers per loader (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--per-sample", action="store_true",
                        help="per-sample coins and boxes instead of the reference's per batch")
    parser.add_argument("--prefetch", type=int, default=2, help="DALI prefetch queue depth")
    parser.add_argument("--fg-cache-gb", type=float, default=8.0,
                        help="foreground cache budget of cmo_cache, GiB (default: %(default)s)")
    parser.add_argument("--batches", type=int, help="timed batches per repetition "
                        "(default 20 cpu / 100 gpu)")
    parser.add_argument("--warmup", type=int, help="untimed batches first (default 4 cpu / 20 gpu)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end-to-end", action="store_true",
                        help="also time training steps of a model fed by each loader")
    parser.add_argument("--model", help="end-to-end model: a torchvision classification model "
                        "or resnet32 (default resnet50 on gpu, mobilenet_v3_small on cpu)")
    parser.add_argument("--e2e-batches", type=int, help="timed steps (default 6 cpu / 50 gpu)")
    parser.add_argument("--e2e-warmup", type=int, help="untimed steps (default 2 cpu / 15 gpu)")
    parser.add_argument("--augment", default="",
                        help="comma-separated recipes (jitter, randaugment; autoaugment with "
                        "--style cifar): adds baseline+R, cmo+R, torch_reference+R")
    parser.add_argument("--style", choices=("imagenet", "cifar"), default="imagenet",
                        help="crop style of every pipeline (cifar: pad-4 crop of 32 px images)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 3 batches, 1 warm-up, 1 repetition")
    parser.add_argument("--json", help="write every figure, settings and the machine here")
    args = parser.parse_args(argv)

    gpu = args.device == "gpu"
    defaults = dict(batch_size=256 if gpu else 64, batches=100 if gpu else 20,
                    warmup=20 if gpu else 4, e2e_batches=50 if gpu else 6,
                    e2e_warmup=15 if gpu else 2, model="resnet50" if gpu else "mobilenet_v3_small")
    if args.quick:
        defaults.update(batches=3, warmup=1, e2e_batches=2, e2e_warmup=1)
        args.reps = 1
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    keys = [k.strip() for k in args.pipelines.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PIPELINES]
    if unknown:
        parser.error(f"unknown pipeline(s) {', '.join(unknown)}; choose from {', '.join(PIPELINES)}")
    args.keys = ["baseline"] + [k for k in dict.fromkeys(keys) if k != "baseline"]
    for recipe in filter(None, (r.strip() for r in args.augment.split(","))):
        if recipe not in RECIPES or recipe == "standard":
            parser.error(f"--augment: unknown recipe {recipe!r}; choose from "
                         f"{', '.join(r for r in RECIPES if r != 'standard')}")
        args.keys += [f"{base}+{recipe}" for base in ("baseline", "cmo", "torch_reference")]
    if gpu and not torch.cuda.is_available():
        parser.error("--device gpu needs a CUDA GPU (torch.cuda.is_available() is False)")
    if args.threads < 1 or args.batch_size < 1 or args.batches < 1 or args.reps < 1:
        parser.error("--threads, --batch-size, --batches and --reps must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import dali_cmo
    dali_cmo.load_plugin()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    machine = common.machine_description()
    dataset, described = common.benchmark_dataset(args.images_dir, args.split, args.root,
                                                  args.num_images, args.imbalance_ratio,
                                                  args.n_max)
    print(f"data: {described}", file=sys.stderr)
    started = time.time()
    loader_runs = run_reps(args.keys, dataset, args, args.warmup, args.batches, "loader")
    results = summarize_runs(loader_runs)
    e2e = None
    if args.end_to_end:
        trainer = Trainer(args.model, dataset.num_classes, args.device)
        e2e = summarize_runs(run_reps(args.keys, dataset, args, args.e2e_warmup,
                                      args.e2e_batches, "end-to-end", trainer))

    if "cmo_cache" in results:
        results["cmo_cache"]["fg_cache_predicted_hit_rate"] = predicted_hit_rate(dataset, args)
    for key in args.keys:
        spec = spec_of(key)
        results[key]["description"] = spec["description"]
        results[key]["kind"] = spec["kind"]
        if spec["kind"] == "dali":
            results[key]["config"] = asdict(train_config(spec, args, args.seed))
        if e2e:
            results[key]["end_to_end"] = e2e[key]
    ratios = {key: results[key]["ratio_to_baseline"]["median"] for key in args.keys}
    report = {
        "benchmark": "throughput",
        "settings": {
            "device": args.device, "dataset": described, "pipelines": args.keys,
            "batch_size": args.batch_size, "threads": args.threads, "style": args.style,
            "dataloader_workers_per_loader": args.threads, "image_size": args.image_size,
            "alpha": args.alpha, "per_sample": args.per_sample, "prefetch": args.prefetch,
            "fg_cache_gb": args.fg_cache_gb
            if {"cmo_cache", "cmo_cache_p1"} & set(args.keys) else None,
            "warmup_batches": args.warmup, "timed_batches": args.batches, "reps": args.reps,
            "seed": args.seed, "dtype": "float32", "quick": args.quick,
            "end_to_end": {"model": args.model, "warmup_steps": args.e2e_warmup,
                           "timed_steps": args.e2e_batches,
                           "amp": args.device == "gpu", "channels_last": True}
            if args.end_to_end else None,
            "statistic": "median over repetitions (min, max, spread_pct alongside); ratios "
                         "are medians of per-repetition ratios to the baseline; cpu ratios "
                         "are baseline CPU-ms per image over the pipeline's",
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "wall_seconds": round(time.time() - started, 1),
        },
        "machine": machine,
        "load_average_after": list(os.getloadavg()),
        "results": results,
        "ratios": ratios,
        "cpu_ratios": {key: results[key]["cpu_ratio_to_baseline"]["median"] for key in args.keys},
        "end_to_end_ratios": {key: e2e[key]["ratio_to_baseline"]["median"]
                              for key in args.keys} if e2e else None,
        "end_to_end_cpu_ratios": {key: e2e[key]["cpu_ratio_to_baseline"]["median"]
                                  for key in args.keys} if e2e else None,
        "targets": targets(results),
    }
    print(render(report))
    common.save_result(args.json, report)
    return report


def predicted_hit_rate(dataset, args) -> float:
    """The hit rate ``fg_cache_model.py`` predicts for the list's class profile at
    ``--fg-cache-gb`` (the mean decoded size of 64 of the list's images, Q's reference
    weights)."""
    from fg_cache_model import hit_rates
    from dali_cmo.data.fg_cache import decoded_bytes
    sample = np.linspace(0, len(dataset) - 1, 64).astype(int)
    row, = hit_rates(dataset.class_counts, decoded_bytes(dataset, sample).mean(),
                     [args.fg_cache_gb], "reference")
    return row["hit_rate"]


def targets(results: dict) -> dict:
    out = {}
    for key, minimum in TARGETS.items():
        if key in results:
            ratio = results[key]["ratio_to_baseline"]["median"]
            out[f"{key} >= {minimum:.2f} x baseline"] = {"ratio": ratio, "met": ratio >= minimum}
    if "cmo" in results and "torch_reference" in results:
        speedup = (results["cmo"]["images_per_s"]["median"]
                   / results["torch_reference"]["images_per_s"]["median"])
        out["cmo faster than torch_reference"] = {"ratio": speedup, "met": speedup > 1.0}
    return out


def render(report: dict) -> str:
    results, s = report["results"], report["settings"]
    e2e = s["end_to_end"] is not None
    headers = ["pipeline", "images/s", "min", "max", "x baseline", "cpu-ms/img", "x (cpu)",
               "pasted"]
    if e2e:
        headers += ["train steps/s", "min", "max", "x baseline", "x (cpu)"]
    rows = []
    for key, r in results.items():
        ims, ratio = r["images_per_s"], r["ratio_to_baseline"]
        row = [key, common.fmt(ims["median"]), common.fmt(ims["min"]), common.fmt(ims["max"]),
               f"{ratio['median']:.2f}", common.fmt(r["cpu_ms_per_image"]["median"], 2),
               f"{r['cpu_ratio_to_baseline']['median']:.2f}",
               f"{np.mean(r['paste_fraction']):.2f}"]
        if e2e:
            steps, eratio = r["end_to_end"]["steps_per_s"], r["end_to_end"]["ratio_to_baseline"]
            row += [common.fmt(steps["median"], 3), common.fmt(steps["min"], 3),
                    common.fmt(steps["max"], 3), f"{eratio['median']:.2f}",
                    f"{r['end_to_end']['cpu_ratio_to_baseline']['median']:.2f}"]
        rows.append(row)
    m = report["machine"]
    gpu = f", GPU {m['gpu']['name']}" if m.get("gpu") else ""
    lines = [f"throughput on {s['device']}: {m['cpu_count']} x {m['cpu_model']}{gpu}; "
             f"batch {s['batch_size']}, {s['threads']} threads/workers, {s['image_size']}px, "
             f"{s['reps']} reps x {s['timed_batches']} batches (+{s['warmup_batches']} warm-up)",
             f"data: {s['dataset']}", "", common.format_table(headers, rows), ""]
    if any("+" in key for key in results):
        lines.insert(2, "x baseline: to the baseline with the same augmentation (baseline+R)")
    if "cmo_cache" in results:
        r = results["cmo_cache"]
        lines.append(f"cmo_cache: {s['fg_cache_gb']:g} GiB, hit rate "
                     f"{r['fg_cache_hit_rate']['median']:.3f} in the timed batches; "
                     f"{r['fg_cache'][0]['expected_hit_rate']:.3f} expected from the images "
                     f"admitted, {r['fg_cache_predicted_hit_rate']:.3f} predicted by "
                     "fg_cache_model.py (the list's class profile, mean image size)")
    if "cmo_cache_p1" in results:
        r = results["cmo_cache_p1"]
        lines.append(f"cmo_cache_p1: {s['fg_cache_gb']:g} GiB, hit rate "
                     f"{r['fg_cache_hit_rate']['median']:.3f} in the timed batches")
    for name, t in report["targets"].items():
        lines.append(f"target {name}: {t['ratio']:.3f} -> {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
