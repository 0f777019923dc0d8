"""The per-batch paste schedule on two DALI pipelines (dali_cmo.data.split): schedule order,
exact resume at every position, epochs that leave one pipeline idle, degenerate boxes."""
from __future__ import annotations

import numpy as np
import pytest
from nvidia.dali import Pipeline
from PIL import Image

from dali_cmo.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.iterator import CMOIterator
from dali_cmo.data.sources import PasteSchedule
from dali_cmo.data.split import SplitPipelines
from pipelines.training import TrainConfig, TrainingPipeline

COLOURS = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [230, 230, 20],
                    [20, 230, 230]], np.uint8)
COUNTS = [24, 12, 6, 3, 2]  # 47 images: batches of 8 leave a partial last batch of 7
SMALL = dict(style="imagenet", image_size=24, batch_size=8, num_threads=1, prefetch=2)
ACTIVE = dict(epochs=4, cmo_start=-1, cmo_end=0)  # pasting from the first epoch on


@pytest.fixture(scope="module")
def solid(tmp_path_factory):
    """Long-tailed flat-colour JPEGs of varying size, one colour per class."""
    root = tmp_path_factory.mktemp("split_solid")
    files, labels = [], []
    for k, n in enumerate(COUNTS):
        for i in range(n):
            name = f"c{k}_{i}.jpg"
            Image.new("RGB", (40 + 3 * i, 36 + 2 * k), tuple(int(c) for c in COLOURS[k])).save(
                root / name, quality=95)
            files.append(name)
            labels.append(k)
    return LongTailDataset(root, files, labels, [f"c{k}" for k in range(len(COUNTS))], "solid")


def epoch_outputs(pipe):
    """Every batch of the pipe's current epoch as NumPy arrays; then the next epoch starts."""
    batches = []
    while True:
        try:
            batches.append([np.array(o.as_tensor()) for o in pipe.run()])
        except StopIteration:
            pipe.reset()
            return batches


def check_pixels(images, y_b, y_f, lam, boxes):
    """Inside each box the foreground's colour, outside the background's; lam = outside share."""
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    for img, yb, yf, l, (y1, x1, y2, x2) in zip(images, y_b, y_f, lam, boxes):
        pixels = img * std + mean
        inside = np.zeros(pixels.shape[1:], bool)
        inside[y1:y2, x1:x2] = True
        assert l == pytest.approx(1 - inside.mean(), abs=1e-6)
        if inside.any():
            assert np.abs(pixels[:, inside] - COLOURS[yf][:, None]).max() < 6
        if (~inside).any():
            assert np.abs(pixels[:, ~inside] - COLOURS[yb][:, None]).max() < 6


def test_per_batch_schedules_build_split_pipelines_others_one_graph(solid):
    def built(**kwargs):
        return TrainingPipeline(solid, TrainConfig(**SMALL, **ACTIVE, **kwargs)).build()

    assert isinstance(built(), SplitPipelines)
    assert isinstance(built(foreground_decode="full"), SplitPipelines)
    for kwargs in (dict(per_sample=True), dict(foreground_decode="naive"), dict(variant="none")):
        assert isinstance(built(**kwargs), Pipeline), kwargs
    with pytest.raises(ValueError, match="split=True needs a variant with foregrounds, per-batch"):
        TrainingPipeline(solid, TrainConfig(**SMALL, **ACTIVE, per_sample=True)).build(split=True)


@pytest.mark.parametrize("decode", ["region", "full"])
def test_batches_come_in_schedule_order_with_the_right_pixels(solid, decode):
    config = TrainConfig(**SMALL, **ACTIVE, probability=0.5, seed=4,
                         foreground_decode=decode)
    pipeline = TrainingPipeline(solid, config)
    pipe = pipeline.build(with_box=True)
    bg, fg = pipeline.streams.background, pipeline.streams.foreground
    schedule = PasteSchedule(4, -1, 0, 0.5, False, 4)
    pasted_samples = 0
    for epoch in range(2):
        batches = epoch_outputs(pipe)
        coins = [bool(schedule.flags(epoch, g, 1)[0]) for g in range(len(batches))]
        assert len(batches) == 6 and 0 < sum(coins) < 6, coins
        y_b = np.concatenate([b[1] for b in batches]).reshape(-1)
        y_f = np.concatenate([b[2] for b in batches]).reshape(-1)
        np.testing.assert_array_equal(y_b, solid.labels[bg.epoch_indices(epoch)])
        np.testing.assert_array_equal(y_f, solid.labels[fg.epoch_indices(epoch)])
        for (images, target_b, target_f, lam, boxes), coin in zip(batches, coins):
            assert images.shape[1:] == (3, 24, 24)
            assert (lam < 1).all() == coin and (lam == 1).all() != coin
            assert (boxes == boxes[0]).all()  # one box per batch
            check_pixels(images, target_b.reshape(-1), target_f.reshape(-1), lam, boxes)
            pasted_samples += len(lam) * coin
    assert pipeline.streams.reader.files_read == 2 * len(solid) + pasted_samples


def test_epochs_that_leave_one_pipeline_without_batches(solid):
    """Epoch 0 and 2 lie outside the window 0 < e < 2 (nothing pasted), epoch 1 pastes all."""
    config = TrainConfig(**SMALL, epochs=3, cmo_start=0, cmo_end=1, probability=1.0)
    pipeline = TrainingPipeline(solid, config)
    iterator = CMOIterator(pipeline)
    for epoch, pasted in enumerate([False, True, False]):
        batches = list(iterator.epoch_batches())
        assert len(batches) == 6 and all(b.epoch == epoch for b in batches)
        assert all(bool((b.lam < 1).all()) == pasted for b in batches)
    assert pipeline.streams.reader.files_read == 4 * len(solid)


def test_resume_at_every_position_gives_the_same_batches(solid):
    config = TrainConfig(**SMALL, **ACTIVE, probability=0.5, seed=2)
    iterator = CMOIterator(TrainingPipeline(solid, config))
    states, batches = [], []  # states[j] = (state, index of the batch that follows it)
    for _ in range(2):
        stream = iterator.epoch_batches()
        while True:
            states.append((iterator.state_dict(), len(batches)))
            batch = next(stream, None)
            if batch is None:
                break
            batches.append(batch)
    coins = [bool((b.lam < 1).all()) for b in batches]
    assert len(batches) == 12 and 0 < sum(coins) < 12, coins
    for state, k in states[:-1]:
        resumed = CMOIterator(TrainingPipeline(solid, config), state=state)
        have = next(resumed.epoch_batches(), None)
        if have is None:  # saved after an epoch's last batch: the next one opens the next epoch
            have = next(resumed.epoch_batches())
        assert have.epoch == batches[k].epoch
        for name in ("images", "target_b", "target_f", "lam"):
            assert np.array_equal(getattr(have, name).numpy(),
                                  getattr(batches[k], name).numpy()), (k, name)


def test_degenerate_boxes_of_the_pasted_pipeline_paste_nothing(solid):
    """alpha = 0.02 puts lambda near 0 or 1: many per-batch boxes clip to nothing."""
    config = TrainConfig(**SMALL, **ACTIVE, probability=1.0,
                         alpha=0.02, seed=1)
    pipe = TrainingPipeline(solid, config).build(with_box=True)
    batches = epoch_outputs(pipe) + epoch_outputs(pipe)
    empty = [bool((b[4][:, 2] <= b[4][:, 0]).any() or (b[4][:, 3] <= b[4][:, 1]).any())
             for b in batches]
    assert 0 < sum(empty) < len(batches), empty
    for images, target_b, target_f, lam, boxes in batches:
        check_pixels(images, target_b.reshape(-1), target_f.reshape(-1), lam, boxes)
