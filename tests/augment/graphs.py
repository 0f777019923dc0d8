"""Helpers of the augmentation tests: structured test images and one-call DALI graphs.

The images are smooth random colour fields with hard-edged rectangles and a little noise, so
that colour statistics, histograms, edges and flat areas all occur (what the transforms are
sensitive to), without any file on disk. Importing this module also makes ``train`` and the
reference's transforms re-created with PIL importable (benchmarks/reference_transforms.py,
what the throughput benchmark runs too).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from nvidia.dali import fn, pipeline_def
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
for _folder in (REPO, REPO / "benchmarks"):  # train.py; reference_transforms.py
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def structured_images(count: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` uint8 ``size`` x ``size`` x 3 images (see the module docstring)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), np.int32)
        for _ in range(3):
            y, x = rng.integers(0, size - 2, 2)
            h, w = rng.integers(2, size // 2, 2)
            field[y:y + h, x:x + w] = rng.integers(0, 256, 3)
        field += rng.integers(-6, 7, field.shape)
        images.append(np.clip(field, 0, 255).astype(np.uint8))
    return images


def run_graph(build, images, *params, seed: int = 7, iterations: int = 1, device: str = "cpu"):
    """Outputs of ``build(images_node, *param_nodes)`` as lists of NumPy arrays per output.

    Args:
        build: the graph, returning one node or a tuple of nodes.
        images: the batch (list of HWC uint8 arrays).
        params: per-sample parameters, one sequence each (fed as float32 scalars).
        seed: the pipeline seed.
        iterations: batches to run (outputs of all of them, concatenated per output).
        device: where the images go ("gpu" moves them there before ``build``).
    """
    @pipeline_def(batch_size=len(images), num_threads=2, device_id=0 if device == "gpu" else None,
                  seed=seed, enable_conditionals=True, prefetch_queue_depth=1)
    def graph():
        nodes = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        if device == "gpu":
            nodes = nodes.gpu()
        values = [fn.external_source(source=_constant_batch(p), batch=True) for p in params]
        return build(nodes, *values)

    pipe = graph()
    pipe.build()
    collected = None
    for _ in range(iterations):
        outputs = pipe.run()
        outputs = [o.as_cpu() if hasattr(o, "as_cpu") else o for o in outputs]
        arrays = [[np.array(o[i]) for i in range(len(o))] for o in outputs]
        collected = arrays if collected is None else [c + a for c, a in zip(collected, arrays)]
    return collected if len(collected) > 1 else collected[0]


def _constant_batch(values):
    batch = [np.float32(v) for v in values]

    def source():
        return batch
    return source


def difference(ours, reference) -> np.ndarray:
    """Absolute per-pixel differences of two lists of images, stacked."""
    return np.stack([np.abs(a.astype(np.int32) - np.asarray(b, np.int32))
                     for a, b in zip(ours, reference)])
