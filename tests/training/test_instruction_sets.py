"""The second instruction-set pass of the suite guards something.

Training arithmetic differs between CPUs: ATen and oneDNN pick kernels for the best instruction
set they find (AVX2, AVX-512, AMX), and a trajectory (top-1 by epoch, the best epoch) seen on one
CPU is not a fact on another. ``.ci/run`` therefore runs the tests marked ``trains`` a second
time under ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``; a test that hard-codes one
machine's trajectory fails there instead of on a user's machine. These tests show that the two
variables really change the kernels, so that the second pass is not the first one again.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# a small convolutional network's gradients, hashed: the arithmetic under the kernels chosen
GRADIENTS = """
import hashlib, torch
torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                          torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                          torch.nn.Linear(16, 10))
x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
torch.nn.functional.cross_entropy(net(x), y).backward()
digest = hashlib.sha256(b"".join(p.grad.numpy().tobytes() for p in net.parameters()))
print(torch.backends.cpu.get_cpu_capability(), digest.hexdigest())
"""
SECOND_PASS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def run_python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECOND_PASS}
    env.update(env_changes)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_the_second_pass_trains_with_other_kernels():
    native_capability, native = run_python(GRADIENTS).stdout.split()
    if native_capability == "AVX2":
        pytest.skip("this CPU's best instruction set is AVX2: both passes run the same kernels")
    second_capability, second = run_python(GRADIENTS, **SECOND_PASS).stdout.split()
    assert second_capability == "AVX2"
    assert second != native  # other kernels, other low bits: a trajectory may differ


@pytest.mark.trains
def test_the_requested_instruction_set_is_in_force():
    """In the second pass, both libraries obey the variables (oneDNN names its ISA when
    ``ONEDNN_VERBOSE`` is on)."""
    import torch
    requested = os.environ.get("ATEN_CPU_CAPABILITY")
    if requested is None:
        pytest.skip("the first pass runs the CPU's own kernels; .ci/run's second pass sets "
                    "ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA")
    assert torch.backends.cpu.get_cpu_capability() == requested.upper()
    verbose = run_python(GRADIENTS, ONEDNN_VERBOSE="1", **{
        k: os.environ[k] for k in SECOND_PASS if k in os.environ}).stdout
    isa = [line.split("isa:", 1)[1] for line in verbose.splitlines() if ",isa:" in line]
    assert isa and "AVX-512" not in isa[0] and "AVX2" in isa[0], isa
