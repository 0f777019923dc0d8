"""The foreground cache (``TrainConfig.fg_cache_gb``) changes no pixel, label or lambda."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dali_cmo.data import fg_cache
from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.iterator import CMOIterator
from pipelines.training import TrainConfig, TrainingPipeline

COUNTS = (16, 8, 4, 2, 2)  # a long tail over 32 distinct JPEGs, grayscale ones among them
EPOCHS = 3


@pytest.fixture(scope="module")
def tail_list(imagenet_samples):
    from PIL import Image
    files = sorted(p.name for p in imagenet_samples.iterdir())
    grey = [name for name in files if Image.open(imagenet_samples / name).mode != "RGB"][:4]
    names = grey + [name for name in files if name not in grey][:sum(COUNTS) - len(grey)]
    labels = np.repeat(np.arange(len(COUNTS)), COUNTS)
    return LongTailDataset(imagenet_samples, names, labels, [str(k) for k in range(len(COUNTS))],
                           "imagenet samples, long-tailed")


def batches(dataset, **settings):
    config = TrainConfig(batch_size=8, probability=1.0, per_sample=True, image_size=96,
                         epochs=EPOCHS, cmo_start=-1, cmo_end=0, seed=3, **settings)
    pipeline = TrainingPipeline(dataset, config)
    iterator = CMOIterator(pipeline)
    out = [batch for _ in range(EPOCHS) for batch in iterator.epoch_batches()]
    return out, pipeline.fg_cache, iterator  # the store lives while the pipeline does


@pytest.mark.parametrize("reader", ["native", "python"])
def test_cached_batches_are_bit_identical(tail_list, reader):
    # room for the 8 images of the three smallest classes: the others are never admitted, so
    # both kinds of miss and, from the second paste of a tail image on, hits occur
    tail = np.flatnonzero(tail_list.labels >= 2)
    gib = fg_cache.decoded_bytes(tail_list, tail).sum() / fg_cache.GIB
    plain, *_ = batches(tail_list, reader=reader)
    cached, cache, _running = batches(tail_list, reader=reader, fg_cache_gb=gib)
    assert len(plain) == len(cached) == EPOCHS * len(tail_list) // 8
    for a, b in zip(plain, cached):
        for name in ("images", "target_b", "target_f", "lam"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    stats = cache.stats()
    pasted = sum(int((batch.lam < 1).sum()) for batch in cached)  # non-empty boxes
    assert stats["hits"] > 0 and stats["misses"] > stats["images"] > 0
    assert stats["hits"] + stats["misses"] >= pasted  # the pipeline prefetches ahead
    assert 0 < stats["bytes"] <= cache.budget_bytes
    assert stats["images"] <= len(cache.admitted) == 8
    assert sorted(cache.admitted) == tail.tolist()


def test_admission_takes_the_highest_probabilities_first_while_they_fit(tail_list):
    probabilities = np.zeros(len(tail_list))
    probabilities[:5] = [0.1, 0.3, 0.3, 0.2, 0.1]
    sizes = fg_cache.decoded_bytes(tail_list, [1, 2, 3])
    assert fg_cache.admission(tail_list, probabilities, sizes.sum()).tolist() == [1, 2, 3]
    assert fg_cache.admission(tail_list, probabilities, sizes.sum() - 1).tolist() == [1, 2]


def test_a_budget_over_the_available_memory_is_refused(tail_list, monkeypatch):
    monkeypatch.setattr(fg_cache, "available_memory", lambda: 3 * fg_cache.GIB)
    with pytest.raises(ValueError) as refused:
        TrainingPipeline(tail_list, TrainConfig(batch_size=8, fg_cache_gb=4))
    assert str(refused.value) == ("fg_cache_gb 4 GiB exceeds the memory available (3.0 GiB, "
                                  "MemAvailable in /proc/meminfo); give a smaller budget")


def test_the_cache_is_cpu_only_and_for_region_decoding(tail_list):
    with pytest.raises(ValueError, match="CPU-only for now"):
        TrainingPipeline(tail_list, TrainConfig(batch_size=8, fg_cache_gb=0.01), device="gpu")
    with pytest.raises(ValueError, match="serves region-decoded foregrounds"):
        TrainConfig(foreground_decode="full", fg_cache_gb=1)
    for budget in (-1.0, float("nan"), float("inf")):  # refused before any other rule
        with pytest.raises(ValueError) as refused:
            TrainConfig(foreground_decode="full", fg_cache_gb=budget)
        assert str(refused.value) == f"fg_cache_gb must be a finite number >= 0, got {budget:g}"


def test_a_held_window_is_the_numpy_cut_of_the_whole_decode(tail_list, tmp_path, plugin):
    """``cmo_cache_window`` on a held image gives ``image[round(y0):round(y0 + h),
    round(x0):round(x0 + w)]`` of the whole decode (rounding half away from zero), both when
    it stores the image and when it only reads it, and the pixels of
    ``decoders.image_slice`` over the same window (unaligned, half-pixel and whole-image
    windows)."""
    from nvidia.dali import fn, pipeline_def, types
    from pipelines.training import slice_decode

    n = 8
    encoded = [np.fromfile(tail_list.path(i), np.uint8) for i in range(n)]
    rng = np.random.default_rng(7)

    @pipeline_def(batch_size=n, num_threads=1, device_id=None)
    def decode_whole():
        return fn.decoders.image(fn.external_source(lambda: encoded, batch=True),
                                 output_type=types.RGB)
    pipe = decode_whole()
    pipe.build()
    whole_images = [np.array(t) for t in pipe.run()[0]]
    starts, extents = [], []
    for k, image in enumerate(whole_images):
        height, width = image.shape[:2]
        if k == 0:  # the whole image
            y, x, h, w = 0.0, 0.0, float(height), float(width)
        elif k == 1:  # half-pixel edges
            y, x, h, w = 10.5, 3.5, 20.0, 31.5
        else:
            h, w = rng.uniform(1, height - 1), rng.uniform(1, width - 1)
            y, x = rng.uniform(0, height - h), rng.uniform(0, width - w)
        starts.append(np.array([y, x], np.float32))
        extents.append(np.array([h, w], np.float32))
    (tmp_path / "admit.bin").write_bytes(b"\1" * n)
    arguments = dict(cache="test-window-cut", admission_file=str(tmp_path / "admit.bin"),
                     budget_bytes=2 ** 30)
    indices = [np.array(i, np.int64) for i in range(n)]

    def windows(store: bool):
        @pipeline_def(batch_size=n, num_threads=2, device_id=None)
        def cut():
            data, index, start, extent = fn.external_source(
                lambda: (encoded, indices, starts, extents), num_outputs=4, batch=True)
            state = fn.cmo_cache_lookup(index, fn.peek_image_shape(data), **arguments)
            whole = (fn.decoders.image(data, output_type=types.RGB),) if store else ()
            return (fn.cmo_cache_window(index, start, extent, *whole, cache=arguments["cache"]),
                    state, slice_decode(data, start, extent, "cpu"))
        pipe = cut()
        pipe.build()
        out, state, sliced = pipe.run()
        return pipe, [np.array(t) for t in out], np.array(state.as_tensor()), \
            [np.array(t) for t in sliced]

    storing, stored, _, sliced = windows(store=True)  # (its lookups may follow the stores)
    reading, held, states, _ = windows(store=False)
    assert states.tolist() == [1] * n  # all hits: read from the store alone
    for k in range(n):
        (y, x), (h, w) = starts[k].astype(np.float64), extents[k].astype(np.float64)
        y0, x0, y1, x1 = (int(np.floor(v + 0.5)) for v in (y, x, y + h, x + w))
        expected = whole_images[k][y0:y1, x0:x1]
        assert expected.size > 0
        np.testing.assert_array_equal(stored[k], expected, err_msg=f"sample {k}, storing")
        np.testing.assert_array_equal(held[k], expected, err_msg=f"sample {k}, held")
        np.testing.assert_array_equal(sliced[k], expected, err_msg=f"sample {k}, image_slice")
    del storing, reading
