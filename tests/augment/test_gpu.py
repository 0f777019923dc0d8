"""On the GPU the augmentations give the CPU's results (within 1 level: the GPU fuses
multiply-adds and rounds some steps differently), from the same seed the same draws, and the
training pipeline runs every recipe."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import requires_gpu
from graphs import difference, run_graph, structured_images
from dali_cmo.augment import color, filters, geometry, tone
from dali_cmo.augment.autoaugment import cifar10_policy
from dali_cmo.augment.randaugment import NAMES, RandAugment, operation

SIZE = 40
IMAGES = structured_images(6, SIZE, seed=5)
VALUES = np.linspace(0.3, 1.0, len(IMAGES))


def every_operation(images, value):
    spec = RandAugment(size=(SIZE, SIZE))
    outs = [color.adjust_brightness(images, value + 0.5),
            color.adjust_contrast(images, value + 0.5),
            color.adjust_saturation(images, value + 0.5), color.adjust_hue(images, value - 0.6),
            color.grayscale(images), filters.gaussian_blur(images, value * 2),
            filters.adjust_sharpness(images, value * 1.9), tone.autocontrast(images),
            tone.equalize(images), geometry.cutout(images, (SIZE, SIZE)),
            cifar10_policy(images, (SIZE, SIZE)),
            color.color_jitter(images, 0.4, 0.4, 0.4, 0.1, probability=0.8)]
    for interp in (geometry.LINEAR, geometry.NEAREST):
        outs.append(geometry.rotate(images, value * 30, (SIZE, SIZE), (124, 116, 104), interp))
    level, sign = value * 10, value * 0 + 1.0
    outs += [operation(images, name, level, sign, spec) for name in NAMES]
    return tuple(outs)


@requires_gpu
@pytest.mark.gpu
def test_gpu_matches_cpu():
    cpu = run_graph(every_operation, IMAGES, VALUES)
    gpu = run_graph(every_operation, IMAGES, VALUES, device="gpu")
    for k, (a, b) in enumerate(zip(cpu, gpu)):
        assert difference(a, b).max() <= 1, k


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("style, augment", [("imagenet", "jitter"), ("imagenet", "randaugment"),
                                            ("cifar", "autoaugment")])
def test_training_pipeline_runs_each_recipe_on_the_gpu(style, augment, tmp_path):
    from test_recipes import jpeg_dataset
    from pipelines.training import TrainConfig, TrainingPipeline
    dataset = jpeg_dataset(tmp_path, 48)
    config = TrainConfig(style=style, augment=augment, image_size=32, batch_size=6,
                         probability=1.0, epochs=4, cmo_start=-1, cmo_end=0)
    pipe = TrainingPipeline(dataset, config, device="gpu", device_id=0).build()
    images = np.array(pipe.run()[0].as_cpu().as_tensor())
    assert images.shape == (6, 3, 32, 32) and np.isfinite(images).all()
