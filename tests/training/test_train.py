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

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import train  # noqa: E402
from dali_cmo.cli.train_args import parse_args, run_settings  # noqa: E402
from dali_cmo.training.checkpoint import load_checkpoint  # noqa: E402

pytestmark = pytest.mark.trains

# Short runs: CMO active from epoch 0, pasting every batch, one thread each for determinism.
SHORT = ["--epochs", "2", "--max-steps-per-epoch", "3", "--batch-size", "16",
         "--cmo-start", "-1", "--cmo-end", "0", "--cmo-prob", "1.0", "--eval-every", "0",
         "--dali-threads", "1", "--torch-threads", "1", "--seed", "3"]


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


def run_main(capsys, *arguments) -> str:
    """``train.main`` in this process (no interpreter start-up); its stdout."""
    status = train.main(list(map(str, arguments)))
    out = capsys.readouterr().out
    assert status == 0, out
    return out


def test_code_is_described_for_the_log():
    from dali_cmo.training.reports import describe_code
    assert describe_code({"version": "0.1.0", "git_commit": None,
                          "uncommitted_changes": None}) == "dali-cmo 0.1.0"
    assert describe_code({"version": "0.1.0", "git_commit": "0123456789abcdef",
                          "uncommitted_changes": True}) == \
        "dali-cmo 0.1.0, git 0123456789 with uncommitted changes"


def test_best_model_holds_the_weights_that_scored_the_best_epoch(tmp_path, demo_data, capsys):
    from dali_cmo.training.models import build_model
    # Which epoch scores best depends on the CPU's kernels (AVX-512 and AVX2 runs of these flags
    # train to other top-1s): every expectation below is read from the run's own record.
    run_main(capsys, "--epochs", "5", "--max-steps-per-epoch", "8", "--batch-size", "32",
             "--variant", "none", "--warmup", "0", "--lr", "0.2", "--eval-every", "1",
             "--dali-threads", "1", "--torch-threads", "1", "--seed", "2", "--output", tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    best = torch.load(tmp_path / "best_model.pt", map_location="cpu", weights_only=False)
    top1s = [entry["top1"] for entry in log]
    assert best["evaluation"] == log[top1s.index(max(top1s))]  # the earliest of the highest
    best_epoch = best["evaluation"]["epoch"]
    assert best_epoch == metrics["best"]["epoch"]
    last = weights(tmp_path)
    same = all(torch.equal(best["model"][k], last[k]) for k in last)
    assert same == (best_epoch == 5)
    # scored again here, outside the trainer: the same top-1
    args = metrics["args"]
    model = build_model(args["model"], 10)
    model.load_state_dict(best["model"])
    assert top1_by_hand(model, args, demo_data) == pytest.approx(best["evaluation"]["top1"],
                                                                 abs=1e-4)

    # --test-only: the same scores again, from the run's flags; training outputs untouched
    flags = ["--max-steps-per-epoch", "8", "--batch-size", "32", "--variant", "none",
             "--seed", "2", "--dali-threads", "1", "--torch-threads", "1", "--output", tmp_path]
    before = (tmp_path / "metrics.json").read_bytes(), (tmp_path / "log.jsonl").read_bytes()
    for which, expected in (("best", best["evaluation"]), ("last", log[-1])):
        out = run_main(capsys, *flags, "--test-only", which)
        scored = json.loads((tmp_path / f"evaluation_{which}.json").read_text())
        for key in ("top1", "many", "medium", "few"):
            assert scored[key] == pytest.approx(expected[key], abs=1e-9), (which, key)
        at = f"best epoch {best_epoch}" if which == "best" else "after epoch 5"
        assert scored["weights_at"] == at
        assert (tmp_path / f"evaluation_{which}_per_class.png").stat().st_size > 0
        weights_file = tmp_path / ("best_model.pt" if which == "best" else "checkpoint.pt")
        assert f"--test-only {which}: scoring {weights_file} ({at}) on 300 evaluation" in out
    assert ((tmp_path / "metrics.json").read_bytes(), (tmp_path / "log.jsonl").read_bytes()) \
        == before
    # --bn-stats-from ros: the last weights scored with BatchNorm statistics from one epoch of
    # the ROS stream (8 batches of Q-sampled images here): the top-1 of that model scored by hand
    assert train.main([*map(str, flags), "--test-only", "last", "--bn-stats-from", "ros"]) == 0
    capsys.readouterr()
    scored = json.loads((tmp_path / "evaluation_last_bn-ros.json").read_text())
    assert scored["weights_at"] == ("after epoch 5; BatchNorm statistics from one epoch of the "
                                    "ros stream")
    assert (tmp_path / "evaluation_last_bn-ros_per_class.png").stat().st_size > 0
    model.load_state_dict(last)
    recalibrated = bn_statistics_by_hand(model, parse_args([*map(str, flags), "--test-only",
                                                            "--bn-stats-from", "ros"]))
    assert scored["top1"] == pytest.approx(top1_by_hand(recalibrated, args, demo_data), abs=1e-4)
    # the re-estimation replaced the saved statistics (the score itself may coincide)
    assert not torch.equal(recalibrated.state_dict()["bn1.running_mean"], last["bn1.running_mean"])
    assert train.main([*map(str, flags), "--bn-stats-from", "cmo"]) == 2
    assert capsys.readouterr().err.strip() == (
        "train.py: error: --bn-stats-from cmo applies to --test-only (scoring saved weights); "
        "add --test-only last or best")
    # weights of another run, or none: refused by name
    assert train.main([*map(str, flags), "--seed", "5", "--test-only", "best"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"train.py: error: --test-only best: {tmp_path / 'best_model.pt'} was trained with "
        f"other flags: --seed (weights: 2, now: 5); give the flags the run was trained with")
    assert train.main([*map(str, flags[:-1]), str(tmp_path / "none"), "--test-only"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"train.py: error: --test-only last: {tmp_path / 'none' / 'checkpoint.pt'} not found "
        f"(the weights of a run trained with --output {tmp_path / 'none'})")


def top1_by_hand(model, args: dict, demo_data) -> float:
    """Top-1 (mean per-class accuracy, %) of ``model`` on the demo test set, scored here."""
    from dali_cmo.data.datasets import read_image_folder
    from dali_cmo.data.iterator import EvalIterator
    from pipelines.evaluation import EvalPipeline
    model.eval()
    test_set = read_image_folder(demo_data / "test")
    correct = torch.zeros(10)
    with torch.no_grad():
        for images, targets in EvalIterator(EvalPipeline(
                test_set, style=args["style"], batch_size=32, image_size=args["image_size"],
                normalisation=args["normalisation"], num_threads=1)):
            correct.index_add_(0, targets, (model(images).argmax(1) == targets).float())
    return float((100 * correct / torch.tensor(test_set.class_counts)).mean())


def demo_stream(args):
    """The ``--bn-stats-from`` stream of ``args`` over the demo training set (one process)."""
    from dali_cmo.data.datasets import read_image_folder
    from dali_cmo.data.demo import demo_dir
    from dali_cmo.training.checkpoint import StopRequest
    run = train.Run(0, 1, torch.device("cpu"), Path("."), StopRequest())
    return train.stream_of(args, run, read_image_folder(demo_dir() / "train"))


def bn_statistics_by_hand(model, args):
    """A copy of ``model`` whose BatchNorm running statistics are the plain mean, over the
    batches of the ``--bn-stats-from`` stream, of each layer's per-batch mean and unbiased
    variance of its input (recorded by hooks in training-mode passes)."""
    import copy
    model = copy.deepcopy(model).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen = {norm: [] for norm in norms}
    hooks = [norm.register_forward_pre_hook(
        lambda module, inputs: seen[module].append(
            (inputs[0].double().mean((0, 2, 3)), inputs[0].double().var((0, 2, 3)))))
        for norm in norms]
    with torch.no_grad():
        for batch in demo_stream(args).epoch_batches():
            model(batch.images)
    for hook in hooks:
        hook.remove()
    for norm in norms:
        means, variances = zip(*seen[norm])
        norm.running_mean.copy_(torch.stack(means).mean(0))
        norm.running_var.copy_(torch.stack(variances).mean(0))
    return model


def test_the_bn_statistics_stream_is_one_epoch_of_the_variant_pasting_as_in_the_window(
        demo_data):
    from dali_cmo.data.datasets import read_image_folder
    images = len(read_image_folder(demo_data / "train"))
    base = ["--epochs", "200", "--batch-size", "64", "--dali-threads", "1", "--test-only"]
    pasted = {}
    for variant in ("cmo", "none"):
        lams = [batch.lam for batch in
                demo_stream(parse_args([*base, "--bn-stats-from", variant])).epoch_batches()]
        assert sum(map(len, lams)) == images  # one epoch, every image once
        pasted[variant] = sum(bool((lam < 1).any()) for lam in lams)
    # although epoch 0 lies outside the run's window (3 < e < 197), one coin per batch at
    # p = 0.5 (the run's --cmo-prob): some of the 12 batches pasted
    assert len(lams) == 12 and 0 < pasted["cmo"] < 12 and pasted["none"] == 0


def test_demo_writes_its_outputs_and_resumes_exactly(tmp_path, demo_data, capsys):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    out = run_main(capsys, *SHORT, "--output", straight)
    metrics = json.loads((straight / "metrics.json").read_text())
    for key in ("top1", "many", "medium", "few", "per_class", "images_per_second", "epochs",
                "args"):
        assert key in metrics, key
    assert len(metrics["per_class"]) == 10 and metrics["epochs"] == 2
    # the last and the best evaluation (only the last epoch is evaluated here), named groups
    assert metrics["evaluated_epoch"] == 2 and metrics["best"]["epoch"] == 2
    assert metrics["best"]["top1"] == metrics["top1"]
    assert metrics["groups"] == "many > 100, medium 20..100, few < 20"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:  # a git checkout: the commit that ran is recorded and logged
        assert metrics["code"]["git_commit"] == head.stdout.strip()
        assert f"code: dali-cmo {metrics['code']['version']}, git {head.stdout[:10]}" in out
    assert (metrics["global_batch"], metrics["rank_batch"], metrics["world_size"]) == (16, 16, 1)
    assert "global batch 16 = 1 rank(s) x 16" in out
    assert "few < 20 (--groups lt20)" in out
    assert ", last (epoch 2)" in out and ", best (epoch 2)" in out
    assert metrics["images_per_second"] > 0
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2] and "top1" in log[-1]
    # each epoch names the machine that trained it and its seconds (evaluation: epoch 2 only)
    import platform
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine())
    assert [entry["machine"] for entry in log] == [cpu, cpu]
    assert all(entry["train_seconds"] > 0 for entry in log)
    assert "eval_seconds" not in log[0] and log[1]["eval_seconds"] > 0
    for picture in ("per_class_accuracy.png", "cmo_samples.png"):
        assert (straight / picture).stat().st_size > 0, picture
    assert (straight / "checkpoint.prev.pt").exists()
    assert "overall" in out and "few" in out
    # Stop after the 2nd training step (mid-epoch 1), as a SIGTERM would, then resume.
    out = run_main(capsys, *SHORT, "--output", stopped, "--stop-after-steps", "2")
    assert "stopped by --stop-after-steps in epoch 1 after batch 2: checkpoint written" in out
    assert not (stopped / "metrics.json").exists()
    state = torch.load(stopped / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (state["epoch"], state["iterators"][0]["position"]) == (0, 2)
    out = run_main(capsys, *SHORT, "--output", stopped, "--resume", "auto")
    assert f"resuming from {stopped / 'checkpoint.pt'}: in epoch 1 after batch 2" in out
    a, b = weights(straight), weights(stopped)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ in {different[:5]}"
    # the resumed epoch's log line counts all of its batches, as the uninterrupted run's does
    logs = [[json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
            for folder in (straight, stopped)]
    assert [e["train_images"] for e in logs[1]] == [e["train_images"] for e in logs[0]] == [48, 48]
    assert [e["loss"] for e in logs[1]] == [e["loss"] for e in logs[0]]
    # A truncated checkpoint is refused with a message and the previous one is used.
    broken = tmp_path / "broken"
    shutil.copytree(stopped, broken)
    data = (broken / "checkpoint.pt").read_bytes()
    (broken / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    messages = []
    state = load_checkpoint(str(broken / "checkpoint.pt"), broken, messages.append)
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
    """2 ranks share the global batch 16; each crops its own images, both share the step's
    box, and the loss is the global batch's CrossEntropyLoss(weight=w) mix (DRW from epoch 0)."""
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(REPO / "train.py"), *SHORT, "--max-steps-per-epoch", "2",
               "--epochs", "1", "--warmup", "0", "--loss", "ce", "--drw-epoch", "0",
               "--debug-shards", "--output", str(out)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    check_ok(result)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert (metrics["global_batch"], metrics["rank_batch"]) == (16, 8)
    assert "global batch 16 = 2 rank(s) x 8" in result.stdout
    steps = [json.loads((out / f"step_rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["rank_batch"] for s in steps] == [8, 8]
    assert steps[0]["box"] == steps[1]["box"] == [steps[0]["box"][0]] * 8
    assert steps[0]["lam"] == steps[1]["lam"] and steps[0]["lam"][0] < 1
    assert not set(steps[0]["image_sums"]) & set(steps[1]["image_sums"])
    logits = torch.tensor(steps[0]["logits"] + steps[1]["logits"])
    y_b, y_f = (torch.tensor(steps[0][k] + steps[1][k]) for k in ("target_b", "target_f"))
    criterion = torch.nn.CrossEntropyLoss(weight=torch.tensor(steps[0]["class_weights"]))
    lam = steps[0]["lam"][0]
    expected = criterion(logits, y_b) * lam + criterion(logits, y_f) * (1 - lam)
    assert (steps[0]["loss"] + steps[1]["loss"]) / 2 == pytest.approx(expected.item(), rel=1e-5)
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
     "--cmo-start 1 / --cmo-end 1: the CMO window 'start < epoch < epochs - "
     "end' (epochs=3, counted from 0) leaves no augmented epoch (--cmo-start -1 with --cmo-end 0 "
     "pastes in every epoch)"),
    (["--warmup", "9", "--epochs", "5"], "--warmup 9 must lie in 0..4 for --epochs 5"),
    (["--decay", "step", "--decay-factor", "2", "--decay-epochs", "2"],
     "learning-rate schedule: --decay-factor must be in (0, 1]; got 2.0"),
    (["--q-r", "-1"], "--q-r must be a finite number >= 0, got -1.0"),
    (["--q-beta", "0.5"], "--q-beta applies only to --q-scheme='effective_number', not 'reference'"),
    (["--loss", "bs", "--drw-epoch", "1"],
     "--loss bs with deferred re-weighting (--drw / --drw-epoch): the reference's "
     "BalancedSoftmaxLoss (github.com/naver-ai/cmo, losses.py) is built without DRW's weights, "
     "and its log prior already balances the classes; use loss 'ce' or 'ldam' with DRW"),
    (["--preset", "imagenet-lt-400", "--drw"],
     "--drw: preset 'imagenet-lt-400' has no DRW recipe in the reference code; presets with "
     "one: cifar100-lt, cifar10-lt, imagenet-lt, inat2018, inat2018-200"),
    (["--preset", "inat2018", "--drw"],
     "--drw-epoch 160 lies past the last epoch (--epochs 100, counted from 0): no epoch would "
     "be re-weighted"),
    (["--preset", "places-lt"],
     "--preset places-lt fine-tunes a pretrained resnet152 (NOT from the CMO paper or its "
     "code: the usual Places-LT fine-tuning of an ImageNet-pretrained ResNet-152): give "
     "--pretrained PATH, a torchvision state-dict file"),
])
def test_nonsense_arguments_name_the_argument(argv, message, capsys, tmp_path):
    assert train.main(argv + ["--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == f"train.py: error: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nonsense"], "argument --preset: invalid choice: 'nonsense'"),
    (["--variant", "mixup"], "argument --variant: invalid choice: 'mixup'"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--pixels", "png"], "argument --pixels: invalid choice: 'png'"),
])
def test_argument_syntax_errors_show_the_usage(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: train.py")
    assert err.strip().splitlines()[-1].startswith(f"train.py: error: {message}")


def test_help_shows_each_default_once():
    from dali_cmo.cli.train_args import HelpFormatter, get_args_parser
    formatter = HelpFormatter("train.py")
    for action in get_args_parser()._actions:
        text = formatter._get_help_string(action) or ""
        assert text.count("(default:") <= 1 and "(default: None)" not in text, text
    text = HelpFormatter("train.py")._get_help_string(
        next(a for a in get_args_parser()._actions if a.dest == "batch_size"))
    assert text == ("images per step, all ranks together (the global batch; each of R "
                    "torchrun ranks takes 1/R of it) (default: from --preset)")


def test_a_global_batch_that_does_not_divide_over_the_ranks_is_refused(monkeypatch, capsys,
                                                                        tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert train.main(["--batch-size", "100", "--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == ("train.py: error: --batch-size 100: the global batch 100 "
                                       "does not divide over 8 ranks; choose a multiple of 8")
    assert parse_args(["--batch-size", "128"]).rank_batch_size == 16


def test_drw_picks_the_reference_epoch_and_datasets_their_group_convention(tmp_path):
    cifar = parse_args(["--preset", "cifar100-lt", "--drw"])
    assert (cifar.drw_epoch, cifar.loss, cifar.groups) == (160, "ce", "lt20")
    imagenet = parse_args(["--preset", "imagenet-lt", "--drw", "--loss", "ldam"])
    assert (imagenet.drw_epoch, imagenet.loss, imagenet.groups) == (80, "ldam", "le20")
    assert parse_args(["--preset", "inat2018-200", "--drw"]).drw_epoch == 160
    assert parse_args(["--preset", "imagenet-lt"]).drw_epoch is None
    split = tmp_path / "train2018.json"
    split.write_text("{}")
    inat = parse_args(["--data", str(split), "--val-data", str(split)])
    assert (inat.preset, inat.groups, inat.normalisation) == ("inat2018", "le20", "inat")
    assert parse_args(["--preset", "inat2018", "--groups", "lt20"]).groups == "lt20"


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


# --------------------------------------------------------------------------- never lose a run,
# never a traceback (tiny split files built here; in-process runs)

TINY = ["--preset", "demo", "--epochs", "2", "--warmup", "0", "--batch-size", "4",
        "--max-steps-per-epoch", "2", "--cmo-start", "-1", "--cmo-end", "0", "--cmo-prob", "1.0",
        "--dali-threads", "1", "--torch-threads", "1", "--seed", "1"]


def tiny_data(folder: Path, train_extra=None, val_extra=None) -> list[str]:
    from image_fixtures import split_dataset
    train_list = split_dataset(folder, "train", per_class=(8, 5, 3), extra=train_extra)
    val_list = split_dataset(folder, "val", per_class=(2, 2, 2), seed=1, extra=val_extra)
    return ["--data", str(train_list), "--val-data", str(val_list)]


def test_resume_refuses_another_run_and_names_every_difference(tmp_path, capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    assert train.main(TINY + data + ["--output", str(out), "--stop-after-steps", "3"]) == 0
    checkpoint = out / "checkpoint.pt"
    again = TINY + data + ["--output", str(out), "--resume", "auto"]
    assert train.main(again + ["--batch-size", "2", "--epochs", "3"]) == 2
    assert last_error_line(capsys) == (
        f"train.py: error: --resume {checkpoint}: the checkpoint's run differs from this one: "
        f"these define the run and cannot change: --batch-size (checkpoint: 4, now: 2); start "
        f"a new run (another --output, or --overwrite) to use them; these differ: --epochs "
        f"(checkpoint: 2, now: 3); to continue with the new values add --allow-change epochs")
    other = tmp_path / "other"
    other.mkdir()
    other_data = tiny_data(other)
    other_data[1] = str(other / "val.txt")  # another --data: another list of files
    assert train.main(TINY + ["--data", str(other / "val.txt"), "--val-data", data[3],
                              "--output", str(out), "--resume", "auto"]) == 2
    assert re.fullmatch(r"train.py: error: --resume .*: these define the run and cannot change: "
                        r"--data \(checkpoint: 16 images in 3 classes, list \w{12}, now: 6 images "
                        r"in 3 classes, list \w{12}\); start a new run .*", last_error_line(capsys))
    # a stream position restores with the reader that read it: here the native reader (whole
    # epochs); with --max-steps-per-epoch both --reader values read through the Python sources
    native = tmp_path / "native"
    assert train.main(TINY + data + ["--max-steps-per-epoch", "0", "--output", str(native),
                                     "--stop-after-steps", "3"]) == 0
    assert train.main(TINY + data + ["--max-steps-per-epoch", "0", "--output", str(native),
                                     "--resume", "auto", "--reader", "python"]) == 2
    assert last_error_line(capsys) == (
        f"train.py: error: --resume {native / 'checkpoint.pt'}: the checkpoint's run differs "
        f"from this one: these define the run and cannot change: --reader (checkpoint: native, "
        f"now: python); start a new run (another --output, or --overwrite) to use them")
    # a mistyped path is an error, not the previous checkpoint beside it
    assert train.main(TINY + data + ["--output", str(out), "--resume",
                                     str(out / "checkpiont.pt")]) == 2
    assert last_error_line(capsys) == (f"train.py: error: --resume {out / 'checkpiont.pt'}: "
                                       f"no such file or folder")
    # a safe change, allowed by name (and --reader python reads as the run did)
    assert train.main(again + ["--reader", "python", "--epochs", "3", "--allow-change",
                               "epochs"]) == 0
    assert "continuing with changes (--allow-change): --epochs 2 -> 3" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


def test_bad_training_image_is_one_line_naming_its_line(tmp_path, capsys):
    from image_fixtures import jpeg_bytes, picture, truncated
    data = tiny_data(tmp_path, train_extra={"train/c2/cut.jpg": (truncated(jpeg_bytes(
        picture(50))), 2)})
    full_epochs = TINY + ["--max-steps-per-epoch", "0", "--epochs", "1"]
    assert train.main(full_epochs + data + ["--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    path, listing = tmp_path / "train/c2/cut.jpg", tmp_path / "train.txt"
    assert re.fullmatch(
        rf"train.py: error: bad image {path} \(line 17 of {listing}, epoch 1, batch \d\): "
        rf"truncated JPEG \(no end-of-image marker FFD9 in the last 4096 bytes\); remove or "
        rf"replace the file, or pass --on-bad-image skip to train without it; `python -m "
        rf"dali_cmo check {listing} --decode` lists every such file", err.strip())


def test_bad_evaluation_image_is_found_before_training(tmp_path, capsys):
    from image_fixtures import jpeg_bytes, picture, truncated
    data = tiny_data(tmp_path, val_extra={"val/c1/cut.jpg": (truncated(jpeg_bytes(
        picture(60))), 1)})
    out = tmp_path / "run"
    assert train.main(TINY + data + ["--output", str(out)]) == 1
    captured = capsys.readouterr()
    assert "training " not in captured.out and not (out / "checkpoint.pt").exists()
    assert captured.err.strip().splitlines()[-1] == (
        f"train.py: error: bad image {tmp_path / 'val/c1/cut.jpg'} (line 7 of "
        f"{tmp_path / 'val.txt'}): truncated JPEG (no end-of-image marker FFD9 in the last 4096 "
        f"bytes); remove or replace the file, or pass --on-bad-image skip to train without it; "
        f"`python -m dali_cmo check {tmp_path / 'val.txt'} --decode` lists every such file")


def test_test_only_names_an_evaluation_image_the_decoder_fails_on(tmp_path, capsys):
    from image_fixtures import garbled_tables, jpeg_bytes, picture, split_dataset
    data, out = tiny_data(tmp_path), tmp_path / "run"
    assert train.main(TINY + data + ["--output", str(out)]) == 0
    other = split_dataset(tmp_path, "test", per_class=(2, 2, 2), seed=2, extra={
        "test/c1/tables.jpg": (garbled_tables(jpeg_bytes(picture(61))), 1)})
    capsys.readouterr()
    assert train.main(TINY + data[:2] + ["--val-data", str(other), "--output", str(out),
                                         "--test-only"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"train.py: error: bad image {tmp_path / 'test/c1/tables.jpg'} (line 7 of {other}")


def test_bn_stats_from_names_a_training_image_the_decoder_fails_on(tmp_path, capsys):
    from image_fixtures import garbled_tables
    data, out = tiny_data(tmp_path), tmp_path / "run"
    assert train.main(TINY + data + ["--output", str(out)]) == 0
    for image in (tmp_path / "train").rglob("*.jpg"):  # garbled after training
        image.write_bytes(garbled_tables(image.read_bytes()))
    capsys.readouterr()
    assert train.main(TINY + data + ["--output", str(out), "--test-only",
                                     "--bn-stats-from", "none"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.match(rf"train\.py: error: bad image {re.escape(str(tmp_path / 'train'))}/c\d/"
                    rf"\S+\.jpg \(line \d+ of {re.escape(data[1])}",
                    err.strip().splitlines()[-1]), err


class _ClassZero(torch.nn.Module):
    """Predicts class 0 for every image."""

    def forward(self, images):
        logits = torch.zeros(len(images), 3)
        logits[:, 0] = 1.0
        return logits


def _evaluation(tmp_path, on_bad_image, val_extra):
    from dali_cmo.data.datasets import load_dataset
    from dali_cmo.training.checkpoint import StopRequest
    from dali_cmo.training.evaluation import Evaluation
    from image_fixtures import split_dataset
    listing = split_dataset(tmp_path, "val", per_class=(3, 3, 3), extra=val_extra)
    args = parse_args(["--style", "cifar", "--batch-size", "4", "--image-size", "32",
                       "--device", "cpu", "--dali-threads", "1", "--on-bad-image", on_bad_image,
                       "--print-every", "30", "--groups", "lt20", "--output", str(tmp_path)])
    run = train.Run(0, 1, torch.device("cpu"), tmp_path, StopRequest())
    return Evaluation(load_dataset(listing), np.array([100, 50, 10]), run_settings(args), run,
                      train.evaluation_pipelines(args, run))


def test_skip_mode_leaves_bad_evaluation_images_out_of_scoring(tmp_path, plugin, capsys):
    """Two bad images (one caught by the read check, one only by the decoder) are neither
    scored nor replaced: class 0 predicted everywhere scores 3 of 9 images, not 3 of 11."""
    from image_fixtures import garbled_tables, jpeg_bytes, picture, truncated
    bad = {"val/c1/cut.jpg": (truncated(jpeg_bytes(picture(70))), 1),
           "val/c2/tables.jpg": (garbled_tables(jpeg_bytes(picture(71))), 2)}
    evaluation = _evaluation(tmp_path, "skip", bad)
    evaluation.check_files()
    assert list(evaluation.left_out) == [str(tmp_path / "val/c1/cut.jpg")]
    report = evaluation(_ClassZero())
    assert report["top1"] == pytest.approx(100 * 3 / 9)
    assert report["per_class"] == [100.0, 0.0, 0.0]
    assert set(evaluation.left_out) == {str(tmp_path / p) for p in bad}
    assert "evaluation: 1 bad image(s) left out of scoring (--on-bad-image skip)" in \
        capsys.readouterr().out


def test_in_memory_pixels_need_no_file_check(tmp_path, plugin):
    """CIFAR pixels from the pickles have no files to read: nothing is checked or left out."""
    from dali_cmo.data.datasets import ArrayDataset
    evaluation = _evaluation(tmp_path, "error", None)
    pixels = ArrayDataset(tmp_path, tuple(f"test_batch[{i}]" for i in range(9)),
                          np.repeat([0, 1, 2], 3), ("a", "b", "c"), "test_batch",
                          images=np.zeros((9, 32, 32, 3), np.uint8))
    evaluation.dataset = pixels
    evaluation.check_files()
    assert evaluation.left_out == {}
    assert evaluation(_ClassZero())["top1"] == pytest.approx(100 * 3 / 9)


def test_a_stop_request_ends_evaluation_within_a_batch(tmp_path, plugin):
    evaluation = _evaluation(tmp_path, "error", None)
    evaluation.run.stop.request("test")
    assert evaluation(_ClassZero()) is None


def test_short_runs_read_only_the_batches_they_train(tmp_path, plugin):
    from dali_cmo.data.datasets import load_dataset
    from dali_cmo.data.iterator import CMOIterator
    from pipelines.training import TrainConfig, TrainingPipeline
    dataset = load_dataset(Path(tiny_data(tmp_path)[1]))
    config = TrainConfig(style="cifar", image_size=32, batch_size=4, epochs=2, cmo_start=-1,
                         cmo_end=0, probability=1.0, num_threads=1, prefetch=1,
                         max_batches_per_epoch=2)
    pipeline = TrainingPipeline(dataset, config)
    iterator = CMOIterator(pipeline)
    assert len(iterator) == 2
    for epoch in range(2):
        assert sum(1 for _ in iterator.epoch_batches()) == 2
        # backgrounds and (all pasted) foregrounds of 2 batches of 4, nothing more
        assert pipeline.streams.reader.files_read == (epoch + 1) * 2 * 2 * 4


def test_a_shortened_preset_scales_its_epoch_settings(tmp_path):
    from dali_cmo.cli.train_args import shorten_recipe
    data = tiny_data(tmp_path)
    args = parse_args(["--preset", "imagenet-lt", "--epochs", "1", *data])
    assert (args.warmup, args.decay_epochs, args.cmo_start, args.cmo_end) == (0, [], -1, 0)
    assert args.shortened == {"warmup": 0, "decay_epochs": [], "cmo_start": -1, "cmo_end": 0}
    # 100 -> 10 epochs: x 0.1, rounded half up
    assert shorten_recipe(dict(warmup=5, decay_epochs=[60, 80], cmo_start=3, cmo_end=3,
                               drw_epoch=80), 100, 10) == dict(
        warmup=1, decay_epochs=[6, 8], cmo_start=0, cmo_end=0, drw_epoch=8)


def test_a_refusal_lists_every_flag_at_once(tmp_path, capsys):
    data = tiny_data(tmp_path)
    assert train.main(["--preset", "imagenet-lt", "--epochs", "1", "--warmup", "5",
                       "--decay-epochs", "60", "80", "--cmo-start", "3", *data]) == 2
    assert last_error_line(capsys) == (
        "train.py: error: --warmup 5 must lie in 0..0 for --epochs 1; --decay-epochs must be "
        "empty for --epochs 1 (no epoch after the first to decay at); got 60 80; --cmo-start 3 "
        "/ --cmo-end 0: the CMO window 'start < epoch < epochs - end' (epochs=1, counted from 0) "
        "leaves no augmented epoch (--cmo-start -1 with --cmo-end 0 pastes in every epoch)")


def test_the_crop_style_follows_the_data_not_the_image_size(tmp_path, capsys):
    from image_fixtures import split_dataset
    data = tiny_data(tmp_path)
    assert parse_args([*data, "--image-size", "64"]).style == "imagenet"
    assert parse_args(["--preset", "cifar10-lt", *data]).style == "cifar"
    big = split_dataset(tmp_path, "big", per_class=(2, 2), size=(48, 40))
    assert train.main([*TINY, "--data", str(big), "--val-data", str(big), "--style", "cifar",
                       "--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == (
        f"train.py: error: --style cifar trains on images of exactly --image-size 32 (pad 4 and "
        f"crop), but {tmp_path / 'big/c0/0.jpg'} is 48x40: use --style imagenet "
        f"(random-resized-crop to --image-size; evaluation resizes and crops the centre)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_line(capsys):
    assert train.main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err == (
        "train.py: error: --device cuda: torch finds no CUDA GPU here "
        "(torch.cuda.is_available() is False); use --device cpu\n")


def test_decoder_warnings_are_traced_to_the_file(tmp_path, capfd):
    from image_fixtures import garbled_scan, jpeg_bytes, picture
    data = tiny_data(tmp_path, train_extra={"train/c0/warns.jpg": (garbled_scan(jpeg_bytes(
        picture(80))), 0)})
    assert train.main(TINY + data + ["--max-steps-per-epoch", "0", "--epochs", "1",
                                     "--output", str(tmp_path / "run")]) == 0
    err = capfd.readouterr().err
    assert (f"decoder warning traced to {tmp_path / 'train/c0/warns.jpg'}: Corrupt JPEG data: "
            f"premature end of data segment") in err


def test_dali_threads_default_to_the_cpus_of_this_rank(monkeypatch, tmp_path):
    import os
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert parse_args(["--output", str(tmp_path)]).dali_threads == \
        max(1, len(os.sched_getaffinity(0)) // 2)


def test_workers_is_a_deprecated_name_of_dali_threads(tmp_path, capsys):
    assert parse_args(["--workers", "3", "--output", str(tmp_path)]).dali_threads == 3
    assert capsys.readouterr().err.splitlines() == [
        "train.py: warning: --workers is deprecated; use --dali-threads"]


def test_cifar_lt_needs_data_even_where_the_shared_data_lies(tmp_path, monkeypatch, capsys):
    """The development checkout's data folder is no default of --data."""
    monkeypatch.setenv("DALI_CMO_SHARED_DATA", str(tmp_path))
    assert train.main(["--dataset", "cifar10-lt", "--output", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "train.py: error: --data is required for --dataset cifar10-lt (the cifar-10-batches-py "
        "pickle folder or a JPEG tree holding train/ and test/)")
