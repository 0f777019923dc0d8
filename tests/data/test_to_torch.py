"""iterator.to_torch: DALI outputs handed to torch without a copy, kept alive across iterations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import requires_gpu
from nvidia.dali import fn, pipeline_def, types

from dali_cmo.data.iterator import run_naming_bad_files, to_torch

BATCHES = [[np.full((2, 3), 10 * b + i, np.float32) for i in range(4)] for b in range(8)]


def counting_pipeline(device: str):
    """Batch b holds 10 * b + sample index; labels are int32 on the CPU."""
    @pipeline_def(batch_size=4, num_threads=1, device_id=0 if device == "gpu" else None,
                  prefetch_queue_depth=2)
    def pipe():
        values = fn.external_source(source=BATCHES, cycle=True)
        labels = fn.cast(values[0, 0], dtype=types.INT32)
        return (values.gpu() if device == "gpu" else values), labels

    p = pipe()
    p.build()
    return p


def check_batches(device: str):
    p = counting_pipeline(device)
    values, labels = run_naming_bad_files(p, device)
    images, targets = to_torch(values, device), to_torch(labels, device)
    # shared, not copied: the tensor is DALI's own memory
    assert images.data_ptr() == values.as_tensor().data_ptr()
    expected = torch.tensor(np.stack(BATCHES[0]))
    for _ in range(6):  # later iterations do not overwrite the memory the tensor holds
        run_naming_bad_files(p, device)
    if device == "gpu":
        torch.cuda.current_stream().synchronize()
    assert images.device.type == targets.device.type == ("cuda" if device == "gpu" else "cpu")
    assert torch.equal(images.cpu(), expected)
    assert targets.cpu().tolist() == [0, 1, 2, 3] and targets.dtype == torch.int32


def test_cpu_outputs_are_shared_and_stay_valid():
    check_batches("cpu")


@requires_gpu
@pytest.mark.gpu
def test_gpu_outputs_are_shared_on_the_current_stream_and_stay_valid():
    check_batches("gpu")
