"""benchmarks/gpu_check.sh: its dry run on this (CPU) machine (which also runs the standalone
kernel check in its CPU mode), its kernel-only mode, its session plan, and the summary."""
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
STEPS = ["gpu", "kernel_check", "dali", "versions", "build", "smoke", "tests_gpu",
         "bench_paste_op", "bench_throughput", "bench_throughput_e2e", "tests_ops_cpu"]
needs_shell = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                 reason="needs bash and coreutils timeout")


def load_summary_module():
    spec = importlib.util.spec_from_file_location(
        "gpu_check_summary", REPO / "benchmarks" / "gpu_check_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(tmp_path, *args, timeout=600, **env):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, **env)
    result = subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    return result, result.stdout + result.stderr


@needs_shell
def test_dry_run_records_every_step_and_runs_the_kernel_check(tmp_path):
    pytest.importorskip("nvidia.dali")
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file():
        pytest.skip("needs nvcc for the kernel check")
    library = REPO / "dali_cmo" / "ops" / "lib" / "libdali_cmo.so"
    before = library.stat().st_mtime_ns if library.exists() else None
    # The build step is exercised by the package install; here the installed library is used.
    result, log = run_script(tmp_path, "--dry-run", GPU_CHECK_SKIP_BENCH="1",
                             GPU_CHECK_SKIP_TESTS="1", GPU_CHECK_DRY_BUILD="installed")
    assert result.returncode == 0, log

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "dry-run" and summary["ok"], log
    steps = {step["name"]: step for step in summary["steps"]}
    assert list(steps) == STEPS, log
    assert steps["build"]["status"] == "ok" and "the installed library" in steps["build"]["detail"]
    assert steps["smoke"]["status"] == "ok", log
    assert json.loads((tmp_path / "smoke.json").read_text())["checks"] == {
        f"cpu_vs_numpy/{d}/{layout}": "equal" for d in ("uint8", "float32", "float16")
        for layout in ("HWC", "CHW")}
    kernel = json.loads((tmp_path / "kernel_check.json").read_text())
    assert kernel["mode"] == "cpu-emulation" and kernel["exit_status"] == 0, log
    assert kernel["equal"] == kernel["cases"] > 40 and kernel["failed"] == []
    assert steps["gpu"]["status"] == steps["tests_gpu"]["status"] == "skipped"
    assert "no GPU" in steps["tests_gpu"]["detail"]
    for name in ("bench_throughput", "bench_throughput_e2e", "bench_paste_op", "tests_ops_cpu"):
        assert steps[name]["status"] == "skipped"
    assert summary["versions"]["dali"] == steps["dali"]["detail"].split()[1]
    assert (tmp_path / "versions.json").is_file()
    printed = log.split("gpu-check summary", 1)[1]
    assert all(f"  {name} " in printed for name in STEPS)  # one printed line per step
    # the device minutes of every step (the printed line lists only those of 3 s or more)
    assert "device time: " in printed
    assert set(summary["device_time"]["minutes_per_step"]) == set(STEPS)
    after = library.stat().st_mtime_ns if library.exists() else None
    assert before == after  # the installed library is left alone


@needs_shell
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_kernel_only_mode_stops_after_the_kernel_check(tmp_path):
    result, log = run_script(tmp_path, "--kernel-only")
    assert result.returncode == 1, log
    steps = {s["name"]: s for s in json.loads((tmp_path / "summary.json").read_text())["steps"]}
    assert list(steps) == ["gpu", "kernel_check"], log
    assert steps["gpu"]["detail"] == "nvidia-smi not found"
    if shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").is_file():
        assert steps["kernel_check"]["detail"].endswith("no CUDA GPU found (--require-gpu)"), log


@needs_shell
def test_steps_past_the_time_budget_are_skipped_and_summarized(tmp_path):
    result, log = run_script(tmp_path, "--dry-run", timeout=120, GPU_CHECK_BUDGET_S="1")
    assert result.returncode == 0, log
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert [s["name"] for s in steps] == STEPS
    assert all(s["status"] in ("ok", "skipped") for s in steps), log
    assert "no time left" in {s["name"]: s for s in steps}["kernel_check"]["detail"]


def test_the_session_plan_leaves_time_to_rerun_the_last_call(capsys):
    summary_module = load_summary_module()
    assert summary_module.main(["--plan"]) == 0
    printed = capsys.readouterr().out
    calls, planned, retry = summary_module.plan(330)
    assert planned == 120 + 90 + 90 + 330 and retry == 330 - 135
    assert summary_module.SESSION_S - planned >= retry and "fits" in printed.splitlines()[-1]
    # a budget that leaves no room for the rerun is refused
    assert summary_module.main(["--plan", "--budget", "560"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_summary_reads_junit_benchmark_json_failures_and_device_time(tmp_path, capsys):
    summary_module = load_summary_module()
    (tmp_path / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite tests="5" failures="1" errors="0" '
        'skipped="1"><testcase classname="tests.t" name="test_a"><failure/></testcase>'
        '</testsuite></testsuites>')
    (tmp_path / "bench.json").write_text(json.dumps(
        {"config": {"batch": 64}, "results": {"images_per_s": 1234.5, "ms_per_batch": 51.8}}))
    rows = [("dali", "ok", "30", "unpacked", "dali.log", ""),
            ("build", "ok", "90", "built", "build.log", ""),
            ("tests_gpu", "failed", "60", "exit 1", "t.log", "junit.xml"),
            ("bench_throughput", "ok", "120", "done", "b.log", "bench.json"),
            ("bench_paste_op", "skipped", "0", "not available", "", "")]
    (tmp_path / "steps.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))

    assert summary_module.main([str(tmp_path), "--mode", "gpu", "--elapsed", "300",
                                "--spent-before", "400"]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed_steps"] == ["tests_gpu"] and not summary["ok"]
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["tests_gpu"]["tests"]["passed"] == 3
    assert steps["tests_gpu"]["tests"]["failed_tests"] == ["tests.t::test_a"]
    assert steps["bench_throughput"]["key_figures"] == {"results.images_per_s": 1234.5,
                                                        "results.ms_per_batch": 51.8}
    # 300 s run after 400 s: 200 s left; a rerun without dali (30) and build (90) needs 180 s
    assert summary["device_time"] == {
        "minutes_per_step": {"dali": 0.5, "build": 1.5, "tests_gpu": 1.0,
                             "bench_throughput": 2.0, "bench_paste_op": 0.0},
        "run_minutes": 5.0, "session_minutes_before": 6.67,
        "session_minutes_before_is_estimate": False, "session_minutes_left": 3.33,
        "retry_minutes": 3.0, "retry_fits": True}
    printed = capsys.readouterr().out
    assert "images_per_s=1234" in printed and "FAILED: tests_gpu" in printed
    assert "device time: 5.0 min this run (dali 0.5, build 1.5, tests_gpu 1.0, " \
           "bench_throughput 2.0); session 6.7 min before, 3.3 min left; a rerun without " \
           "unpack and build needs 3.0 min: fits" in printed


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
