"""imagenet-lt and the four 400-epoch presets train end to end on CPU for a few steps, with their
own augmentation, on small generated images: two epochs of one step, CMO in both, a small model
and 64 px ImageNet-style crops (the rest, the augmentation in particular, is the preset's)."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from graphs import structured_images
import train
from dali_cmo.training.recipes import PRESETS


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    images = iter(structured_images(27, 48, seed=6))
    for split, counts in (("train", (12, 6, 3)), ("val", (2, 2, 2))):
        for k, n in enumerate(counts):
            (root / split / f"c{k}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(next(images)).save(root / split / f"c{k}" / f"{i}.jpg")
    return root


SHORT = ["--model", "resnet32", "--batch-size", "6", "--epochs", "2", "--warmup", "1",
         "--max-steps-per-epoch", "1", "--cmo-start", "-1", "--cmo-end", "0", "--cmo-prob", "1.0",
         "--eval-every", "0", "--dali-threads", "1", "--torch-threads", "1"]
SMALL = {"imagenet": ["--image-size", "64", "--style", "imagenet"],
         "cifar": ["--image-size", "48"]}  # CIFAR style: the images' own size, pad 4 and crop


@pytest.mark.slow
@pytest.mark.trains
@pytest.mark.parametrize("preset, style, augment", [
    ("imagenet-lt", "imagenet", "jitter"), ("imagenet-lt-400", "imagenet", "randaugment"),
    ("inat2018-400", "imagenet", "randaugment"), ("cifar10-lt-400", "cifar", "autoaugment"),
    ("cifar100-lt-400", "cifar", "autoaugment")])
def test_preset_trains_with_its_augmentation(preset, style, augment, image_folder, tmp_path):
    assert PRESETS[preset]["augment"] == augment
    out = tmp_path / preset
    step_decay = ["--decay-epochs", "1"] if PRESETS[preset]["decay"] == "step" else []
    argv = ["--preset", preset, "--data", str(image_folder), *SHORT, *step_decay, *SMALL[style],
            "--output", str(out)]
    assert train.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["args"]["augment"] == augment and metrics["args"]["style"] == style
    assert metrics["epochs"] == 2
    # scored on the balanced validation split, two images a class: each class 0, 50 or 100 %,
    # the overall top-1 their mean
    per_class = metrics["per_class"]
    assert len(per_class) == 3 and set(per_class) <= {0.0, 50.0, 100.0}
    assert metrics["top1"] == pytest.approx(sum(per_class) / 3)
