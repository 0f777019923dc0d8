"""Compile and run the standalone cmo_paste kernel check (kernel_check.cu): nvcc only, no DALI.

    python tests/ops/kernel_check/run_kernel_check.py [--json PATH] [--arch SM] [--random N]
                                                      [--require-gpu] [--no-sanitizer]

On a GPU host it compiles for the GPU found (``nvidia-smi``), compares the real kernel with the
CPU operator's code on random and edge cases, and then reruns the cases under
``compute-sanitizer`` (memcheck; without the 4K images and the large batches) when that tool is
present; a sanitizer that cannot run the check (e.g. "Device not supported") is reported as
unavailable, not as a failure. Without a GPU it compiles for sm_90 and runs the kernel's body on
a simulated grid instead (what CI does). The binary is cached
under ``build/kernel_check/`` by a hash of its sources and flags. Standard library only: it runs
before DALI is unpacked on a GPU host (dali_cmo.ops.build needs no DALI to be imported). Exit
status: that of the check (0 all equal, 1 a mismatch or memcheck errors, 3 no GPU with
--require-gpu), 4 when it cannot be compiled, 5 no nvcc.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CSRC = REPO / "dali_cmo" / "ops" / "csrc"
SOURCES = [HERE / "kernel_check.cu", HERE / "emulate_grid.h", CSRC / "paste_pixel.h",
           CSRC / "paste_kernel.cuh"]
CACHE = REPO / "build" / "kernel_check"
DEFAULT_ARCH = "90"
MEMCHECK_ERRORS_EXIT = 7  # --error-exitcode: memcheck found errors

sys.path.insert(0, str(REPO))
from dali_cmo.ops.build import find_nvcc  # noqa: E402  (standard library only, no DALI)


def gpu_arch() -> str | None:
    """Compute capability of GPU 0 as ``nvidia-smi`` reports it (e.g. "90"), or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[0].replace(".", "") if out else None


def compile_command(nvcc: str, arch: str, output: Path) -> list[str]:
    """Host code without FMA contraction (as the operator library): the same bits everywhere."""
    return [nvcc, "-std=c++20", "-O2", f"-gencode=arch=compute_{arch},code=sm_{arch}",
            "-Xcompiler", "-ffp-contract=off", f"-I{CSRC}", f"-I{HERE}",
            str(HERE / "kernel_check.cu"), "-o", str(output)]


def cached_build(name: str, command, sources: list[Path]) -> tuple[Path, float, bool]:
    """Builds ``name`` with ``command(output_path)`` unless a build from the same sources and
    command is cached under build/kernel_check/; returns (path, seconds compiling, cached)."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    digest.update(" ".join(command(Path(name))).encode())
    target = CACHE / digest.hexdigest()[:16] / name
    if target.is_file():
        return target, 0.0, True
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f"{name}.{os.getpid()}.tmp")
    t0 = time.perf_counter()
    result = subprocess.run(command(staged), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command(staged)[0]} failed (exit {result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    os.replace(staged, target)
    return target, time.perf_counter() - t0, False


def build(nvcc: str, arch: str) -> tuple[Path, float, bool]:
    """The kernel check binary for sm_``arch``."""
    return cached_build("kernel_check", lambda out: compile_command(nvcc, arch, out), SOURCES)


def build_emulation(cxx: str = "g++") -> Path:
    """The host-only library of kernel_emulation.cc (the kernel body on a simulated grid), for
    tests/ops/test_kernel_emulation.py through ctypes."""
    sources = [HERE / "kernel_emulation.cc", HERE / "emulate_grid.h", CSRC / "paste_pixel.h"]
    command = lambda out: [cxx, "-std=c++20", "-O2", "-shared", "-fPIC", "-ffp-contract=off",  # noqa: E731
                           f"-I{CSRC}", f"-I{HERE}", str(sources[0]), "-o", str(out)]
    return cached_build("libkernel_emulation.so", command, sources)[0]


def sanitizer_verdict(exit_status: int, output: str) -> str:
    """"ok", "errors" (memcheck found some) or "unavailable": the sanitizer did not get to check
    (it refused the device, could not inject itself, ...), which says nothing of the kernel."""
    found = re.search(r"ERROR SUMMARY: (\d+) error", output)
    if exit_status == MEMCHECK_ERRORS_EXIT or (found and int(found.group(1)) > 0):
        return "errors"
    return "ok" if exit_status == 0 else "unavailable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--arch", help="SM to compile for (default: the GPU's, else 90)")
    parser.add_argument("--random", type=int, default=60, help="random batches (default 60)")
    parser.add_argument("--require-gpu", action="store_true", help="fail without a GPU")
    parser.add_argument("--no-sanitizer", action="store_true",
                        help="skip the compute-sanitizer rerun")
    args = parser.parse_args(argv)

    nvcc = find_nvcc()
    if nvcc is None:
        print("kernel_check: nvcc not found (set CUDA_HOME or put nvcc on PATH)")
        return 5
    found = gpu_arch()
    arch = args.arch or found or DEFAULT_ARCH
    try:
        binary, compile_s, cached = build(nvcc, arch)
    except RuntimeError as err:
        print(f"kernel_check: compiling for sm_{arch} failed: {err}")
        return 4
    print(f"kernel_check: sm_{arch} binary {'cached' if cached else f'compiled in {compile_s:.1f} s'}"
          f" ({binary.relative_to(REPO) if binary.is_relative_to(REPO) else binary})", flush=True)
    check = [str(binary), "--random", str(args.random)]
    if args.require_gpu:
        check.append("--require-gpu")
    raw = CACHE / f"result.{os.getpid()}.json"
    t0 = time.perf_counter()
    status = subprocess.run(check + ["--json", str(raw)]).returncode
    run_s = time.perf_counter() - t0
    result = json.loads(raw.read_text()) if raw.is_file() else {"mode": "did not finish"}
    raw.unlink(missing_ok=True)
    result.update(exit_status=status, arch=arch, compile_s=round(compile_s, 1),
                  run_s=round(run_s, 1), sanitizer=None)

    def save():  # atomically, at once: the verdict must not wait for the sanitizer
        if args.json:
            staged = args.json.with_name(args.json.name + ".tmp")
            staged.write_text(json.dumps(result, indent=2) + "\n")
            staged.replace(args.json)
    save()

    sanitizer = shutil.which("compute-sanitizer")
    if status == 0 and result.get("mode") == "gpu" and sanitizer and not args.no_sanitizer:
        t0 = time.perf_counter()
        memcheck = subprocess.run([sanitizer, "--tool", "memcheck", "--error-exitcode",
                                   str(MEMCHECK_ERRORS_EXIT), *check, "--random", "10",
                                   "--no-timing", "--no-large"], capture_output=True, text=True)
        output = memcheck.stdout + memcheck.stderr
        lines = output.strip().splitlines()
        verdict = sanitizer_verdict(memcheck.returncode, output)
        result["sanitizer"] = {"tool": "memcheck", "verdict": verdict,
                               "exit_status": memcheck.returncode,
                               "seconds": round(time.perf_counter() - t0, 1),
                               "last_line": lines[-1] if lines else ""}
        print(f"kernel_check: compute-sanitizer memcheck {verdict} (exit {memcheck.returncode}): "
              f"{result['sanitizer']['last_line']}")
        if verdict != "ok":
            print("\n".join(lines[-20:]))
        if verdict == "errors":
            status = 1
    elif result.get("mode") == "gpu":
        print("kernel_check: compute-sanitizer " + ("skipped (--no-sanitizer)" if
              args.no_sanitizer else "not found: memcheck not run"))
    result["exit_status"] = status
    save()
    return status


if __name__ == "__main__":
    sys.exit(main())
