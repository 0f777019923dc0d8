"""The output conversion over all 256 input values per channel, pinned to NumPy.

``(x - mean) * (1 / std)`` in float32, then float16 by ``astype(float16)`` (round half to even)
or uint8 by ``rint`` (half to even) and saturation: for the ImageNet and CIFAR constants the
training pipelines use, and for constants that make exact ties (where rounding half away from
zero, as DALI's ``ConvertSat`` does on the host, would differ). The GPU kernel uses the device's
ties-to-even intrinsics; the standalone kernel check (kernel_check/) compares them with this
host code on the same tables.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy_reference import normalize

from nvidia.dali import fn, pipeline_def, types

from dali_cmo.constants import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

CONSTANTS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "cifar": (CIFAR_MEAN, CIFAR_STD),
    "ties_uint8": ((0.5, 0.0, 10.0), (1.0, 2.0, 0.5)),  # x - 0.5, x / 2, (x - 10) * 2: ties
    "ties_float16": ((-2048.0,) * 3, (1.0,) * 3),      # x + 2048: float16 ulp 2, odd x tie
}
DTYPES = {"float16": (types.FLOAT16, np.float16), "float32": (types.FLOAT, np.float32),
          "uint8": (types.UINT8, np.uint8)}
RAMP = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)  # every byte, every channel


def convert_with_operator(mean, std, dtype, pasted: bool):
    """The ramp through cmo_paste: as background (nothing pasted) or as a full-image box of a
    foreground (the foreground path)."""
    blank = np.zeros_like(RAMP)
    bg, fg = (blank, RAMP) if pasted else (RAMP, blank)
    box = np.array([0, 0, 16, 16] if pasted else [0, 0, 0, 0], np.int32)

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        return fn.cmo_paste(fn.external_source(source=[[bg]], cycle=True, layout="HWC"),
                            fn.external_source(source=[[fg]], cycle=True, layout="HWC"),
                            box=fn.external_source(source=[[box]], cycle=True),
                            mean=list(mean), std=list(std), dtype=dtype)[0]

    p = pipe()
    p.build()
    return np.array(p.run()[0][0])


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("constants", list(CONSTANTS))
@pytest.mark.parametrize("pasted", [False, True], ids=["background", "foreground"])
def test_all_256_values_round_like_numpy(plugin, constants, dtype, pasted):
    mean, std = CONSTANTS[constants]
    dali_dtype, np_dtype = DTYPES[dtype]
    got = convert_with_operator(mean, std, dali_dtype, pasted)
    expected = normalize(RAMP, mean, std, np_dtype)
    assert got.dtype == np_dtype
    # bit for bit (float16 as its bits, so that a one-ulp difference cannot hide)
    view = np.uint16 if np_dtype == np.float16 else np_dtype
    np.testing.assert_array_equal(got.view(view), expected.view(view))


def test_the_tables_contain_ties():
    """The tie constants really produce exact halves, so the tests above can tell the modes apart."""
    x = RAMP[..., 0].ravel().astype(np.float32)
    halves = {"uint8 x - 0.5": x - np.float32(0.5), "uint8 x / 2": x * np.float32(0.5)}
    for name, values in halves.items():
        assert np.count_nonzero(values - np.floor(values) == 0.5) >= 128, name
    shifted = x + np.float32(2048)  # float16 spacing is 2 in [2048, 4096)
    assert np.count_nonzero(shifted % 2 == 1) == 128


def test_cifar_red_86_is_the_even_neighbour(plugin):
    """Worked by hand: (86 - 125.307) / 51.5865 = -0.7619629 lies exactly between the float16
    values -0.76220703 and -0.76171875; ties to even gives -0.76171875 (mantissa even)."""
    got = convert_with_operator(CIFAR_MEAN, CIFAR_STD, types.FLOAT16, pasted=False)
    assert got.reshape(-1, 3)[86, 0] == np.float16(-0.76171875)
