"""train.py end to end on the built-in demo data (CPU): outputs, exact resume, torchrun, arguments.

The runs are tiny (a few batches per epoch, ``--max-steps-per-epoch``) so that the module stays
within a couple of minutes on a small, busy CPU.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train  # noqa: E402
from dali_cmo.training.arguments import parse_args  # noqa: E402

# Short runs: CMO active from epoch 0, pasting every batch, one thread each for determinism.
SHORT = ["--epochs", "2", "--max-steps-per-epoch", "3", "--batch-size", "16",
         "--cmo-start", "-1", "--cmo-end", "0", "--cmo-prob", "1.0", "--eval-every", "0",
         "--workers", "1", "--torch-threads", "1", "--seed", "3"]


def run_train(*arguments, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, str(REPO / "train.py"), *map(str, arguments)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def check_ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def weights(folder: Path) -> dict:
    state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    return state["model"]


@pytest.fixture(scope="module")
def demo_data():
    from dali_cmo.data.demo import demo_dir
    return demo_dir()


def test_demo_data_is_long_tailed(demo_data):
    from dali_cmo.data.datasets import read_image_folder
    train_set = read_image_folder(demo_data / "train")
    test_set = read_image_folder(demo_data / "test")
    assert train_set.class_counts.tolist() == [300, 179, 107, 64, 38, 23, 13, 8, 5, 3]
    assert test_set.class_counts.tolist() == [30] * 10


def test_demo_writes_metrics_and_pictures(tmp_path, demo_data):
    out = tmp_path / "demo"
    result = run_train(*SHORT, "--output", out)
    check_ok(result)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("top1", "many", "medium", "few", "per_class", "images_per_second", "epochs",
                "args"):
        assert key in metrics, key
    assert len(metrics["per_class"]) == 10 and metrics["epochs"] == 2
    assert metrics["images_per_second"] > 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2] and "top1" in log[-1]
    for picture in ("per_class_accuracy.png", "cmo_samples.png"):
        assert (out / picture).stat().st_size > 0, picture
    assert (out / "checkpoint.prev.pt").exists()
    assert "overall" in result.stdout and "few" in result.stdout


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, demo_data):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    check_ok(run_train(*SHORT, "--output", straight))
    # Stop after the 2nd training step (mid-epoch 1), as a SIGTERM would, then resume.
    first = run_train(*SHORT, "--output", stopped, "--stop-after-steps", "2")
    check_ok(first)
    assert "checkpoint written" in first.stdout
    assert not (stopped / "metrics.json").exists()
    state = torch.load(stopped / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (state["epoch"], state["iterators"][0]["position"]) == (0, 2)
    check_ok(run_train(*SHORT, "--output", stopped, "--resume", "auto"))
    a, b = weights(straight), weights(stopped)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ in {different[:5]}"
    # A truncated checkpoint is refused with a message and the previous one is used.
    broken = tmp_path / "broken"
    shutil.copytree(stopped, broken)
    data = (broken / "checkpoint.pt").read_bytes()
    (broken / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    messages = []
    state = train.load_checkpoint(str(broken / "checkpoint.pt"), broken, messages.append)
    assert any("truncated or corrupt" in m for m in messages), messages
    assert state["epoch"] == 1  # checkpoint.prev.pt: the end of epoch 1


def test_sigterm_saves_checkpoint_and_exits(tmp_path, demo_data):
    """SIGTERM once training has reported a finished batch: checkpoint at that batch, exit
    128 + SIGTERM."""
    out = tmp_path / "sig"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [a for a in SHORT]
    args[args.index("--max-steps-per-epoch") + 1] = "0"  # full epochs: long enough to signal
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--output",
                                str(out), "--print-every", "0"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:  # a progress line per batch: wait for the first one
        lines.append(line)
        if re.match(r"epoch 1/2: 1/\d+ batches", line):
            process.send_signal(signal.SIGTERM)
            break
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest
    assert process.returncode == 128 + signal.SIGTERM, output
    assert re.search(r"stopped by SIGTERM in epoch 1 after batch \d+: checkpoint "
                     r"written", output), output
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 0 and state["iterators"][0]["position"] >= 1


def test_torchrun_two_ranks_read_disjoint_shards(tmp_path, demo_data):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(REPO / "train.py"), *SHORT, "--max-steps-per-epoch", "2",
               "--epochs", "1", "--warmup", "0", "--debug-shards", "--output", str(out)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    check_ok(result)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    shards = [json.loads((out / f"shard_rank{r}.json").read_text())["0"] for r in (0, 1)]
    assert shards[0] and shards[1]
    assert not set(shards[0]) & set(shards[1])
    assert len(set(shards[0]) | set(shards[1])) == 740  # every sample of P once per epoch
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert len(state["iterators"]) == 2 and state["world_size"] == 2


def last_error_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    (["--cmo-prob", "1.5"], "--cmo-prob must lie in [0, 1]; got 1.5"),
    (["--alpha", "0"], "--alpha must be > 0; got 0.0"),
    (["--epochs", "3", "--cmo-start", "1", "--cmo-end", "1"],
     "--cmo-start 1 / --cmo-end 1: the CMO window cmo_start < epoch < epochs - cmo_end "
     "(epochs=3, counted from 0) leaves no augmented epoch"),
    (["--warmup", "9", "--epochs", "5"],
     "learning-rate schedule: --warmup must be in [0, --epochs=5); got 9"),
    (["--amp", "--device", "cpu"], "--amp and --channels-last need --device cuda"),
    (["--q-r", "-1"], "--q-r must be a finite number >= 0, got -1.0"),
    (["--q-beta", "0.5"], "--q-beta applies only to --q-scheme='effective_number', not 'reference'"),
])
def test_nonsense_arguments_name_the_argument(argv, message, capsys, tmp_path):
    assert train.main(argv + ["--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == f"train.py: error: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nonsense"], "argument --preset: invalid choice: 'nonsense'"),
    (["--variant", "mixup"], "argument --variant: invalid choice: 'mixup'"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
])
def test_argument_syntax_errors_show_the_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: train.py")
    assert err.strip().splitlines()[-1].startswith(f"train.py: error: {message}")


def test_help_shows_each_default_once():
    from dali_cmo.training.arguments import HelpFormatter, get_args_parser
    formatter = HelpFormatter("train.py")
    for action in get_args_parser()._actions:
        text = formatter._get_help_string(action) or ""
        assert text.count("(default:") <= 1 and "(default: None)" not in text, text
    text = HelpFormatter("train.py")._get_help_string(
        next(a for a in get_args_parser()._actions if a.dest == "batch_size"))
    assert text == "images per step per rank (default: from --preset)"


def test_refused_run_leaves_no_folder_and_no_usage(tmp_path, demo_data, capsys):
    out = tmp_path / "run"
    assert train.main(["--batch-size", "100000", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("train.py: error: --batch-size (100000) is larger than the dataset "
                   "(740 images)\n")
    assert not out.exists()


def test_data_error_is_one_line_with_status_1(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    status = train.main(["--data", str(missing), "--val-data", str(missing),
                         "--output", str(tmp_path / "run")])
    assert status == 1
    assert capsys.readouterr().err == f"train.py: error: {missing}: not found\n"
    assert not (tmp_path / "run").exists()


def test_nonsense_argument_exits_nonzero_from_the_command_line():
    result = run_train("--batch-size", "-3", timeout=120)
    assert result.returncode == 2
    assert result.stderr == "train.py: error: --batch-size must be >= 1; got -3\n"


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path, demo_data, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"an earlier run")
    argv = ["--data", str(demo_data), "--output", str(tmp_path)]
    assert train.main(argv) == 2
    assert last_error_line(capsys) == (
        f"train.py: error: --output {tmp_path} already holds a checkpoint: continue it with "
        f"--resume auto, start afresh with --overwrite, or choose another --output")
    assert parse_args(argv + ["--overwrite"]).overwrite
