"""train.py end to end on the built-in demo data (CPU): outputs, exact resume, torchrun, arguments.

The runs are tiny (a few batches per epoch, ``--max-steps-per-epoch``) so that the module stays
within a couple of minutes on a small, busy CPU.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import train  # noqa: E402

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
    from dali_cmo.demo import demo_dir
    return demo_dir()


def test_demo_data_is_long_tailed(demo_data):
    from dali_cmo.datasets import read_image_folder
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
    import signal
    import time
    out = tmp_path / "sig"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [a for a in SHORT]
    args[args.index("--max-steps-per-epoch") + 1] = "0"  # full epochs: long enough to signal
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--output",
                                str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    lines = []
    for line in process.stdout:  # wait until training has started
        lines.append(line)
        if line.startswith("training ") or time.time() > deadline:
            break
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopped by" in output and "checkpoint written" in output
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["iterators"][0]["position"] >= 1


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


@pytest.mark.parametrize("argv, flag", [
    (["--batch-size", "0"], "--batch-size"),
    (["--cmo-prob", "1.5"], "--cmo-prob"),
    (["--alpha", "0"], "--alpha"),
    (["--preset", "nonsense"], "--preset"),
    (["--variant", "mixup"], "--variant"),
    (["--epochs", "3", "--cmo-start", "1", "--cmo-end", "1"], "--cmo-start"),
    (["--warmup", "9", "--epochs", "5"], "--warmup"),
    (["--pixels", "png"], "--pixels"),
])
def test_nonsense_arguments_name_the_argument(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.resolve_args(train.get_args_parser(), argv)
    assert exit_info.value.code != 0
    assert flag in capsys.readouterr().err


def test_nonsense_argument_exits_nonzero_from_the_command_line():
    result = run_train("--batch-size", "-3", timeout=120)
    assert result.returncode == 2
    assert "--batch-size" in result.stderr


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path, demo_data, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"an earlier run")
    argv = ["--data", str(demo_data), "--output", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        train.resolve_args(train.get_args_parser(), argv)
    assert exit_info.value.code != 0 and "--resume auto" in capsys.readouterr().err
    assert train.resolve_args(train.get_args_parser(), argv + ["--overwrite"]).overwrite
