"""Two ranks on CPU: two training pipelines of one run, shard 0 and shard 1 of 2, in one process.

The reference trains in one process (``DataParallel``): one coin, one lambda and one box per
step for the whole batch, and independent crops and flips for every image. Every image of the
data set here is the same picture, so two outputs differ only where their random crops or
flips do.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.iterator import CMOIterator
from dali_cmo.streams.schedule import PasteSchedule, rank_seed
from pipelines.training import TrainConfig, TrainingPipeline

ACTIVE = dict(epochs=4, cmo_start=-1, cmo_end=0)  # pasting from the first epoch on
STEPS = 3


@pytest.fixture(scope="module")
def one_picture(tmp_path_factory):
    """40 copies of one noisy picture under long-tailed labels (20, 10, 6, 3, 1)."""
    root = tmp_path_factory.mktemp("one_picture")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)).save(root / "a.png")
    counts = [20, 10, 6, 3, 1]
    labels = np.repeat(np.arange(len(counts)), counts)
    return LongTailDataset(root, ["a.png"] * len(labels), labels,
                           [f"c{k}" for k in range(len(counts))], "one picture")


def rank_outputs(dataset, config, steps=STEPS):
    """``(images, lam, box)`` of the first ``steps`` batches of shards 0 and 1 of 2."""
    outputs = []
    for shard in (0, 1):
        pipe = TrainingPipeline(dataset, config, shard_id=shard, num_shards=2).build(
            with_box=True)
        runs = [pipe.run() for _ in range(steps)]
        outputs.append([tuple(np.array(run[k].as_tensor()) for k in (0, 3, 4)) for run in runs])
    return outputs


def test_ranks_crop_and_flip_independently_and_share_the_per_batch_box(one_picture):
    config = TrainConfig(style="imagenet", image_size=32, batch_size=4, probability=1.0,
                         seed=11, **ACTIVE)
    rank0, rank1 = rank_outputs(one_picture, config)
    for (images0, lam0, box0), (images1, lam1, box1) in zip(rank0, rank1):
        # one lambda and one box for the global step: every sample, on both ranks
        assert (box0 == box0[0]).all() and (box0[0, 2:] > box0[0, :2]).all()
        np.testing.assert_array_equal(box0, box1)
        np.testing.assert_array_equal(lam0, lam1)
        # crops and flips: no image of rank 0 equals the image of rank 1 at its position
        assert all(not np.array_equal(a, b) for a, b in zip(images0, images1))
    assert len({tuple(box[0]) for _, _, box in rank0}) == STEPS  # a new box every step


def test_per_sample_boxes_differ_between_ranks(one_picture):
    config = TrainConfig(style="imagenet", image_size=32, batch_size=4, probability=1.0,
                         per_sample=True, seed=11, **ACTIVE)
    rank0, rank1 = rank_outputs(one_picture, config, steps=1)
    (_, lam0, box0), (_, lam1, box1) = rank0[0], rank1[0]
    assert len({tuple(b) for b in box0}) == len(box0)  # one box per sample
    assert not (box0 == box1).all(axis=1).any() and not np.array_equal(lam0, lam1)


def test_the_per_batch_coin_is_the_same_on_every_rank_and_per_sample_coins_are_not():
    shared = PasteSchedule(10, -1, 0, probability=0.5, seed=4)
    coins = [[bool(shared.flags(2, it, 3, shard_id=s)[0]) for it in range(40)] for s in (0, 1)]
    assert coins[0] == coins[1] and 10 < sum(coins[0]) < 30
    own = PasteSchedule(10, -1, 0, probability=0.5, per_sample=True, seed=4)
    flags = [np.concatenate([own.flags(2, it, 8, shard_id=s) for it in range(5)]) for s in (0, 1)]
    assert (flags[0] != flags[1]).any()
    # the lambda-and-box sampler: one seed per run per batch, one per rank per sample
    assert shared.box_seed(0) == shared.box_seed(1) == rank_seed(4, "box")
    assert own.box_seed(0) != own.box_seed(1)


def test_paste_coins_in_the_pipelines_agree_across_ranks(one_picture):
    config = TrainConfig(style="cifar", image_size=32, batch_size=4, probability=0.5, seed=2,
                         **ACTIVE)
    lams = []
    for shard in (0, 1):
        iterator = CMOIterator(TrainingPipeline(one_picture, config, shard_id=shard,
                                                num_shards=2))
        lams.append(np.stack([b.lam.numpy() for b in iterator.epoch_batches()]))
    np.testing.assert_array_equal(lams[0], lams[1])
    pasted = (lams[0] < 1).any(axis=1)
    assert pasted.any() and not pasted.all()


def test_rank_1_resumes_mid_epoch_exactly(one_picture):
    config = TrainConfig(style="imagenet", image_size=32, batch_size=4, probability=0.5,
                         seed=6, **ACTIVE)

    def shard1(state=None):
        return CMOIterator(TrainingPipeline(one_picture, config, shard_id=1, num_shards=2),
                           state=state)

    iterator = shard1()
    stream = iterator.epoch_batches()
    next(stream)
    state = iterator.state_dict()
    expected = [next(stream) for _ in range(3)]
    resumed = shard1(state).epoch_batches()
    for want in expected:
        have = next(resumed)
        assert np.array_equal(have.images.numpy(), want.images.numpy())
        assert np.array_equal(have.lam.numpy(), want.lam.numpy())
