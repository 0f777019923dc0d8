"""A run's record is never wrong: ``log.jsonl``, ``metrics.json``'s best epoch and
``best_model.pt`` across resumes, signals during an evaluation, ``--overwrite``, failed writes and
divergence; and the one-line refusals of mistakes that used to end in tracebacks.

The evaluations are scripted where the best epoch matters (each returns a top-1 fixed here), so
that the expected best epoch is known by construction, not read off one machine's arithmetic.
"""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import time
import warnings
from pathlib import Path

import pytest
import torch

import train
from dali_cmo.data.integrity import BadImageWarning, DecoderWarningTracer
from dali_cmo.training import trainer
from dali_cmo.cli.train_args import parse_args, run_settings
from dali_cmo.training.evaluation import Evaluation
from test_train import TINY, demo_data, last_error_line, run_main, tiny_data  # noqa: F401

pytestmark = pytest.mark.trains

EVAL_EVERY_EPOCH = ["--eval-every", "1"]
# one whole epoch of the tiny data (every listed file read)
WHOLE_EPOCH = ["--max-steps-per-epoch", "0", "--epochs", "1"]


class ScriptedTop1:
    """Replaces each evaluation's top-1 by the next of ``top1s`` (the rest of the report stays
    the real one) and keeps the weights it scored; ``stop_at`` (a call number, from 1) sends
    this process a SIGTERM during that evaluation instead, as a user would."""

    def __init__(self, monkeypatch, top1s, stop_at=None):
        self.top1s, self.stop_at, self.calls, self.scored = list(top1s), stop_at, 0, []
        real = Evaluation._score

        def score(evaluation, model):
            self.calls += 1
            if self.calls == self.stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
            report = real(evaluation, model)
            if report is not None:
                report["top1"] = self.top1s.pop(0)
                self.scored.append((report["top1"], {k: v.clone() for k, v in
                                                     model.state_dict().items()}))
            return report

        monkeypatch.setattr(Evaluation, "_score", score)

    def weights_of(self, top1: float) -> dict:
        return next(weights for scored, weights in self.scored if scored == top1)


def log_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


def best_model(folder: Path) -> dict:
    return torch.load(folder / "best_model.pt", map_location="cpu", weights_only=False)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_record(folder: Path, epochs: list[int]) -> dict:
    """log.jsonl holds each epoch once; metrics.json's best is the best of the log's evaluated
    epochs (the earlier of equal ones) and best_model.pt is that entry. Returns the best."""
    log = log_of(folder)
    assert [entry["epoch"] for entry in log] == epochs
    evaluated = [entry for entry in log if "top1" in entry]
    best = max(evaluated, key=lambda entry: (entry["top1"], -entry["epoch"]))
    assert json.loads((folder / "metrics.json").read_text())["best"]["epoch"] == best["epoch"]
    assert best_model(folder)["evaluation"] == best
    return best


# --------------------------------------------------------------------------- 1. best epoch

def test_the_best_epoch_survives_an_extension_and_a_no_op_resume(tmp_path, monkeypatch,
                                                                 capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    flags = [*TINY, *data, *EVAL_EVERY_EPOCH, "--output", out]
    script = ScriptedTop1(monkeypatch, [10.0, 20.0, 30.0, 15.0, 25.0])
    run_main(capsys, *flags, "--epochs", "3")
    assert check_record(out, [1, 2, 3])["epoch"] == 3
    # the checkpoint's history holds every evaluation, the last epoch's too
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert [entry.get("top1") for entry in state["history"]] == [10.0, 20.0, 30.0]
    # a no-op resume of the finished run: nothing is evaluated or rewritten
    record = {name: (out / name).read_bytes() for name in ("log.jsonl", "best_model.pt")}
    best_before = json.loads((out / "metrics.json").read_text())["best"]
    run_main(capsys, *flags, "--epochs", "3", "--resume", "auto")
    assert script.calls == 3
    assert {name: (out / name).read_bytes() for name in record} == record
    assert json.loads((out / "metrics.json").read_text())["best"] == best_before
    # extended by two epochs that score less: epoch 3 stays the best, with its weights
    run_main(capsys, *flags, "--epochs", "5", "--resume", "auto", "--allow-change", "epochs")
    assert check_record(out, [1, 2, 3, 4, 5])["epoch"] == 3
    assert same_weights(best_model(out)["model"], script.weights_of(30.0))


# --------------------------------------------------------------------------- 2. signals

def test_an_epoch_stopped_during_its_evaluation_is_evaluated_on_resume(tmp_path, monkeypatch,
                                                                      capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    flags = [*TINY, *data, *EVAL_EVERY_EPOCH, "--epochs", "3", "--output", out]
    script = ScriptedTop1(monkeypatch, [10.0, 30.0, 20.0], stop_at=2)
    assert train.main(list(map(str, flags))) == 128 + signal.SIGTERM
    printed = capsys.readouterr().out
    assert "stopped by SIGTERM while evaluating epoch 2: checkpoint written" in printed
    assert [entry["epoch"] for entry in log_of(out)] == [1]  # epoch 2 has no result yet
    out_text = run_main(capsys, *flags, "--resume", "auto")
    assert "epoch 2 was trained but not evaluated: evaluating it" in out_text
    assert script.calls == 4  # epoch 2 scored once after the resume, then epoch 3
    best = check_record(out, [1, 2, 3])
    assert [entry["top1"] for entry in log_of(out)] == [10.0, 30.0, 20.0]
    assert best["epoch"] == 2 and same_weights(best_model(out)["model"],
                                                script.weights_of(30.0))


def test_the_resumed_record_is_the_uninterrupted_one(tmp_path, monkeypatch, capsys):
    """Stopped during an evaluation and resumed, the run's weights, losses and top-1s are
    those of the run that was never stopped (real evaluations here)."""
    data = tiny_data(tmp_path)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    flags = [*TINY, *data, *EVAL_EVERY_EPOCH]
    run_main(capsys, *flags, "--output", straight)
    real = Evaluation._score

    def stop_first(evaluation, model):
        evaluation.run.stop.request("a test")
        monkeypatch.setattr(Evaluation, "_score", real)
        return real(evaluation, model)

    monkeypatch.setattr(Evaluation, "_score", stop_first)
    run_main(capsys, *flags, "--output", stopped)  # stopped in epoch 1's evaluation
    assert not log_of(stopped)
    run_main(capsys, *flags, "--output", stopped, "--resume", "auto")
    keys = ("epoch", "loss", "lr", "train_images", "top1", "many", "medium", "few")
    assert [[entry[k] for k in keys] for entry in log_of(stopped)] == \
        [[entry[k] for k in keys] for entry in log_of(straight)]
    assert best_model(stopped)["evaluation"]["epoch"] == best_model(straight)["evaluation"][
        "epoch"]
    assert same_weights(best_model(stopped)["model"], best_model(straight)["model"])


# --------------------------------------------------------------------------- 3. overwrite

def test_overwrite_starts_a_fresh_record(tmp_path, capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    run_main(capsys, *TINY, *data, "--output", out)
    assert (out / "cmo_samples.png").exists() and len(log_of(out)) == 2
    (out / "evaluation_last.json").write_text("{}")  # as --test-only leaves it
    run_main(capsys, *TINY, *data, "--output", out, "--overwrite", "--epochs", "1",
             "--variant", "none")
    assert [entry["epoch"] for entry in log_of(out)] == [1]
    assert not (out / "cmo_samples.png").exists()  # variant none pastes nothing
    assert not (out / "evaluation_last.json").exists()
    assert not (out / "checkpoint.prev.pt").exists()
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    # --resume and --overwrite together: refused, naming both
    assert train.main(list(map(str, [*TINY, *data, "--output", out, "--overwrite",
                                     "--resume", "auto"]))) == 2
    assert last_error_line(capsys) == (
        "train.py: error: --resume auto continues the run in --output and --overwrite starts "
        "a new one there: give one of them")


def test_every_run_refuses_a_folder_holding_another_run(tmp_path, monkeypatch, capsys,
                                                         demo_data):
    out = tmp_path / "given"
    out.mkdir()
    (out / "log.jsonl").write_text('{"epoch": 1}\n')
    for argv in (["--output", str(out)], [*TINY, *tiny_data(tmp_path), "--output", str(out)]):
        assert train.main(argv) == 2
        assert last_error_line(capsys) == (
            f"train.py: error: --output {out} already holds a run's log.jsonl: continue it with "
            f"--resume auto, start afresh with --overwrite, or choose another --output")
    # the demo's default folder: `python train.py` again starts afresh
    monkeypatch.chdir(tmp_path)
    short = ["--epochs", "1", "--max-steps-per-epoch", "1", "--batch-size", "8", "--dali-threads",
             "1", "--torch-threads", "1"]
    run_main(capsys, *short)
    folder = next((tmp_path / "runs").iterdir())
    run_main(capsys, *short)
    assert [entry["epoch"] for entry in log_of(folder)] == [1]


# --------------------------------------------------------------------------- 4. full disk

def test_a_failed_write_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                  capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    real_save, saves = torch.save, []

    def save_on_a_full_disk(obj, handle, *args, **kwargs):
        if getattr(handle, "name", "").endswith(".checkpoint.pt.tmp"):
            saves.append(1)
            if len(saves) == 2:  # the second epoch's checkpoint: half of it fits
                handle.write(b"\0" * 1000)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    assert train.main(list(map(str, [*TINY, *data, "--output", out]))) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.fullmatch(
        rf"train.py: error: cannot write {re.escape(str(out / 'checkpoint.pt'))}: No space left "
        rf"on device \(it needs [\d,]+ bytes, [\d,]+ free there\); the checkpoint.pt written "
        rf"before is kept", err.strip()), err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    monkeypatch.setattr(torch, "save", real_save)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 1


# --------------------------------------------------------------------------- 5. divergence

def test_a_non_finite_loss_stops_the_run_saving_nothing_new(tmp_path, monkeypatch, capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    real_loss, steps = trainer.mixed_loss, []

    def diverging_loss(*args, **kwargs):
        steps.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(steps) >= 3 else loss  # from epoch 2, step 1

    monkeypatch.setattr(trainer, "mixed_loss", diverging_loss)
    flags = [*TINY, *data, *EVAL_EVERY_EPOCH, "--epochs", "3", "--output", out]
    lr = run_settings(parse_args(list(map(str, flags)))).lr_schedule().lr_at(1.0)  # epoch 2, step 1
    assert train.main(list(map(str, flags))) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"train.py: error: the loss is not finite in epoch 2, step 1 of 2 (lr {lr:.4g}): "
        f"training diverged, and nothing of this epoch was saved; lower --lr (or --wd, "
        f"--momentum) and start again")
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values()
                                       if v.is_floating_point())
    assert [entry["epoch"] for entry in log_of(out)] == [1]
    assert best_model(out)["evaluation"]["epoch"] == 1
    # a stop request in the diverged epoch saves nothing either
    steps.clear()
    out2 = tmp_path / "stopped"
    assert train.main(list(map(str, [*flags[:-1], out2, "--stop-after-steps", "4"]))) == 1
    assert torch.load(out2 / "checkpoint.pt", map_location="cpu",
                      weights_only=False)["epoch"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "--lr must be finite; got inf"),
    (["--lr", "nan"], "--lr must be > 0; got nan"),
    (["--wd", "inf"], "--wd must be finite; got inf"),
    (["--momentum", "5"], "--momentum must lie in [0, 1); got 5.0"),
    (["--momentum", "1"], "--momentum must lie in [0, 1); got 1.0"),
    (["--alpha", "inf"], "--alpha must be finite; got inf"),
    (["--seed", "-1"], "--seed must lie in 0..4294967295 (what the random generators take); "
                       "got -1"),
    (["--seed", "99999999999999999999"], "--seed must lie in 0..4294967295 (what the random "
                                         "generators take); got 99999999999999999999"),
    (["--imbalance-ratio", "inf"], "--imbalance-ratio must be finite; got inf"),
])
def test_numeric_flags_are_bounded(argv, message, tmp_path, capsys):
    assert train.main(argv + ["--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == f"train.py: error: {message}"


def test_torch_threads_are_bounded_by_the_cpus(tmp_path, capsys):
    most = 4 * (os.cpu_count() or 1)
    assert train.main(["--torch-threads", str(most + 1), "--output", str(tmp_path)]) == 2
    assert last_error_line(capsys) == (
        f"train.py: error: --torch-threads must lie in 0..{most} (4 per CPU of this machine; "
        f"more only slow torch down); got {most + 1}")


# --------------------------------------------------------------------------- 6. one-line errors

def test_an_output_that_is_a_file_or_under_one_is_refused(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    for output in (file, file / "run"):
        assert train.main(["--output", str(output)]) == 2
        assert last_error_line(capsys) == (f"train.py: error: --output {output}: {file} is a "
                                           f"file, not a folder")


def test_a_split_line_that_is_not_utf8_names_its_file_and_line(tmp_path, capsys):
    from dali_cmo.__main__ import main as cli_main
    data = tiny_data(tmp_path)
    listing = Path(data[1])
    lines = listing.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b".jpg", b"\xe9.jpg")  # Latin-1 text in a UTF-8 list
    listing.write_bytes(b"\n".join(lines))
    message = f"{listing}:3: not UTF-8 (invalid continuation byte)"
    assert train.main([*TINY, *data, "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == f"train.py: error: {message}\n"
    assert cli_main(["check", str(listing)]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_file_name_that_is_not_utf8_is_named(tmp_path, capsys):
    from dali_cmo.__main__ import main as cli_main
    from image_fixtures import jpeg_bytes, picture
    folder = tmp_path / "lt"
    for split in ("train", "val"):
        for label in range(2):
            (folder / split / f"c{label}").mkdir(parents=True)
            (folder / split / f"c{label}" / "0.jpg").write_bytes(jpeg_bytes(picture(label)))
    odd = os.path.join(os.fsencode(folder / "train" / "c1"), b"caf\xe9.jpg")
    with open(odd, "wb") as handle:
        handle.write(jpeg_bytes(picture(5)))
    message = f"{folder / 'train/c1'}/caf\\xe9.jpg: the file name is not UTF-8; rename it"
    assert train.main([*TINY, "--data", str(folder), "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == f"train.py: error: {message}\n"
    assert cli_main(["check", str(folder / "train")]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_check_refuses_a_report_into_a_missing_folder_before_scanning(tmp_path, monkeypatch,
                                                                       capsys):
    from dali_cmo.__main__ import main as cli_main
    from dali_cmo.cli import check
    listing = Path(tiny_data(tmp_path)[1])
    monkeypatch.setattr(check, "scan", lambda *a, **k: pytest.fail("scanned"))
    report = tmp_path / "no" / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report)]) == 2
    assert capsys.readouterr().err == (f"error: --report {report}: folder {report.parent} does "
                                       f"not exist\n")


# --------------------------------------------------------------------------- 8. smaller

def test_a_byte_order_mark_in_a_split_file_is_not_part_of_the_first_path(tmp_path):
    from dali_cmo.data.datasets import load_dataset
    listing = Path(tiny_data(tmp_path)[1])
    listing.write_bytes(b"\xef\xbb\xbf" + listing.read_bytes())
    dataset = load_dataset(listing)  # every file found
    assert dataset.files[0] == "train/c0/0.jpg" and dataset.lines[0] == 1


def test_flags_that_do_not_apply_are_warned_about_once(tmp_path, monkeypatch, capsys):
    output = ["--output", str(tmp_path / "run")]
    ignored = ["--decay-factor", "0.5", "--decay-epochs", "2", "--variant", "none",
               "--cmo-prob", "0.3", "--pixels", "jpeg"]
    args = parse_args([*ignored, *output])  # the demo: cosine decay, its own data
    assert (args.decay, args.dataset) == ("cosine", "demo")
    assert capsys.readouterr().err.splitlines() == [
        "train.py: warning: --decay-factor applies to --decay step, not cosine: ignored",
        "train.py: warning: --decay-epochs applies to --decay step, not cosine: ignored",
        "train.py: warning: --cmo-prob applies to the variants that paste, not --variant none: "
        "ignored",
        "train.py: warning: --pixels applies to --dataset cifar10-lt and cifar100-lt, not demo: "
        "ignored"]
    # values the preset or the defaults fill, and flags that apply, say nothing
    parse_args(["--variant", "ros", *output])
    parse_args(["--decay", "step", "--decay-factor", "0.5", "--decay-epochs", "2",
                "--cmo-prob", "0.3", *output])
    assert capsys.readouterr().err == ""
    # under torchrun only rank 0 says it
    monkeypatch.setenv("RANK", "1")
    parse_args([*ignored, *output])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("epochs, message", [
    ("3", "--decay-epochs must be epochs in 1..2 (after the first, before --epochs 3; counted "
          "from 0); got -5"),
    ("1", "--decay-epochs must be empty for --epochs 1 (no epoch after the first to decay at); "
          "got -5"),
])
def test_decay_epochs_outside_the_run_are_refused_in_words(epochs, message, tmp_path, capsys):
    assert train.main(["--decay", "step", "--decay-epochs", "-5", "--epochs", epochs,
                       "--output", str(tmp_path / "run")]) == 2
    assert last_error_line(capsys) == f"train.py: error: {message}"


def test_a_skipped_image_is_one_warning_line_counting_epochs_from_1(tmp_path, capsys):
    from image_fixtures import jpeg_bytes, picture, truncated
    data = tiny_data(tmp_path, train_extra={"train/c2/cut.jpg": (truncated(jpeg_bytes(
        picture(50))), 2)})
    with pytest.warns(BadImageWarning) as caught:
        run_main(capsys, *TINY, *WHOLE_EPOCH, *data, "--on-bad-image", "skip",
                 "--output", tmp_path / "run")
    [warned] = [w for w in caught if issubclass(w.category, BadImageWarning)]
    # as Python shows it: the line alone, no source line after it
    assert warnings.formatwarning(warned.message, warned.category, warned.filename,
                                  warned.lineno, warned.line) == (
        f"BadImageWarning: skipping bad image {tmp_path / 'train/c2/cut.jpg'} (dataset index "
        f"16, epoch 1): truncated JPEG (no end-of-image marker FFD9 in the last 4096 bytes); a "
        f"valid image of the same class is used in its place\n")


def test_decoder_warnings_are_shown_before_the_final_report(tmp_path, monkeypatch, capfd):
    from image_fixtures import garbled_scan, jpeg_bytes, picture
    data = tiny_data(tmp_path, train_extra={"train/c0/warns.jpg": (garbled_scan(jpeg_bytes(
        picture(80))), 0)})
    real_trace, real_report, shown = DecoderWarningTracer._trace, trainer.write_run_report, {}

    def slow_trace(tracer, paths):  # a trace slower than the rest of the run
        time.sleep(2)
        real_trace(tracer, paths)

    def report(*args, **kwargs):
        shown["err"] = capfd.readouterr().err  # stderr until the final report
        real_report(*args, **kwargs)

    monkeypatch.setattr(DecoderWarningTracer, "_trace", slow_trace)
    monkeypatch.setattr(trainer, "write_run_report", report)
    assert train.main([*TINY, *WHOLE_EPOCH, *data, "--output", str(tmp_path / "run")]) == 0
    assert (f"decoder warning traced to {tmp_path / 'train/c0/warns.jpg'}: Corrupt JPEG data: "
            f"premature end of data segment") in shown["err"]


def test_a_resume_with_other_torch_threads_says_it_is_not_bit_exact(tmp_path, capsys):
    data, out = tiny_data(tmp_path), tmp_path / "run"
    flags = [*TINY, *data, "--output", out, "--stop-after-steps", "1"]
    run_main(capsys, *flags)
    line = ("--torch-threads 2 differs from the checkpoint's 1: the run continues, but not "
            "bit-exactly as it would have")
    assert line not in run_main(capsys, *flags, "--resume", "auto").splitlines()
    assert line in run_main(capsys, *flags, "--resume", "auto", "--torch-threads",
                            "2").splitlines()


def test_a_list_whose_files_are_all_missing_hints_at_the_root(tmp_path, capsys):
    data = tiny_data(tmp_path)
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    moved = [str(Path(data[i]).rename(elsewhere / Path(data[i]).name)) for i in (1, 3)]
    assert train.main([*TINY, "--data", moved[0], "--val-data", moved[1],
                       "--output", str(tmp_path / "run")]) == 1
    assert last_error_line(capsys).endswith(
        "; none of the listed files is there: is the image root right (--root)?")


# --------------------------------------------------------------------------- 7. advice

def test_check_decode_finds_what_the_trainers_decoder_warns_about(tmp_path, capsys):
    from dali_cmo.__main__ import main as cli_main
    from image_fixtures import jpeg_bytes, picture, split_dataset
    data = jpeg_bytes(picture(3, (64, 64)))
    middle_cut = data[:len(data) // 3] + data[2 * len(data) // 3:]
    listing = split_dataset(tmp_path, "train", per_class=(2, 1),
                            extra={"train/c1/cut.jpg": (middle_cut, 1)})
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--decode", "--workers", "2",
                     "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "decoder warnings 1 (files the trainer's decoder decodes with a warning" in out
    assert (f"  line 4: {tmp_path / 'train/c1/cut.jpg'}: Corrupt JPEG data: premature end of "
            f"data segment") in out
    warned = json.loads(report.read_text())["summary"]["decoder_warnings"]
    assert [(entry["line"], Path(entry["path"]).name) for entry in warned] == [(4, "cut.jpg")]


def test_skip_says_it_does_not_cover_missing_files(tmp_path, capsys):
    data = tiny_data(tmp_path)
    (tmp_path / "train/c2/0.jpg").unlink()
    assert train.main([*TINY, *data, "--on-bad-image", "skip",
                       "--output", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == (
        f"train.py: error: {data[1]}: 1 of 16 files missing under {tmp_path}: line 14: "
        f"train/c2/0.jpg; --on-bad-image skip covers unreadable images, not missing ones: "
        f"restore the files or remove them from the list\n")


@pytest.mark.parametrize("reader", ["native", "python"])
def test_a_class_without_valid_images_is_described_as_the_reader_found_it(reader, tmp_path,
                                                                        capsys):
    from image_fixtures import truncated
    data = tiny_data(tmp_path)
    for image in (tmp_path / "train/c2").iterdir():
        image.write_bytes(truncated(image.read_bytes()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        assert train.main([*TINY, *WHOLE_EPOCH, *data, "--on-bad-image", "skip", "--reader",
                           reader, "--output", str(tmp_path / "run")]) == 1
    listing = re.escape(data[1])
    # neither "failed to decode" (the reader's check refused it) nor "pass --on-bad-image skip"
    assert re.fullmatch(
        rf"train.py: error: bad image {re.escape(str(tmp_path / 'train/c2'))}/\d\.jpg \(line "
        rf"1[456] of {listing}, epoch 1\): truncated JPEG \(no end-of-image marker FFD9 in the "
        rf"last 4096 bytes\); and no valid image of class 2 is left to replace it; remove or "
        rf"replace the bad files of its class; `python -m dali_cmo check {listing} --decode` "
        rf"lists every such file", last_error_line(capsys))


def test_help_does_not_call_channels_last_gpu_only():
    from dali_cmo.cli.train_args import get_args_parser
    action = next(a for a in get_args_parser()._actions if a.dest == "channels_last")
    assert "GPU only" not in action.help and "CPU" in action.help
