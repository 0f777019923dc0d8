"""`python -m dali_cmo check` over lists with missing and broken files; the commands in a pipe."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dali_cmo.__main__ import main as cli_main
from image_fixtures import jpeg_bytes, picture, split_dataset, truncated

REPO = Path(__file__).resolve().parents[2]


def test_check_scans_everything_and_reports_missing_files_with_lines(tmp_path, capsys):
    listing = split_dataset(tmp_path, "train", per_class=(3, 2),
                            extra={"train/c1/cut.jpg": (truncated(jpeg_bytes(picture(9))), 1)})
    with open(listing, "a") as handle:
        handle.write("train/c0/gone.jpg 0\n")   # listed, not on disk: line 7
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report), "--workers", "2"]) == 1
    summary = json.loads(report.read_text())["summary"]
    assert summary["num_images"] == 7 and summary["ok"] == 5
    bad = {(entry["line"], Path(entry["path"]).name, entry["problem"].split(" (")[0])
           for entry in summary["bad_files"]}
    assert bad == {(6, "cut.jpg", "truncated JPEG"), (7, "gone.jpg", "missing")}
    out = capsys.readouterr().out
    assert f"  line 7: {tmp_path / 'train/c0/gone.jpg'}: missing (file not found)" in out
    assert f"  line 6: {tmp_path / 'train/c1/cut.jpg'}: truncated JPEG" in out


def test_check_writes_the_report_when_the_list_is_unreadable(tmp_path, capsys):
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg zero\n")
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report)]) == 1
    message = f"{listing}:1: label 'zero' is not an integer"
    assert capsys.readouterr().err == f"error: {message}\n"
    assert json.loads(report.read_text()) == {"error": message}


def test_stats_into_a_closed_pipe_ends_quietly(tmp_path):
    """`stats --json | head`: the reader goes away; no BrokenPipeError traceback."""
    listing = split_dataset(tmp_path, "train", per_class=(3, 2))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "dali_cmo", "stats", str(listing),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=REPO)
    process.stdout.close()  # before the command writes anything
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert error == ""


def test_check_reports_jpeg_quality_and_chroma_subsampling(tmp_path, capsys):
    from io import BytesIO
    from PIL import Image

    def png(image):
        buffer = BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    written = {"q75.jpg": dict(quality=75, subsampling="4:2:0"),
               "q95.jpg": dict(quality=95, subsampling="4:4:4"),
               "q30.jpg": dict(quality=30, subsampling="4:2:2"),
               "q89.jpg": dict(quality=89, subsampling="4:2:0")}
    extra = {f"train/c0/{name}": (jpeg_bytes(picture(k), **options), 0)
             for k, (name, options) in enumerate(written.items())}
    extra["train/c1/grey.jpg"] = (jpeg_bytes(picture(7).convert("L"), quality=60), 1)
    extra["train/c1/flat.png"] = (png(picture(8)), 1)
    listing = split_dataset(tmp_path, "train", per_class=(0, 0), extra=extra)
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report), "--workers", "2"]) == 0
    files = {Path(f["path"]).name: f for f in json.loads(report.read_text())["files"]}
    for name, options in written.items():
        assert (files[name]["jpeg_quality"], files[name]["chroma"]) == \
            (options["quality"], options["subsampling"])
    assert (files["grey.jpg"]["jpeg_quality"], files["grey.jpg"]["chroma"]) == (60, None)
    assert (files["flat.png"]["jpeg_quality"], files["flat.png"]["chroma"]) == (None, None)
    out = capsys.readouterr().out.splitlines()
    assert ("jpeg quality  min 30, median 75, max 95 (IJG scale, from the quantization "
            "tables); 4 below 90") in out
    assert "jpeg chroma   4:2:0 2, 4:4:4 1, 4:2:2 1" in out


def test_check_in_chunks_reports_what_each_file_says(tmp_path, capsys, monkeypatch):
    """Chunks of 3 files: the report lists every file's own full_check in list order, and the
    summary counts what those reports say (bad files, formats, sizes, JPEG quality)."""
    from dali_cmo.cli import check
    from dali_cmo.data.datasets import load_dataset
    from dali_cmo.data.integrity import full_check
    extra = {"train/c0/big.jpg": (jpeg_bytes(picture(3, size=(48, 40)), quality=70), 0),
             "train/c1/cut.jpg": (truncated(jpeg_bytes(picture(9))), 1)}
    listing = split_dataset(tmp_path, "train", per_class=(4, 3), extra=extra)
    with open(listing, "a") as handle:
        handle.write("train/c0/gone.jpg 0\n")
    monkeypatch.setattr(check, "CHUNK", 3)
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report), "--workers", "2"]) == 1
    written = json.loads(report.read_text())
    dataset = load_dataset(listing, check_files=False)
    expected = [full_check(dataset.path(i), decode=False).to_dict() for i in range(len(dataset))]
    assert written["files"] == expected and len(expected) == 10
    summary = written["summary"]
    ok = [f for f in expected if f["problem"] is None]
    assert (summary["num_images"], summary["ok"], summary["bad"]) == (10, len(ok), 10 - len(ok))
    assert [(b["index"], b["problem"]) for b in summary["bad_files"]] == \
        [(i, f["problem"]) for i, f in enumerate(expected) if f["problem"] is not None]
    assert summary["formats"] == {"jpeg": 9, "unknown": 1}  # the truncated JPEG is still one
    assert summary["width"]["max"] == 48 and summary["height"]["max"] == 40
    assert summary["jpeg_quality"]["min"] == min(f["jpeg_quality"] for f in ok)
    assert not (tmp_path / ".report.json.partial").exists()


def test_an_interrupted_check_leaves_no_report(tmp_path, monkeypatch):
    """Ctrl-C in the third chunk: neither the report nor its partial file is left behind."""
    from dali_cmo.cli import check
    listing = split_dataset(tmp_path, "train", per_class=(4, 3))
    real, calls = check.full_check, []

    def interrupted(path, decode=False):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path, decode=decode)

    monkeypatch.setattr(check, "full_check", interrupted)
    monkeypatch.setattr(check, "CHUNK", 2)
    report = tmp_path / "report.json"
    assert cli_main(["check", str(listing), "--report", str(report), "--workers", "1"]) == 130
    assert len(calls) < 7  # stopped before the last of the 7 files
    assert not report.exists() and not (tmp_path / ".report.json.partial").exists()
