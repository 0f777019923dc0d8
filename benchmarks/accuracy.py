"""Accuracy of matched pairs: each loss trained without and with CMO, same seed and budget.

Every arm is one ``train.py`` run folder ``<runs-dir>/<loss>-<variant>-s<seed>`` (variant
``none``, ``cmo`` or a control from ``--variants``, e.g. ``cutmix``: P foregrounds; ``none-fp32``
for ``--fp32-seeds``: the baseline without ``--amp``), started or continued with ``--resume
auto``, so an interrupted benchmark picks up where it stopped. The arms of a loss and seed share
the seed, hence the background (P) order.
The report is built from the folders alone (``log.jsonl``: one line per evaluated epoch;
``metrics.json``: written when a run finishes), so it can be made at any time; unfinished arms
are marked as such. Outputs: a JSON summary of every arm, a markdown table (overall / many /
medium / few at the last and at the best epoch, the paper's numbers beside where it has them),
a plot of the per-class gain of CMO against the class's training size and a plot of every arm's
top-1 per epoch (one panel per loss).

``--bn-stats`` also scores every complete arm's last weights with BatchNorm statistics
re-estimated over one epoch of the arm's own training stream (``train.py --test-only last
--bn-stats-from <variant>``, once per arm): CMO's weights are trained on pasted batches, while
the reference's last epochs paste nothing and leave clean-batch statistics behind; the table
gains that column.

    # the reference CIFAR-10-LT pair (200 epochs), two arms at a time:
    python benchmarks/accuracy.py --dataset cifar10-lt --losses ce --runs-dir runs/acc
    # CutMix (P foregrounds) as a control beside CMO, seed 0:
    python benchmarks/accuracy.py --losses ce --variants cmo cutmix --runs-dir runs/acc
    # what bf16 autocast costs: the seed-0 baseline also trained in fp32
    python benchmarks/accuracy.py --losses ce --fp32-seeds 0 --runs-dir runs/acc
    # the table of whatever is in the folders (runs still going are marked):
    python benchmarks/accuracy.py --runs-dir runs/acc --losses ce --report-only \\
        --json benchmarks/results/accuracy.json --markdown benchmarks/results/accuracy.md \\
        --plot benchmarks/results/accuracy_gain.png --curves benchmarks/results/accuracy_curves.png
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# common puts the repository root on sys.path
from common import REPO_ROOT, machine_description, write_json
from dali_cmo.streams.schedule import PasteSchedule  # noqa: E402

# loss name -> train.py arguments; "{drw}" is the deferred re-weighting epoch (drop_epoch)
LOSSES = {"ce": ["--loss", "ce"], "ce-drw": ["--loss", "ce", "--drw-epoch", "{drw}"],
          "bs": ["--loss", "bs"], "ldam-drw": ["--loss", "ldam", "--drw-epoch", "{drw}"]}
BASELINE = "none"
COMPARED = ("cmo", "cutmix", "cmo_back", "cmo_minor", "ros")  # train.py --variant
# the baseline trained without --amp (--fp32-seeds): what bf16 autocast costs it
FP32 = "none-fp32"
LABELS = {"cmo": "CMO", "cutmix": "CutMix", "cmo_back": "CMO (Q backgrounds)",
          "cmo_minor": "CMO (Q both)", "ros": "ROS", FP32: "fp32 (no autocast)"}
# The paper's top-1 (Park et al., CVPR 2022, Table 2: CIFAR-100-LT, imbalance ratio 100, 200
# epochs), baseline -> + CMO. It reports no CIFAR-10-LT figures.
PAPER = {("cifar100-lt", 100.0): {"ce": (38.6, 43.9), "ce-drw": (41.1, 47.0),
                                  "bs": (45.1, 46.6)}}
GROUPS = ("top1", "many", "medium", "few")
# --quick: two arms of a few batches on the built-in demo data (a smoke test, no figures)
QUICK = ["--dataset", "demo", "--max-steps-per-epoch", "1", "--batch-size", "16",
         "--cmo-start", "-1", "--cmo-end", "0", "--cmo-prob", "1.0", "--warmup", "0",
         "--decay", "cosine", "--dali-threads", "1", "--torch-threads", "1"]


def get_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--runs-dir", required=True, help="folder of the arms' run folders")
    add("--dataset", default="cifar10-lt", help="train.py --dataset")
    add("--data", default=None,
        help="train.py --data (default for cifar10-lt: the shared CIFAR-10 JPEGs)")
    add("--imbalance-ratio", type=float, default=100.0)
    add("--losses", nargs="+", choices=tuple(LOSSES), default=["ce"])
    add("--variants", nargs="+", choices=COMPARED, default=["cmo"],
        help="what is trained beside the baseline (variant none) of every loss and seed: cmo, "
             "or controls such as cutmix (P foregrounds; train.py --variant)")
    add("--seeds", type=int, nargs="+", default=[0])
    add("--fp32-seeds", type=int, nargs="+", default=[],
        help="seeds whose baseline is also trained without --amp (arm <loss>-none-fp32-s<seed>): "
             "what bf16 autocast costs the baseline")
    add("--epochs", type=int, default=200)
    add("--train-args", default="--amp --channels-last --dali-threads 1 --torch-threads 1",
        help="more train.py arguments for every arm (one string)")
    add("--parallel", type=int, default=2,
        help="arms trained at once (2 on a 2-core CPU: measured faster than one at a time)")
    add("--report-only", action="store_true", help="train nothing, only report")
    add("--print-every", type=float, default=600.0,
        help="seconds between progress lines while training (epochs done, ETA per arm)")
    add("--quick", action="store_true", help="smoke run: a few demo batches per arm")
    add("--bn-stats", action="store_true",
        help="score each complete arm's last weights with BatchNorm statistics from one epoch "
             "of its own training stream (once; also with --report-only)")
    add("--previous", default=None,
        help="an earlier summary JSON of this report: arms whose folder holds no log are read "
             "from it (finished arms whose folders are gone)")
    add("--json", default=None, help="summary JSON (default: <runs-dir>/accuracy.json)")
    add("--markdown", default=None, help="table (default: <runs-dir>/accuracy.md)")
    add("--plot", default=None, help="per-class gain plot (default: <runs-dir>/accuracy_gain.png)")
    add("--curves", default=None,
        help="top-1 per epoch of every arm (default: <runs-dir>/accuracy_curves.png)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.dataset = 1, "demo"
    runs = Path(args.runs_dir)
    args.json = Path(args.json or runs / "accuracy.json")
    args.markdown = Path(args.markdown or runs / "accuracy.md")
    args.plot = Path(args.plot or runs / "accuracy_gain.png")
    args.curves = Path(args.curves or runs / "accuracy_curves.png")
    if args.parallel < 1:
        parser.error(f"--parallel must be >= 1; got {args.parallel}")
    if not set(args.fp32_seeds) <= set(args.seeds):
        parser.error(f"--fp32-seeds must be among --seeds {args.seeds}; got {args.fp32_seeds}")
    if args.data is None and args.dataset == "cifar10-lt":  # train.py has no default --data
        from dali_cmo.data.shared_data import SharedDataMissing, cifar10_dir
        with contextlib.suppress(SharedDataMissing):  # then train.py asks for --data
            args.data = str(cifar10_dir())
    return args


def arm_name(loss: str, kind: str, seed: int) -> str:
    return f"{loss}-{kind}-s{seed}"


def kinds(args, seed: int) -> list[str]:
    """The arms of one loss and seed: the baseline, the variants, and for ``--fp32-seeds`` the
    baseline without autocast."""
    return [BASELINE, *args.variants, *([FP32] if seed in args.fp32_seeds else [])]


def variant_of(kind: str) -> str:
    """The arm's ``train.py --variant``."""
    return BASELINE if kind == FP32 else kind


def arm_label(loss: str, kind: str) -> str:
    if kind == BASELINE:
        return loss
    return f"{loss}, {LABELS[kind]}" if kind == FP32 else f"{loss} + {LABELS[kind]}"


def arms(args) -> list[tuple[str, str, int]]:
    """(loss, kind, seed) of every arm: per loss and seed the baseline, then the variants, then
    the fp32 baseline where asked."""
    return [(loss, kind, seed) for loss in args.losses for seed in args.seeds
            for kind in kinds(args, seed)]


def drop_epoch(epochs: int) -> int:
    """The reference's first learning-rate drop, also its deferred re-weighting epoch: 160 of
    200 epochs, scaled with ``epochs``."""
    return round(epochs * 0.8)


def train_command(args, loss: str, kind: str, seed: int, folder: Path,
                  resume: bool = True) -> list[str]:
    """The arm's ``train.py`` command (continuing its folder with ``resume``)."""
    drw = str(drop_epoch(args.epochs))
    command = [sys.executable, str(REPO_ROOT / "train.py"), "--variant", variant_of(kind),
               "--seed", str(seed), "--epochs", str(args.epochs), "--eval-every", "1",
               "--output", str(folder), *(["--resume", "auto"] if resume else []),
               "--print-every", "300", *[a.replace("{drw}", drw) for a in LOSSES[loss]]]
    if args.quick:
        command += QUICK
    else:
        command += ["--dataset", args.dataset, "--imbalance-ratio", str(args.imbalance_ratio)]
        command += ["--data", args.data] if args.data else []
    extra = shlex.split(args.train_args)
    return command + ([a for a in extra if a != "--amp"] if kind == FP32 else extra)


# --------------------------------------------------------------------------- reading runs

def running_pid(folder: Path) -> int | None:
    """The pid of a live process whose command line has ``--output <folder>`` (Linux /proc)."""
    target = folder.resolve()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        for flag, value in zip(argv, argv[1:]):
            if flag == "--output" and (cwd / value).resolve() == target:
                return int(entry.name)
    return None


def own_bn_report(folder: Path, variant: str) -> Path:
    """Where ``train.py --test-only last --bn-stats-from <variant>`` writes its scores."""
    return folder / f"evaluation_last_bn-{variant}.json"


def read_run(folder: Path, epochs: int, variant: str) -> dict:
    """One arm's summary from its folder: status, last and best evaluated epoch, per-class
    accuracy (of the last epoch, when the run finished or logged it), the last weights'
    scores with BatchNorm statistics from the arm's own stream (``--bn-stats``) when made,
    and, where its log records them, the hours it trained and evaluated and on what."""
    log = folder / "log.jsonl"
    history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] \
        if log.exists() else []
    evaluated = [h for h in history if h.get("top1") is not None]
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    done = history[-1]["epoch"] if history else 0
    pid = running_pid(folder)
    if metrics is not None and done >= epochs:
        status = "complete"
    elif pid is not None:
        status = f"running (pid {pid})"
    else:
        status = "stopped" if history else "not started"
    summary = {"folder": folder.name, "status": status, "epochs_done": done,
               "epochs": epochs, "images_per_second": None, "last": None, "best": None,
               "per_class": None, "train_class_counts": None, "code": None,
               "pasting_epochs": None, "last_own_bn": None, "hours": None, "machines": None,
               "top1_by_epoch": [[h["epoch"], h["top1"]] for h in evaluated]}
    speeds = [h["train_images_per_second"] for h in history if "train_images_per_second" in h]
    if speeds:
        summary["images_per_second"] = sum(speeds) / len(speeds)
    if history and all("train_seconds" in h for h in history):  # logged by newer runs
        seconds = sum(h["train_seconds"] + h.get("eval_seconds", 0.0) for h in history)
        summary["hours"] = round(seconds / 3600, 2)
        summary["machines"] = sorted({h["machine"] for h in history})
    if evaluated:
        last, best = evaluated[-1], max(evaluated, key=lambda h: h["top1"])
        summary["last"] = {"epoch": last["epoch"], **{k: last.get(k) for k in GROUPS}}
        summary["best"] = {"epoch": best["epoch"], **{k: best.get(k) for k in GROUPS}}
        summary["per_class"] = last.get("per_class")
    if metrics is not None:
        summary["per_class"] = metrics["per_class"]
        summary["train_class_counts"] = metrics["train_class_counts"]
        summary["seconds_last_process"] = metrics.get("train_seconds_this_process")
        summary["code"] = metrics.get("code")  # the commit that trained it (newer runs)
        summary["pasting_epochs"] = first_and_last_pasting_epoch(metrics.get("args", {}))
    if own_bn_report(folder, variant).exists():
        scored = json.loads(own_bn_report(folder, variant).read_text())
        summary["last_own_bn"] = {k: scored.get(k) for k in GROUPS}
    return summary


def first_and_last_pasting_epoch(run_args: dict) -> list[int] | None:
    """First and last epoch (from 1) in which a finished run pasted, from its recorded
    arguments; None when it pasted in none or the arguments are not recorded."""
    names = ("variant", "epochs", "cmo_start", "cmo_end", "cmo_prob")
    if any(name not in run_args for name in names):
        return None
    window = PasteSchedule.for_variant(*(run_args[name] for name in names)).pasting_epochs
    return [window[0] + 1, window[-1] + 1] if window else None


def collect(args) -> dict:
    """Every arm's summary from its folder under ``--runs-dir``; an arm whose folder holds no
    log is taken from ``--previous`` when that summary has it."""
    runs = Path(args.runs_dir)
    previous = json.loads(Path(args.previous).read_text())["runs"] if args.previous else {}
    collected = {}
    for arm in arms(args):
        name = arm_name(*arm)
        run = read_run(runs / name, args.epochs, variant_of(arm[1]))
        if run["status"] == "not started" and name in previous:
            run = {**previous[name], "folder": name}
        collected[name] = run
    return collected


def compared_pairs(args, seed: int | None = None) -> list[tuple[str, str]]:
    """(reference arm, compared arm) kinds of every gain (of one seed's arms, or of any seed's):
    each variant over the baseline, CMO over CutMix when both are trained (the control that
    isolates Q), and fp32 over the bf16 baseline where both are trained."""
    trained = set(kinds(args, seed)) if seed is not None else \
        {kind for seed in args.seeds for kind in kinds(args, seed)}
    pairs = [(BASELINE, variant) for variant in args.variants]
    pairs += [("cutmix", "cmo")] if {"cmo", "cutmix"} <= trained else []
    return pairs + ([(BASELINE, FP32)] if FP32 in trained else [])


def gain_key(pair: tuple[str, str]) -> str:
    """The summary's key of a gain: the variant over the baseline, else ``cmo-over-cutmix``."""
    over, variant = pair
    return variant if over == BASELINE else f"{variant}-over-{over}"


def gain_name(pair: tuple[str, str]) -> str:
    over, variant = pair
    return LABELS[variant] if over == BASELINE else f"{LABELS[variant]} over {LABELS[over]}"


# --------------------------------------------------------------------------- report

def _cell(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _gain(a, b):
    return None if a is None or b is None else b - a


def mean_gain(args, runs: dict, loss: str, pair: tuple[str, str] = (BASELINE, "cmo")) -> dict:
    """The gain of ``pair``'s second arm over its first (by default CMO over the baseline) for
    ``loss`` (last-epoch top-1, many, medium, few; best-epoch top-1; own-stream BN top-1)
    averaged over the seeds whose two arms are both complete; ``seeds`` lists them."""
    complete = [seed for seed in args.seeds if pair in compared_pairs(args, seed) and
                all(runs[arm_name(loss, v, seed)]["status"] == "complete" for v in pair)]
    mean = {"seeds": complete}
    for key, moment, name in [(k, "last", k) for k in GROUPS] + [
            ("top1", "best", "best_top1"), ("top1", "last_own_bn", "own_bn_top1")]:
        gains = [_gain(*((runs[arm_name(loss, v, seed)][moment] or {}).get(key) for v in pair))
                 for seed in complete]
        mean[name] = None if not gains or None in gains else sum(gains) / len(gains)
    return mean


def markdown_table(args, runs: dict) -> str:
    """Per loss and seed: the baseline, each variant and its gain over the baseline, at the
    last and at the best evaluated epoch (and, once scored, the last weights with BatchNorm
    statistics from the arm's own stream); with several seeds, the mean gains."""
    paper = PAPER.get((args.dataset, float(args.imbalance_ratio)), {})
    own_bn = any(run["last_own_bn"] for run in runs.values())
    lines = [f"{args.dataset}, imbalance ratio {args.imbalance_ratio:g}, {args.epochs} epochs; "
             "top-1 and Many (>100 training images) / Medium (20..100) / Few (<20) class "
             "accuracy, %, on the balanced test set.",
             "",
             "| loss | arm | epochs done | status | top-1 (last) | many | medium | few | "
             "top-1 (best) | best epoch | " + ("top-1 (last, own-stream BN) | " if own_bn else "")
             + "paper top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if own_bn else "")]

    def own(value) -> str:  # the own-stream BN cell, when the column is shown
        return f" {_cell(value)} |" if own_bn else ""
    for loss in args.losses:
        reference = dict(zip((BASELINE, "cmo"), paper.get(loss, (None, None))))
        for seed in args.seeds:
            for kind in kinds(args, seed):
                run = runs[arm_name(loss, kind, seed)]
                last, best = run["last"] or {}, run["best"] or {}
                name = f"{loss} (seed {seed})" if kind == BASELINE else arm_label(loss, kind)
                lines.append(f"| {name} | {kind} | {run['epochs_done']}/{run['epochs']} | "
                             f"{run['status'].split(' (')[0]} | {_cell(last.get('top1'))} | "
                             f"{_cell(last.get('many'))} | {_cell(last.get('medium'))} | "
                             f"{_cell(last.get('few'))} | {_cell(best.get('top1'))} | "
                             f"{best.get('epoch', '–')} |"
                             f"{own((run['last_own_bn'] or {}).get('top1'))} "
                             f"{_cell(reference.get(kind), 1)} |")
            for pair in compared_pairs(args, seed):
                (base_last, last), (base_best, best), (base_bn, bn) = \
                    [[runs[arm_name(loss, variant, seed)][key] or {} for variant in pair]
                     for key in ("last", "best", "last_own_bn")]
                gains = [_cell(_gain(base_last.get(k), last.get(k))) for k in GROUPS]
                paper_gain = _cell(_gain(*paper[loss]), 1) \
                    if loss in paper and pair == (BASELINE, "cmo") else "–"
                lines.append(f"| {loss}: {gain_name(pair)} gain | | | | {' | '.join(gains)} | "
                             f"{_cell(_gain(base_best.get('top1'), best.get('top1')))} | |"
                             f"{own(_gain(base_bn.get('top1'), bn.get('top1')))} {paper_gain} |")
        for pair in compared_pairs(args):
            mean = mean_gain(args, runs, loss, pair)
            if len(mean["seeds"]) > 1:  # a mean of one seed says nothing new
                seeds = ", ".join(str(seed) for seed in mean["seeds"])
                lines.append(f"| {loss}: mean {gain_name(pair)} gain (seeds {seeds}) | | | | "
                             f"{' | '.join(_cell(mean[k]) for k in GROUPS)} | "
                             f"{_cell(mean['best_top1'])} | |{own(mean['own_bn_top1'])} |")
    if not paper:
        lines += ["", f"The paper reports no {args.dataset} figures (its CIFAR table is "
                      "CIFAR-100-LT)."]
    if any(run["status"] != "complete" for run in runs.values()):
        lines += ["", "Unfinished arms (status other than complete) show their latest "
                      "evaluated epoch; the comparison is final only when both arms are "
                      "complete."]
    return "\n".join(lines) + "\n"


def plot_gain(args, runs: dict) -> bool:
    """Per-class top-1 gain (CMO − baseline, last epoch) against training size, one series per
    pair that has per-class figures for both arms; False when no pair has them."""
    from matplotlib.figure import Figure

    series = []
    for loss in args.losses:
        for seed in args.seeds:
            base = runs[arm_name(loss, BASELINE, seed)]
            for variant in args.variants:
                other = runs[arm_name(loss, variant, seed)]
                counts = base["train_class_counts"] or other["train_class_counts"]
                if base["per_class"] and other["per_class"] and counts:
                    gain = [None if a is None or b is None else b - a
                            for a, b in zip(base["per_class"], other["per_class"])]
                    epochs = min(base["last"]["epoch"], other["last"]["epoch"])
                    label = f"{loss}, seed {seed} (epoch {epochs})"
                    if args.variants != ["cmo"]:
                        label = f"{LABELS[variant]}: {label}"
                    series.append((label, counts, gain))
    if not series:
        return False
    fig = Figure(figsize=(6.5, 4.0), dpi=100)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="grey", linewidth=0.8)
    for label, counts, gain in series:
        points = sorted((n, g) for n, g in zip(counts, gain) if g is not None)
        ax.plot([n for n, _ in points], [g for _, g in points], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class (log scale)")
    compared = " / ".join(LABELS[v] for v in args.variants)
    ax.set_ylabel(f"test accuracy gain from {compared} (points)")
    ax.set_title(f"{args.dataset} (ratio {args.imbalance_ratio:g}): per-class gain of "
                 f"{compared}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot)
    return True


def curve_axes(args, runs: dict) -> list:
    """Top-1 per evaluated epoch, one row per loss with an evaluated epoch: all its arms on one
    panel (colour: the kind of arm; line style: the seed), beside it the same panel zoomed on
    the epochs after the first learning-rate drop (``drop_epoch``); the epochs in which a
    variant pasted are shaded. The panels' axes (of one figure, row by row), empty when no arm
    has evaluated an epoch."""
    from matplotlib.figure import Figure

    panels = [loss for loss in args.losses
              if any(runs[arm_name(*arm)]["top1_by_epoch"] for arm in arms(args)
                     if arm[0] == loss)]
    if not panels:
        return []
    colours = {kind: f"C{i}" for i, kind in enumerate((BASELINE, *args.variants, FP32))}
    styles = dict(zip(args.seeds, ("-", "--", ":", "-.") * len(args.seeds)))
    fig = Figure(figsize=(11.0, 3.8 * len(panels)), dpi=100)
    axes = [fig.add_subplot(len(panels), 2, panel + 1) for panel in range(2 * len(panels))]
    for ax, zoom, loss in zip(axes[::2], axes[1::2], panels):
        shaded = False
        for _, kind, seed in (arm for arm in arms(args) if arm[0] == loss):
            run = runs[arm_name(loss, kind, seed)]
            if run["top1_by_epoch"]:
                epochs, top1 = zip(*run["top1_by_epoch"])
                ax.plot(epochs, top1, linewidth=1.0, color=colours[kind], linestyle=styles[seed],
                        label=f"{arm_label(loss, kind)}, seed {seed}")
            if run["pasting_epochs"] and not shaded:  # one window: the arms share the recipe
                first, last = run["pasting_epochs"]
                ax.axvspan(first - 0.5, last + 0.5, color="grey", alpha=0.08, linewidth=0)
                shaded = True
        ax.set_xlim(0, args.epochs)
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(f"{args.dataset} (ratio {args.imbalance_ratio:g}), {loss}; "
                     "shaded: epochs that paste", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        zoom_in(ax, zoom, first=min(drop_epoch(args.epochs), args.epochs - 1), last=args.epochs)
    for ax in axes[-2:]:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return axes


def zoom_in(ax, zoom, first: int, last: int) -> None:
    """Draw ``ax``'s lines and shading again on ``zoom`` over epochs ``first``..``last``, the
    top-1 axis fitted to the points shown."""
    shown = []
    for line in ax.get_lines():
        epochs, top1 = line.get_xdata(), line.get_ydata()
        zoom.plot(epochs, top1, linewidth=1.0, color=line.get_color(),
                  linestyle=line.get_linestyle())
        shown += [y for x, y in zip(epochs, top1) if first <= x <= last]
    for patch in ax.patches:
        zoom.axvspan(patch.get_x(), patch.get_x() + patch.get_width(), color="grey", alpha=0.08,
                     linewidth=0)
    zoom.set_xlim(first, last)
    if shown:
        zoom.set_ylim(min(shown) - 0.5, max(shown) + 0.5)
    zoom.set_title(f"epochs {first}-{last}", fontsize=9)
    zoom.grid(alpha=0.3)


def plot_curves(args, runs: dict) -> bool:
    """Save :func:`curve_axes`'s figure to ``--curves``; False when it has no panel."""
    axes = curve_axes(args, runs)
    if not axes:
        return False
    args.curves.parent.mkdir(parents=True, exist_ok=True)
    axes[0].figure.savefig(args.curves)
    return True


def report(args) -> dict:
    runs = collect(args)
    table = markdown_table(args, runs)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(table)
    plotted = plot_gain(args, runs)
    curves = plot_curves(args, runs)
    summary = {"dataset": args.dataset, "imbalance_ratio": args.imbalance_ratio,
               "epochs": args.epochs, "losses": args.losses, "seeds": args.seeds,
               "train_args": args.train_args, "variants": args.variants,
               "fp32_seeds": args.fp32_seeds,
               "paper_top1": {loss: dict(zip((BASELINE, "cmo"), pair)) for loss, pair in
                              PAPER.get((args.dataset, float(args.imbalance_ratio)), {}).items()},
               "plot": args.plot.name if plotted else None,
               "curves": args.curves.name if curves else None, "runs": runs,
               "mean_gain": {loss: {gain_key(pair): mean_gain(args, runs, loss, pair)
                                    for pair in compared_pairs(args)} for loss in args.losses},
               "machine": machine_description()}
    write_json(args.json, summary)
    print(table)
    print(f"written: {args.json}, {args.markdown}" + (f", {args.curves}" if curves else "")
          + (f", {args.plot}" if plotted else " (no per-class figures yet: no gain plot)"))
    return summary


# --------------------------------------------------------------------------- training

def train(args) -> None:
    """Start or continue every unfinished arm, ``--parallel`` at a time; an arm whose folder is
    in use by another process is left to it."""
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    pending = [arm for arm in arms(args)
               if read_run(runs_dir / arm_name(*arm), args.epochs,
                           variant_of(arm[1]))["status"] != "complete"]
    active: list[tuple[str, subprocess.Popen]] = []
    started: dict[str, tuple[float, int]] = {}  # arm -> (time, epochs done) when started
    last_line = time.monotonic()
    while pending or active:
        while pending and len(active) < args.parallel:
            arm = pending.pop(0)
            folder = runs_dir / arm_name(*arm)
            if running_pid(folder) is not None:
                print(f"{folder.name}: already being trained by pid {running_pid(folder)}; "
                      f"left to it")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            log = open(runs_dir / f"{folder.name}.log", "a")
            print(f"{folder.name}: training (log {log.name})", flush=True)
            started[folder.name] = (time.monotonic(), epochs_logged(folder))
            active.append((folder.name, subprocess.Popen(
                train_command(args, *arm, folder), cwd=REPO_ROOT, stdout=log,
                stderr=subprocess.STDOUT)))
        time.sleep(0.2 if args.quick else 10)
        for name, process in list(active):
            if process.poll() is not None:
                active.remove((name, process))
                print(f"{name}: train.py exited with {process.returncode}", flush=True)
                if process.returncode != 0:
                    raise SystemExit(f"error: {name} failed (exit {process.returncode}); see "
                                     f"{runs_dir / (name + '.log')}; rerun to resume it")
        if active and time.monotonic() - last_line >= args.print_every:
            last_line = time.monotonic()
            print("; ".join(progress(name, runs_dir / name, *started[name], args.epochs)
                            for name, _ in active), flush=True)


def epochs_logged(folder: Path) -> int:
    """Epochs an arm has finished (its ``log.jsonl`` lines)."""
    log = folder / "log.jsonl"
    return sum(1 for line in log.read_text().splitlines() if line.strip()) if log.exists() else 0


def progress(name: str, folder: Path, since: float, done_then: int, epochs: int) -> str:
    """``<arm> epoch <done>/<epochs>`` and, once an epoch has finished since ``since``, the time
    left at this process's pace."""
    done = epochs_logged(folder)
    line = f"{name} epoch {done}/{epochs}"
    if done > done_then:
        left = (time.monotonic() - since) / (done - done_then) * (epochs - done)
        line += f", about {left / 3600:.1f} h left"
    return line


def score_own_bn(args) -> None:
    """``--bn-stats``: every complete arm's last weights scored once with BatchNorm statistics
    from one epoch of its own training stream (``train.py --test-only last --bn-stats-from``,
    output appended to the arm's log)."""
    runs_dir = Path(args.runs_dir)
    for loss, kind, seed in arms(args):
        folder, variant = runs_dir / arm_name(loss, kind, seed), variant_of(kind)
        if own_bn_report(folder, variant).exists() or \
                read_run(folder, args.epochs, variant)["status"] != "complete":
            continue
        print(f"{folder.name}: scoring the last weights with BatchNorm statistics from its own "
              f"({variant}) stream", flush=True)
        command = train_command(args, loss, kind, seed, folder, resume=False) + [
            "--test-only", "last", "--bn-stats-from", variant]
        with open(runs_dir / f"{folder.name}.log", "a") as log:
            status = subprocess.run(command, cwd=REPO_ROOT, stdout=log,
                                    stderr=subprocess.STDOUT).returncode
        if status != 0:
            raise SystemExit(f"error: {folder.name}: train.py --test-only exited with {status}; "
                             f"see {runs_dir / (folder.name + '.log')}")


def main(argv=None) -> int:
    args = get_args(argv)
    if not args.report_only:
        train(args)
    if args.bn_stats:
        score_own_bn(args)
    report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
