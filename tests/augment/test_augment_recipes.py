"""The recipes in the training pipeline: the per-image branch is a fair coin, each stream draws
its own augmentation, region decoding is used only where it sees the same pixels, the
configuration refuses what the reference never ran, and the augmented stream is seeded and
resumes from a DALI checkpoint with the same batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from graphs import run_graph, structured_images
from dali_cmo.augment import tone
from dali_cmo.augment.draws import either
from dali_cmo.augment.recipes import RECIPES
from dali_cmo.data.datasets import LongTailDataset
from pipelines.training import TrainConfig, TrainingPipeline

ACTIVE = dict(epochs=4, cmo_start=-1, cmo_end=0)  # pasting from the first batch on


def jpeg_dataset(root, size, counts=(10, 5, 3), flat=False):
    root.mkdir(parents=True, exist_ok=True)
    files, labels = [], []
    images = structured_images(sum(counts), size, seed=4)
    for k, n in enumerate(counts):
        for i in range(n):
            name = f"c{k}_{i}.jpg"
            pixels = np.full((size, size, 3), 90, np.uint8) if flat else images[len(files)]
            Image.fromarray(pixels).save(root / name, quality=95)
            files.append(name)
            labels.append(k)
    return LongTailDataset(root, files, labels, [f"c{k}" for k in range(len(counts))], "gen")


@pytest.fixture(scope="module")
def small_jpegs(tmp_path_factory):
    return jpeg_dataset(tmp_path_factory.mktemp("aug64"), 64)


def test_branch_choice_is_a_fair_coin():
    """either(a, b, 0.5): marked branches (invert vs. identity), counted over 4,000 images."""
    grey = np.full((4, 4, 3), 10, np.uint8)
    out = run_graph(lambda x: either(tone.invert, lambda y: y, 0.5, x), [grey] * 1000,
                    iterations=4)
    share = np.mean([o[0, 0, 0] == 245 for o in out])
    assert all(o[0, 0, 0] in (10, 245) for o in out)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(out)), share


def test_each_stream_draws_its_own_jitter(tmp_path):
    """One flat image everywhere: with jitter the pasted box and the background differ (their
    factors are drawn apart); without, they are the same colour."""
    dataset = jpeg_dataset(tmp_path, 64, counts=(8, 8), flat=True)
    for augment, differ in (("jitter", True), ("standard", False)):
        config = TrainConfig(image_size=32, batch_size=16, probability=1.0, per_sample=True,
                             augment=augment, seed=3, **ACTIVE)
        images, _, _, lam, box = (np.array(o.as_tensor()) for o in
                                  TrainingPipeline(dataset, config).build(with_box=True).run())
        gaps = []
        for img, (y1, x1, y2, x2) in zip(images, box):
            inside = np.zeros(img.shape[1:], bool)
            inside[y1:y2, x1:x2] = True
            if inside.any() and not inside.all():
                gaps.append(np.abs(img[:, inside].mean(1) - img[:, ~inside].mean(1)).max())
        assert len(gaps) >= 8
        assert (np.mean(np.array(gaps) > 0.02) > 0.75) if differ else max(gaps) < 1e-3


def test_region_decode_only_for_pointwise_augmentation():
    assert TrainConfig(augment="standard").region_decode
    for augment in ("jitter", "randaugment"):
        assert not TrainConfig(augment=augment).region_decode
    assert not TrainConfig(style="cifar", augment="autoaugment").region_decode
    assert [name for name, recipe in RECIPES.items() if recipe.pointwise] == ["standard"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(augment="mixup"),
     "augment must be one of standard, jitter, randaugment, autoaugment; got 'mixup'"),
    (dict(style="cifar", augment="randaugment"),
     "augment 'randaugment' is the reference's imagenet recipe; it needs style 'imagenet', "
     "got 'cifar'"),
    (dict(augment="autoaugment"),
     "augment 'autoaugment' is the reference's cifar recipe; it needs style 'cifar', "
     "got 'imagenet'"),
    (dict(augment="randaugment", randaugment="rand-n2-q3"),
     "randaugment: unknown RandAugment config section 'q3' in 'rand-n2-q3' (known: n, m, "
     "mstd)"),
])
def test_configurations_the_reference_never_ran_are_refused(kwargs, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**kwargs)
    assert str(error.value) == message


def test_seeded_and_resumed_from_a_checkpoint(small_jpegs):
    """The same seed continues a checkpointed stream with the same batches; another seed draws
    other ones. (randaugment with CMO: conditionals, per-branch draws and both streams; the
    autoaugment recipe's draws are the same kinds of DALI random operators.)"""
    config = TrainConfig(augment="randaugment", image_size=32, batch_size=4, probability=1.0,
                         seed=11, **ACTIVE)
    dataset = small_jpegs

    def batches(pipe, n):
        return [np.array(pipe.run()[0].as_tensor()) for _ in range(n)]
    first = TrainingPipeline(dataset, config).build()
    head = batches(first, 2)
    checkpoint = first.checkpoint()
    tail = batches(first, 2)
    resumed = batches(TrainingPipeline(dataset, config).build(checkpoint=checkpoint), 2)
    other = TrainConfig(**{**config.__dict__, "seed": 12})
    assert all(np.array_equal(a, b) for a, b in zip(tail, resumed))
    assert not np.array_equal(head[0], batches(TrainingPipeline(dataset, other).build(), 1)[0])


def test_every_preset_names_a_recipe_its_crop_style_can_run():
    """A preset merged without `augment` (or with one its crop size cannot run) fails here."""
    from dali_cmo.training.recipes import PRESETS
    for name, preset in PRESETS.items():
        style = "cifar" if preset["image_size"] <= 64 else "imagenet"
        TrainConfig(style=style, augment=preset["augment"])  # refuses a mismatch
    assert {n: p["augment"] for n, p in PRESETS.items() if p["augment"] != "standard"} == {
        "imagenet-lt": "jitter", "places-lt": "jitter", "imagenet-lt-400": "randaugment",
        "inat2018-400": "randaugment", "cifar10-lt-400": "autoaugment",
        "cifar100-lt-400": "autoaugment"}


@pytest.mark.parametrize("argv, message", [
    (["--preset", "cifar10-lt", "--augment", "randaugment"],
     "training pipeline: --augment 'randaugment' is the reference's imagenet recipe; it needs "
     "--style 'imagenet', got 'cifar'"),
    (["--preset", "imagenet-lt-400", "--style", "imagenet", "--randaugment", "rand-n2-x3"],
     "training pipeline: --randaugment: unknown RandAugment config section 'x3' in "
     "'rand-n2-x3' (known: n, m, mstd)"),
])
def test_train_refuses_an_augmentation_naming_the_flag(argv, message, capsys, tmp_path):
    import train
    assert train.main(argv + ["--output", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"train.py: error: {message}"
