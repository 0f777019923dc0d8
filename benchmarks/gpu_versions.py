"""Versions of what benchmarks/gpu_check.sh relies on, for its "versions" step.

    python benchmarks/gpu_versions.py OUT.json

Each import is probed in its own interpreter (a crash in one, e.g. a CUDA library clash, spoils
nothing else), then torch and DALI in one process, as the tests use them. Prints one line;
writes every version (or why it is missing) to OUT.json. Standard library only.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dali_cmo.ops.build import find_nvcc  # noqa: E402  (standard library only)

MODULES = {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "dali": "nvidia.dali",
           "pytest": "pytest", "scipy": "scipy", "PIL": "PIL"}


def probe(code: str) -> str:
    """What ``code`` prints in a fresh interpreter, or "missing (last error line)"."""
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        return "missing (import timed out)"
    if r.returncode == 0:
        return r.stdout.strip()
    last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return f"missing ({last[:160]})"


def tool(cmd: list[str]) -> str:
    """The version a compiler prints (its "release" line), or "missing"."""
    try:
        lines = [line.strip() for line in subprocess.run(cmd, capture_output=True, text=True,
                                                         timeout=20).stdout.splitlines()
                 if line.strip()]
        return next((line.rsplit(" V", 1)[-1] for line in lines if "release" in line), lines[0])
    except Exception:  # noqa: BLE001 - absent or broken: reported as missing
        return "missing"


def main(argv: list[str]) -> int:
    probes = {k: f"import {m} as x; print(x.__version__)" for k, m in MODULES.items()}
    probes["torch"] = ("import torch; print(torch.__version__, '|', torch.version.cuda, "
                       "torch.cuda.is_available(), "
                       "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
    probes["torch_with_dali"] = ("import torch, nvidia.dali, nvidia.dali.fn; "
                                 "print('ok, cuda available:', torch.cuda.is_available())")
    with ThreadPoolExecutor(8) as pool:
        found = dict(zip(probes, pool.map(probe, probes.values())))
    v = {"python": platform.python_version(), "executable": sys.executable,
         "host": platform.node(), **found, "nvcc": tool([find_nvcc() or "nvcc", "--version"]),
         "g++": tool(["g++", "--version"])}
    if " | " in v["torch"]:
        v["torch"], v["torch_cuda"] = (part.strip() for part in v["torch"].split(" | ", 1))
    Path(argv[0]).write_text(json.dumps(v, indent=2) + "\n")

    def short(k):
        return "missing" if v[k].startswith("missing") else v[k]
    torch = short("torch") + (f" (CUDA {v['torch_cuda'].split()[0]})" if "torch_cuda" in v else "")
    both = "" if "missing" in (short("torch"), short("dali")) else (
        ", torch+dali in one process: "
        + ("ok" if not v["torch_with_dali"].startswith("missing") else "FAILS"))
    print(f"python {v['python']}, torch {torch}, dali {short('dali')}, cupy {short('cupy')}, "
          f"pytest {short('pytest')}, scipy {short('scipy')}, nvcc {v['nvcc']}{both}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
