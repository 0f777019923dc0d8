"""benchmarks/gpu_check.sh on this (CPU) machine: its dry run (which runs the standalone kernel
check in its CPU mode), what it leaves in $OUT, step selection, caps, a step killed at its cap or
with the whole run, and the summary it builds."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["kernel_check", "dali", "versions", "decode", "build", "smoke", "tests_ops",
         "tests_pipelines", "paste_op", "throughput", "e2e"]
BENCHMARKS = ["paste_op", "throughput", "e2e"]
OUT_FILES = {"summary.json", "steps.tsv", "logs.tar.gz"}
MAX_OUT_FILES = 5      # what a GPU machine may have to return, with room to spare
MAX_FILE_BYTES = 16 * 1024 * 1024
FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
FAKE_OK = 'echo "$GPU_CHECK_STEP: 1 passed"'
needs_shell = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                 reason="needs bash and coreutils timeout")


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environment(tmp_path, **env):
    return dict(os.environ, OUT=str(tmp_path / "out"), GPU_CHECK_WORK=str(tmp_path / "work"),
                PYTHON=sys.executable, **env)


def run_script(tmp_path, *args, timeout=600, **env):
    result = subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO,
                            env=environment(tmp_path, **env), capture_output=True, text=True,
                            timeout=timeout)
    return result, result.stdout + result.stderr


def returned_files(tmp_path) -> dict[str, Path]:
    """What $OUT holds, checked against what a GPU machine sends back."""
    files = {p.relative_to(tmp_path / "out").as_posix(): p
             for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert len(files) <= MAX_OUT_FILES, sorted(files)
    for name, path in files.items():
        assert FILE_NAME.match(name), name  # flat, and only letters, digits, '.', '_', '-'
        assert path.stat().st_size < MAX_FILE_BYTES, name
    return files


def summary_of(tmp_path) -> tuple[dict, dict[str, dict]]:
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    return summary, {step["name"]: step for step in summary["steps"]}


def printed_plan(log: str) -> list[tuple[str, int]]:
    """(step, cap) in the order the run announces them."""
    return [(m.group(1), int(m.group(2)))
            for m in re.finditer(r"^\[gpu-check\]   (\w+) +(\d+)s  \(ends by \d+s\)$", log, re.M)]


@needs_shell
def test_dry_run_checks_the_kernel_and_returns_three_files(tmp_path):
    pytest.importorskip("nvidia.dali")
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").is_file():
        pytest.skip("needs nvcc for the kernel check")
    library = REPO / "dali_cmo" / "ops" / "lib" / "libdali_cmo.so"
    before = library.stat().st_mtime_ns if library.exists() else None
    # The build step is exercised by the package install; here the installed library is used.
    result, log = run_script(tmp_path, "--dry-run", "--skip", ",".join(BENCHMARKS),
                             GPU_CHECK_DRY_BUILD="installed")
    assert result.returncode == 0, log

    ran = [name for name in STEPS if name not in BENCHMARKS]
    assert [name for name, _ in printed_plan(log)] == ran
    files = returned_files(tmp_path)
    assert set(files) == OUT_FILES
    summary, steps = summary_of(tmp_path)
    assert summary["mode"] == "dry-run" and summary["ok"] and summary["unfinished_steps"] == []
    assert list(steps) == ran, log
    assert {s["status"] for s in steps.values()} == {"ok", "skipped"}, log
    assert steps["tests_ops"]["detail"] == steps["tests_pipelines"]["detail"] == \
        "skipped (no GPU)"
    assert steps["kernel_check"]["figures"]["cases"] == steps["kernel_check"]["figures"]["equal"]
    assert steps["kernel_check"]["exit"] == 0 and steps["kernel_check"]["cap"] > 0
    assert "the installed library as is" in steps["build"]["detail"]
    assert summary["versions"]["dali"] == steps["dali"]["detail"].split()[1]
    assert steps["decode"]["figures"]["bytes"] > 0
    with tarfile.open(files["logs.tar.gz"]) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        kernel = json.load(tar.extractfile(members["kernel_check.json"]))
        smoke = json.load(tar.extractfile(members["smoke.json"]))
    assert kernel["mode"] == "cpu-emulation" and kernel["exit_status"] == 0
    assert kernel["equal"] == kernel["cases"] > 40 and kernel["failed"] == []
    assert smoke["ok"] and smoke["checks"] == {
        f"cpu_vs_numpy/{d}/{layout}": "equal" for d in ("uint8", "float32", "float16")
        for layout in ("HWC", "CHW")}
    assert {f"{name}.log" for name in ran if steps[name]["status"] == "ok"} <= set(members)
    printed = log.split("gpu-check summary", 1)[1]
    assert all(f"  {name} " in printed for name in ran)  # one printed line per step
    after = library.stat().st_mtime_ns if library.exists() else None
    assert before == after  # the installed library is left alone


@needs_shell
def test_the_plan_orders_the_steps_and_shares_the_budget(tmp_path):
    result, log = run_script(tmp_path, "--list", "--budget-s", "600")
    assert result.returncode == 0, log
    plan = printed_plan(log)
    assert [name for name, _ in plan] == STEPS
    caps = dict(plan)
    assert caps["kernel_check"] > caps["versions"] > 0 and sum(caps.values()) <= 600
    assert not (tmp_path / "out").exists()  # --list runs nothing
    # a subset shares the whole budget
    _, log = run_script(tmp_path, "--list", "--budget-s", "600", "--steps", "smoke,e2e")
    assert [name for name, _ in printed_plan(log)] == ["smoke", "e2e"]
    assert sum(cap for _, cap in printed_plan(log)) in (599, 600)


@needs_shell
def test_bad_arguments_are_refused(tmp_path):
    for args in (["--steps", "kernel_check,nonsense"], ["--budget-s", "7min"], ["--bogus"]):
        result, log = run_script(tmp_path, "--list", *args)
        assert result.returncode == 2 and "gpu_check:" in log, args


@needs_shell
@pytest.mark.parametrize("name", STEPS)
def test_every_step_can_run_alone(tmp_path, name):
    result, log = run_script(tmp_path, "--dry-run", "--steps", name, timeout=120,
                             GPU_CHECK_FAKE_STEPS=FAKE_OK)
    assert result.returncode == 0, log
    assert set(returned_files(tmp_path)) == OUT_FILES
    summary, steps = summary_of(tmp_path)
    assert list(steps) == [name] and steps[name]["status"] == "ok", log
    assert steps[name]["detail"] == f"{name}: 1 passed" and steps[name]["exit"] == 0
    assert summary["ok"]


@needs_shell
def test_a_step_stopped_at_its_cap_is_named_and_rerun_alone(tmp_path):
    # A budget of 12 s over two steps: smoke (5 %) gets too little to start, the first sleeps
    # past its cap.
    result, log = run_script(tmp_path, "--dry-run", "--budget-s", "12", "--steps",
                             "build,smoke", timeout=120,
                             GPU_CHECK_FAKE_STEPS='echo "$GPU_CHECK_STEP starts"; sleep 60')
    assert result.returncode == 1, log
    returned_files(tmp_path)
    summary, steps = summary_of(tmp_path)
    assert steps["build"]["status"] == "timeout" and steps["build"]["exit"] == 124, log
    assert "stopped at its" in steps["build"]["detail"]
    assert "build starts" in steps["build"]["detail"]  # its log, up to the kill
    assert steps["smoke"]["status"] == "not_run" and not summary["ok"]
    assert summary["unfinished_steps"] == ["build", "smoke"]
    assert "--unfinished" in summary["rerun"]

    # the rerun runs only what did not finish, and its verdicts replace the earlier ones
    result, log = run_script(tmp_path, "--dry-run", "--unfinished", timeout=120,
                             GPU_CHECK_FAKE_STEPS=FAKE_OK)
    assert result.returncode == 0, log
    assert [name for name, _ in printed_plan(log)] == ["build", "smoke"]
    summary, steps = summary_of(tmp_path)
    assert summary["ok"] and [s["status"] for s in steps.values()] == ["ok", "ok"]


@needs_shell
def test_a_run_killed_mid_step_leaves_a_summary_naming_the_step(tmp_path):
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "--dry-run", "--steps", "kernel_check,tests_ops"], cwd=REPO,
        env=environment(tmp_path, GPU_CHECK_FAKE_STEPS="sleep 60"), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        summary_file = tmp_path / "out" / "summary.json"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if summary_file.is_file() and '"running"' in summary_file.read_text():
                break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # no chance to record anything more
        process.wait()
    returned_files(tmp_path)
    summary, steps = summary_of(tmp_path)
    assert steps["kernel_check"]["status"] == "running"
    assert steps["tests_ops"]["status"] == "pending"  # not reached
    assert summary["unfinished_steps"] == ["kernel_check", "tests_ops"] and not summary["ok"]


def test_summary_reads_junit_logs_benchmark_json_and_the_latest_rows(tmp_path, capsys):
    summary_module = load_module(REPO / "benchmarks" / "gpu_check_summary.py")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "junit_tests_ops.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite tests="5" failures="1" errors="0" '
        'skipped="1"><testcase classname="tests.t" name="test_a"><failure/></testcase>'
        '</testsuite></testsuites>')
    (logs / "tests_pipelines.log").write_text(
        "tests/a.py::test_one PASSED [ 33%]\ntests/a.py::test_two FAILED [ 66%]\n"
        "tests/a.py::test_three ")
    (logs / "throughput.json").write_text(json.dumps(
        {"config": {"batch": 64}, "results": {"images_per_s": 1234.5, "ms_per_batch": 51.8}}))
    (logs / "versions.json").write_text(json.dumps({"dali": "2.4.0"}))
    rows = [("kernel_check", "running", "0", "", "60", "started", ""),
            ("kernel_check", "ok", "40.5", "0", "60", "51 of 51 equal", ""),
            ("tests_ops", "failed", "60", "1", "90", "exit 1", "junit_tests_ops.xml"),
            ("tests_pipelines", "timeout", "90", "124", "90", "stopped", "junit_x.xml"),
            ("throughput", "ok", "120", "0", "150", "done", "throughput.json")]
    (tmp_path / "steps.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))

    assert summary_module.main([str(tmp_path), "--mode", "gpu", "--elapsed", "300",
                                "--budget", "420", "--card", "NVIDIA H100, 580, 80 GB, 9.0"]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["card"].startswith("NVIDIA H100") and summary["versions"] == {"dali": "2.4.0"}
    assert summary["failed_steps"] == ["tests_ops"]
    assert summary["unfinished_steps"] == ["tests_pipelines"] and not summary["ok"]
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["kernel_check", "tests_ops", "tests_pipelines", "throughput"]
    assert steps["kernel_check"]["status"] == "ok" and steps["kernel_check"]["seconds"] == 40.5
    assert steps["tests_ops"]["tests"]["passed"] == 3
    assert steps["tests_ops"]["tests"]["failed_tests"] == ["tests.t::test_a"]
    assert steps["tests_pipelines"]["tests_from_log"] == {
        "passed": 1, "failed": 1, "failed_tests": ["tests/a.py::test_two"],
        "running_test": "tests/a.py::test_three"}
    assert steps["throughput"]["key_figures"] == {"results.images_per_s": 1234.5,
                                                  "results.ms_per_batch": 51.8}
    printed = capsys.readouterr().out
    assert "images_per_s=1234" in printed and "stopped in tests/a.py::test_three" in printed
    assert "NOT ok: tests_ops failed, tests_pipelines timeout" in printed


def test_summary_picks_the_benchmark_figures(tmp_path, capsys):
    summary_module = load_module(REPO / "benchmarks" / "gpu_check_summary.py")
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
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "t.json").write_text(json.dumps(report))
    (tmp_path / "steps.tsv").write_text("e2e\tok\t50\t0\t60\tsettings\tt.json\n")
    assert summary_module.main([str(tmp_path)]) == 0
    step = json.loads((tmp_path / "summary.json").read_text())["steps"][0]
    assert step["figures"]["baseline.e2e_images_per_s"] == 2500.0
    assert list(step["key_figures"]) == ["targets_met", "targets_unmet", "cmo.e2e_x_baseline",
                                         "cmo.x_baseline", "torch_reference.x_baseline",
                                         "naive.x_baseline", "baseline.images_per_s"]
    assert step["key_figures"]["targets_met"] == "1/2"
    assert "cmo.x_baseline=0.94" in capsys.readouterr().out


@pytest.mark.parametrize("exit_status, output, verdict", [
    (0, "========= ERROR SUMMARY: 0 errors", "ok"),
    (7, "========= Invalid __global__ read\n========= ERROR SUMMARY: 3 errors", "errors"),
    (1, "========= ERROR SUMMARY: 2 errors", "errors"),
    (1, "========= Error: Device not supported", "unavailable"),
    (255, "========= Error: Target application terminated before first instrumented API call",
     "unavailable"),
])
def test_a_sanitizer_that_cannot_run_is_unavailable_not_a_failure(exit_status, output, verdict):
    runner = load_module(REPO / "tests" / "ops" / "kernel_check" / "run_kernel_check.py")
    assert runner.sanitizer_verdict(exit_status, output) == verdict
