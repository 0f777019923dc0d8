"""benchmarks/accuracy.py: the table from run folders (finished or not), and a --quick smoke run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import accuracy  # noqa: E402


def write_run(folder: Path, entries, metrics=None):
    folder.mkdir(parents=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def entry(epoch, top1, many, medium, few=None, speed=100.0):
    return {"epoch": epoch, "loss": 1.0, "lr": 0.1, "train_images_per_second": speed,
            "top1": top1, "many": many, "medium": medium, "few": few}


def test_table_from_a_finished_and_an_unfinished_arm(tmp_path):
    write_run(tmp_path / "ce-none-s0", [entry(1, 30.0, 40.0, 10.0), entry(2, 50.0, 60.0, 20.0),
                                        entry(3, 45.0, 62.0, 5.0)],
              {"per_class": [90.0, 0.0], "train_class_counts": [500, 5], "epochs": 3})
    write_run(tmp_path / "ce-cmo-s0", [entry(1, 35.5, 41.0, 12.25, speed=80.0),
                                       entry(2, 34.0, 40.0, 11.0, speed=90.0)])
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "3", "--report-only",
                              "--dataset", "cifar100-lt"])
    summary = accuracy.report(args)
    base, cmo = summary["runs"]["ce-none-s0"], summary["runs"]["ce-cmo-s0"]
    assert (base["status"], cmo["status"]) == ("complete", "stopped")
    assert base["best"] == {"epoch": 2, "top1": 50.0, "many": 60.0, "medium": 20.0, "few": None}
    assert base["last"]["epoch"] == 3 and cmo["last"]["epoch"] == 2
    assert cmo["images_per_second"] == 85.0
    table = args.markdown.read_text().splitlines()
    assert table[4] == ("| ce (seed 0) | none | 3/3 | complete | 45.00 | 62.00 | 5.00 | – | "
                        "50.00 | 2 | 38.6 |")
    assert table[5] == ("| ce + CMO | cmo | 2/3 | stopped | 34.00 | 40.00 | 11.00 | – | "
                        "35.50 | 1 | 43.9 |")
    assert table[6] == "| ce: CMO gain | | | | -11.00 | -22.00 | 6.00 | – | -14.50 | | 5.3 |"
    assert json.loads(args.json.read_text())["runs"]["ce-cmo-s0"]["top1_by_epoch"] == \
        [[1, 35.5], [2, 34.0]]
    assert summary["plot"] is None  # the unfinished arm has no per-class figures


def test_mean_gain_over_the_seeds_whose_pairs_are_complete(tmp_path):
    done = {"per_class": [1.0], "train_class_counts": [5], "epochs": 2}
    # seed 0: last-epoch gains +2 / +4 / -1, best +3; seed 1: +1 / -2 / +4, best +6
    write_run(tmp_path / "ce-none-s0", [entry(1, 40.0, 50.0, 10.0), entry(2, 30.0, 40.0, 20.0)],
              done)
    write_run(tmp_path / "ce-cmo-s0", [entry(1, 43.0, 50.0, 10.0), entry(2, 32.0, 44.0, 19.0)],
              done)
    write_run(tmp_path / "ce-none-s1", [entry(1, 20.0, 30.0, 5.0), entry(2, 50.0, 60.0, 6.0)],
              done)
    write_run(tmp_path / "ce-cmo-s1", [entry(1, 56.0, 30.0, 5.0), entry(2, 51.0, 58.0, 10.0)],
              done)
    # seed 2's CMO arm is unfinished: left out of the mean
    write_run(tmp_path / "ce-none-s2", [entry(1, 20.0, 30.0, 5.0), entry(2, 20.0, 30.0, 5.0)],
              done)
    write_run(tmp_path / "ce-cmo-s2", [entry(1, 90.0, 90.0, 90.0)])
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "2", "--report-only",
                              "--seeds", "0", "1", "2"])
    summary = accuracy.report(args)
    assert summary["mean_gain"]["ce"]["cmo"] == {"seeds": [0, 1], "top1": 1.5, "many": 1.0,
                                                 "medium": 1.5, "few": None, "best_top1": 4.5,
                                                 "own_bn_top1": None}
    table = args.markdown.read_text().splitlines()
    assert "| ce: mean CMO gain (seeds 0, 1) | | | | 1.50 | 1.00 | 1.50 | – | 4.50 | | |" \
        in table
    # the last weights scored with BatchNorm statistics from the arm's own stream: a column;
    # seed 0: 31.0 -> 34.5 (+3.5), seed 1: 52.0 -> 51.0 (-1.0), mean +1.25
    for arm, top1 in (("ce-none-s0", 31.0), ("ce-cmo-s0", 34.5), ("ce-none-s1", 52.0),
                      ("ce-cmo-s1", 51.0)):
        variant = arm.split("-")[1]
        (tmp_path / arm / f"evaluation_last_bn-{variant}.json").write_text(json.dumps(
            {"top1": top1, "many": 0.0, "medium": 0.0, "few": None}))
    summary = accuracy.report(args)
    assert summary["mean_gain"]["ce"]["cmo"]["own_bn_top1"] == 1.25
    assert summary["runs"]["ce-cmo-s0"]["last_own_bn"] == {"top1": 34.5, "many": 0.0,
                                                           "medium": 0.0, "few": None}
    table = args.markdown.read_text().splitlines()
    assert table[2] == ("| loss | arm | epochs done | status | top-1 (last) | many | medium | "
                        "few | top-1 (best) | best epoch | top-1 (last, own-stream BN) | "
                        "paper top-1 |")
    assert table[4:7] == [
        "| ce (seed 0) | none | 2/2 | complete | 30.00 | 40.00 | 20.00 | – | 40.00 | 1 | 31.00 "
        "| – |",
        "| ce + CMO | cmo | 2/2 | complete | 32.00 | 44.00 | 19.00 | – | 43.00 | 1 | 34.50 "
        "| – |",
        "| ce: CMO gain | | | | 2.00 | 4.00 | -1.00 | – | 3.00 | | 3.50 | – |"]
    assert "| ce: mean CMO gain (seeds 0, 1) | | | | 1.50 | 1.00 | 1.50 | – | 4.50 | | 1.25 | |" \
        in table


def test_a_control_variant_gets_its_rows_and_gain_beside_cmo(tmp_path):
    done = {"per_class": [60.0, 10.0], "train_class_counts": [500, 5], "epochs": 1}
    write_run(tmp_path / "ce-none-s0", [entry(1, 30.0, 40.0, 10.0)], done)
    write_run(tmp_path / "ce-cmo-s0", [entry(1, 35.0, 41.0, 12.5)],
              {**done, "per_class": [61.0, 15.0]})
    write_run(tmp_path / "ce-cutmix-s0", [entry(1, 29.0, 43.0, 8.0)],
              {**done, "per_class": [66.0, 4.0]})
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "1", "--report-only",
                              "--variants", "cmo", "cutmix"])
    assert accuracy.arms(args) == [("ce", "none", 0), ("ce", "cmo", 0), ("ce", "cutmix", 0)]
    summary = accuracy.report(args)
    table = args.markdown.read_text().splitlines()
    assert table[4:10] == [
        "| ce (seed 0) | none | 1/1 | complete | 30.00 | 40.00 | 10.00 | – | 30.00 | 1 | – |",
        "| ce + CMO | cmo | 1/1 | complete | 35.00 | 41.00 | 12.50 | – | 35.00 | 1 | – |",
        "| ce + CutMix | cutmix | 1/1 | complete | 29.00 | 43.00 | 8.00 | – | 29.00 | 1 | – |",
        "| ce: CMO gain | | | | 5.00 | 1.00 | 2.50 | – | 5.00 | | – |",
        "| ce: CutMix gain | | | | -1.00 | 3.00 | -2.00 | – | -1.00 | | – |",
        "| ce: CMO over CutMix gain | | | | 6.00 | -2.00 | 4.50 | – | 6.00 | | – |"]
    assert summary["mean_gain"]["ce"]["cutmix"]["top1"] == -1.0
    assert summary["mean_gain"]["ce"]["cmo-over-cutmix"]["top1"] == 6.0
    # the committed summary names files, never this machine's folders
    assert summary["plot"] == args.plot.name and args.plot.stat().st_size > 0
    assert [run["folder"] for run in summary["runs"].values()] == [
        "ce-none-s0", "ce-cmo-s0", "ce-cutmix-s0"]
    assert str(tmp_path) not in args.json.read_text()


def test_arms_whose_folders_are_gone_come_from_the_previous_summary(tmp_path):
    done = {"per_class": [60.0, 10.0], "train_class_counts": [500, 5], "epochs": 1}
    old, new = tmp_path / "old", tmp_path / "new"
    write_run(old / "ce-none-s0", [entry(1, 30.0, 40.0, 10.0)], done)
    write_run(old / "ce-cmo-s0", [entry(1, 35.0, 41.0, 12.5)], done)
    before = accuracy.report(accuracy.get_args(
        ["--runs-dir", str(old), "--epochs", "1", "--report-only"]))
    # a new runs folder trains only the control, and a stale CMO folder without its log
    write_run(new / "ce-cutmix-s0", [entry(1, 29.0, 43.0, 8.0)], done)
    (new / "ce-cmo-s0").mkdir()
    args = accuracy.get_args(["--runs-dir", str(new), "--epochs", "1", "--report-only",
                              "--variants", "cmo", "cutmix", "--previous",
                              str(old / "accuracy.json")])
    summary = accuracy.report(args)
    for arm in ("ce-none-s0", "ce-cmo-s0"):
        assert summary["runs"][arm] == before["runs"][arm]
    assert summary["runs"]["ce-cutmix-s0"]["last"]["top1"] == 29.0
    assert summary["mean_gain"]["ce"]["cmo-over-cutmix"]["top1"] == 6.0


def test_curves_plot_every_arms_top1_by_epoch_and_the_epochs_that_paste(tmp_path):
    done = {"per_class": [1.0], "train_class_counts": [5], "epochs": 4}
    window = {"epochs": 4, "cmo_start": 0, "cmo_end": 1, "cmo_prob": 0.5}
    write_run(tmp_path / "ce-none-s0", [entry(e, 10.0 * e, 0, 0) for e in (1, 2, 3, 4)],
              {**done, "args": {**window, "variant": "none"}})
    write_run(tmp_path / "ce-cmo-s0", [entry(e, 11.0 * e, 0, 0) for e in (1, 2, 3, 4)],
              {**done, "args": {**window, "variant": "cmo"}})
    write_run(tmp_path / "ce-none-s1", [entry(1, 5.0, 0, 0)])  # seed 1: one arm begun
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "4", "--report-only",
                              "--seeds", "0", "1", "2"])
    summary = accuracy.report(args)
    runs = summary["runs"]
    # 0 < e < 3 counted from 0: epochs 2 and 3 counted from 1; the baseline pastes nothing
    assert runs["ce-cmo-s0"]["pasting_epochs"] == [2, 3]
    assert runs["ce-none-s0"]["pasting_epochs"] is None
    assert runs["ce-cmo-s1"]["pasting_epochs"] is None  # not started: nothing recorded
    axes = accuracy.curve_axes(args, runs)
    # one panel for the loss: every arm of every seed with an evaluated epoch on it; beside it
    # the epochs from the learning-rate drop (0.8 x 4 epochs: 3) on
    assert [ax.get_title() for ax in axes] == [
        "cifar10-lt (ratio 100), ce; shaded: epochs that paste", "epochs 3-4"]
    lines = [(line.get_label(), list(line.get_xdata()), list(line.get_ydata()),
              line.get_color(), line.get_linestyle()) for line in axes[0].get_lines()]
    assert lines == [("ce, seed 0", [1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0], "C0", "-"),
                     ("ce + CMO, seed 0", [1, 2, 3, 4], [11.0, 22.0, 33.0, 44.0], "C1", "-"),
                     ("ce, seed 1", [1], [5.0], "C0", "--")]
    zoomed = [(list(line.get_xdata()), line.get_color(), line.get_linestyle())
              for line in axes[1].get_lines()]
    assert zoomed == [(x, colour, style) for _, x, _, colour, style in lines]
    # top-1 fitted to epochs 3..4 (30..44), half a point of margin
    assert axes[1].get_xlim() == (3.0, 4.0) and axes[1].get_ylim() == (29.5, 44.5)
    shaded = [patch.get_x() for patch in axes[0].patches]
    assert len(shaded) == 1 and shaded[0] == 1.5 and axes[0].patches[0].get_width() == 2.0
    assert summary["curves"] == args.curves.name and args.curves.stat().st_size > 0


def test_an_fp32_baseline_is_trained_without_autocast_and_compared_with_bf16(tmp_path):
    done = {"per_class": [1.0], "train_class_counts": [5], "epochs": 2}
    write_run(tmp_path / "ce-none-s0", [entry(1, 40.0, 50.0, 10.0), entry(2, 60.0, 70.0, 20.0)],
              done)
    write_run(tmp_path / "ce-cmo-s0", [entry(1, 41.0, 50.0, 10.0), entry(2, 61.0, 70.0, 25.0)],
              done)
    write_run(tmp_path / "ce-none-fp32-s0", [entry(1, 44.5, 51.0, 12.0),
                                             entry(2, 62.5, 69.0, 26.0)], done)
    write_run(tmp_path / "ce-none-s1", [entry(1, 30.0, 30.0, 30.0)])
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "2", "--report-only",
                              "--seeds", "0", "1", "--fp32-seeds", "0"])
    assert accuracy.arms(args) == [("ce", "none", 0), ("ce", "cmo", 0), ("ce", "none-fp32", 0),
                                   ("ce", "none", 1), ("ce", "cmo", 1)]
    bf16 = accuracy.train_command(args, "ce", "none", 0, tmp_path / "arm")
    fp32 = accuracy.train_command(args, "ce", "none-fp32", 0, tmp_path / "arm")
    assert "--amp" in bf16 and [a for a in bf16 if a != "--amp"] == fp32
    assert fp32[fp32.index("--variant") + 1] == "none"
    summary = accuracy.report(args)
    table = args.markdown.read_text().splitlines()
    # fp32 minus bf16: +2.5 / -1 / +6 at the last epoch, +2.5 at the best
    assert table[4:9] == [
        "| ce (seed 0) | none | 2/2 | complete | 60.00 | 70.00 | 20.00 | – | 60.00 | 2 | – |",
        "| ce + CMO | cmo | 2/2 | complete | 61.00 | 70.00 | 25.00 | – | 61.00 | 2 | – |",
        "| ce, fp32 (no autocast) | none-fp32 | 2/2 | complete | 62.50 | 69.00 | 26.00 | – | "
        "62.50 | 2 | – |",
        "| ce: CMO gain | | | | 1.00 | 0.00 | 5.00 | – | 1.00 | | – |",
        "| ce: fp32 (no autocast) gain | | | | 2.50 | -1.00 | 6.00 | – | 2.50 | | – |"]
    assert sum("fp32" in line for line in table) == 2  # seed 1 has no fp32 arm, nor gain
    assert summary["mean_gain"]["ce"]["none-fp32"]["seeds"] == [0]
    assert summary["mean_gain"]["ce"]["none-fp32"]["top1"] == 2.5
    assert [line.get_label() for line in accuracy.curve_axes(args, summary["runs"])[0]
            .get_lines()] == ["ce, seed 0", "ce + CMO, seed 0", "ce, fp32 (no autocast), seed 0",
                              "ce, seed 1"]
    with pytest.raises(SystemExit):  # an fp32 seed must be one of the seeds
        accuracy.get_args(["--runs-dir", str(tmp_path), "--fp32-seeds", "3"])


@pytest.mark.trains
def test_quick_pair_trains_both_arms_and_plots_the_gain(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--quick",
                             "--runs-dir", str(tmp_path), "--print-every", "0", "--bn-stats"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # progress while training: both arms, epochs done of 1
    assert re.search(r"^ce-none-s0 epoch 0/1; ce-cmo-s0 epoch 0/1$", result.stdout, re.M), \
        result.stdout
    summary = json.loads((tmp_path / "accuracy.json").read_text())
    for arm in ("ce-none-s0", "ce-cmo-s0"):
        run = summary["runs"][arm]
        logged = [json.loads(line) for line in (tmp_path / arm / "log.jsonl").read_text()
                  .splitlines()]
        metrics = json.loads((tmp_path / arm / "metrics.json").read_text())
        assert run["status"] == "complete" and run["epochs_done"] == 1
        assert run["last"]["top1"] == logged[-1]["top1"] == metrics["top1"]
        assert run["per_class"] == metrics["per_class"]
        assert metrics["args"]["variant"] == arm.split("-")[1]
    assert summary["plot"] == "accuracy_gain.png"
    assert (tmp_path / "accuracy_gain.png").stat().st_size > 0
    # --bn-stats: each arm's last weights scored with BatchNorm statistics from its own stream
    for arm, variant in (("ce-none-s0", "none"), ("ce-cmo-s0", "cmo")):
        scored = json.loads((tmp_path / arm / f"evaluation_last_bn-{variant}.json").read_text())
        assert scored["weights_at"].endswith(f"from one epoch of the {variant} stream")
        assert summary["runs"][arm]["last_own_bn"]["top1"] == scored["top1"]
        assert f"{arm}: scoring the last weights with BatchNorm statistics from its own " \
               f"({variant}) stream" in result.stdout


def test_hours_and_machines_come_from_the_log_when_it_records_them(tmp_path):
    timed = [{**entry(1, 30.0, 40.0, 10.0), "train_seconds": 3000.0, "eval_seconds": 600.0,
              "machine": "CPU B"},
             {**entry(2, 31.0, 41.0, 11.0), "train_seconds": 3600.0, "machine": "CPU A"}]
    write_run(tmp_path / "ce-none-s0", timed)
    write_run(tmp_path / "ce-cmo-s0", [entry(1, 30.0, 40.0, 10.0)])  # an older run's log
    args = accuracy.get_args(["--runs-dir", str(tmp_path), "--epochs", "2", "--report-only"])
    runs = accuracy.report(args)["runs"]
    assert (runs["ce-none-s0"]["hours"], runs["ce-none-s0"]["machines"]) == (2.0,
                                                                             ["CPU A", "CPU B"])
    assert (runs["ce-cmo-s0"]["hours"], runs["ce-cmo-s0"]["machines"]) == (None, None)


def test_progress_line_counts_epochs_and_estimates_the_time_left(tmp_path):
    import time
    write_run(tmp_path / "arm", [entry(1, 1.0, 1.0, 1.0), entry(2, 1.0, 1.0, 1.0),
                                 entry(3, 1.0, 1.0, 1.0)])
    # 2 epochs in the last 3,600 s: 7 left take 3.5 h
    line = accuracy.progress("arm", tmp_path / "arm", time.monotonic() - 3600, 1, 10)
    assert line == "arm epoch 3/10, about 3.5 h left"
    assert accuracy.progress("arm", tmp_path / "arm", time.monotonic(), 3, 10) == "arm epoch 3/10"
