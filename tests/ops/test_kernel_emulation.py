"""The CUDA kernel's body, run on the CPU over a simulated grid, against the CPU operator.

``kernel_check/kernel_emulation.cc`` calls ``PasteKernelBody`` (paste_pixel.h) for every block
and thread that the real launch would start (``emulate_grid.h``): the kernel's own index
arithmetic, grid-stride loop, vector stores and partial groups, with host arithmetic. The CPU
operator walks rows instead (``PasteRange``). Both must give the same bytes for random batches
of every dtype, layout, mirror, box (empty, full, clipped) and foreground kind, including 1x1
images and an image larger than one sweep of the capped grid.
"""
from __future__ import annotations

import ctypes
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import requires_gpu
from nvidia.dali import fn, pipeline_def, types

from dali_cmo.constants import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

HERE = Path(__file__).resolve().parent
DTYPES = {types.UINT8: (np.uint8, 0), types.FLOAT: (np.float32, 1), types.FLOAT16: (np.float16, 2)}
CONSTANTS = {types.UINT8: ([0.5, 0.0, 10.0], [1.0, 2.0, 0.5]),   # ties in every channel
             types.FLOAT: (IMAGENET_MEAN, IMAGENET_STD),
             types.FLOAT16: (CIFAR_MEAN, CIFAR_STD)}
BIG = (1031, 1030)  # 1.06 M pixels: more than the 1024 blocks x 256 threads x 4 of one sweep


@pytest.fixture(scope="module")
def emulation():
    if shutil.which("g++") is None:
        pytest.skip("needs g++")
    spec = importlib.util.spec_from_file_location("run_kernel_check",
                                                  HERE / "kernel_check" / "run_kernel_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lib = ctypes.CDLL(str(module.build_emulation()))
    lib.emulate_paste.restype = ctypes.c_int
    return lib


def pointers(arrays):
    return (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])


def emulate(lib, bgs, fgs, boxes, mirrors, fg_mirrors, lams, mean, std, dtype, layout, resize):
    """The kernel body's output for one batch (images, lam, box)."""
    n = len(bgs)
    np_dtype, code = DTYPES[dtype]
    shapes = np.array([bg.shape for bg in bgs], np.int32)
    outs = [np.empty((s[2], s[0], s[1]) if layout == "CHW" else tuple(s), np_dtype)
            for s in shapes]
    lam_out = [np.full(1, -1, np.float32) for _ in range(n)]
    box_out = [np.full(4, -1, np.int32) for _ in range(n)]
    fg_shapes = np.array([fg.shape[:2] for fg in fgs], np.int32)
    channels = lambda v: np.tile(np.resize(np.asarray(v, np.float32), 3), (n, 1))  # noqa: E731
    args = [np.ascontiguousarray(a) for a in (
        shapes, np.array(boxes, np.int32), fg_shapes,
        np.stack([np.ravel(mirrors), np.ravel(fg_mirrors)], 1).astype(np.int32),
        channels(mean), channels(std), np.array(lams, np.float32).ravel())]
    lib.emulate_paste(ctypes.c_int(n), *[a.ctypes.data_as(ctypes.c_void_p) for a in args],
                      pointers(bgs), pointers(fgs), pointers(outs), pointers(lam_out),
                      pointers(box_out), ctypes.c_int(code), ctypes.c_int(layout == "CHW"),
                      ctypes.c_int(resize))
    return outs, lam_out, box_out


def random_batch(rng, n, C, big=False, resize=False):
    """Backgrounds, foregrounds (full-size or box-sized; with ``resize`` regions of any size,
    from a single pixel to several times the box), boxes and flips of one batch."""
    bgs, fgs, boxes = [], [], []
    for i in range(n):
        H, W = BIG if big and i == 0 else (1, 1) if i == 1 else rng.integers(1, 90, 2)
        kind = rng.integers(0, 6)
        if kind == 0:
            box = [0, 0, 0, 0]
        elif kind == 1:
            box = [0, 0, H, W]
        else:
            ys, xs = np.sort(rng.integers(0, H + 1, 2)), np.sort(rng.integers(0, W + 1, 2))
            box = [ys[0], xs[0], ys[1], xs[1]]
        region = kind >= 2 and rng.random() < 0.5
        fg_shape = (box[2] - box[0], box[3] - box[1], C) if region else (H, W, C)
        if resize:
            fg_shape = (*rng.integers(1, min(3 * max(H, W), 1500) + 2, 2), C)
        bgs.append(rng.integers(0, 256, (H, W, C), dtype=np.uint8))
        fgs.append(rng.integers(0, 256, fg_shape, dtype=np.uint8))
        boxes.append(np.array(box, np.int32))
    flips = [[np.array(v, np.int32) for v in rng.integers(0, 2, n)] for _ in range(2)]
    return bgs, fgs, boxes, flips[0], flips[1]


def batches_and_constants(dtype, layout, resize=False):
    """Four random batches (the first with one big image, in CHW) and the constants of a case."""
    rng = np.random.default_rng(100 + 2 * list(DTYPES).index(dtype) + (layout == "CHW") + 10 * resize)
    C = 1 if (dtype, layout) == (types.UINT8, "HWC") else 3
    batches = [random_batch(rng, 5, C, big=(i == 0 and layout == "CHW"), resize=resize)
               for i in range(4)]
    mean, std = (list(v)[:C] for v in CONSTANTS[dtype])
    return batches, mean, std


def paste_pipeline(batches, mean, std, dtype, layout, device="cpu", resize=False):
    """cmo_paste with the batches' boxes and flips (the same inputs on either device)."""
    @pipeline_def(batch_size=5, num_threads=2, device_id=0 if device == "gpu" else None)
    def pipe():
        inputs = [fn.external_source(source=[b[k] for b in batches], cycle=True,
                                     layout="HWC" if k < 2 else None) for k in range(5)]
        bg, fg, box, mirror, fg_mirror = inputs
        if device == "gpu":
            bg, fg = bg.gpu(), fg.gpu()
        return tuple(fn.cmo_paste(bg, fg, box=box, mirror=mirror, foreground_mirror=fg_mirror,
                                  mean=mean, std=std, dtype=dtype, output_layout=layout,
                                  output_box=True, resize_foreground=resize))

    p = pipe()
    p.build()
    return p


def run(p):
    return [[np.array(t) for t in (o.as_cpu() if hasattr(o, "as_cpu") else o)] for o in p.run()]


def assert_same_bytes(want, got, bgs, fgs, boxes, mirrors, fg_mirrors):
    for i, (a, b) in enumerate(zip(want, got)):
        assert a.shape == b.shape, i
        same = a.view(np.uint8) == b.view(np.uint8)
        assert same.all(), (
            f"sample {i} ({bgs[i].shape}, box {boxes[i].tolist()}, fg {fgs[i].shape}, mirrors "
            f"{int(mirrors[i])}/{int(fg_mirrors[i])}): {np.count_nonzero(~same)} bytes differ")


CASES = pytest.mark.parametrize(
    "layout,dtype,resize", [(layout, dtype, resize) for dtype in DTYPES for layout in ("HWC", "CHW")
                            for resize in (False, True)],
    ids=lambda v: {False: "paste", True: "resampled"}.get(v, v) if not hasattr(v, "name")
    else str(v).split(".")[-1])


@CASES
def test_kernel_body_on_a_simulated_grid_equals_the_cpu_operator(plugin, emulation, dtype,
                                                                 layout, resize):
    batches, mean, std = batches_and_constants(dtype, layout, resize)
    p = paste_pipeline(batches, mean, std, dtype, layout, resize=resize)
    for bgs, fgs, boxes, mirrors, fg_mirrors in batches:
        images, lams, out_boxes = run(p)
        emulated, emulated_lams, emulated_boxes = emulate(
            emulation, bgs, fgs, boxes, mirrors, fg_mirrors, lams, mean, std, dtype, layout,
            resize)
        assert_same_bytes(images, emulated, bgs, fgs, boxes, mirrors, fg_mirrors)
        np.testing.assert_array_equal(np.ravel(emulated_lams), np.ravel(lams))
        np.testing.assert_array_equal(emulated_boxes, out_boxes)


@requires_gpu
@pytest.mark.gpu
@CASES
def test_gpu_operator_equals_the_cpu_operator(plugin, dtype, layout, resize):
    """The same random batches (region, full-size and resampled foregrounds, every box kind,
    flips, 1x1 and a big image) on the GPU: identical bytes, lambdas and boxes."""
    batches, mean, std = batches_and_constants(dtype, layout, resize)
    cpu = paste_pipeline(batches, mean, std, dtype, layout, resize=resize)
    gpu = paste_pipeline(batches, mean, std, dtype, layout, device="gpu", resize=resize)
    for bgs, fgs, boxes, mirrors, fg_mirrors in batches:
        (want, want_lam, want_box), (got, got_lam, got_box) = run(cpu), run(gpu)
        assert_same_bytes(want, got, bgs, fgs, boxes, mirrors, fg_mirrors)
        np.testing.assert_array_equal(got_lam, want_lam)
        np.testing.assert_array_equal(got_box, want_box)
