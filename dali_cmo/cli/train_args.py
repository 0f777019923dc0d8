"""The trainer's command line: flags, preset defaults, and checks that name the flag.

(Every flag of ``train.py`` with its help text and the checks that name it. Hence its length.)

``train.py`` calls :func:`parse_args`; everything it returns is resolved (the preset has filled
every value left unset) and checked, and reaches the library as typed settings
(:func:`run_settings`, :func:`pipeline_config`), never as parsed arguments. Mistakes raise
:class:`~dali_cmo.training.settings.UsageError`, one line naming the flag; only
argument-syntax errors (an unknown flag, a bad choice, a value of the wrong type) get argparse's
usage text.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
from pathlib import Path

from dali_cmo.augment.recipes import DEFAULT_RANDAUGMENT, RECIPES
from dali_cmo.constants import NORMALISATIONS
from dali_cmo.data.groups import GROUP_RULES
from dali_cmo.data.sampling import SCHEMES
from dali_cmo.streams import READERS
from dali_cmo.streams.schedule import VARIANTS, PasteSchedule, paste_window
from dali_cmo.training.checkpoint import CHANGEABLE, held_run
from dali_cmo.training.distributed import default_dali_threads, launched_world_size
from dali_cmo.training.losses import LOSS_NAMES, BalancedSoftmaxLoss
from dali_cmo.training.models import MODEL_NAMES
from dali_cmo.training.recipes import DECAYS, PRESETS, drw_switch_epoch, rank_batch_size
from dali_cmo.training.settings import RunSettings, UsageError

PROG = "train.py"
DATASETS = ("demo", "cifar10-lt", "cifar100-lt", "folder", "split", "inat")
# argparse dest -> PRESETS key, for the values a preset provides
PRESET_KEYS = dict(model="model", epochs="epochs", batch_size="batch_size", lr="lr",
                   wd="weight_decay", momentum="momentum", warmup="warmup_epochs",
                   decay="decay", decay_epochs="decay_epochs", decay_factor="decay_factor",
                   cmo_start="cmo_start", cmo_end="cmo_end", loss="loss",
                   drw_epoch="drw_epoch", image_size="image_size", augment="augment",
                   groups="groups", normalisation="normalisation")
# values counted in epochs, scaled when --epochs shortens a preset (see shorten_recipe)
EPOCH_VALUES = ("warmup", "decay_epochs", "cmo_start", "cmo_end", "drw_epoch")
# the largest --seed: numpy's legacy generator (np.random.seed) takes 32 bits
MAX_SEED = 2 ** 32 - 1
# pipeline / sampler field -> flag, for their messages
FIELD_FLAGS = {"batch_size": "--batch-size", "probability": "--cmo-prob", "alpha": "--alpha",
               "image_size": "--image-size", "cmo_start": "--cmo-start",
               "cmo_end": "--cmo-end", "q_beta": "--q-beta", "beta": "--q-beta",
               "scheme": "--q-scheme", "r": "--q-r", "augment": "--augment",
               "randaugment": "--randaugment", "style": "--style",
               "fg_cache_gb": "--fg-cache-gb"}
# pipeline field -> the flag's name, where they differ (the others are the same): the value of
# each TrainConfig field comes from here (see pipeline_config)
CONFIG_VALUES = {"probability": "cmo_prob", "batch_size": "rank_batch_size",
                 "num_threads": "dali_threads", "max_batches_per_epoch": "max_steps_per_epoch"}
# LRSchedule argument -> flag
SCHEDULE_FLAGS = {"base_lr": "--lr", "epochs": "--epochs", "warmup_epochs": "--warmup",
                  "decay": "--decay", "decay_epochs": "--decay-epochs",
                  "decay_factor": "--decay-factor"}


class DeprecatedAlias(argparse.Action):
    """An old name of a flag: stores into the flag's dest and prints one line
    ``train.py: warning: --old is deprecated; use --new`` (rank 0; once, though
    :func:`given_flags` parses again)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if not getattr(self, "warned", False) and int(os.environ.get("RANK", "0")) == 0:
            print(f"{PROG}: warning: {option_string} is deprecated; use "
                  f"--{self.dest.replace('_', '-')}", file=sys.stderr)
            self.warned = True
        setattr(namespace, self.dest, values)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only where X says something: not for unset values (the preset's
    ``(default: from --preset)`` is shown instead) nor where the help already names the
    default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            if action.dest in PRESET_KEYS and "default" not in text:
                return f"{text} (default: from --preset)".strip()
            return text
        return super()._get_help_string(action)


def get_args_parser() -> argparse.ArgumentParser:
    """The parser of ``train.py``'s command line.

    Long on purpose: one flat list of the flags, grouped and in the order ``--help`` shows
    them, each with its help text; splitting it would only scatter that list.
    """
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=HelpFormatter,
        description="Long-tailed classification with CMO (context-rich minority oversampling) "
                    "on DALI. Without arguments: the built-in demo.")
    group = parser.add_argument_group("recipe")
    group.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="reference recipe whose values are the defaults below (default: "
                            "'demo' for the demo, 'cifar10-lt' for --dataset cifar10-lt, "
                            "'inat2018' for --dataset inat, 'imagenet-lt' otherwise)")
    group.add_argument("--drw", action="store_true",
                       help="the preset's CE-DRW recipe: deferred re-weighting from the "
                            "reference script's epoch (160 CIFAR and iNat, 80 ImageNet-LT), "
                            "loss ce unless --loss says otherwise")
    group.add_argument("--pretrained", default=None, metavar="PATH",
                       help="fine-tune from this state-dict file (torchvision weights; the "
                            "classifier head stays new where its shape differs)")
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=DATASETS, default=None,
                       help="demo: built-in synthetic data; cifar10-lt / cifar100-lt: "
                            "CIFAR-LT (the reference's subset) from the python pickles or a "
                            "JPEG tree; folder / split / inat: image folder, split file, iNat "
                            "JSON (default: guessed from --data, demo without it)")
    group.add_argument("--data", default=None,
                       help="training split file, image folder or iNat JSON (cifar*-lt: the "
                            "pickle folder cifar-10-batches-py / cifar-100-python, or a folder "
                            "holding train/ and test/ JPEGs)")
    group.add_argument("--pixels", choices=("raw", "jpeg"), default="raw",
                       help="cifar*-lt from a JPEG tree: decode it once into raw pixels (cached) "
                            "or decode the JPEGs every epoch")
    group.add_argument("--root", default=None, help="image root for split files / JSON")
    group.add_argument("--val-data", default=None,
                       help="evaluation split file / folder / JSON (a folder --data may "
                            "instead hold train/ and val/ or test/)")
    group.add_argument("--val-root", default=None, help="image root for --val-data "
                                                        "(default: --root)")
    group.add_argument("--imbalance-ratio", type=float, default=100.0,
                       help="cifar*-lt: n_max / n_min of the long-tailed subset")
    group.add_argument("--style", choices=("imagenet", "cifar"), default=None,
                       help="crop style: imagenet (random-resized-crop to --image-size; "
                            "evaluation: resize and centre crop) or cifar (images of exactly "
                            "--image-size, pad 4 and crop) (default: cifar for the demo and "
                            "the CIFAR data and presets, imagenet otherwise)")
    group.add_argument("--augment", choices=tuple(RECIPES), default=None,
                       help="training augmentation of both streams: standard (crop, flip), "
                            "jitter (+ ColorJitter 0.4), randaugment (ImageNet/iNat 400-epoch "
                            "branches), autoaugment (CIFAR 400-epoch branches)")
    group.add_argument("--image-size", type=int, default=None, help="training crop side (pixels)")
    group.add_argument("--normalisation", choices=tuple(NORMALISATIONS), default=None,
                       help="mean/std of training and evaluation (iNat's own for inat2018)")
    group.add_argument("--randaugment", default=DEFAULT_RANDAUGMENT,
                       help="timm RandAugment config of --augment randaugment")
    group = parser.add_argument_group("model and loss")
    group.add_argument("--model", choices=MODEL_NAMES, default=None, help="network")
    group.add_argument("--loss", choices=LOSS_NAMES, default=None,
                       help="ce, bs (Balanced Softmax) or ldam (adds a cosine classifier)")
    group.add_argument("--drw-epoch", type=int, default=None,
                       help="deferred re-weighting from this epoch on, counted from 0 (none: "
                            "never; see --drw)")
    group = parser.add_argument_group("CMO")
    group.add_argument("--variant", choices=tuple(VARIANTS), default="cmo",
                       help="cmo (bg~P, fg~Q), cmo_back, cmo_minor, cutmix, ros, none")
    group.add_argument("--cmo-start", type=int, default=None,
                       help="CMO is active in epochs cmo_start < e < epochs - cmo_end, "
                            "counted from 0 (-1: from the first epoch)")
    group.add_argument("--cmo-end", type=int, default=None, help="see --cmo-start")
    group.add_argument("--cmo-prob", type=float, default=0.5, help="chance of a paste per batch")
    group.add_argument("--alpha", type=float, default=1.0, help="lam ~ Beta(alpha, alpha)")
    group.add_argument("--per-sample", action="store_true",
                       help="one coin, lam and box per sample instead of per batch")
    group.add_argument("--q-scheme", choices=SCHEMES, default="reference",
                       help="foreground weights (reference: w_i = n_{y_i}^-r)")
    group.add_argument("--q-r", type=float, default=1.0, help="exponent r of the Q weights")
    group.add_argument("--q-beta", default=None,
                       help="effective_number beta in (0, 1), e.g. 0.9999 (default: the "
                            "paper's (N-1)/N)")
    group.add_argument("--foreground-decode", choices=("region", "full", "naive"),
                       default="region", help="decode only the pasted box of a foreground")
    group.add_argument("--fg-cache-gb", type=float, default=0.0,
                       help="keep decoded foregrounds in memory, up to this many GiB per rank "
                            "(the smallest classes' images first; CPU, region decode; default "
                            "0: off)")
    group.add_argument("--on-bad-image", choices=("error", "skip"), default="error",
                       help="an unreadable or undecodable image: stop, naming it, or "
                            "replace it by another image of its class and report it once")
    group.add_argument("--reader", choices=READERS, default="native",
                       help="read training files with the C++ reader fn.readers.weighted_file "
                            "or the Python sources (raw CIFAR pixels and "
                            "--max-steps-per-epoch always use the Python sources)")
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=None, help="training epochs")
    group.add_argument("--batch-size", type=int, default=None,
                       help="images per step, all ranks together (the global batch; each of R "
                            "torchrun ranks takes 1/R of it)")
    group.add_argument("--lr", type=float, default=None, help="base learning rate (SGD)")
    group.add_argument("--momentum", type=float, default=None, help="SGD momentum")
    group.add_argument("--wd", type=float, default=None, help="weight decay")
    group.add_argument("--warmup", type=int, default=None, help="warm-up epochs")
    group.add_argument("--decay", choices=DECAYS, default=None, help="learning-rate decay")
    group.add_argument("--decay-epochs", type=int, nargs="*", default=None,
                       help="step decay: epochs (from 0) where the lr is multiplied")
    group.add_argument("--decay-factor", type=float, default=None,
                       help="step decay: the factor")
    group = parser.add_argument_group("run")
    group.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="default: cuda when available")
    group.add_argument("--amp", action="store_true",
                       help="mixed precision: float16 autocast on GPU, bfloat16 on CPU")
    group.add_argument("--channels-last", action="store_true",
                       help="NHWC memory for the model and its inputs (on CPU and GPU; faster "
                            "convolutions on recent GPUs)")
    group.add_argument("--dali-threads", type=int, default=None,
                       help="DALI threads per rank (default: the CPUs this process may use, "
                            "shared among the ranks of this node)")
    group.add_argument("--workers", type=int, dest="dali_threads", action=DeprecatedAlias,
                       help=argparse.SUPPRESS)  # the old name of --dali-threads
    group.add_argument("--torch-threads", type=int, default=0,
                       help="torch CPU threads (0: torch's default)")
    group.add_argument("--seed", type=int, default=0, help="random seed")
    group.add_argument("--output", default=None, help="run folder (default: runs/<name>)")
    group.add_argument("--resume", default=None,
                       help="checkpoint file or run folder to continue, or 'auto' (the "
                            "--output folder's checkpoint, if any)")
    group.add_argument("--allow-change", nargs="+", default=[], metavar="FLAG",
                       help="--resume: continue although these flags differ from the "
                            "checkpoint's (those a run may change: "
                            + ", ".join(f.lstrip("-") for f in CHANGEABLE) + ")")
    group.add_argument("--test-only", nargs="?", const="last", choices=("last", "best"),
                       default=None,
                       help="train nothing: score the --output run's saved weights once, "
                            "'last' (checkpoint.pt; the default) or 'best' (best_model.pt), on "
                            "the evaluation set (--val-data may name another); give the flags "
                            "the run was trained with. Writes evaluation_<last|best>.json and "
                            "a per-class picture beside them")
    group.add_argument("--bn-stats-from", choices=tuple(VARIANTS), default=None,
                       metavar="VARIANT",
                       help="--test-only: first replace the BatchNorm running statistics by "
                            "their mean over one epoch of the training stream of VARIANT ("
                            + ", ".join(VARIANTS) + "; pasting as inside the CMO window), "
                            "weights unchanged; writes evaluation_<last|best>_bn-VARIANT.json")
    group.add_argument("--overwrite", action="store_true",
                       help="start afresh in an --output folder that already holds a "
                            "checkpoint (otherwise refused: use --resume auto to continue)")
    group.add_argument("--groups", choices=tuple(GROUP_RULES), default=None,
                       help="Many/Medium/Few edge at 20 training images: lt20 few < 20 "
                            "(cifar_train.py), le20 few <= 20 (imagenet_train.py, "
                            "inat18_train.py)")
    group.add_argument("--eval-every", type=int, default=None,
                       help="evaluate every N epochs (0: only after the last; the last epoch "
                            "is always evaluated; default 1, the demo 0)")
    group.add_argument("--max-steps-per-epoch", type=int, default=0,
                       help="end each epoch after this many batches (0: all; the rest of "
                            "the epoch is neither read nor decoded; for short tests)")
    group.add_argument("--log-every", type=int, default=50,
                       help="refresh the loss shown every N steps (each refresh waits for "
                            "the device)")
    group.add_argument("--print-every", type=float, default=30.0,
                       help="seconds between progress lines when stderr is not a terminal")
    # Hidden test hooks.
    parser.add_argument("--stop-after-steps", type=int, default=0,
                        help=argparse.SUPPRESS)  # simulate SIGTERM
    parser.add_argument("--debug-shards", action="store_true",
                        help=argparse.SUPPRESS)  # write rank indices and first batch
    return parser


def parse_args(argv=None, make_config=None) -> argparse.Namespace:
    """Parse ``argv``, fill unset values from the preset and check them; a flag given that the
    run ignores gets one line ``train.py: warning: ...`` on stderr (rank 0). ``make_config``
    (``train.make_train_config``; None: not checked) builds the training pipeline's settings
    from the resolved values (a dict): its ``ValueError`` is reported with the other problems.

    Raises:
        SystemExit: argument-syntax errors (argparse prints the usage).
        UsageError: a value or combination that cannot work, naming the flag.
    """
    parser = get_args_parser()
    args = parser.parse_args(argv)
    _fill_defaults(args)
    check_args(args, make_config)
    if int(os.environ.get("RANK", "0")) == 0:
        for message in ignored_flags(args, given_flags(parser, argv)):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
    return args


def given_flags(parser: argparse.ArgumentParser, argv=None) -> set[str]:
    """The dests of the flags on the command line (presets and defaults fill the others): a
    second parse in which no flag has a default."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def ignored_flags(args, given: set[str]) -> list[str]:
    """Why each flag of ``given`` (dests) has no effect on the run ``args`` describes."""
    ignored = {
        "decay_factor": (args.decay != "step",
                         f"--decay-factor applies to --decay step, not {args.decay}"),
        "decay_epochs": (args.decay != "step",
                         f"--decay-epochs applies to --decay step, not {args.decay}"),
        "cmo_prob": (VARIANTS[args.variant][1] is None,
                     f"--cmo-prob applies to the variants that paste, not --variant "
                     f"{args.variant}"),
        "fg_cache_gb": (VARIANTS[args.variant][1] is None,
                        f"--fg-cache-gb applies to the variants that paste, not --variant "
                        f"{args.variant}"),
        "pixels": (args.dataset not in ("cifar10-lt", "cifar100-lt"),
                   f"--pixels applies to --dataset cifar10-lt and cifar100-lt, not "
                   f"{args.dataset}"),
    }
    return [f"{message}: ignored" for dest, (unused, message) in ignored.items()
            if unused and dest in given]


def _guess_dataset(args) -> str:
    if args.data is None:
        return args.preset if args.preset in ("cifar10-lt", "cifar100-lt") else "demo"
    if Path(args.data).is_dir():
        return "folder"
    return "inat" if args.data.lower().endswith(".json") else "split"


def _preset_style(args) -> str:
    """The crop style of the data and recipe: cifar for the demo and CIFAR data or presets."""
    cifar = args.dataset in ("demo", "cifar10-lt", "cifar100-lt") or \
        args.preset == "demo" or args.preset.startswith("cifar")
    return "cifar" if cifar else "imagenet"


def _fill_defaults(args) -> None:
    if args.dataset is None:
        args.dataset = _guess_dataset(args)
    if args.preset is None:
        args.preset = {"demo": "demo", "cifar10-lt": "cifar10-lt", "cifar100-lt": "cifar100-lt",
                       "inat": "inat2018"}.get(args.dataset, "imagenet-lt")
    preset = PRESETS[args.preset]
    if args.drw:
        try:
            args.drw_epoch = drw_switch_epoch(args.preset) if args.drw_epoch is None \
                else args.drw_epoch
        except ValueError as error:
            raise UsageError(f"--drw: {error}") from None
        args.loss = args.loss or "ce"
    args.world_size = launched_world_size()
    unset = {dest for dest in PRESET_KEYS if getattr(args, dest) is None}
    for dest in unset:
        value = preset[PRESET_KEYS[dest]]
        setattr(args, dest, list(value) if isinstance(value, tuple) else value)
    args.shortened = {}  # preset values scaled to a shorter --epochs (dest -> value)
    if "epochs" not in unset and args.epochs < preset["epochs"]:
        scaled = shorten_recipe({d: getattr(args, d) for d in EPOCH_VALUES},
                                preset["epochs"], args.epochs)
        args.shortened = {d: scaled[d] for d in EPOCH_VALUES
                          if d in unset and scaled[d] != getattr(args, d)}
        for dest, value in args.shortened.items():
            setattr(args, dest, value)
    if args.eval_every is None:
        args.eval_every = 0 if args.dataset == "demo" else 1
    if args.style is None:
        args.style = _preset_style(args)
    if args.dali_threads is None:
        args.dali_threads = default_dali_threads()
    if args.device is None:
        import torch
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.output is None:
        args.output = str(Path("runs") / (f"{args.dataset}-{args.model}-{args.loss}-"
                                          f"{args.variant}"))
        # `python train.py` again starts the demo afresh in its default folder
        args.overwrite = args.overwrite or (args.dataset == "demo" and not args.resume)
    args.allow_change = sorted({"--" + flag.lstrip("-") for flag in args.allow_change})
    if args.q_beta is not None and args.q_beta != "paper":
        try:
            args.q_beta = float(args.q_beta)
        except ValueError:
            raise UsageError(f"--q-beta must be a number or 'paper'; got {args.q_beta!r}") \
                from None


def shorten_recipe(values: dict, preset_epochs: int, epochs: int) -> dict:
    """The epoch-based values of a recipe for ``preset_epochs``, scaled to ``epochs``.

    Warm-up, decay epochs, the DRW epoch and the CMO window's margins are multiplied by
    ``epochs / preset_epochs`` and rounded; decay epochs that fall outside ``1..epochs-1`` are
    dropped, the warm-up stays below ``epochs``, and the CMO window
    ``cmo_start < e < epochs - cmo_end`` is widened (start first) until it holds an epoch.

    Args:
        values: ``warmup``, ``decay_epochs``, ``cmo_start``, ``cmo_end``, ``drw_epoch``
            (None: no re-weighting).
        preset_epochs: the epochs the values are for.
        epochs: the epochs to scale them to.
    """
    factor = epochs / preset_epochs

    def scale(value: int) -> int:
        return math.floor(value * factor + 0.5)

    start, end = max(-1, scale(values["cmo_start"])), scale(values["cmo_end"])
    while not paste_window(epochs, start, end) and (start > -1 or end > 0):
        start, end = (start - 1, end) if start > -1 else (start, end - 1)
    return {"warmup": min(scale(values["warmup"]), epochs - 1),
            "decay_epochs": sorted({scale(m) for m in values["decay_epochs"]
                                    if 0 < scale(m) < epochs}),
            "cmo_start": start, "cmo_end": end,
            "drw_epoch": None if values["drw_epoch"] is None else scale(values["drw_epoch"])}


def check_args(args, make_config=None) -> None:
    """Raise one :class:`UsageError` naming every value or combination that cannot work
    (``make_config``: see :func:`parse_args`).

    Long on purpose: every check in one place, in one list where it can be, so that one
    refusal names every problem at once.
    """
    max_threads = 4 * (os.cpu_count() or 1)
    checks = [
        (args.batch_size >= 1, f"--batch-size must be >= 1; got {args.batch_size}"),
        (args.epochs >= 1, f"--epochs must be >= 1; got {args.epochs}"),
        _finite("--lr", args.lr, "> 0"),
        (0 <= args.momentum < 1, f"--momentum must lie in [0, 1); got {args.momentum}"),
        _finite("--wd", args.wd, ">= 0"),
        _finite("--alpha", args.alpha, "> 0"),
        (0 <= args.seed <= MAX_SEED, f"--seed must lie in 0..{MAX_SEED} (what the random "
                                     f"generators take); got {args.seed}"),
        (args.image_size >= 1, f"--image-size must be >= 1; got {args.image_size}"),
        _finite("--imbalance-ratio", args.imbalance_ratio, ">= 1"),
        (args.dali_threads >= 1, f"--dali-threads must be >= 1; got {args.dali_threads}"),
        (0 <= args.torch_threads <= max_threads,
         f"--torch-threads must lie in 0..{max_threads} (4 per CPU of this machine; more only "
         f"slow torch down); got {args.torch_threads}"),
        (args.eval_every >= 0, f"--eval-every must be >= 0; got {args.eval_every}"),
        (args.max_steps_per_epoch >= 0, f"--max-steps-per-epoch must be >= 0; got "
                                        f"{args.max_steps_per_epoch}"),
        (args.log_every >= 1, f"--log-every must be >= 1; got {args.log_every}"),
        (args.drw_epoch is None or args.drw_epoch >= 0,
         f"--drw-epoch must be >= 0; got {args.drw_epoch}"),
        (args.cmo_start >= -1, f"--cmo-start must be >= -1; got {args.cmo_start}"),
        (args.cmo_end >= 0, f"--cmo-end must be >= 0; got {args.cmo_end}"),
        (args.dataset != "demo" or args.data is None,
         "--data does not apply to --dataset demo"),
        (not (args.resume and args.overwrite),
         f"--resume {args.resume} continues the run in --output and --overwrite starts a new "
         f"one there: give one of them"),
        (args.bn_stats_from is None or args.test_only is not None,
         f"--bn-stats-from {args.bn_stats_from} applies to --test-only (scoring saved "
         f"weights); add --test-only last or best"),
        (not set(args.allow_change) - set(CHANGEABLE),
         f"--allow-change {' '.join(f.lstrip('-') for f in args.allow_change)}: only these "
         f"may change within a run: {', '.join(f.lstrip('-') for f in CHANGEABLE)}"),
    ]
    problems = [message for ok, message in checks if not ok]
    file = next((path for path in (Path(args.output), *Path(args.output).parents)
                 if path.exists() and not path.is_dir()), None)
    if file is not None:
        problems.append(f"--output {args.output}: {file} is a file, not a folder")
    if args.epochs >= 1:
        problems += _epoch_problems(args)
    if args.batch_size >= 1:
        try:
            args.rank_batch_size = rank_batch_size(args.batch_size, args.world_size)
        except ValueError as error:
            problems.append(f"--batch-size {args.batch_size}: {error}")
    if args.drw_epoch is not None and args.loss == "bs":
        problems.append(f"--loss bs with deferred re-weighting (--drw / --drw-epoch): "
                        f"{BalancedSoftmaxLoss.no_weights_reason}")
    if args.drw_epoch is not None and args.drw_epoch >= args.epochs >= 1:
        problems.append(f"--drw-epoch {args.drw_epoch} lies past the last epoch (--epochs "
                        f"{args.epochs}, counted from 0): no epoch would be re-weighted")
    if PRESETS[args.preset]["pretrained"] and args.pretrained is None:
        problems.append(f"--preset {args.preset} fine-tunes a pretrained "
                        f"{PRESETS[args.preset]['model']} ({PRESETS[args.preset]['source']}): "
                        f"give --pretrained PATH, a torchvision state-dict file")
    if not problems:
        try:
            run_settings(args).lr_schedule()
        except ValueError as error:
            problems.append(f"learning-rate schedule: {flag_names(str(error), SCHEDULE_FLAGS)}")
        if make_config is not None:
            try:
                make_config(vars(args))
            except ValueError as error:
                problems.append(f"training pipeline: {flag_names(str(error))}")
    if not problems and args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            problems.append("--device cuda: torch finds no CUDA GPU here "
                            "(torch.cuda.is_available() is False); use --device cpu")
    if problems:
        raise UsageError("; ".join(problems))
    # Never overwrite a run by accident.
    held = held_run(Path(args.output))
    if held and not args.resume and not args.overwrite and not args.test_only:
        raise UsageError(f"--output {args.output} already holds {held}: continue it with "
                         f"--resume auto, start afresh with --overwrite, or choose another "
                         f"--output")


def _finite(flag: str, value: float, bound: str) -> tuple[bool, str]:
    """The check that ``value`` is finite and satisfies ``bound`` (``"> 0"``, ``">= 1"``)."""
    op, limit = bound.split()
    within = value > float(limit) if op == ">" else value >= float(limit)
    if within and not math.isfinite(value):
        return False, f"{flag} must be finite; got {value}"
    return within, f"{flag} must be {bound}; got {value}"


def _epoch_problems(args) -> list[str]:
    """Every epoch-counted value that does not fit ``--epochs``, each with what would."""
    epochs, problems = args.epochs, []
    if not 0 <= args.warmup < epochs:
        problems.append(f"--warmup {args.warmup} must lie in 0..{epochs - 1} for --epochs "
                        f"{epochs}")
    if args.decay == "step" and any(not 0 < m < epochs for m in args.decay_epochs):
        given = " ".join(map(str, args.decay_epochs))
        problems.append(f"--decay-epochs must be epochs in 1..{epochs - 1} (after the first, "
                        f"before --epochs {epochs}; counted from 0); got {given}" if epochs > 1
                        else f"--decay-epochs must be empty for --epochs 1 (no epoch after the "
                             f"first to decay at); got {given}")
    try:  # the schedule's own check, here so that one refusal names every problem
        PasteSchedule.for_variant(args.variant, epochs, args.cmo_start, args.cmo_end,
                                  args.cmo_prob)
    except ValueError as error:
        problems.append(flag_names(str(error)))
    return problems


def flag_names(message: str, flags: dict[str, str] = FIELD_FLAGS) -> str:
    """``message`` (from TrainConfig, a sampler or LRSchedule) with the field names of
    ``flags`` spelled as flags, whole words only, not inside quotes (values)."""
    words = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    return re.sub(rf"(?<![\w'-])({words})(?![\w'-])", lambda m: flags[m.group(1)], message)


def pipeline_config(config_type, values: dict):
    """A pipeline's settings (``config_type``, a dataclass such as
    ``pipelines.training.TrainConfig``) from the resolved command line ``values``: each field
    takes the value of its flag (:data:`CONFIG_VALUES`); fields no flag sets keep their
    defaults."""
    names = {f.name: CONFIG_VALUES.get(f.name, f.name) for f in dataclasses.fields(config_type)}
    return config_type(**{field: values[name] for field, name in names.items() if name in values})


def run_settings(args: argparse.Namespace) -> RunSettings:
    """What the library receives of the resolved arguments."""
    return RunSettings.from_command_line(vars(args))
