"""Long-tailed image classification with CMO on DALI.

``python train.py`` with no arguments trains a ResNet-32 with CE + CMO on a built-in synthetic
long-tailed data set (10 classes, 300 down to 3 training images per class, generated once into
the cache folder) and prints overall / many / medium / few accuracy; it takes a few minutes on a
laptop CPU. Real runs::

    # CIFAR-10-LT (imbalance 100) from an extracted CIFAR-10 JPEG tree (train/, test/):
    python train.py --dataset cifar10-lt --data /path/to/cifar10-jpeg --loss bs
    # ImageNet-LT / Places-LT / iNat 2018 split files (one "relative/path.jpg label" per line):
    torchrun --nproc_per_node 8 train.py --preset imagenet-lt \
        --data ImageNet_LT_train.txt --root /data/imagenet \
        --val-data ImageNet_LT_test.txt
    python train.py --preset inat2018 --data train2018.json --root /data/inat \
        --val-data val2018.json
    # any image folder with train/ and val/ (or test/) sub-folders of class folders:
    python train.py --preset imagenet-lt --data /data/my_lt_folder

``--preset`` picks one of the reference recipes (``dali_cmo.training.recipes.PRESETS``); every value
it sets can be overridden on the command line. A run writes into ``--output`` (default
``runs/<name>``): ``checkpoint.pt`` (every epoch and on SIGTERM/SIGINT; the one before is kept
as ``checkpoint.prev.pt``), ``log.jsonl`` (one line per epoch), ``metrics.json`` (``top1``,
``many``, ``medium``, ``few``, ``per_class``, throughput, arguments), ``per_class_accuracy.png``
and ``cmo_samples.png`` (the first pasted training batch). ``--resume auto`` continues the run
in ``--output`` exactly where it stopped.

The loss of a mixed batch is ``lam * L(out, y_b) + (1 - lam) * L(out, y_f)`` with the
background share ``lam`` the operator emits (1 where nothing was pasted).

Several GPUs or nodes: ``torchrun`` (``python -m torch.distributed.run``); every rank reads its
own shard of P (and Q) and of the evaluation set; the batch size is per rank.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from dali_cmo.data.datasets import DatasetError, load_dataset, long_tailed_subset, read_image_folder
from dali_cmo.data.sampling import SCHEMES
from dali_cmo.data.sources import VARIANTS
from dali_cmo.training.checkpoint import (CHECKPOINT, StopRequest, load_checkpoint, rng_states,
                                          save_checkpoint, set_rng_states)
from dali_cmo.training.distributed import all_reduce_sum, init_distributed
from dali_cmo.training.losses import LOSS_NAMES, DeferredReweighting, build_loss, mixed_loss
from dali_cmo.training.metrics import ConfusionCounter, accuracy_report, format_report_table
from dali_cmo.training.models import MODEL_NAMES
from dali_cmo.training.progress import EpochProgress
from dali_cmo.training.recipes import DECAYS, PRESETS, LRSchedule

DATASETS = ("demo", "cifar10-lt", "folder", "split", "inat")
# argparse dest -> PRESETS key, for the values a preset provides
PRESET_KEYS = dict(model="model", epochs="epochs", batch_size="batch_size", lr="lr",
                   wd="weight_decay", momentum="momentum", warmup="warmup_epochs",
                   decay="decay", decay_epochs="decay_epochs", decay_factor="decay_factor",
                   cmo_start="cmo_start", cmo_end="cmo_end", loss="loss",
                   drw_epoch="drw_epoch", image_size="image_size")


# --------------------------------------------------------------------------- arguments

def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Long-tailed classification with CMO (context-rich minority oversampling) "
                    "on DALI. Without arguments: the built-in demo.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    group = parser.add_argument_group("recipe")
    group.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="reference recipe whose values are the defaults below (default: "
                            "'demo' for the demo, 'cifar10-lt' for --dataset cifar10-lt, "
                            "'imagenet-lt' otherwise)")
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=DATASETS, default=None,
                       help="demo: built-in synthetic data; cifar10-lt: CIFAR-10-LT from a "
                            "CIFAR-10 JPEG tree; folder / split / inat: image folder, split "
                            "file, iNat JSON (default: guessed from --data, demo without it)")
    group.add_argument("--data", default=None,
                       help="training split file, image folder or iNat JSON (cifar10-lt: the "
                            "folder holding train/ and test/; default: the shared CIFAR-10)")
    group.add_argument("--root", default=None, help="image root for split files / JSON")
    group.add_argument("--val-data", default=None,
                       help="evaluation split file / folder / JSON (a folder --data may "
                            "instead hold train/ and val/ or test/)")
    group.add_argument("--val-root", default=None, help="image root for --val-data "
                                                        "(default: --root)")
    group.add_argument("--imbalance-ratio", type=float, default=100.0,
                       help="cifar10-lt: n_max / n_min of the long-tailed subset")
    group.add_argument("--style", choices=("imagenet", "cifar"), default=None,
                       help="augmentation style (default: cifar for image size <= 64)")
    group.add_argument("--image-size", type=int, default=None)
    group = parser.add_argument_group("model and loss")
    group.add_argument("--model", choices=MODEL_NAMES, default=None)
    group.add_argument("--loss", choices=LOSS_NAMES, default=None,
                       help="ce, bs (Balanced Softmax) or ldam (adds a cosine classifier)")
    group.add_argument("--drw-epoch", type=int, default=None,
                       help="deferred re-weighting from this epoch on (none: never)")
    group = parser.add_argument_group("CMO")
    group.add_argument("--variant", choices=tuple(VARIANTS), default="cmo",
                       help="cmo (bg~P, fg~Q), cmo_back, cmo_minor, cutmix, ros, none")
    group.add_argument("--cmo-start", type=int, default=None,
                       help="CMO is active in epochs cmo_start < e < epochs - cmo_end "
                            "(-1: from epoch 0)")
    group.add_argument("--cmo-end", type=int, default=None)
    group.add_argument("--cmo-prob", type=float, default=0.5, help="chance of a paste per batch")
    group.add_argument("--alpha", type=float, default=1.0, help="lam ~ Beta(alpha, alpha)")
    group.add_argument("--per-sample", action="store_true",
                       help="one coin, lam and box per sample instead of per batch")
    group.add_argument("--q-scheme", choices=SCHEMES, default="reference",
                       help="foreground weights (reference: w_i = n_{y_i}^-r)")
    group.add_argument("--q-r", type=float, default=1.0, help="exponent r of the Q weights")
    group.add_argument("--q-beta", default=None,
                       help="effective_number beta (a number, or 'paper' = (N-1)/N)")
    group.add_argument("--foreground-decode", choices=("region", "full", "naive"),
                       default="region", help="decode only the pasted box of a foreground")
    group.add_argument("--on-bad-image", choices=("error", "skip"), default="error",
                       help="an unreadable or undecodable image: stop, naming it (default), or "
                            "replace it by another image of its class and report it once")
    group.add_argument("--reader", choices=("native", "python"), default="native",
                       help="read training files with the C++ reader fn.readers.weighted_file "
                            "(default) or the Python sources; a run resumes with the reader it "
                            "started with")
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=None)
    group.add_argument("--batch-size", type=int, default=None, help="images per step per rank")
    group.add_argument("--lr", type=float, default=None)
    group.add_argument("--momentum", type=float, default=None)
    group.add_argument("--wd", type=float, default=None, help="weight decay")
    group.add_argument("--warmup", type=int, default=None, help="warm-up epochs")
    group.add_argument("--decay", choices=DECAYS, default=None)
    group.add_argument("--decay-epochs", type=int, nargs="*", default=None)
    group.add_argument("--decay-factor", type=float, default=None)
    group = parser.add_argument_group("run")
    group.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="default: cuda when available")
    group.add_argument("--amp", action="store_true", help="mixed precision (GPU only)")
    group.add_argument("--channels-last", action="store_true", help="NHWC memory (GPU only)")
    group.add_argument("--workers", type=int, default=2, help="DALI threads per rank")
    group.add_argument("--torch-threads", type=int, default=0,
                       help="torch CPU threads (0: torch's default)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--output", default=None, help="run folder (default: runs/<name>)")
    group.add_argument("--resume", default=None,
                       help="checkpoint file or run folder to continue, or 'auto' (the "
                            "--output folder's checkpoint, if any)")
    group.add_argument("--overwrite", action="store_true",
                       help="start afresh in an --output folder that already holds a "
                            "checkpoint (otherwise refused: use --resume auto to continue)")
    group.add_argument("--eval-every", type=int, default=None,
                       help="evaluate every N epochs (0: only after the last; the last epoch "
                            "is always evaluated; default 1, the demo 0)")
    group.add_argument("--max-steps-per-epoch", type=int, default=0,
                       help="train on at most this many batches per epoch (0: all; the rest "
                            "of the epoch is read and skipped, for short tests)")
    group.add_argument("--print-every", type=float, default=30.0,
                       help="seconds between progress lines when stderr is not a terminal")
    # Hidden test hooks.
    add("--stop-after-steps", type=int, default=0, help=argparse.SUPPRESS)  # simulate SIGTERM
    add("--debug-shards", action="store_true", help=argparse.SUPPRESS)  # write rank indices
    return parser


def resolve_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, fill unset values from the preset, and refuse nonsense naming the argument."""
    args = parser.parse_args(argv)
    if args.dataset is None:
        if args.data is None:
            args.dataset = "cifar10-lt" if args.preset in ("cifar10-lt",) else "demo"
        elif Path(args.data).is_dir():
            args.dataset = "folder"
        elif args.data.lower().endswith(".json"):
            args.dataset = "inat"
        else:
            args.dataset = "split"
    if args.preset is None:
        args.preset = {"demo": "demo", "cifar10-lt": "cifar10-lt"}.get(args.dataset,
                                                                      "imagenet-lt")
    preset = PRESETS[args.preset]
    for dest, key in PRESET_KEYS.items():
        if getattr(args, dest) is None:
            value = preset[key]
            setattr(args, dest, list(value) if isinstance(value, tuple) else value)
    if args.eval_every is None:
        args.eval_every = 0 if args.dataset == "demo" else 1
    if args.style is None:
        args.style = "cifar" if args.image_size <= 64 else "imagenet"
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.output is None:
        args.output = str(Path("runs") / (f"{args.dataset}-{args.model}-{args.loss}-"
                                          f"{args.variant}"))
    if args.q_beta is not None and args.q_beta != "paper":
        try:
            args.q_beta = float(args.q_beta)
        except ValueError:
            parser.error(f"--q-beta must be a number or 'paper'; got {args.q_beta!r}")

    checks = [
        (args.batch_size >= 1, f"--batch-size must be >= 1; got {args.batch_size}"),
        (args.epochs >= 1, f"--epochs must be >= 1; got {args.epochs}"),
        (args.lr > 0, f"--lr must be > 0; got {args.lr}"),
        (args.momentum >= 0, f"--momentum must be >= 0; got {args.momentum}"),
        (args.wd >= 0, f"--wd must be >= 0; got {args.wd}"),
        (0.0 <= args.cmo_prob <= 1.0, f"--cmo-prob must lie in [0, 1]; got {args.cmo_prob}"),
        (args.alpha > 0, f"--alpha must be > 0; got {args.alpha}"),
        (args.image_size >= 1, f"--image-size must be >= 1; got {args.image_size}"),
        (args.imbalance_ratio >= 1, f"--imbalance-ratio must be >= 1; got "
                                    f"{args.imbalance_ratio}"),
        (args.workers >= 1, f"--workers must be >= 1; got {args.workers}"),
        (args.torch_threads >= 0, f"--torch-threads must be >= 0; got {args.torch_threads}"),
        (args.eval_every >= 0, f"--eval-every must be >= 0; got {args.eval_every}"),
        (args.max_steps_per_epoch >= 0, f"--max-steps-per-epoch must be >= 0; got "
                                        f"{args.max_steps_per_epoch}"),
        (args.drw_epoch is None or args.drw_epoch >= 0,
         f"--drw-epoch must be >= 0; got {args.drw_epoch}"),
        (args.cmo_start >= -1, f"--cmo-start must be >= -1; got {args.cmo_start}"),
        (args.cmo_end >= 0, f"--cmo-end must be >= 0; got {args.cmo_end}"),
        (not (args.amp or args.channels_last) or args.device == "cuda",
         "--amp and --channels-last need --device cuda"),
        (args.dataset != "demo" or args.data is None,
         "--data does not apply to --dataset demo"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    pastes = VARIANTS[args.variant][1] is not None
    if pastes and args.cmo_prob > 0 and not any(
            args.cmo_start < e < args.epochs - args.cmo_end for e in range(args.epochs)):
        parser.error(f"--cmo-start {args.cmo_start} / --cmo-end {args.cmo_end}: the CMO window "
                     f"cmo_start < epoch < epochs - cmo_end (epochs={args.epochs}) leaves no "
                     f"augmented epoch")
    try:
        make_schedule(args)
    except ValueError as error:
        parser.error(f"learning-rate schedule (--lr/--epochs/--warmup/--decay/--decay-epochs/"
                     f"--decay-factor): {error}")
    try:
        make_train_config(args)
    except ValueError as error:
        parser.error(f"training pipeline: {_flag_names(str(error))}")
    # Never overwrite a run's checkpoint by accident (the demo always starts afresh).
    if (not args.resume and not args.overwrite and args.dataset != "demo"
            and (Path(args.output) / "checkpoint.pt").exists()):
        parser.error(f"--output {args.output} already holds a checkpoint: continue it with "
                     f"--resume auto, start afresh with --overwrite, or choose another --output")
    return args


def _flag_names(message: str) -> str:
    """A TrainConfig/sampler message with field names spelled as command-line flags."""
    for field, flag in (("batch_size", "--batch-size"), ("probability", "--cmo-prob"),
                        ("alpha", "--alpha"), ("image_size", "--image-size"),
                        ("cmo_start", "--cmo-start"), ("cmo_end", "--cmo-end"),
                        ("q_beta", "--q-beta"), ("beta", "--q-beta"), ("scheme", "--q-scheme"),
                        ("r ", "--q-r ")):
        message = message.replace(field, flag)
    return message


def make_schedule(args) -> LRSchedule:
    return LRSchedule(args.lr, args.epochs, warmup_epochs=args.warmup, decay=args.decay,
                      decay_epochs=args.decay_epochs, decay_factor=args.decay_factor)


def make_train_config(args):
    from pipelines.training import TrainConfig
    return TrainConfig(style=args.style, variant=args.variant, batch_size=args.batch_size,
                       epochs=args.epochs, cmo_start=args.cmo_start, cmo_end=args.cmo_end,
                       probability=args.cmo_prob, alpha=args.alpha, per_sample=args.per_sample,
                       image_size=args.image_size, foreground_decode=args.foreground_decode,
                       q_scheme=args.q_scheme, q_r=args.q_r, q_beta=args.q_beta,
                       seed=args.seed, num_threads=args.workers, on_bad_image=args.on_bad_image,
                       reader=args.reader)


# --------------------------------------------------------------------------- data

def load_datasets(args):
    """(train, val) LongTailDatasets for ``--dataset``."""
    if args.dataset == "demo":
        from dali_cmo.data.demo import demo_dir
        folder = demo_dir()
        return read_image_folder(folder / "train"), read_image_folder(folder / "test")
    if args.dataset == "cifar10-lt":
        if args.data is None:
            from dali_cmo.data.shared_data import cifar10_dir
            args.data = str(cifar10_dir())
        full = read_image_folder(Path(args.data) / "train")
        # fixed subset seed, as the LDAM/CMO reference code (np.random.seed(0)) does
        train = long_tailed_subset(full, args.imbalance_ratio, seed=0)
        return train, read_image_folder(Path(args.data) / "test")
    data = Path(args.data) if args.data else None
    if data is None:
        raise DatasetError(f"--data is required for --dataset {args.dataset}")
    val_data = args.val_data
    if args.dataset == "folder" and val_data is None:
        split = next((data / n for n in ("val", "test") if (data / n).is_dir()), None)
        if not (data / "train").is_dir() or split is None:
            raise DatasetError(f"{data}: give --val-data, or a folder holding train/ and "
                               f"val/ (or test/)")
        data, val_data = data / "train", split
    if val_data is None:
        raise DatasetError(f"--val-data is required for --dataset {args.dataset}")
    train = load_dataset(data, args.root if args.dataset != "folder" else None)
    val_root = args.val_root or args.root
    val = load_dataset(val_data, val_root if not Path(val_data).is_dir() else None,
                       num_classes=train.num_classes)
    return train, val


# --------------------------------------------------------------------------- train / evaluate

def train_one_epoch(model, loss_fn, optimizer, scaler, schedule, iterator, epoch, args, ctx):
    """One epoch (or its remainder after a resume). Returns the epoch's statistics and whether
    a stop was requested (then the checkpoint is already written)."""
    model.train()
    steps = len(iterator) if not args.max_steps_per_epoch \
        else min(len(iterator), args.max_steps_per_epoch)
    progress = EpochProgress(steps, epoch, args.epochs, ctx["rank"] == 0, args.print_every)
    loss_sum, trained, images, train_time = 0.0, 0, 0, 0.0
    lr = schedule.lr_at(epoch)
    tic = time.perf_counter()
    for batch in iterator.epoch_batches():
        step = iterator.position  # batches of this epoch done, this one included
        if step > steps:
            tic = time.perf_counter()
            continue  # --max-steps-per-epoch: read and skip the rest of the epoch
        lr = schedule.apply(optimizer, epoch + (step - 1) / steps)
        inputs = batch.images
        if args.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):
            logits = model(inputs)
            loss = mixed_loss(loss_fn, logits.float(), batch.target_b, batch.target_f, batch.lam)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.item()
        trained += 1
        images += len(batch)
        if ctx["samples_path"] is not None and bool((batch.lam < 1).any()):
            save_samples(batch, ctx)
        if args.device == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - tic
        progress.update(step, images * ctx["world"] / max(train_time, 1e-9),
                        loss_sum / trained)
        stop = ctx["stop"]
        if args.stop_after_steps and ctx["global_step"] + 1 == args.stop_after_steps:
            stop.signum = stop.signum or "--stop-after-steps"
        ctx["global_step"] += 1
        if stop.requested(ctx["world"], ctx["device"]):
            progress.close()
            return None, stop.signum or "another rank's signal"
        tic = time.perf_counter()
    progress.close()
    totals = all_reduce_sum(torch.tensor([loss_sum, float(trained), float(images), train_time],
                                         dtype=torch.float64, device=ctx["device"]),
                            ctx["world"]).cpu()
    world = ctx["world"]
    return {"loss": totals[0].item() / max(totals[1].item(), 1), "lr": lr,
            "train_images": int(totals[2].item()),
            "train_images_per_second": totals[2].item() / max(totals[3].item() / world, 1e-9)}, \
        None


def save_samples(batch, ctx) -> None:
    """cmo_samples.png: the first training batch with a paste (rank 0, once per run)."""
    from dali_cmo.training.reports import sample_captions, save_sample_grid
    path, ctx["samples_path"] = ctx["samples_path"], None
    n = min(16, len(batch))
    mean, std = ctx["mean_std"]
    captions = sample_captions(batch.target_b[:n].tolist(), batch.target_f[:n].tolist(),
                               batch.lam[:n].tolist(), ctx["class_names"])
    images = batch.images[:n].float()
    if images.shape[-1] < 96:  # small (CIFAR) images: enlarge so that the captions fit
        scale = math.ceil(96 / images.shape[-1])
        images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
    save_sample_grid(images, path, mean=mean, std=std, captions=captions,
                     nrow=4)


@torch.no_grad()
def evaluate(model, eval_iterator, num_classes, class_counts, ctx, amp: bool) -> dict:
    """Top-1 and Many / Medium / Few accuracy over every rank's shard of the evaluation set."""
    model.eval()
    counter = ConfusionCounter(num_classes, device=ctx["device"])
    for images, targets in eval_iterator:
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            counter.update(model(images), targets)
    counts = all_reduce_sum(counter.counts(), ctx["world"]).cpu()
    return accuracy_report(counts[0], counts[1], class_counts)


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = get_args_parser()
    args = resolve_args(parser, argv)
    rank, world, local_rank = init_distributed(args)
    is_main = rank == 0

    def log(message: str) -> None:
        if is_main:
            print(message, flush=True)

    device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else "cpu")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.device == "cpu":
        torch.use_deterministic_algorithms(True)  # exact resume on CPU
    else:
        torch.backends.cudnn.benchmark = True
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    output = Path(args.output)
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
    stop = StopRequest()

    # Data: each rank reads its own shard of the training and evaluation sets.
    from dali_cmo.data.iterator import CMOIterator, EvalIterator
    from pipelines.evaluation import EvalPipeline
    from pipelines.training import TrainingPipeline
    try:
        train_set, val_set = load_datasets(args)
    except (DatasetError, FileNotFoundError) as error:
        parser.error(str(error))
    config = make_train_config(args)
    dali_device = "gpu" if args.device == "cuda" else "cpu"
    try:
        train_pipe = TrainingPipeline(train_set, config, device=dali_device, device_id=local_rank,
                                      shard_id=rank, num_shards=world)
    except ValueError as error:
        parser.error(_flag_names(str(error)))
    eval_pipe = EvalPipeline(val_set, style=args.style, batch_size=args.batch_size,
                             image_size=args.image_size, device=dali_device,
                             device_id=local_rank, shard_id=rank, num_shards=world,
                             num_threads=args.workers, on_bad_image=args.on_bad_image)
    counts = train_set.class_counts
    log(f"data: {len(train_set)} training images in {train_set.num_classes} classes "
        f"(largest {counts.max()}, smallest {counts.min()}, imbalance "
        f"{counts.max() / counts.min():.0f}), {len(val_set)} evaluation images; "
        f"{world} rank(s) x batch {args.batch_size}; variant {args.variant}, "
        f"CMO in epochs {args.cmo_start} < e < {args.epochs - args.cmo_end}")
    if args.debug_shards:
        indices = {e: train_pipe.streams.background.epoch_indices(e).tolist()
                   for e in range(min(2, args.epochs))}
        (output / f"shard_rank{rank}.json").write_text(json.dumps(indices))

    # Model, loss, optimiser.
    from dali_cmo.training.models import build_model
    model = build_model(args.model, train_set.num_classes,
                        normed_linear=args.loss == "ldam").to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(args.loss, counts).to(device)
    drw = DeferredReweighting(counts, args.drw_epoch) if args.drw_epoch is not None else None
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.wd)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
    schedule = make_schedule(args)
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if args.device == "cuda" else None)

    # Resume: model, optimiser, scaler, RNG states and this rank's exact stream position.
    iterator_state, history = None, []
    if args.resume:
        state = load_checkpoint(args.resume, output, log)
        if state is not None:
            if state["world_size"] != world:
                parser.error(f"--resume: the checkpoint was written by {state['world_size']} "
                             f"rank(s); this run has {world}")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            set_rng_states(state["rng"][rank])
            iterator_state = state["iterators"][rank]
            history = state.get("history", [])
    try:
        iterator = CMOIterator(train_pipe, state=iterator_state)
    except ValueError as error:  # saved with the other reader
        parser.error(f"--resume: {error}")
    eval_iterator = EvalIterator(eval_pipe)
    start_epoch = iterator.epoch

    ctx = dict(rank=rank, world=world, device=device, stop=stop, global_step=0,
               mean_std=config.mean_std, class_names=train_set.class_names,
               samples_path=(output / "cmo_samples.png")
               if is_main and VARIANTS[args.variant][1] and
               not (output / "cmo_samples.png").exists() else None)

    def checkpoint(tag: str) -> None:
        """Every rank's stream position and RNG state, written by rank 0."""
        own = {"iterator": iterator.state_dict(), "rng": rng_states()}
        gathered = [None] * world
        if world > 1:
            dist.all_gather_object(gathered, own)
        else:
            gathered = [own]
        if is_main:
            path = save_checkpoint({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "epoch": iterator.epoch,
                "iterators": [g["iterator"] for g in gathered],
                "rng": [g["rng"] for g in gathered], "args": vars(args),
                "world_size": world, "history": history}, output)
            log(f"{tag}: checkpoint written to {path}")

    report, evaluated_epoch = None, None
    log(f"training {args.model} ({args.loss} loss) for epochs {start_epoch + 1}..{args.epochs} "
        f"on {args.device}; output in {output}")
    run_tic = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        if drw is not None:
            loss_fn.set_class_weights(drw.weights(epoch))
        stats, stopped = train_one_epoch(ddp_model, loss_fn, optimizer, scaler, schedule,
                                         iterator, epoch, args, ctx)
        if stopped is not None:
            checkpoint(f"stopped by {stopped} in epoch {epoch + 1} after batch "
                       f"{iterator.position}")
            log(f"resume with: --resume {output / CHECKPOINT}")
            if world > 1:
                dist.destroy_process_group()
            return 0 if isinstance(stopped, str) else 128 + int(stopped)
        entry = {"epoch": epoch + 1, **stats}
        last = epoch + 1 == args.epochs
        if last or (args.eval_every and (epoch + 1) % args.eval_every == 0):
            report = evaluate(ddp_model, eval_iterator, train_set.num_classes, counts, ctx,
                              args.amp)
            evaluated_epoch = epoch + 1
            entry.update({k: report[k] for k in ("top1", "many", "medium", "few")})
        history.append(entry)
        if is_main:
            with open(output / "log.jsonl", "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        shown = "  ".join(f"{k} {entry[k]:.2f}" for k in ("top1", "many", "medium", "few")
                          if entry.get(k) is not None)
        log(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.4f}, lr {stats['lr']:.4g}, "
            f"{stats['train_images_per_second']:.0f} img/s" + (f"; {shown}" if shown else ""))
        checkpoint(f"epoch {epoch + 1} done")
    elapsed = time.perf_counter() - run_tic

    if report is None:  # resumed after the last epoch had finished: evaluate once more
        report = evaluate(ddp_model, eval_iterator, train_set.num_classes, counts, ctx, args.amp)
        evaluated_epoch = args.epochs
    if is_main:
        from dali_cmo.training.reports import plot_per_class_accuracy
        speeds = [h["train_images_per_second"] for h in history if "train_images_per_second" in h]
        metrics = {**report, "evaluated_epoch": evaluated_epoch, "epochs": args.epochs,
                   "images_per_second": float(np.mean(speeds)) if speeds else None,
                   "train_seconds_this_process": elapsed, "world_size": world,
                   "train_class_counts": counts.tolist(),
                   "class_names": list(train_set.class_names),
                   # files replaced under --on-bad-image skip (this rank's readers)
                   "bad_images": {**train_pipe.streams.reader.bad_files,
                                  **eval_pipe.source.reader.bad_files},
                   "args": vars(args)}
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_per_class_accuracy(report["per_class"], counts, output / "per_class_accuracy.png",
                                title=f"{args.dataset}: {args.model}, {args.loss}, "
                                      f"{args.variant}")
        name = f"{args.model} {args.loss} + {args.variant}"
        print(f"\nTest accuracy (%) after {args.epochs} epochs; classes grouped by training "
              f"images: many > 100, medium 20..100, few < 20 ({report['groups']})")
        if args.dataset == "demo":
            print("demo classes: many = 300, 179, 107 training images; medium = 64, 38, 23; "
                  "few = 13, 8, 5, 3 (a short demo: real runs train for 100-200 epochs)")
        print(format_report_table({name: report}))
        print(f"\nwritten: {output / 'metrics.json'}, {output / 'log.jsonl'}, "
              f"{output / 'per_class_accuracy.png'}"
              + (f", {output / 'cmo_samples.png'}" if (output / "cmo_samples.png").exists()
                 else ""))
    if world > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
