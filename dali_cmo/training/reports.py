"""Pictures of a run: per-class accuracy against training count, and grids of CMO samples.

Uses matplotlib's Agg renderer (through ``matplotlib.figure.Figure``, never pyplot, so no
display or global backend is touched) and Pillow. The caption font is the DejaVu Sans that
ships with matplotlib, so captions render the same on every machine.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dali_cmo.data.groups import CIFAR_RULE, GROUP_RULES, GroupRule
from dali_cmo.training.checkpoint import LOG, METRICS, write_atomically

_GROUP_COLOURS = {"many": "#dbe9f6", "medium": "#fdebd0", "few": "#f9d6d5"}


def plot_per_class_accuracy(per_class: Sequence[float | None],
                            class_counts: Sequence[int] | torch.Tensor, path: str | Path,
                            title: str = "Per-class accuracy", *,
                            rule: GroupRule = CIFAR_RULE) -> Path:
    """Write a PNG: classes sorted by training count (descending), a bar of test accuracy
    (percent) per class, the training count as a line on a log-scaled right axis, and the
    Many / Medium / Few spans shaded (same thresholds as
    :func:`dali_cmo.training.metrics.accuracy_report`). ``None`` accuracies (no test samples) get no bar.
    """
    from matplotlib.figure import Figure

    counts = np.asarray(torch.as_tensor(class_counts).cpu(), dtype=np.int64)
    accuracy = np.array([np.nan if a is None else a for a in per_class], dtype=np.float64)
    if accuracy.shape != counts.shape:
        raise ValueError(f"per_class has {accuracy.size} entries but class_counts has "
                         f"{counts.size}")
    order = np.argsort(-counts, kind="stable")
    x = np.arange(counts.size)
    fig = Figure(figsize=(max(6.0, min(24.0, 0.06 * counts.size + 4.0)), 4.0), dpi=100)
    ax = fig.add_subplot()
    masks = rule.masks(counts[order])
    for name, mask in masks.items():
        members = np.flatnonzero(mask)
        if members.size:
            ax.axvspan(members[0] - 0.5, members[-1] + 0.5, color=_GROUP_COLOURS[name], zorder=0)
            ax.text((members[0] + members[-1]) / 2, 101, name, ha="center", va="bottom",
                    fontsize=9)
    ax.bar(x, accuracy[order], width=0.8 if counts.size < 50 else 1.0, color="#2c7fb8",
           zorder=2)
    ax.set_xlim(-0.5, counts.size - 0.5)
    ax.set_ylim(0, 110)
    ax.set_xlabel("classes, by training count (descending)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}  [{rule.describe()}]", fontsize=10)
    twin = ax.twinx()
    twin.plot(x, np.maximum(counts[order], 1), color="#d95f0e", linewidth=1.5)
    twin.set_yscale("log")
    twin.set_ylabel("training images", color="#d95f0e")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def sample_captions(target_b: Sequence[int] | torch.Tensor, target_f: Sequence[int] | torch.Tensor,
                    lam: Sequence[float] | torch.Tensor,
                    class_names: Sequence[str] | None = None) -> list[str]:
    """Captions ``"bg 3 / fg 7 / λ=0.62"`` (class names instead of indices when given)."""
    def name(k: int) -> str:
        return str(k) if class_names is None else class_names[k]

    return [f"bg {name(b)} / fg {name(f)} / λ={l:.2f}"
            for b, f, l in zip(torch.as_tensor(target_b).tolist(),
                               torch.as_tensor(target_f).tolist(),
                               torch.as_tensor(lam, dtype=torch.float64).tolist())]


def _to_uint8(images: torch.Tensor, mean: Sequence[float] | None,
              std: Sequence[float] | None) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, 3) uint8. Float input is de-normalised as ``x * std + mean``
    and read in 0..255 units if any mean exceeds 1 (DALI's convention), else in 0..1."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with C = 1 or 3; "
                         f"got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        pixels = images
    else:
        m = torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float64)
        s = torch.as_tensor(1.0 if std is None else std, dtype=torch.float64)
        x = images.double() * s.reshape(-1, 1, 1) + m.reshape(-1, 1, 1)
        scale = 1.0 if bool((m > 1).any()) else 255.0
        pixels = (x * scale).round().clamp(0, 255).to(torch.uint8)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return pixels.permute(0, 2, 3, 1).numpy()


def save_sample_grid(images: torch.Tensor, path: str | Path, *,
                     captions: Sequence[str] | None = None, nrow: int = 8,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     padding: int = 2) -> Path:
    """Write a PNG grid of ``images`` (N, C, H, W), ``nrow`` tiles per row, ``padding`` px
    between tiles (layout as ``torchvision.utils.make_grid``).

    Images are uint8, or float (then de-normalised with ``mean``/``std`` if given, see
    ``_to_uint8``). With ``captions`` (one per image, e.g. from :func:`sample_captions`) a text
    line is drawn under each tile, and small tiles are enlarged by an integer factor (nearest
    neighbour) so that the caption fits.
    """
    tiles = _to_uint8(images, mean, std)
    n, h, w = tiles.shape[:3]
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1; got {nrow}")
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries for {n} images")
    zoom, caption_h, font = 1, 0, None
    if captions is not None:
        from matplotlib import font_manager

        font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), 11)
        text_w = max((font.getbbox(c)[2] for c in captions), default=0) + 4
        zoom = max(1, math.ceil(text_w / w))
        caption_h = font.getbbox("Aλg")[3] + 4
    tile_w, tile_h = w * zoom, h * zoom + caption_h
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = Image.new("RGB", (cols * (tile_w + padding) + padding,
                             rows * (tile_h + padding) + padding), "white")
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        left = padding + (i % cols) * (tile_w + padding)
        top = padding + (i // cols) * (tile_h + padding)
        tile = Image.fromarray(tiles[i])
        if zoom > 1:
            tile = tile.resize((tile_w, h * zoom), Image.Resampling.NEAREST)
        grid.paste(tile, (left, top))
        if captions is not None:
            draw.text((left + 2, top + h * zoom + 1), captions[i], fill="black", font=font)
    path = Path(path)
    grid.save(path, format="PNG")
    return path


@dataclass
class FirstPastePicture:
    """Saves the first training batch with a paste as a captioned grid (``cmo_samples.png``),
    once; called with every batch.

    Args:
        path: the PNG to write (None: write nothing).
        mean_std: the normalisation of the batch's images.
        class_names: for the captions.
    """
    path: Path | None
    mean_std: tuple
    class_names: tuple

    def __call__(self, batch) -> None:
        if self.path is None or not bool((batch.lam < 1).any()):
            return
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


@dataclass
class FirstStepRecord:
    """Writes this rank's first pasted training step as JSON (``train.py --debug-shards``, for
    checks of the multi-rank semantics): its batch, labels, lam, box, per-image pixel sums,
    logits, loss and class weights; called with every step.

    Args:
        path: the JSON file (None: write nothing).
        pipeline: the training pipeline (rebuilt to read the step's boxes).
        loss_fn: the loss (its class weights).
    """
    path: Path | None
    pipeline: object
    loss_fn: object

    def __call__(self, batch, logits, loss) -> None:
        if self.path is None or not bool((batch.lam < 1).any()):
            return
        path, self.path = self.path, None
        # the same stream again, with the boxes: its first pasted step is this one
        pipe = self.pipeline.build(with_box=True)
        while True:
            outputs = pipe.run()
            if bool((np.array(outputs[3].as_tensor()) < 1).any()):
                break
        weights = self.loss_fn.class_weights
        path.write_text(json.dumps({
            "rank_batch": len(batch), "target_b": batch.target_b.tolist(),
            "target_f": batch.target_f.tolist(), "lam": batch.lam.tolist(),
            "box": np.array(outputs[4].as_tensor()).tolist(),
            "image_sums": batch.images.float().sum(dim=(1, 2, 3)).tolist(),
            "logits": logits.detach().float().tolist(), "loss": loss.item(),
            "class_weights": None if weights is None else weights.tolist()}))


def code_version() -> dict:
    """Which code runs: the package version and, in a git checkout, the commit and whether the
    working tree differs from it (``None`` where there is no git checkout)."""
    import subprocess

    import dali_cmo
    root = Path(dali_cmo.__file__).resolve().parent.parent

    def git(*arguments):
        try:
            done = subprocess.run(["git", "-C", str(root), *arguments], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"version": dali_cmo.__version__, "git_commit": commit,
            "uncommitted_changes": None if changed is None else bool(changed)}


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere what ``platform`` knows)."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device: torch.device) -> str:
    """What trains on ``device``: the CPU's model, and the GPU's name on a CUDA device (an
    epoch's entry in ``log.jsonl`` records it, so a run resumed elsewhere says which machine
    trained which epochs)."""
    if device.type == "cuda":
        return f"{cpu_model()} + {torch.cuda.get_device_name(device)}"
    return cpu_model()


def describe_code(code: dict) -> str:
    """``code_version()`` in words, for the log."""
    if code["git_commit"] is None:
        return f"dali-cmo {code['version']}"
    return (f"dali-cmo {code['version']}, git {code['git_commit'][:10]}"
            + (" with uncommitted changes" if code["uncommitted_changes"] else ""))


def write_log(folder: Path, entries: list[dict]) -> None:
    """``log.jsonl``, one line per epoch, written whole from the run's history (atomically): it
    never holds an epoch twice, nor one its checkpoint does not."""
    write_atomically("".join(json.dumps(entry) + "\n" for entry in entries).encode(),
                     folder / LOG)


def write_run_report(run, settings, report, evaluated_epoch, history, elapsed, train_set,
                     bad_images, left_out, code: dict) -> None:
    """The end of a ``train.py`` run (rank 0): ``metrics.json``, the per-class plot and the
    accuracy table on stdout, with the last evaluation and the best one (highest top-1, the
    earlier on a tie, as the reference).

    Args:
        run: the trainer's ``Run`` (its output folder and world size).
        settings: the run's :class:`~dali_cmo.training.settings.RunSettings`.
        report: the last evaluation (:func:`dali_cmo.training.metrics.accuracy_report`).
        evaluated_epoch: the epoch of ``report``, counted from 1.
        history: one entry per epoch (evaluations and throughput).
        elapsed: seconds this process trained.
        train_set: the training dataset (class counts and names).
        bad_images: training files replaced under ``--on-bad-image skip`` (path -> problem).
        left_out: evaluation files not scored under ``skip`` (path -> problem).
        code: :func:`code_version` of this process.
    """
    from dali_cmo.training.metrics import best_evaluation, format_report_table
    best = best_evaluation(history) or {**report, "epoch": evaluated_epoch}
    output, counts = run.output, train_set.class_counts
    speeds = [h["train_images_per_second"] for h in history if "train_images_per_second" in h]
    metrics = {**report, "evaluated_epoch": evaluated_epoch, "best": best,
               "epochs": settings.epochs, "global_batch": settings.batch_size,
               "rank_batch": settings.rank_batch_size,
               "images_per_second": float(np.mean(speeds)) if speeds else None,
               "train_seconds_this_process": elapsed, "world_size": run.world,
               "train_class_counts": counts.tolist(),
               "class_names": list(train_set.class_names),
               "bad_images": bad_images,  # training files replaced under --on-bad-image skip
               "eval_images_left_out": left_out,  # evaluation files not scored (skip mode)
               "code": code, "args": settings.record()}
    write_atomically(json.dumps(metrics, indent=2).encode(), output / METRICS)
    plot_per_class_accuracy(report["per_class"], counts, output / "per_class_accuracy.png",
                            title=f"{settings.dataset}: {settings.model}, {settings.loss}, "
                                  f"{settings.variant}",
                            rule=GROUP_RULES[settings.groups])
    name = f"{settings.model} {settings.loss} + {settings.variant}"
    print(f"\nTest accuracy (%) after {settings.epochs} epochs, the last and the best evaluated "
          f"epoch; classes grouped by training images: {report['groups']} (--groups "
          f"{settings.groups})")
    if settings.dataset == "demo":
        print("demo classes: many = 300, 179, 107 training images; medium = 64, 38, 23; "
              "few = 13, 8, 5, 3 (a short demo: real runs train for 100-200 epochs)")
    if left_out:
        print(f"{len(left_out)} bad evaluation image(s) left out of scoring (metrics.json: "
              f"eval_images_left_out)")
    print(format_report_table({f"{name}, last (epoch {evaluated_epoch})": report,
                               f"{name}, best (epoch {best['epoch']})": best}))
    written = [output / n for n in (METRICS, LOG, "per_class_accuracy.png",
                                    "cmo_samples.png") if (output / n).exists()]
    print(f"\nwritten: {', '.join(map(str, written))}")


def write_test_report(run, settings, report, weights: Path, where: str, train_set,
                      val_source: str, left_out) -> None:
    """The end of ``train.py --test-only`` (rank 0): ``evaluation_<last|best>.json`` (with
    ``--bn-stats-from V``: ``evaluation_<last|best>_bn-V.json``) and its per-class picture in
    the run folder (``metrics.json`` is left as training wrote it), and
    the accuracy table on stdout.

    Args:
        run: the trainer's ``Run`` (its output folder).
        settings: the run's settings (``test_only``: which weights).
        report: the evaluation (:func:`dali_cmo.training.metrics.accuracy_report`).
        weights: the file scored; ``where``: where its weights stand (epoch).
        train_set: the training dataset (class counts and names).
        val_source: the evaluation set read.
        left_out: evaluation files not scored under ``--on-bad-image skip`` (path -> problem).
    """
    from dali_cmo.training.metrics import format_report_table
    stem = f"evaluation_{settings.test_only}" + (f"_bn-{settings.bn_stats_from}"
                                             if settings.bn_stats_from else "")
    counts = train_set.class_counts
    result = {**report, "weights": str(weights), "weights_at": where,
              "evaluation_set": val_source, "train_class_counts": counts.tolist(),
              "class_names": list(train_set.class_names), "eval_images_left_out": left_out,
              "code": code_version(), "args": settings.record()}
    (run.output / f"{stem}.json").write_text(json.dumps(result, indent=2))
    picture = plot_per_class_accuracy(
        report["per_class"], counts, run.output / f"{stem}_per_class.png",
        title=f"{settings.dataset}: {weights.name} ({where})", rule=GROUP_RULES[settings.groups])
    print(f"\nTest accuracy (%) of {weights} ({where}) on {val_source}; classes grouped by "
          f"training images: {report['groups']} (--groups {settings.groups})")
    name = f"{settings.model} {settings.loss} + {settings.variant}, {settings.test_only}"
    print(format_report_table({name: report}))
    print(f"\nwritten: {run.output / (stem + '.json')}, {picture}")
