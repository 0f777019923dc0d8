"""An independent NumPy statement of the CMO paste (the box rule of github.com/naver-ai/cmo), for tests.

Written from the method's definition, not from the operator's code.
"""
from __future__ import annotations

import numpy as np


def reference_box(lam: float, cy: int, cx: int, H: int, W: int) -> tuple[tuple[int, int, int, int], float]:
    """The CutMix box (y1, x1, y2, x2) and the clipped-area lambda, as the reference code."""
    cut = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * cut), int(H * cut)
    x1, x2 = np.clip(cx - cut_w // 2, 0, W), np.clip(cx + cut_w // 2, 0, W)
    y1, y2 = np.clip(cy - cut_h // 2, 0, H), np.clip(cy + cut_h // 2, 0, H)
    return (int(y1), int(x1), int(y2), int(x2)), 1.0 - (x2 - x1) * (y2 - y1) / (W * H)


def simulate_lambdas(rng: np.random.Generator, n: int, H: int, W: int, alpha: float) -> np.ndarray:
    """Emitted (clipped) lambdas of n independent reference draws, with the paste always on."""
    lams = rng.beta(alpha, alpha, size=n)
    cys, cxs = rng.integers(0, H, size=n), rng.integers(0, W, size=n)
    return np.array([reference_box(l, cy, cx, H, W)[1] for l, cy, cx in zip(lams, cys, cxs)])


def normalize(values, mean=None, std=None, dtype=np.uint8):
    """The output conversion the operator documents: ``(x - mean) * (1 / std)`` in float32, then
    ``dtype`` with round-half-to-even (NumPy's ``astype(float16)`` and ``rint``), uint8 saturated."""
    out = np.asarray(values).astype(np.float32)
    if mean is not None:
        out = out - np.asarray(mean, np.float32)
    if std is not None:
        out = out * (np.float32(1) / np.asarray(std, np.float32))
    if np.dtype(dtype) == np.uint8:
        out = np.clip(np.rint(out), 0, 255)
    return out.astype(dtype)


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of DALI's ``fn.resize`` default filter along one axis:
    linear, antialiased when shrinking (a triangle of radius in / out), weights normalised to
    sum 1, source indices clamped. Written from DALI's filter definition (resampling_filters.cu,
    resampling_impl_cpu.cc: the tabulated triangle [0, 1, 0], its anchor and support), with its
    float32 steps."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    radius = scale if in_size > out_size else f32(1)
    table_scale = f32(2) / max(f32(1), f32(2) * radius)  # the table spans [0, 2]
    anchor = f32(1) / table_scale
    support = int(np.ceil(f32(2) / table_scale))
    origin = (f32(0.5) * scale - f32(0.5)) - anchor
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        start = f32(f32(i) * scale) + origin
        first = int(np.ceil(start))
        t = (f32(first) - start + np.arange(support, dtype=f32)) * table_scale
        w = np.where((t > 0) & (t < 1), t, np.where((t >= 1) & (t < 2), f32(1) - (t - f32(1)), 0))
        w = w.astype(f32) / w.astype(f32).sum(dtype=f32)
        np.add.at(weights[i], np.clip(first + np.arange(support), 0, in_size - 1), w)
    return weights


def reference_resize(region: np.ndarray, height: int, width: int) -> np.ndarray:
    """``region`` (h, w, C) resized to (height, width, C) with :func:`resize_weights`, in float64."""
    rows, cols = resize_weights(region.shape[0], height), resize_weights(region.shape[1], width)
    return np.einsum("yi,xj,ijc->yxc", rows, cols, region.astype(np.float64))


def reference_paste(background, foreground, box, *, mirror=False, foreground_mirror=False,
                    mean=None, std=None, dtype=np.uint8, layout="HWC"):
    """Flip each input as asked, paste rows [y1, y2) x cols [x1, x2) of the foreground, normalise.

    ``foreground`` is full size, or exactly the box's size: then it is the window of the
    unflipped foreground that the flip brings onto the box, and it is flipped in place.
    """
    y1, x1, y2, x2 = box
    bg = background[:, ::-1] if mirror else background
    out = bg.copy()
    if y2 > y1 and x2 > x1:
        fg = foreground[:, ::-1] if foreground_mirror else foreground
        full_size = foreground.shape[:2] == background.shape[:2]
        out[y1:y2, x1:x2] = fg[y1:y2, x1:x2] if full_size else fg
    out = normalize(out, mean, std, dtype)
    return np.ascontiguousarray(out.transpose(2, 0, 1)) if layout == "CHW" else out
