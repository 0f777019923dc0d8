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
import functools
import random
import sys
from pathlib import Path

import numpy as np
import torch

from dali_cmo.data.cifar import CIFAR_LT_CLASSES, load_cifar_lt
from dali_cmo.cli.train_args import PROG, flag_names, parse_args, pipeline_config, run_settings
from dali_cmo.data.datasets import DatasetError, MissingFilesError, load_dataset, read_image_folder
from dali_cmo.data.integrity import DecoderWarningTracer, full_check
from dali_cmo.training.checkpoint import CheckpointError, Run, StopRequest
from dali_cmo.training.distributed import init_distributed
from dali_cmo.training.progress import StderrRelay
from dali_cmo.training.settings import UsageError
from dali_cmo.training.trainer import Data, Trainer


# --------------------------------------------------------------------------- data

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
    if args.style != "cifar" or not len(dataset) or dataset.in_memory:
        return  # in-memory CIFAR pixels are 32 x 32
    report = full_check(dataset.path(0), decode=False)
    size = (report.width, report.height)
    if report.width and size != (args.image_size, args.image_size):
        raise UsageError(
            f"--style cifar trains on images of exactly --image-size {args.image_size} (pad 4 "
            f"and crop), but {report.path} is {size[0]}x{size[1]}: use --style imagenet "
            f"(random-resized-crop to --image-size; evaluation resizes and crops the centre)")


def make_train_config(values: dict):
    """The ``pipelines.training.TrainConfig`` of the resolved command line ``values``."""
    from pipelines.training import TrainConfig
    return pipeline_config(TrainConfig, values)


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
    config = dataclasses.replace(make_train_config(vars(args)), variant=args.bn_stats_from,
                                 epochs=1, cmo_start=-1, cmo_end=0)
    return CMOIterator(TrainingPipeline(
        train_set, config, device="gpu" if run.device.type == "cuda" else "cpu",
        device_id=run.device.index or 0, shard_id=run.rank, num_shards=run.world))


def training_pipeline(args, run: Run, train_set, device_id: int):
    """This rank's ``pipelines.training.TrainingPipeline`` of the run."""
    from pipelines.training import TrainingPipeline
    try:
        return TrainingPipeline(train_set, make_train_config(vars(args)),
                                device="gpu" if args.device == "cuda" else "cpu",
                                device_id=device_id, shard_id=run.rank, num_shards=run.world)
    except ValueError as error:
        raise UsageError(flag_names(str(error))) from None


# --------------------------------------------------------------------------- main

def start_run(args) -> tuple[Run, int]:
    """This process's :class:`Run` (torchrun's rank and world size, the device, the seeds)
    and its local rank."""
    rank, world, local_rank = init_distributed(args.device)
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
    return run, local_rank


def train(args, tracer: DecoderWarningTracer, relay: StderrRelay) -> int:
    """The run the resolved ``args`` describe; returns the exit status. ``tracer`` learns
    which files the pipelines read last; ``relay`` carries stderr to the terminal."""
    run, local_rank = start_run(args)
    # each rank reads its own shard of the training and evaluation sets
    data = load_datasets(args)
    check_crop_style(args, data.train)
    trainer = Trainer(run_settings(args), run, data, evaluation_pipelines(args, run), tracer,
                      relay)
    if args.test_only:  # score saved weights, train nothing
        return trainer.score(bn_stream=lambda: stream_of(args, run, data.train))
    return trainer.fit(lambda: training_pipeline(args, run, data.train, local_rank))


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
