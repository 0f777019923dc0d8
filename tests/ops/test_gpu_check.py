"""benchmarks/gpu_check.sh: its dry run on this (CPU) machine, and the summary it writes."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["gpu", "dali", "versions", "build", "smoke", "tests_gpu", "bench_paste_op",
         "bench_throughput", "bench_throughput_e2e", "tests_cmo_paste_cpu"]


def load_summary_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_check_summary", REPO / "benchmarks" / "gpu_check_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils timeout")
def test_dry_run_records_every_step_and_builds(tmp_path):
    pytest.importorskip("nvidia.dali")
    library = REPO / "dali_cmo" / "ops" / "lib" / "libdali_cmo.so"
    before = library.stat().st_mtime_ns if library.exists() else None
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable,
               GPU_CHECK_SKIP_BENCH="1", GPU_CHECK_SKIP_TESTS="1")
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "dry-run" and summary["ok"], log
    steps = {step["name"]: step for step in summary["steps"]}
    assert list(steps) == STEPS, log
    assert steps["build"]["status"] == "ok", log
    assert "CPU only" in steps["build"]["detail"]
    assert steps["smoke"]["status"] == "ok", log
    assert steps["gpu"]["status"] == steps["tests_gpu"]["status"] == "skipped"
    assert "no GPU" in steps["tests_gpu"]["detail"]
    for name in ("bench_throughput", "bench_throughput_e2e", "bench_paste_op", "tests_cmo_paste_cpu"):
        assert steps[name]["status"] == "skipped"
    assert summary["versions"]["dali"] == steps["dali"]["detail"].split()[1]
    assert (tmp_path / "build.log").is_file() and (tmp_path / "versions.json").is_file()
    # one printed line per step
    printed = log.split("gpu-check summary", 1)[1]
    assert all(f"  {name} " in printed for name in STEPS)
    # a dry run builds into a temporary folder: the installed library is left alone
    after = library.stat().st_mtime_ns if library.exists() else None
    assert before == after


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                    reason="needs bash and coreutils timeout")
def test_steps_past_the_time_budget_are_skipped_and_summarized(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, GPU_CHECK_BUDGET_S="1")
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert [s["name"] for s in steps] == STEPS
    assert all(s["status"] in ("ok", "skipped") for s in steps), log
    assert "no time left" in {s["name"]: s for s in steps}["build"]["detail"]


def test_summary_reads_junit_benchmark_json_and_failures(tmp_path, capsys):
    summary_module = load_summary_module()
    (tmp_path / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite tests="5" failures="1" errors="0" '
        'skipped="1"><testcase classname="tests.t" name="test_a"><failure/></testcase>'
        '</testsuite></testsuites>')
    (tmp_path / "bench.json").write_text(json.dumps(
        {"config": {"batch": 64}, "results": {"images_per_s": 1234.5, "ms_per_batch": 51.8}}))
    rows = [("build", "ok", "12.5", "built", "build.log", ""),
            ("tests_gpu", "failed", "3.0", "exit 1", "t.log", "junit.xml"),
            ("bench_throughput", "ok", "9.9", "done", "b.log", "bench.json"),
            ("bench_paste_op", "skipped", "0", "not available", "", "")]
    (tmp_path / "steps.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))

    assert summary_module.main([str(tmp_path), "--mode", "gpu", "--elapsed", "30"]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed_steps"] == ["tests_gpu"] and not summary["ok"]
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["tests_gpu"]["tests"]["passed"] == 3
    assert steps["tests_gpu"]["tests"]["failed_tests"] == ["tests.t::test_a"]
    assert steps["bench_throughput"]["key_figures"] == {"results.images_per_s": 1234.5,
                                                        "results.ms_per_batch": 51.8}
    printed = capsys.readouterr().out
    assert "images_per_s=1234" in printed and "FAILED: tests_gpu" in printed


def test_summary_picks_the_benchmark_figures(tmp_path, capsys):
    summary_module = load_summary_module()
    med = lambda x: {"median": x, "min": x, "max": x, "reps": [x]}  # noqa: E731
    report = {"settings": {"batch_size": 256}, "machine": {"cpus": 16},
              "results": {"baseline": {"images_per_s": med(9000.0),
                                       "end_to_end": {"images_per_s": med(2500.0)}},
                          "cmo": {"images_per_s": med(8500.0)},
                          "naive": {"images_per_s": med(5000.0)},
                          "torch_reference": {"images_per_s": med(1500.0)}},
              "ratios": {"baseline": 1.0, "naive": 0.55, "cmo": 0.94, "torch_reference": 0.17},
              "end_to_end_ratios": {"baseline": 1.0, "cmo": 0.99},
              "targets": {"cmo >= 0.80 x baseline": {"ratio": 0.94, "met": True},
                          "cmo faster than torch_reference": {"ratio": 5.6, "met": False}}}
    (tmp_path / "t.json").write_text(json.dumps(report))
    (tmp_path / "steps.tsv").write_text("bench_throughput\tok\t50\tsettings\tt.log\tt.json\n")
    assert summary_module.main([str(tmp_path)]) == 0
    step = json.loads((tmp_path / "summary.json").read_text())["steps"][0]
    assert step["figures"]["baseline.e2e_images_per_s"] == 2500.0
    assert list(step["key_figures"]) == ["targets_met", "targets_unmet", "cmo.e2e_x_baseline",
                                         "cmo.x_baseline", "torch_reference.x_baseline",
                                         "naive.x_baseline", "baseline.images_per_s"]
    assert step["key_figures"]["targets_met"] == "1/2"
    assert "cmo.x_baseline=0.94" in capsys.readouterr().out
