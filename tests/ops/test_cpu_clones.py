"""The CPU paste is built twice (``target_clones`` in ``cmo_paste.cc``): for AVX2 and for any
x86-64; the loader picks one. Both must give the same bytes, whichever a user's CPU gets.

The same random pastes (``kernel_check/cpu_clones.cc``) are built with the operator's flags
for each instruction set and their output hashes compared. The check can fail: allowing fused
multiply-adds changes the resampled sums, and with them the hash.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CSRC = HERE.parents[1] / "dali_cmo" / "ops" / "csrc"
FLAGS = ["-std=c++20", "-O3", "-ffp-contract=off"]  # the operator's (dali_cmo/ops/build.py)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def paste_hash(tmp_path: Path, name: str, flags: list[str]) -> str:
    binary = tmp_path / name
    subprocess.run(["g++", *flags, f"-I{CSRC}", str(HERE / "kernel_check" / "cpu_clones.cc"),
                    "-o", str(binary)], check=True)
    return subprocess.run([str(binary)], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_avx2_and_generic_builds_paste_the_same_bytes(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    if not {"avx2", "fma"} <= cpu_flags():
        pytest.skip("needs a CPU with AVX2 and FMA to run every build")
    generic = paste_hash(tmp_path, "generic", FLAGS)
    assert paste_hash(tmp_path, "avx2", [*FLAGS, "-mavx2"]) == generic
    fused = paste_hash(tmp_path, "fused", [*FLAGS[:-1], "-ffp-contract=fast", "-mavx2", "-mfma"])
    assert fused != generic  # the hash sees a change of rounding
