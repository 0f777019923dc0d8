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
``runs/<name>``): ``checkpoint.pt`` (after every epoch, its evaluation included, and on
SIGTERM/SIGINT; the one before is kept as ``checkpoint.prev.pt``), ``log.jsonl`` (one line per
epoch), ``best_model.pt`` (the weights of the best evaluated epoch), ``metrics.json`` (``top1``,
``many``, ``medium``, ``few``, ``per_class``, the best epoch, throughput, arguments),
``per_class_accuracy.png`` and ``cmo_samples.png`` (the first pasted training batch).
``--resume auto`` continues the run in ``--output`` exactly where it stopped (an epoch stopped
during its evaluation is evaluated first); a resumed run must keep what defines it (data, batch,
model, seed, ...), and may change what ``--allow-change`` names (e.g. ``--epochs``). A folder
holding another run is refused unless ``--resume`` or ``--overwrite`` (a new record: the old
run's files are removed) says what to do.

Mistakes in the arguments end in one line ``train.py: error: ...`` and exit status 2; unusable
data (a missing list, a bad image) in one such line and status 1.

The loss of a mixed batch is ``lam * L(out, y_b) + (1 - lam) * L(out, y_f)`` with the
background share ``lam`` the operator emits (1 where nothing was pasted); with class weights
each term is normalised by its batch's weight sum, as ``CrossEntropyLoss(weight=w)`` does.

Several GPUs or nodes: ``torchrun`` (``python -m torch.distributed.run``); every rank reads its
own shard of P (and Q) and of the evaluation set. ``--batch-size`` is the global batch, as in
the reference's one-process runs: each of R ranks takes 1/R of it, crops and flips its own
images, and shares the step's paste coin, lambda and box (per batch) with the other ranks.
"""
from __future__ import annotations

import dataclasses
import json
import functools
import math
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from dali_cmo.data.cifar import CIFAR_LT_CLASSES, load_cifar_lt
from dali_cmo.data.datasets import (ArrayDataset, DatasetError, MissingFilesError, load_dataset,
                                    read_image_folder)
from dali_cmo.data.integrity import (BadImageError, DecoderWarningTracer, command_line_advice,
                                     full_check)
from dali_cmo.data.sources import VARIANTS, pasting_epochs
from dali_cmo.training.arguments import PROG, UsageError, flag_names, make_schedule, parse_args
from dali_cmo.training.checkpoint import (CHECKPOINT, CheckpointError, Run, StopRequest,
                                          awaiting_evaluation, check_identity, clear_run,
                                          load_checkpoint, run_identity, save_best_model,
                                          save_run, set_rng_states)
from dali_cmo.training.distributed import all_reduce_sum, finish, init_distributed
from dali_cmo.training.evaluation import Evaluation, evaluate_saved_weights, evaluation_due
from dali_cmo.training.losses import DeferredReweighting, build_loss, mixed_loss
from dali_cmo.training.metrics import best_evaluation
from dali_cmo.training.models import autocast
from dali_cmo.training.progress import EpochProgress, StderrRelay
from dali_cmo.training.reports import (FirstPastePicture, FirstStepRecord, code_version,
                                       describe_code, write_log, write_run_report)


# --------------------------------------------------------------------------- data

class Data(NamedTuple):
    train: object  # LongTailDataset
    val: object
    train_source: str  # what was read (for messages: `python -m dali_cmo check <source>`)
    val_source: str


def load_datasets(args) -> Data:
    """The training and evaluation sets of ``--dataset``."""
    try:
        return _load_datasets(args)
    except MissingFilesError as error:
        if args.on_bad_image != "skip":
            raise
        # skip replaces files that fail the read check during training; a list naming files
        # that are not there is refused up front, whatever the policy
        raise DatasetError(f"{error}; --on-bad-image skip covers unreadable images, not missing "
                           f"ones: restore the files or remove them from the list") from None


def _load_datasets(args) -> Data:
    if args.dataset == "demo":
        from dali_cmo.data.demo import demo_dir
        folder = demo_dir()
        return Data(read_image_folder(folder / "train"), read_image_folder(folder / "test"),
                    str(folder / "train"), str(folder / "test"))
    if args.dataset in CIFAR_LT_CLASSES:
        if args.data is None:
            pickles = "cifar-10-batches-py" if args.dataset == "cifar10-lt" else "cifar-100-python"
            raise UsageError(f"--data is required for --dataset {args.dataset} (the {pickles} "
                             f"pickle folder or a JPEG tree holding train/ and test/)")
        # the reference's subset: np.random.seed(0), a shuffle per class
        train, test = load_cifar_lt(args.data, CIFAR_LT_CLASSES[args.dataset],
                                    args.imbalance_ratio, raw=args.pixels == "raw")
        return Data(train, test, args.data, args.data)
    if args.data is None:
        raise UsageError(f"--data is required for --dataset {args.dataset}")
    data, val_data = Path(args.data), args.val_data
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
    return Data(train, val, str(data), str(val_data))


def check_crop_style(args, dataset) -> None:
    """``--style cifar`` pads and crops images of exactly ``--image-size`` (evaluation crops
    their centre); refuse other sizes rather than train on a corner (the first image tells)."""
    if args.style != "cifar" or not len(dataset) or isinstance(dataset, ArrayDataset):
        return  # in-memory CIFAR pixels are 32 x 32
    report = full_check(dataset.path(0), decode=False)
    size = (report.width, report.height)
    if report.width and size != (args.image_size, args.image_size):
        raise UsageError(
            f"--style cifar trains on images of exactly --image-size {args.image_size} (pad 4 "
            f"and crop), but {report.path} is {size[0]}x{size[1]}: use --style imagenet "
            f"(random-resized-crop to --image-size; evaluation resizes and crops the centre)")


def bad_image(error: BadImageError, dataset, source: str, args) -> UsageError:
    """``error`` as the one-line message a user sees: where the file is listed and what to do
    (exit status 1)."""
    location = dataset.location(error.index) if error.index is not None else None
    advice = command_line_advice(error, on_bad_image=args.on_bad_image, dataset=source)
    return UsageError(f"{error.describe(location)}; {advice}", status=1)


def make_train_config(args):
    """The ``pipelines.training.TrainConfig`` the flags describe."""
    from pipelines.training import TrainConfig
    return TrainConfig(style=args.style, variant=args.variant, batch_size=args.rank_batch_size,
                       epochs=args.epochs, cmo_start=args.cmo_start, cmo_end=args.cmo_end,
                       probability=args.cmo_prob, alpha=args.alpha, per_sample=args.per_sample,
                       image_size=args.image_size, foreground_decode=args.foreground_decode,
                       randaugment=args.randaugment,
                       q_scheme=args.q_scheme, q_r=args.q_r, q_beta=args.q_beta,
                       augment=args.augment, normalisation=args.normalisation,
                       seed=args.seed, num_threads=args.dali_threads,
                       on_bad_image=args.on_bad_image,
                       max_batches_per_epoch=args.max_steps_per_epoch, reader=args.reader,
                       fg_cache_gb=args.fg_cache_gb)


def evaluation_pipelines(args, run: Run):
    """The evaluation pipeline of a dataset, this rank's shard (for :class:`Evaluation`)."""
    from pipelines.evaluation import EvalPipeline
    # "error": a bad file is never replaced by another image; skip mode leaves it out
    return functools.partial(
        EvalPipeline, style=args.style, batch_size=args.rank_batch_size,
        image_size=args.image_size, device="gpu" if args.device == "cuda" else "cpu",
        device_id=run.device.index, shard_id=run.rank, num_shards=run.world,
        num_threads=args.dali_threads, on_bad_image="error", normalisation=args.normalisation)


def stream_of(args, run: Run, train_set):
    """A :class:`~dali_cmo.data.iterator.CMOIterator` over one epoch of the training stream of
    variant ``--bn-stats-from``, pasting (for variants that paste) as inside the CMO window:
    the run's flags otherwise, this rank's shard."""
    from dali_cmo.data.iterator import CMOIterator
    from pipelines.training import TrainingPipeline
    config = dataclasses.replace(make_train_config(args), variant=args.bn_stats_from, epochs=1,
                                 cmo_start=-1, cmo_end=0)
    return CMOIterator(TrainingPipeline(
        train_set, config, device="gpu" if run.device.type == "cuda" else "cpu",
        device_id=run.device.index or 0, shard_id=run.rank, num_shards=run.world))


def cmo_epochs(args) -> str:
    """The epochs (counted from 1) in which CMO pastes, for the log."""
    active = pasting_epochs(args.variant, args.cmo_prob, args.epochs, args.cmo_start,
                            args.cmo_end)
    if not active:
        return "no pasting"
    return f"pasting in epochs {active[0] + 1}..{active[-1] + 1} of {args.epochs}"


# --------------------------------------------------------------------------- train

@dataclasses.dataclass
class EpochTotals:
    """This rank's sums over the batches of an epoch; kept in checkpoints, so that an epoch
    interrupted and resumed reports all of its batches."""
    loss: float = 0.0
    batches: int = 0
    images: int = 0
    seconds: float = 0.0


def train_one_epoch(model, loss_fn, optimizer, scaler, schedule, iterator, epoch, args, run,
                    pictures, totals: EpochTotals, debug_step=None) -> bool:
    """Train the rest of the epoch, adding to ``totals``. Returns False when a stop request
    ended it early (checked after every batch).

    The loss is summed on the device; it is read back (a wait for the device) only after the
    first step, every ``--log-every`` steps and at the end.

    Raises:
        UsageError: a step's loss was not finite (before anything of it could be saved).
    """
    model.train()
    steps = len(iterator)
    progress = EpochProgress(steps, epoch, args.epochs, run.is_main, args.print_every)
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    first_bad = torch.full((), -1, dtype=torch.int64, device=run.device)  # non-finite loss
    shown_loss = None

    def check_finite(loss_read: float) -> None:
        if not math.isfinite(loss_read):
            bad_step = int(first_bad.item())
            lr = schedule.lr_at(epoch + (bad_step - 1) / steps)
            raise UsageError(
                f"the loss is not finite in epoch {epoch + 1}, step {bad_step} of {steps} "
                f"(lr {lr:.4g}): training diverged, and nothing of this epoch was saved; "
                f"lower --lr (or --wd, --momentum) and start again", status=1)

    tic = time.perf_counter()
    for batch in iterator.epoch_batches():
        step = iterator.position  # batches of this epoch done, this one included
        schedule.apply(optimizer, epoch + (step - 1) / steps)
        inputs = batch.images
        if args.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(args.device, args.amp):
            logits = model(inputs)
            # weight sums over the global batch: the loss of the reference's one-process step
            loss = mixed_loss(loss_fn, logits.float(), batch.target_b, batch.target_f,
                              batch.lam, world_size=run.world,
                              all_reduce=(lambda t: all_reduce_sum(t, run.world))
                              if run.world > 1 else None)
        if debug_step is not None:
            debug_step(batch, logits, loss)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step,
                                first_bad)
        totals.batches += 1
        totals.images += len(batch)
        pictures(batch)
        if step % args.log_every == 0 or step == steps or shown_loss is None:
            shown_loss = (totals.loss + loss_sum.item()) / totals.batches
            check_finite(shown_loss)
        seconds = totals.seconds + time.perf_counter() - tic
        progress.update(step, totals.images * run.world / max(seconds, 1e-9), shown_loss)
        run.global_step += 1
        if args.stop_after_steps and run.global_step == args.stop_after_steps:
            run.stop.request("--stop-after-steps")
        if run.stop.requested(run.world):
            break
    progress.close()
    totals.loss += loss_sum.item()
    check_finite(totals.loss)  # before a stop request's checkpoint could save the weights
    totals.seconds += time.perf_counter() - tic
    return run.stop.reason is None


def epoch_statistics(totals: EpochTotals, lr: float, run) -> dict:
    """The epoch's loss, lr, images and images/s over every rank."""
    sums = all_reduce_sum(torch.tensor([totals.loss, totals.batches, totals.images,
                                        totals.seconds], dtype=torch.float64,
                                       device=run.device), run.world).cpu().tolist()
    loss, batches, images, seconds = sums
    return {"loss": loss / max(batches, 1), "lr": lr, "train_images": int(images),
            "train_images_per_second": images / max(seconds / run.world, 1e-9)}


# --------------------------------------------------------------------------- main

def train(args, tracer: DecoderWarningTracer, relay: StderrRelay) -> int:
    """The run the resolved ``args`` describe; returns the exit status. ``tracer`` learns
    which files the pipelines read last; ``relay`` carries stderr to the terminal."""
    rank, world, local_rank = init_distributed(args)
    device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else "cpu")
    run = Run(rank, world, device, Path(args.output), StopRequest(), args.channels_last)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.device == "cpu":
        torch.use_deterministic_algorithms(True)  # exact resume on CPU
    else:
        torch.backends.cudnn.benchmark = True
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.shortened:
        run.log(f"--epochs {args.epochs} shortens the {args.preset} recipe; scaled: " +
                ", ".join(f"--{d.replace('_', '-')} {v}" for d, v in args.shortened.items()))

    # Data: each rank reads its own shard of the training and evaluation sets; the
    # evaluation set is checked before training, so that a bad image cannot end the run later.
    from dali_cmo.data.iterator import CMOIterator
    from pipelines.training import TrainingPipeline
    data = load_datasets(args)
    train_set = data.train
    check_crop_style(args, train_set)
    evaluation = Evaluation(data.val, train_set.class_counts, args, run,
                            evaluation_pipelines(args, run))
    try:
        evaluation.check_files()
    except BadImageError as error:
        raise bad_image(error, data.val, data.val_source, args) from None
    if run.stop.requested(world):
        run.log(f"stopped by {run.stop.reason} before training")
        return run.stop.exit_status
    if args.test_only:  # score saved weights, train nothing
        try:
            status = evaluate_saved_weights(
                args, run, evaluation, train_set, data.val_source,
                bad_training_image=lambda error: bad_image(error, train_set, data.train_source,
                                                           args),
                bn_stream=lambda: stream_of(args, run, train_set))
        except BadImageError as error:
            raise bad_image(error, evaluation.dataset, data.val_source, args) from None
        finish(world)
        return status
    config = make_train_config(args)
    dali_device = "gpu" if args.device == "cuda" else "cpu"
    try:
        train_pipe = TrainingPipeline(train_set, config, device=dali_device, device_id=local_rank,
                                      shard_id=rank, num_shards=world)
    except ValueError as error:
        raise UsageError(flag_names(str(error))) from None
    # recorded as the reader that reads (raw pixels and short epochs always use the Python
    # sources): it is part of the run's identity, as a stream position restores with it only
    args.reader = train_pipe.reader
    iterator = CMOIterator(train_pipe)
    tracer.candidates = lambda: iterator.recent_paths() + [
        path for source in evaluation.sources() for (*_, paths) in list(source.recent)
        for path in paths]
    counts = train_set.class_counts
    run.log(f"data: {len(train_set)} training images in {train_set.num_classes} classes "
            f"(largest {counts.max()}, smallest {counts.min()}, imbalance "
            f"{counts.max() / counts.min():.0f}), {len(evaluation.dataset)} evaluation images; "
            f"global batch {args.batch_size} = {world} rank(s) x {args.rank_batch_size}; "
            f"variant {args.variant}, "
            f"{cmo_epochs(args)}")

    # Model, loss, optimiser, schedule.
    from dali_cmo.training.models import build_model
    model = build_model(args.model, train_set.num_classes,
                        normed_linear=args.loss == "ldam").to(device)
    if args.pretrained:
        from dali_cmo.training.models import load_pretrained
        try:
            fresh = load_pretrained(model, args.pretrained)
        except ValueError as error:
            raise UsageError(f"--pretrained {error}") from None
        run.log(f"weights from {args.pretrained}" + (f"; new: {', '.join(fresh)}" if fresh
                                                      else ""))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(args.loss, counts).to(device)
    drw = DeferredReweighting(counts, args.drw_epoch) if args.drw_epoch is not None else None
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.wd)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp and args.device == "cuda")
    schedule = make_schedule(args)
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if args.device == "cuda" else None)

    # Resume: the same run (identity), then model, optimiser, scaler, RNG states, this rank's
    # exact stream position, the sums of the epoch in progress and the record so far.
    identity = run_identity(vars(args), world, train_set, data.val)
    history, totals, state = [], EpochTotals(), None
    last_evaluation = {"epoch": None, "report": None}  # what metrics.json reports
    if args.resume:
        state = load_checkpoint(args.resume, run.output, run.log)
        if state is not None:
            changes = check_identity(state, identity, args.allow_change)
            if changes:
                run.log(f"continuing with changes (--allow-change): {', '.join(changes)}")
            threads = state["args"].get("torch_threads")
            if args.device == "cpu" and threads != args.torch_threads:  # CPU sums split by thread
                run.log(f"--torch-threads {args.torch_threads} differs from the checkpoint's "
                        f"{threads}: the run continues, but not bit-exactly as it would have")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            set_rng_states(state["rng"][rank])
            try:
                iterator.load_state_dict(state["iterators"][rank])
            except ValueError as error:  # saved with the other reader
                raise UsageError(f"--resume {args.resume}: {error}") from None
            history = state.get("history", [])
            totals = EpochTotals(**state.get("epoch_totals", [{}] * world)[rank])
            last_evaluation = state.get("last_evaluation") or last_evaluation
    start_epoch = iterator.epoch
    if start_epoch > args.epochs:
        raise UsageError(f"--epochs {args.epochs}: the checkpoint has {start_epoch} epochs "
                         f"done; give --epochs {start_epoch} or more")
    unevaluated = awaiting_evaluation(state) if state is not None else None

    run.output.mkdir(parents=True, exist_ok=True)
    if run.is_main:
        if state is None:  # a new record (the folder holds none, or --overwrite said so)
            clear_run(run.output)
        write_log(run.output, [entry for entry in history if entry is not unevaluated])
    if args.debug_shards:
        indices = {e: train_pipe.streams.background.epoch_indices(e).tolist()
                   for e in range(min(2, args.epochs))}
        (run.output / f"shard_rank{rank}.json").write_text(json.dumps(indices))
    debug_step = FirstStepRecord(run.output / f"step_rank{rank}.json", train_pipe, loss_fn) \
        if args.debug_shards else None
    samples = run.output / "cmo_samples.png"
    pictures = FirstPastePicture(samples if run.is_main and VARIANTS[args.variant][1]
                                 and not samples.exists() else None,
                                 config.mean_std, train_set.class_names)

    def save(tag: str) -> None:
        save_run(run, tag, model, optimizer, scaler, iterator, dataclasses.asdict(totals), history,
                 last_evaluation, vars(args), identity)

    def end_epoch(entry: dict, evaluate: bool) -> bool:
        """The end of the epoch of ``entry`` (in ``history``): its evaluation when ``evaluate``
        (the top-1 added to ``entry``; ``best_model.pt`` when it is the best so far), then the
        checkpoint and ``log.jsonl``. An epoch's evaluation is part of it: stopped during the
        evaluation (returns False), the checkpoint records the epoch as not evaluated and a
        resume evaluates it first."""
        epoch = entry["epoch"]
        if evaluate:
            try:
                report = evaluation(ddp_model)
            except BadImageError as error:
                if world == 1:  # keep the epoch's training (other ranks would wait to score)
                    save(f"epoch {epoch} trained, not evaluated")
                raise bad_image(error, evaluation.dataset, data.val_source, args) from None
            if report is None:
                save(f"stopped by {run.stop.reason} while evaluating epoch {epoch}")
                return False
            last_evaluation.update(epoch=epoch, report=report)
            entry.update({k: report[k] for k in ("top1", "many", "medium", "few")})
            if run.is_main and best_evaluation(history) is entry:
                save_best_model(run.output, model, entry, identity)
        save(f"epoch {epoch} done")
        if run.is_main:
            write_log(run.output, history)
        # the epoch's decoder warnings, traced to their files, before its line
        relay.sync()
        tracer.wait()
        relay.sync()
        shown = "  ".join(f"{k} {entry[k]:.2f}" for k in ("top1", "many", "medium", "few")
                          if entry.get(k) is not None)
        run.log(f"epoch {epoch}/{args.epochs}: loss {entry['loss']:.4f}, lr "
                f"{entry['lr']:.4g}, {entry['train_images_per_second']:.0f} img/s"
                + (f"; {shown}" if shown else ""))
        if train_pipe.fg_cache is not None:
            run.log(train_pipe.fg_cache.describe())
        return True

    def stopped() -> int:
        run.log(f"resume with: --resume {run.output / CHECKPOINT}")
        finish(world)
        return run.stop.exit_status

    # The loops.
    code = code_version() if run.is_main else None  # recorded in metrics.json
    if unevaluated is not None:
        run.log(f"epoch {unevaluated['epoch']} was trained but not evaluated: evaluating it")
        if not end_epoch(unevaluated, evaluate=True):
            return stopped()
    run.log(f"training {args.model} ({args.loss} loss) for epochs {start_epoch + 1}.."
            f"{args.epochs} on {args.device}; output in {run.output}; code: "
            f"{describe_code(code) if code else ''}")
    run_tic = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        if drw is not None:
            loss_fn.set_class_weights(drw.weights(epoch))
        try:
            finished = train_one_epoch(ddp_model, loss_fn, optimizer, scaler, schedule,
                                       iterator, epoch, args, run, pictures, totals,
                                       debug_step)
        except BadImageError as error:
            raise bad_image(error, train_set, data.train_source, args) from None
        if not finished:
            save(f"stopped by {run.stop.reason} in epoch {epoch + 1} after batch "
                 f"{iterator.position}")
            return stopped()
        last_lr = schedule.lr_at(epoch + (len(iterator) - 1) / len(iterator))
        history.append({"epoch": epoch + 1, **epoch_statistics(totals, last_lr, run)})
        totals = EpochTotals()
        if not end_epoch(history[-1], evaluation_due(epoch + 1, args.epochs, args.eval_every)):
            return stopped()
    elapsed = time.perf_counter() - run_tic

    if run.is_main:  # the last epoch is always evaluated: last_evaluation holds it
        write_run_report(run, args, last_evaluation["report"], last_evaluation["epoch"],
                         history, elapsed, train_set, train_pipe.streams.reader.bad_files,
                         evaluation.left_out, code)
    finish(world)
    return 0


def main(argv=None) -> int:
    """``python train.py``: the exit status (2: a mistake in the arguments, 1: unusable data,
    128 + N: stopped by signal N, its checkpoint written)."""
    tracer = DecoderWarningTracer(report=lambda text: print(text, file=sys.stderr, flush=True))
    try:
        args = parse_args(argv, make_config=make_train_config)
        with StderrRelay(on_line=tracer) as relay:
            try:
                return train(args, tracer, relay)
            finally:
                tracer.close()
    except UsageError as error:
        message, status = str(error), error.status
    except CheckpointError as error:
        message, status = str(error), error.status
    except DatasetError as error:
        message, status = str(error), 1
    except KeyboardInterrupt:  # a second Ctrl-C
        message, status = "interrupted (a second Ctrl-C: no checkpoint written)", 130
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
