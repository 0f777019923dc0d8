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

import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dali_cmo.data.datasets import DatasetError, load_dataset, long_tailed_subset, read_image_folder
from dali_cmo.data.integrity import BadImageError
from dali_cmo.data.sources import VARIANTS
from dali_cmo.training.arguments import (PROG, UsageError, flag_names, make_schedule,
                                         make_train_config, parse_args)
from dali_cmo.training.checkpoint import (CHECKPOINT, StopRequest, load_checkpoint, rng_states,
                                          save_checkpoint, set_rng_states)
from dali_cmo.training.distributed import all_reduce_sum, finish, gather_objects, init_distributed
from dali_cmo.training.losses import DeferredReweighting, build_loss, mixed_loss
from dali_cmo.training.metrics import ConfusionCounter, accuracy_report, format_report_table
from dali_cmo.training.progress import EpochProgress


@dataclass
class Run:
    """This process's place in the run: its rank among ``world``, its device, the run folder
    and the stop request (SIGTERM/SIGINT) every loop checks."""
    rank: int
    world: int
    device: torch.device
    output: Path
    stop: StopRequest
    global_step: int = 0  # training steps this process has taken

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)


# --------------------------------------------------------------------------- data

def load_datasets(args):
    """(train, val) LongTailDatasets for ``--dataset``."""
    if args.dataset == "demo":
        from dali_cmo.data.demo import demo_dir
        folder = demo_dir()
        return read_image_folder(folder / "train"), read_image_folder(folder / "test")
    if args.dataset == "cifar10-lt":
        if args.data is None:
            from dali_cmo.data.shared_data import SharedDataMissing, cifar10_dir
            try:
                args.data = str(cifar10_dir())
            except SharedDataMissing as error:
                raise UsageError(f"--dataset cifar10-lt needs --data: {error}") from None
        full = read_image_folder(Path(args.data) / "train")
        # fixed subset seed, as the LDAM/CMO reference code (np.random.seed(0)) does
        train = long_tailed_subset(full, args.imbalance_ratio, seed=0)
        return train, read_image_folder(Path(args.data) / "test")
    data = Path(args.data) if args.data else None
    if data is None:
        raise UsageError(f"--data is required for --dataset {args.dataset}")
    val_data = args.val_data
    if args.dataset == "folder" and val_data is None:
        split = next((data / n for n in ("val", "test") if (data / n).is_dir()), None)
        if not (data / "train").is_dir() or split is None:
            raise UsageError(f"--data {data}: give --val-data, or a folder holding train/ and "
                             f"val/ (or test/)")
        data, val_data = data / "train", split
    if val_data is None:
        raise UsageError(f"--val-data is required for --dataset {args.dataset}")
    train = load_dataset(data, args.root if args.dataset != "folder" else None)
    val_root = args.val_root or args.root
    val = load_dataset(val_data, val_root if not Path(val_data).is_dir() else None,
                       num_classes=train.num_classes)
    return train, val


# --------------------------------------------------------------------------- train / evaluate

def train_one_epoch(model, loss_fn, optimizer, scaler, schedule, iterator, epoch, args, run,
                    pictures):
    """One epoch (or its remainder after a resume). Returns the epoch's statistics and the stop
    request that ended it early (None when it ran to its end)."""
    model.train()
    steps = len(iterator) if not args.max_steps_per_epoch \
        else min(len(iterator), args.max_steps_per_epoch)
    progress = EpochProgress(steps, epoch, args.epochs, run.is_main, args.print_every)
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
        pictures(batch)
        if args.device == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - tic
        progress.update(step, images * run.world / max(train_time, 1e-9), loss_sum / trained)
        if args.stop_after_steps and run.global_step + 1 == args.stop_after_steps:
            run.stop.request("--stop-after-steps")
        run.global_step += 1
        if run.stop.requested(run.world, run.device):
            progress.close()
            return None, run.stop.reason
        tic = time.perf_counter()
    progress.close()
    totals = all_reduce_sum(torch.tensor([loss_sum, float(trained), float(images), train_time],
                                         dtype=torch.float64, device=run.device), run.world).cpu()
    return {"loss": totals[0].item() / max(totals[1].item(), 1), "lr": lr,
            "train_images": int(totals[2].item()),
            "train_images_per_second": totals[2].item() / max(totals[3].item() / run.world,
                                                              1e-9)}, None


@dataclass
class FirstPastePicture:
    """cmo_samples.png: the first training batch with a paste (rank 0, once per run)."""
    path: Path | None
    mean_std: tuple
    class_names: tuple

    def __call__(self, batch) -> None:
        if self.path is None or not bool((batch.lam < 1).any()):
            return
        from dali_cmo.training.reports import sample_captions, save_sample_grid
        path, self.path = self.path, None
        n = min(16, len(batch))
        captions = sample_captions(batch.target_b[:n].tolist(), batch.target_f[:n].tolist(),
                                   batch.lam[:n].tolist(), self.class_names)
        images = batch.images[:n].float()
        if images.shape[-1] < 96:  # small (CIFAR) images: enlarge so that the captions fit
            scale = math.ceil(96 / images.shape[-1])
            images = torch.nn.functional.interpolate(images, scale_factor=scale, mode="nearest")
        mean, std = self.mean_std
        save_sample_grid(images, path, mean=mean, std=std, captions=captions, nrow=4)


@torch.no_grad()
def evaluate(model, eval_iterator, num_classes, class_counts, run, amp: bool) -> dict:
    """Top-1 and Many / Medium / Few accuracy over every rank's shard of the evaluation set."""
    model.eval()
    counter = ConfusionCounter(num_classes, device=run.device)
    for images, targets in eval_iterator:
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            counter.update(model(images), targets)
    counts = all_reduce_sum(counter.counts(), run.world).cpu()
    return accuracy_report(counts[0], counts[1], class_counts)


def write_checkpoint(run, tag, model, optimizer, scaler, iterator, history, args) -> None:
    """Every rank's stream position and RNG state, with the model and optimiser, written
    atomically by rank 0."""
    ranks = gather_objects({"iterator": iterator.state_dict(), "rng": rng_states()}, run.world)
    if run.is_main:
        path = save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "epoch": iterator.epoch,
            "iterators": [r["iterator"] for r in ranks], "rng": [r["rng"] for r in ranks],
            "args": vars(args), "world_size": run.world, "history": history}, run.output)
        run.log(f"{tag}: checkpoint written to {path}")


def write_report(run, args, report, evaluated_epoch, history, elapsed, train_set,
                 bad_images) -> None:
    """metrics.json, the per-class plot and the accuracy table (rank 0)."""
    from dali_cmo.training.reports import plot_per_class_accuracy
    output, counts = run.output, train_set.class_counts
    speeds = [h["train_images_per_second"] for h in history if "train_images_per_second" in h]
    metrics = {**report, "evaluated_epoch": evaluated_epoch, "epochs": args.epochs,
               "images_per_second": float(np.mean(speeds)) if speeds else None,
               "train_seconds_this_process": elapsed, "world_size": run.world,
               "train_class_counts": counts.tolist(),
               "class_names": list(train_set.class_names),
               "bad_images": bad_images,  # files replaced under --on-bad-image skip (rank 0)
               "args": vars(args)}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_per_class_accuracy(report["per_class"], counts, output / "per_class_accuracy.png",
                            title=f"{args.dataset}: {args.model}, {args.loss}, {args.variant}")
    name = f"{args.model} {args.loss} + {args.variant}"
    print(f"\nTest accuracy (%) after {args.epochs} epochs; classes grouped by training "
          f"images: many > 100, medium 20..100, few < 20 ({report['groups']})")
    if args.dataset == "demo":
        print("demo classes: many = 300, 179, 107 training images; medium = 64, 38, 23; "
              "few = 13, 8, 5, 3 (a short demo: real runs train for 100-200 epochs)")
    print(format_report_table({name: report}))
    written = [output / n for n in ("metrics.json", "log.jsonl", "per_class_accuracy.png",
                                    "cmo_samples.png") if (output / n).exists()]
    print(f"\nwritten: {', '.join(map(str, written))}")


# --------------------------------------------------------------------------- main

def train(args) -> int:
    """The run the resolved ``args`` describe; returns the exit status."""
    rank, world, local_rank = init_distributed(args)
    device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else "cpu")
    run = Run(rank, world, device, Path(args.output), StopRequest())
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.device == "cpu":
        torch.use_deterministic_algorithms(True)  # exact resume on CPU
    else:
        torch.backends.cudnn.benchmark = True
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    # Data: each rank reads its own shard of the training and evaluation sets.
    from dali_cmo.data.iterator import CMOIterator, EvalIterator
    from pipelines.evaluation import EvalPipeline
    from pipelines.training import TrainingPipeline
    train_set, val_set = load_datasets(args)
    config = make_train_config(args)
    dali_device = "gpu" if args.device == "cuda" else "cpu"
    try:
        train_pipe = TrainingPipeline(train_set, config, device=dali_device, device_id=local_rank,
                                      shard_id=rank, num_shards=world)
    except ValueError as error:
        raise UsageError(flag_names(str(error))) from None
    eval_pipe = EvalPipeline(val_set, style=args.style, batch_size=args.batch_size,
                             image_size=args.image_size, device=dali_device,
                             device_id=local_rank, shard_id=rank, num_shards=world,
                             num_threads=args.workers, on_bad_image=args.on_bad_image)
    counts = train_set.class_counts
    run.log(f"data: {len(train_set)} training images in {train_set.num_classes} classes "
            f"(largest {counts.max()}, smallest {counts.min()}, imbalance "
            f"{counts.max() / counts.min():.0f}), {len(val_set)} evaluation images; "
            f"{world} rank(s) x batch {args.batch_size}; variant {args.variant}, "
            f"CMO in epochs {args.cmo_start} < e < {args.epochs - args.cmo_end}")

    # Model, loss, optimiser, schedule.
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
        state = load_checkpoint(args.resume, run.output, run.log)
        if state is not None:
            if state["world_size"] != world:
                raise UsageError(f"--resume: the checkpoint was written by "
                                 f"{state['world_size']} rank(s); this run has {world}")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            set_rng_states(state["rng"][rank])
            iterator_state = state["iterators"][rank]
            history = state.get("history", [])
    iterator = CMOIterator(train_pipe, state=iterator_state)
    eval_iterator = EvalIterator(eval_pipe)
    start_epoch = iterator.epoch

    run.output.mkdir(parents=True, exist_ok=True)
    if args.debug_shards:
        indices = {e: train_pipe.streams.background.epoch_indices(e).tolist()
                   for e in range(min(2, args.epochs))}
        (run.output / f"shard_rank{rank}.json").write_text(json.dumps(indices))
    samples = run.output / "cmo_samples.png"
    pictures = FirstPastePicture(samples if run.is_main and VARIANTS[args.variant][1]
                                 and not samples.exists() else None,
                                 config.mean_std, train_set.class_names)

    def save(tag: str) -> None:
        write_checkpoint(run, tag, model, optimizer, scaler, iterator, history, args)

    # The loops.
    report, evaluated_epoch = None, None
    run.log(f"training {args.model} ({args.loss} loss) for epochs {start_epoch + 1}.."
            f"{args.epochs} on {args.device}; output in {run.output}")
    run_tic = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        if drw is not None:
            loss_fn.set_class_weights(drw.weights(epoch))
        stats, stopped = train_one_epoch(ddp_model, loss_fn, optimizer, scaler, schedule,
                                         iterator, epoch, args, run, pictures)
        if stopped is not None:
            save(f"stopped by {stopped} in epoch {epoch + 1} after batch {iterator.position}")
            run.log(f"resume with: --resume {run.output / CHECKPOINT}")
            finish(world)
            return run.stop.exit_status
        entry = {"epoch": epoch + 1, **stats}
        if epoch + 1 == args.epochs or (args.eval_every and (epoch + 1) % args.eval_every == 0):
            report = evaluate(ddp_model, eval_iterator, train_set.num_classes, counts, run,
                              args.amp)
            evaluated_epoch = epoch + 1
            entry.update({k: report[k] for k in ("top1", "many", "medium", "few")})
        history.append(entry)
        if run.is_main:
            with open(run.output / "log.jsonl", "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        shown = "  ".join(f"{k} {entry[k]:.2f}" for k in ("top1", "many", "medium", "few")
                          if entry.get(k) is not None)
        run.log(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.4f}, lr "
                f"{stats['lr']:.4g}, {stats['train_images_per_second']:.0f} img/s"
                + (f"; {shown}" if shown else ""))
        save(f"epoch {epoch + 1} done")
    elapsed = time.perf_counter() - run_tic

    if report is None:  # resumed after the last epoch had finished: evaluate once more
        report = evaluate(ddp_model, eval_iterator, train_set.num_classes, counts, run, args.amp)
        evaluated_epoch = args.epochs
    if run.is_main:
        write_report(run, args, report, evaluated_epoch, history, elapsed, train_set,
                     {**train_pipe.streams.reader.bad_files, **eval_pipe.source.reader.bad_files})
    finish(world)
    return 0


def main(argv=None) -> int:
    """``python train.py``: the exit status (2: a mistake in the arguments, 1: unusable data)."""
    try:
        return train(parse_args(argv))
    except UsageError as error:
        message, status = str(error), error.status
    except (DatasetError, BadImageError) as error:
        message, status = str(error), 1
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
