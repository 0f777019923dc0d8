"""Training and evaluation pipelines on CPU over real and synthetic JPEGs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dali_cmo.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_cmo.data.datasets import LongTailDataset, read_image_folder
from dali_cmo.data.demo import demo_dir
from dali_cmo.data.iterator import CMOIterator, EvalIterator
from dali_cmo.data.sampling import PermutationSampler, WeightedSampler
from dali_cmo.streams.schedule import PasteSchedule, paste_window
from pipelines.evaluation import EvalPipeline
from pipelines.training import TrainConfig, TrainingPipeline

ACTIVE = dict(epochs=4, cmo_start=-1, cmo_end=0)  # pasting from the first epoch on


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """The built-in demo's 32x32 JPEGs (train/: 740 images, 300 down to 3 per class; test/)."""
    return demo_dir(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def cifar_lt(demo_root):
    """A CIFAR-LT-shaped training set (10 classes, imbalance 100) of real 32x32 JPEG files."""
    return read_image_folder(demo_root / "train")


@pytest.fixture(scope="module")
def solid_colours(tmp_path_factory):
    """Long-tailed set of flat-colour JPEGs, one colour per class: pixels tell their class."""
    root = tmp_path_factory.mktemp("solid")
    colours = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [230, 230, 20],
                        [20, 230, 230], [230, 20, 230]], np.uint8)
    counts = [40, 20, 10, 6, 3, 2]
    files, labels = [], []
    for k, n in enumerate(counts):
        for i in range(n):
            name = f"c{k}_{i}.jpg"
            size = (300 + 7 * i, 240 + 5 * k)  # sizes vary, so crop windows do too
            Image.new("RGB", size, tuple(int(c) for c in colours[k])).save(root / name, quality=95)
            files.append(name)
            labels.append(k)
    return LongTailDataset(root, files, labels, [f"c{k}" for k in range(6)], "solid"), colours


def drain(iterator):
    return list(iterator.epoch_batches())


def test_cifar_epoch_visits_every_p_sample_once_and_q_follows_its_sampler(cifar_lt):
    config = TrainConfig(style="cifar", image_size=32, batch_size=128, seed=3, **ACTIVE)
    pipeline = TrainingPipeline(cifar_lt, config)
    batches = drain(CMOIterator(pipeline))
    target_b = torch.cat([b.target_b for b in batches]).numpy()
    target_f = torch.cat([b.target_f for b in batches]).numpy()
    bg, fg = pipeline.streams.background, pipeline.streams.foreground
    assert isinstance(bg.sampler, PermutationSampler) and isinstance(fg.sampler, WeightedSampler)
    assert sorted(bg.epoch_indices(0)) == list(range(len(cifar_lt)))
    np.testing.assert_array_equal(target_b, cifar_lt.labels[bg.epoch_indices(0)])
    np.testing.assert_array_equal(target_f, cifar_lt.labels[fg.epoch_indices(0)])
    assert len(batches) == len(CMOIterator(pipeline)) == -(-len(cifar_lt) // 128)
    images = batches[0].images
    assert images.shape == (128, 3, 32, 32) and images.dtype == torch.float32
    lam = torch.cat([b.lam for b in batches])
    assert ((lam > 0) & (lam <= 1)).all() and (lam < 1).any()


@pytest.mark.parametrize("decode", ["region", "full"])
def test_pasted_pixels_and_lambda_agree(solid_colours, decode):
    """Inside the box the foreground's colour, outside the background's; lam = outside share."""
    dataset, colours = solid_colours
    config = TrainConfig(style="imagenet", image_size=64, batch_size=8, probability=1.0,
                         per_sample=True, foreground_decode=decode, seed=5, **ACTIVE)
    pipeline = TrainingPipeline(dataset, config)
    pipe = pipeline.build(with_box=True)
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    checked = 0
    for _ in range(4):
        images, target_b, target_f, lam, box = (np.array(o.as_tensor()) for o in pipe.run())
        for img, yb, yf, l, (y1, x1, y2, x2) in zip(images, target_b, target_f, lam, box):
            pixels = img * std + mean  # back to 0..255
            inside = np.zeros(pixels.shape[1:], bool)
            inside[y1:y2, x1:x2] = True
            assert l == pytest.approx(1 - inside.mean(), abs=1e-6)
            if inside.any():
                assert np.abs(pixels[:, inside] - colours[yf][:, None]).max() < 6
                checked += 1
            if (~inside).any():
                assert np.abs(pixels[:, ~inside] - colours[yb][:, None]).max() < 6
    assert checked > 10


@pytest.mark.parametrize("epochs,start,end,expected", [
    (200, 3, 3, range(4, 197)),  # the reference: epochs 4..196 counted from 0, 5..197 from 1
    (6, -1, 0, range(0, 6)),     # every epoch
    (6, 3, 1, range(4, 5)),
    (4, 3, 3, range(0)), (5, 2, 2, range(0))])  # margins that leave no epoch
def test_paste_window_is_start_below_epoch_below_epochs_minus_end(epochs, start, end, expected):
    assert list(paste_window(epochs, start, end)) == list(expected) == \
        [e for e in range(epochs) if start < e < epochs - end]
    if expected:
        schedule = PasteSchedule(epochs, start, end, probability=1.0)
        assert [e for e in range(epochs) if schedule.flags(e, 0, 1)[0]] == list(expected)


def test_outside_the_window_foregrounds_are_not_read(cifar_lt):
    """The Python source's read count (the native reader: tests/data/test_reader.py)."""
    config = TrainConfig(style="cifar", image_size=32, batch_size=128, epochs=6, cmo_start=3,
                         cmo_end=1, probability=1.0, reader="python")
    pipeline = TrainingPipeline(cifar_lt, config)
    iterator = CMOIterator(pipeline)
    batches = drain(iterator)  # epoch 0: outside 3 < e < 5
    assert pipeline.streams.reader.files_read == len(cifar_lt)  # backgrounds only
    assert all((b.lam == 1).all() for b in batches)


def test_per_batch_coin_skips_reading_unpasted_foregrounds(cifar_lt):
    config = TrainConfig(style="cifar", image_size=32, batch_size=32, probability=0.5,
                         reader="python", **ACTIVE)
    pipeline = TrainingPipeline(cifar_lt, config)
    batches = drain(CMOIterator(pipeline))
    pasted = sum(len(b) for b in batches if (b.lam < 1).any())
    assert 0 < pasted < len(cifar_lt)
    assert pipeline.streams.reader.files_read == len(cifar_lt) + pasted


@pytest.mark.parametrize("variant,bg_kind,fg_kind", [("cmo_back", WeightedSampler, PermutationSampler),
                                                     ("cmo_minor", WeightedSampler, WeightedSampler),
                                                     ("cutmix", PermutationSampler, PermutationSampler),
                                                     ("ros", WeightedSampler, None),
                                                     ("none", PermutationSampler, None)])
def test_variants_route_the_streams(cifar_lt, variant, bg_kind, fg_kind):
    config = TrainConfig(style="cifar", image_size=32, batch_size=128, variant=variant, **ACTIVE)
    pipeline = TrainingPipeline(cifar_lt, config)
    streams = pipeline.streams
    assert isinstance(streams.background.sampler, bg_kind)
    assert (streams.foreground is None) if fg_kind is None else \
        isinstance(streams.foreground.sampler, fg_kind)
    batch = next(CMOIterator(pipeline).epoch_batches())
    np.testing.assert_array_equal(batch.target_b.numpy(),
                                  cifar_lt.labels[streams.background.epoch_indices(0)[:128]])
    if fg_kind is None:
        assert (batch.lam == 1).all() and torch.equal(batch.target_f, batch.target_b)


def test_imagenet_samples_give_3_channel_224_outputs(imagenet_samples):
    grey = sorted(p.name for p in imagenet_samples.iterdir() if Image.open(p).mode != "RGB")
    assert grey, "the sample set has grayscale JPEGs"
    names = grey + sorted(p.name for p in imagenet_samples.iterdir())[:16 - len(grey) % 16]
    dataset = LongTailDataset(imagenet_samples, names, np.arange(len(names)) % 4,
                              [str(k) for k in range(4)], "imagenet samples")
    config = TrainConfig(batch_size=16, probability=1.0, per_sample=True, **ACTIVE)
    for batch in CMOIterator(TrainingPipeline(dataset, config)).epoch_batches():
        assert batch.images.shape[1:] == (3, 224, 224) and torch.isfinite(batch.images).all()


def test_resume_mid_epoch_gives_the_same_batches(cifar_lt):
    config = TrainConfig(style="cifar", image_size=32, batch_size=64, seed=9, **ACTIVE)
    iterator = CMOIterator(TrainingPipeline(cifar_lt, config))
    stream = iterator.epoch_batches()
    for _ in range(3):
        next(stream)
    state = iterator.state_dict()
    expected = [next(stream) for _ in range(4)]
    resumed = CMOIterator(TrainingPipeline(cifar_lt, config), state=state)
    got = resumed.epoch_batches()
    for want in expected:
        have = next(got)
        assert torch.equal(have.images, want.images) and torch.equal(have.lam, want.lam)
        assert torch.equal(have.target_f, want.target_f)


def test_two_shards_are_disjoint_and_cover_the_epoch(cifar_lt):
    config = TrainConfig(style="cifar", image_size=32, batch_size=64, **ACTIVE)
    shards = [TrainingPipeline(cifar_lt, config, shard_id=k, num_shards=2).streams.background
              for k in range(2)]
    a, b = (s.epoch_indices(1) for s in shards)
    assert len(a) == len(b) == -(-len(cifar_lt) // 2)
    assert set(a) | set(b) == set(range(len(cifar_lt)))
    assert len(set(a) & set(b)) <= 2 * len(a) - len(cifar_lt)  # only the wrap-around padding


def test_evaluation_covers_every_sample_once_across_shards(demo_root):
    test_set = read_image_folder(demo_root / "test")
    subset = LongTailDataset(test_set.root, test_set.files[::2], test_set.labels[::2],
                             test_set.class_names, "demo test subset")
    seen = []
    for shard in range(3):
        pipeline = EvalPipeline(subset, style="cifar", image_size=32, batch_size=16,
                                shard_id=shard, num_shards=3)
        for images, targets in EvalIterator(pipeline):
            assert images.shape[1:] == (3, 32, 32)
            seen.append(targets)
    np.testing.assert_array_equal(torch.cat(seen).numpy(), subset.labels)


def test_nonsense_configuration_names_the_argument(cifar_lt):
    for kwargs, name in [({"variant": "mixup"}, "variant"), ({"alpha": 0}, "alpha"),
                         ({"probability": 2.0}, "probability"), ({"batch_size": 0}, "batch_size"),
                         ({"foreground_decode": "x"}, "foreground_decode"),
                         ({"epochs": 4, "cmo_start": 3, "cmo_end": 3}, "CMO window")]:
        with pytest.raises(ValueError, match=name):
            TrainingPipeline(cifar_lt, TrainConfig(style="cifar", **kwargs))
    with pytest.raises(ValueError, match="batch_size"):
        TrainingPipeline(cifar_lt, TrainConfig(style="cifar", batch_size=10 ** 6))
