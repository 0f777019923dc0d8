"""The training pipeline on the GPU against the same pipeline on the CPU (gpu-marked).

A few batches of small textured JPEGs, ImageNet style (region and full foreground decode) and
CIFAR style, with the reference per-batch coin at p = 0.5, so that some batches paste nothing
and the foreground branch of the DALI conditional runs empty. The GPU decodes with nvJPEG
("mixed"), the CPU with libjpeg-turbo; everything else is the same graph with the same seed.

Exact: output shapes and dtype, both targets, lambda and the pasted boxes. Decoder tolerance
(the two JPEG decoders differ in IDCT and chroma upsampling, which the resize then spreads), on
the images taken back to 0..255: mean |GPU - CPU| <= 1.5 and 99% of values within 8 levels.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import requires_gpu

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.streams.schedule import PasteSchedule
from pipelines.training import TrainConfig, TrainingPipeline

BATCHES = 4
ACTIVE = dict(epochs=4, cmo_start=-1, cmo_end=0)  # pasting from the first epoch on
MEAN_LIMIT, P99_LIMIT = 1.5, 8.0

pytestmark = [requires_gpu, pytest.mark.gpu]


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """40 smooth random-texture JPEGs of varied sizes in four long-tailed classes."""
    root = tmp_path_factory.mktemp("textured")
    rng = np.random.default_rng(0)
    files, labels = [], []
    for k, count in enumerate([16, 10, 8, 6]):
        for i in range(count):
            h, w = rng.integers(120, 260, 2)
            coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((int(w), int(h)), Image.BICUBIC)
            image.save(root / f"c{k}_{i}.jpg", quality=92)
            files.append(f"c{k}_{i}.jpg")
            labels.append(k)
    return LongTailDataset(root, files, labels, [f"c{k}" for k in range(4)], "textured")


def mixed_coin_seed(batch_size: int) -> int:
    """The first seed whose per-batch coins (p = 0.5) paste in some of the first batches and
    not in others."""
    for seed in range(100):
        schedule = PasteSchedule(ACTIVE["epochs"], ACTIVE["cmo_start"], ACTIVE["cmo_end"], 0.5,
                                 False, seed)
        coins = {bool(schedule.flags(0, i, batch_size)[0]) for i in range(BATCHES)}
        if coins == {True, False}:
            return seed
    raise AssertionError("no seed mixes pasted and unpasted batches")


def outputs(dataset, config, device):
    pipe = TrainingPipeline(dataset, config, device=device).build(with_box=True)
    return [[np.array(o.as_cpu().as_tensor() if hasattr(o, "as_cpu") else o.as_tensor())
             for o in pipe.run()] for _ in range(BATCHES)]


@pytest.mark.parametrize("style,decode", [("imagenet", "region"), ("imagenet", "full"),
                                          ("cifar", "full")])
def test_training_pipeline_gpu_matches_cpu(textured, style, decode):
    size, batch = (64, 8) if style == "imagenet" else (32, 8)
    config = TrainConfig(style=style, image_size=size, batch_size=batch, probability=0.5,
                         foreground_decode=decode, seed=mixed_coin_seed(batch), **ACTIVE)
    cpu, gpu = outputs(textured, config, "cpu"), outputs(textured, config, "gpu")
    mean, std = (np.array(v, np.float32)[:, None, None] for v in config.mean_std)
    pasted = []
    for b, (want, got) in enumerate(zip(cpu, gpu)):
        (img_c, yb_c, yf_c, lam_c, box_c), (img_g, yb_g, yf_g, lam_g, box_g) = want, got
        assert img_g.shape == img_c.shape == (batch, 3, size, size) and img_g.dtype == img_c.dtype
        np.testing.assert_array_equal(yb_g, yb_c)
        np.testing.assert_array_equal(yf_g, yf_c)
        np.testing.assert_array_equal(lam_g, lam_c)
        np.testing.assert_array_equal(box_g, box_c)
        diff = np.abs((img_g.astype(np.float32) - img_c) * std)  # in 0..255 levels
        mean_diff, p99 = float(diff.mean()), float(np.percentile(diff, 99))
        assert mean_diff <= MEAN_LIMIT and p99 <= P99_LIMIT, (
            f"batch {b}: mean |GPU - CPU| = {mean_diff:.2f} levels (limit {MEAN_LIMIT}), "
            f"99th percentile {p99:.1f} (limit {P99_LIMIT}); per channel mean "
            f"{diff.mean(axis=(0, 2, 3)).round(2).tolist()}, max {float(diff.max()):.1f}")
        pasted.append(bool((lam_c < 1).any()))
    assert set(pasted) == {True, False}, "both pasted and unpasted batches must occur"
