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
