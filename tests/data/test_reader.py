"""The native reader ``fn.readers.weighted_file``: epoch orders, shards, coins, checkpoints,
bad files, its place in the training pipelines, and the README's stand-alone example.

The reader's indices are compared index for index with dali_cmo.data.sampling (the reader
rebuilds NumPy's generator in C++); the class frequencies of Q are also checked on their own
with Pearson's chi-square at the ``1 - 1e-6`` quantile, against a neighbouring law it must
reject.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import chi2

from dali_cmo.data.datasets import LongTailDataset, read_split_file
from dali_cmo.data.integrity import BadImageError, BadImageWarning, quick_check
from dali_cmo.data.iterator import CMOIterator
from dali_cmo.streams.native import shard_positions
from dali_cmo.streams.schedule import PASTE_COIN_STREAM
from dali_cmo.data.sampling import PermutationSampler, WeightedSampler, sample_weights
from dali_cmo.streams.schedule import PasteSchedule
from pipelines.training import TrainConfig, TrainingPipeline

COUNTS = [12, 8, 5, 3, 2, 1]     # 31 files, long-tailed
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230),
           (230, 20, 230)]
P_FAIL = 1e-6


def _jpeg(colour, size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> LongTailDataset:
    """31 flat-colour JPEGs in 6 classes (12, 8, 5, 3, 2, 1), listed in a split file."""
    root = tmp_path_factory.mktemp("reader")
    lines = []
    for k, n in enumerate(COUNTS):
        for i in range(n):
            (root / f"c{k}_{i}.jpg").write_bytes(_jpeg(COLOURS[k], (12 + i, 10)))
            lines.append(f"c{k}_{i}.jpg {k}\n")
    (root / "train.txt").write_text("# the small set\n\n" + "".join(lines))
    return read_split_file(root / "train.txt")


def _pipeline(batch_size, *, checkpoint=None, num_threads=2, **reader):
    """A pipeline with the reader alone: outputs (encoded, label, index[, coin])."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=None, seed=123,
                  enable_checkpointing=True)
    def graph():
        return tuple(fn.readers.weighted_file(name="reader", **reader))

    pipe = graph(checkpoint=checkpoint) if checkpoint else graph()
    pipe.build()
    return pipe


def _run(pipe, batches):
    """``batches`` runs as NumPy: a list of (encoded list, labels, indices[, coins]) per batch."""
    out = []
    for _ in range(batches):
        outputs = pipe.run()
        encoded = [np.array(t) for t in outputs[0]]
        rest = [np.array(o.as_tensor()).reshape(-1) for o in outputs[1:]]
        out.append((encoded, *rest))
    return out


def _files(dataset):
    return dict(file_root=str(dataset.root), files=list(dataset.files),
                labels=dataset.labels.tolist())


# ------------------------------------------------------------------------------ epoch orders

def test_permutation_epochs_are_python_samplers_and_read_the_right_bytes(plugin, small):
    n = len(small)
    pipe = _pipeline(n, file_list=str(small.root / "train.txt"), seed=11)
    sampler = PermutationSampler(n, seed=11)
    for epoch, (encoded, labels, indices) in enumerate(_run(pipe, 3)):
        np.testing.assert_array_equal(indices, sampler.indices(epoch))
        np.testing.assert_array_equal(labels, small.labels[indices])
        for data, i in zip(encoded, indices):
            assert data.tobytes() == small.path(int(i)).read_bytes()


def test_weighted_draws_are_the_python_sampler_over_float32_weights(plugin, small):
    weights = sample_weights(small.labels, "class_power", 0.5).astype(np.float32)
    pipe = _pipeline(len(small), **_files(small), sampling="weighted", weights=weights.tolist(),
                     seed=5)
    sampler = WeightedSampler(weights, seed=5)  # stream "foreground": the default for Q
    for epoch, (_, labels, indices) in enumerate(_run(pipe, 4)):
        np.testing.assert_array_equal(indices, sampler.indices(epoch))
        np.testing.assert_array_equal(labels, small.labels[indices])


def test_streams_are_independent_and_named(plugin, small):
    n = len(small)
    a = _run(_pipeline(n, **_files(small), seed=1, stream="x"), 1)[0][2]
    b = _run(_pipeline(n, **_files(small), seed=1, stream="y"), 1)[0][2]
    np.testing.assert_array_equal(a, PermutationSampler(n, seed=1, stream="x").indices(0))
    np.testing.assert_array_equal(b, PermutationSampler(n, seed=1, stream="y").indices(0))
    assert not np.array_equal(a, b)


def _chi_square(observed, probabilities):
    expected = observed.sum() * probabilities
    assert expected.min() >= 5
    return float(((observed - expected) ** 2 / expected).sum())


def test_class_balanced_draw_frequencies(plugin, tmp_path):
    """Counted class histogram of 6,400 draws against equal class shares (weights 1/n_y)."""
    counts = np.array([600, 250, 100, 40, 8, 2])
    labels = np.repeat(np.arange(len(counts)), counts)
    path = tmp_path / "one.jpg"
    path.write_bytes(_jpeg((1, 2, 3)))
    weights = (1.0 / counts[labels]).astype(np.float32)
    pipe = _pipeline(1000, files=[str(path)] * len(labels), labels=labels.tolist(),
                     sampling="weighted", weights=weights.tolist(), seed=2,
                     coin_probability=0.0)  # no coin is heads: indices only, nothing is read
    runs = _run(pipe, 8)
    drawn = np.concatenate([indices for _, _, indices, _ in runs])
    assert all(len(e) == 0 for encoded, *_ in runs for e in encoded)
    histogram = np.bincount(labels[drawn], minlength=len(counts))
    limit = chi2.ppf(1 - P_FAIL, len(counts) - 1)
    assert _chi_square(histogram, np.full(len(counts), 1 / len(counts))) < limit
    # the same check rejects the data distribution (what P would give)
    assert _chi_square(histogram, counts / counts.sum()) > limit


# ------------------------------------------------------------------------------ shards

def test_shard_positions_hand_computed():
    # N = 10, S = 3: DALI's boundaries 0, 3, 6, 10; shards padded to ceil(10 / 3) = 4
    assert [shard_positions(10, 0, k, 3).tolist() for k in range(3)] == \
        [[0, 1, 2, 2], [3, 4, 5, 5], [6, 7, 8, 9]]
    # without stick_to_shard, shard k reads shard (k + epoch) % S
    assert shard_positions(10, 1, 2, 3, stick_to_shard=False).tolist() == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="shard_id must lie in 0..2, got 3"):
        shard_positions(10, 0, 3, 3)


@pytest.mark.parametrize("stick", [True, False])
def test_every_p_sample_once_per_epoch_per_shard_set(plugin, small, stick):
    n, shards, batch = len(small), 3, 4            # 31 samples: shards of 10, 10, 11
    length = -(-n // shards)                        # 11 per shard, 3 batches of 4 (one padded)
    sampler = PermutationSampler(n, seed=7)
    epochs = 3
    per_epoch = [[] for _ in range(epochs)]
    for k in range(shards):
        pipe = _pipeline(batch, **_files(small), seed=7, shard_id=k, num_shards=shards,
                         pad_last_batch=True, stick_to_shard=stick)
        assert pipe.reader_meta("reader")["epoch_size"] == n
        runs = _run(pipe, epochs * -(-length // batch))
        indices = np.concatenate([r[2] for r in runs]).reshape(epochs, -1)
        for e in range(epochs):
            positions = shard_positions(n, e, k, shards, stick_to_shard=stick)
            expected = sampler.indices(e)[positions]
            np.testing.assert_array_equal(indices[e, :length], expected)
            assert (indices[e, length:] == expected[-1]).all()   # batch padding repeats it
            per_epoch[e].append(np.unique(expected))
    for e in range(epochs):
        np.testing.assert_array_equal(np.sort(np.concatenate(per_epoch[e])), np.arange(n))


def test_without_padding_epochs_run_on_across_batches(plugin, small):
    """pad_last_batch=False: DALI's behaviour, batches straddle epochs, nothing is repeated."""
    n = len(small)
    runs = _run(_pipeline(8, **_files(small), seed=4), 8)            # 64 = 2 epochs + 2
    indices = np.concatenate([r[2] for r in runs])
    sampler = PermutationSampler(n, seed=4)
    expected = np.concatenate([sampler.indices(e) for e in range(3)])[:64]
    np.testing.assert_array_equal(indices, expected)


# ------------------------------------------------------------------------------ coins

@pytest.mark.parametrize("per_sample", [False, True])
def test_coins_are_the_paste_schedule_and_tails_are_not_read(plugin, small, per_sample):
    schedule = PasteSchedule(epochs=6, start=0, end=2, probability=0.5, per_sample=per_sample,
                             seed=9)                               # coins in epochs 1..3
    batch = 8
    pipe = _pipeline(batch, **_files(small), seed=9, shard_id=1, num_shards=2,
                     stick_to_shard=True, pad_last_batch=True, coin_probability=0.5,
                     coin_per_sample=per_sample, coin_epochs=[1, 4], coin_stream=PASTE_COIN_STREAM)
    batches_per_epoch = -(-16 // batch)                            # ceil(31 / 2) = 16 per shard
    heads = 0
    for b, (encoded, _, indices, coins) in enumerate(_run(pipe, 6 * batches_per_epoch)):
        epoch, iteration = divmod(b, batches_per_epoch)
        expected = schedule.flags(epoch, iteration, batch, shard_id=1)
        np.testing.assert_array_equal(coins.astype(bool), expected, err_msg=f"batch {b}")
        for data, coin, i in zip(encoded, coins, indices):
            assert (len(data) > 0) == bool(coin)
            if coin:
                assert data.tobytes() == small.path(int(i)).read_bytes()
        heads += int(coins.sum())
    assert heads > 0


def test_coin_arguments_are_checked(plugin, small):
    with pytest.raises(ValueError, match="one coin per batch needs pad_last_batch=True"):
        _pipeline(4, **_files(small), coin_probability=0.5)
    with pytest.raises(ValueError, match=r"coin_epochs must be \[first, stop\)"):
        _pipeline(4, **_files(small), coin_probability=0.5, coin_per_sample=True,
                  coin_epochs=[3, 1])


def test_skip_tails_false_reads_every_file(plugin, small):
    runs = _run(_pipeline(8, **_files(small), coin_probability=0.0, skip_tails=False), 2)
    assert all(len(data) > 0 for encoded, *_ in runs for data in encoded)


# ------------------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("sampling", ["permutation", "weighted"])
def test_checkpoint_resumes_the_same_stream(plugin, small, sampling):
    kwargs = dict(**_files(small), sampling=sampling, seed=13, shard_id=1, num_shards=2,
                  pad_last_batch=True, stick_to_shard=False, coin_probability=0.5,
                  coin_per_sample=True)
    pipe = _pipeline(5, **kwargs)
    _run(pipe, 7)                                   # into the third epoch (4 batches each)
    checkpoint = pipe.checkpoint()
    expected = _run(pipe, 6)
    restored = _run(_pipeline(5, checkpoint=checkpoint, **kwargs), 6)
    for (e_bytes, *e_rest), (r_bytes, *r_rest) in zip(expected, restored):
        for a, b in zip(e_rest, r_rest):
            np.testing.assert_array_equal(a, b)
        assert [x.tobytes() for x in e_bytes] == [x.tobytes() for x in r_bytes]


# ------------------------------------------------------------------------------ bad files

BLOBS = {
    "ok.jpg": _jpeg((9, 9, 9)),
    "empty.jpg": b"",
    "html.jpg": b"<!DOCTYPE html><html>404</html>",
    "truncated.jpg": _jpeg((5, 5, 5), (64, 64))[:300],
    "no_scan.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 40 + b"\xff\xd9",
    "eoi_first.jpg": b"\xff\xd8\xff\xd9" + b"\x00" * 10 + b"\xff\xda" + b"\x00" * 10,
    "tail_in.jpg": b"\xff\xd8\xff\xda" + b"\x00" * 5000 + b"\xff\xd9" + b"\x00" * 4094,
    "tail_out.jpg": b"\xff\xd8\xff\xda" + b"\x00" * 5000 + b"\xff\xd9" + b"\x00" * 4095,
    "gif.jpg": b"GIF89a" + b"\x00" * 30,
    "heif.jpg": b"\x00\x00\x00\x18ftypheic" + b"\x00" * 30,
    "png_cut.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 60,
    "png_ok.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 60 + b"IEND\xaeB`\x82",
    "bmp.bmp": b"BM" + b"\x00" * 30,
    "tiff.tif": b"MM\x00*" + b"\x00" * 30,
    "webp.webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "pnm_ok.pgm": b"P5\n4 4\n255\n" + b"\x00" * 16,
    "pnm_bad.pgm": b"P5x4 4",
    "jp2.jp2": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 8,
}


def test_quick_check_mirrors_python(plugin, tmp_path):
    """Every file read is checked in C++ with dali_cmo.data.integrity.quick_check's rules."""
    for name, data in BLOBS.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    names = [*BLOBS, "folder.jpg", "missing.jpg"]
    expected = {str(tmp_path / name): quick_check(BLOBS[name]) for name in BLOBS}
    expected[str(tmp_path / "folder.jpg")] = "unreadable (Is a directory)"
    expected[str(tmp_path / "missing.jpg")] = "missing (file not found)"
    log = tmp_path / "bad.tsv"
    _run(_pipeline(len(names), file_root=str(tmp_path), files=names, labels=[0] * len(names),
                   on_bad_image="skip", bad_files_log=str(log)), 1)
    logged = {}
    for line in log.read_text().splitlines():
        path, index, epoch, reason = line.split("\t")
        assert names[int(index)] == path.rsplit("/", 1)[1] and epoch == "0"
        logged[path] = reason
    assert logged == {path: reason for path, reason in expected.items() if reason is not None}
    assert len(logged) == 12  # the rest passes: ok, tail_in, png_ok, bmp, tiff, webp, pnm, jp2


@pytest.fixture(scope="module")
def with_bad(small, tmp_path_factory) -> LongTailDataset:
    """The small set plus a truncated JPEG in class 0 and a GIF in class 1."""
    root = small.root
    (root / "bad_truncated.jpg").write_bytes(_jpeg((1, 1, 1), (64, 64))[:200])
    (root / "bad_gif.jpg").write_bytes(b"GIF89a" + b"\x00" * 30)
    files = list(small.files) + ["bad_truncated.jpg", "bad_gif.jpg"]
    labels = small.labels.tolist() + [0, 1]
    return LongTailDataset(root, files, labels, small.class_names, "with bad files")


def _training(dataset, reader, on_bad_image, **kwargs):
    config = TrainConfig(style="cifar", image_size=8, variant="cmo", batch_size=6, epochs=4,
                         cmo_start=-1, cmo_end=0, probability=1.0, per_sample=True,
                         num_threads=2, prefetch=1, on_bad_image=on_bad_image, reader=reader,
                         seed=1, **kwargs)
    return TrainingPipeline(dataset, config)


def test_error_policy_names_the_file_like_the_python_reader(plugin, with_bad):
    messages = {}
    for reader in ("native", "python"):
        with pytest.raises(BadImageError) as caught:
            for _ in CMOIterator(_training(with_bad, reader, "error")).epoch_batches():
                pass
        messages[reader] = caught.value
    native, python = messages["native"], messages["python"]
    assert (native.path, native.reason, native.index, native.epoch) == \
        (python.path, python.reason, python.index, python.epoch)
    assert str(native) == str(BadImageError(native.path, native.reason, index=native.index,
                                            epoch=0, iteration=native.iteration))
    assert native.path == str(with_bad.path(native.index))
    assert native.path.endswith(("bad_truncated.jpg", "bad_gif.jpg"))


def test_skip_policy_replaces_within_the_class_and_reports_once(plugin, with_bad):
    pipeline = _training(with_bad, "native", "skip")
    iterator = CMOIterator(pipeline)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            for batch in iterator.epoch_batches():
                assert bool(batch.images.isfinite().all())
    bad = {str(with_bad.root / "bad_truncated.jpg"): "truncated JPEG (no end-of-image marker "
           "FFD9 in the last 4096 bytes)",
           str(with_bad.root / "bad_gif.jpg"): "GIF data (DALI cannot decode GIF)"}
    assert pipeline.streams.reader.bad_files == bad
    warned = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]
    assert sorted(warned) == sorted(
        f"skipping bad image {path} (dataset index {with_bad.files.index(path.rsplit('/', 1)[1])}"
        f", epoch 1): {reason}; a valid image of the same class is used in its place"
        for path, reason in bad.items())


def test_skip_reads_the_next_valid_file_of_the_class(plugin, with_bad, tmp_path):
    files = _files(with_bad)
    bad_index = with_bad.files.index("bad_gif.jpg")       # class 1, after c1_0 .. c1_7
    runs = _run(_pipeline(len(with_bad), **files, seed=3, on_bad_image="skip",
                          bad_files_log=str(tmp_path / "log.tsv")), 2)
    order = PermutationSampler(len(with_bad), seed=3).indices(0)
    position = int(np.flatnonzero(order == bad_index)[0])
    encoded, labels, indices = runs[0]
    first_of_class = with_bad.files.index("c1_0.jpg")     # wraps around to the class's first
    assert indices[position] == first_of_class and labels[position] == 1
    assert encoded[position].tobytes() == with_bad.path(first_of_class).read_bytes()


def _zero_frame(data: bytearray) -> None:
    frame = data.find(b"\xff\xc0")
    data[frame + 5:frame + 9] = bytes(4)                       # a 0 x 0 frame


def _garbled_tables(data: bytearray) -> None:
    tables = data.find(b"\xff\xc4")
    data[tables + 4:tables + 40] = b"\xff" * 36                # Huffman tables made invalid


@pytest.mark.parametrize("corrupt", [_zero_frame, _garbled_tables])
def test_decoder_failures_are_named(plugin, small, tmp_path, corrupt):
    """Files that pass the quick check but fail to decode. DALI names the file for some
    failures; for the others the batches around the failure are checked (the streams' twins)."""
    data = bytearray(small.path(0).read_bytes())
    corrupt(data)
    (tmp_path / "bad.jpg").write_bytes(bytes(data))
    assert quick_check(bytes(data)) is None
    dataset = LongTailDataset(small.root, [str(small.path(i)) for i in range(6)] +
                              [str(tmp_path / "bad.jpg")], [0] * 7, ["0"], "one bad")
    config = TrainConfig(style="cifar", image_size=8, variant="none", batch_size=7,
                         probability=0.0, num_threads=1, prefetch=1)
    with pytest.raises(BadImageError) as caught:
        list(CMOIterator(TrainingPipeline(dataset, config)).epoch_batches())
    error = caught.value
    assert (error.path, error.index, error.epoch, error.iteration) == \
        (str(tmp_path / "bad.jpg"), 6, 0, 0)
    assert error.reason.startswith("decode failed (") and "the decoder failed with" in error.reason
    assert isinstance(error.__cause__, RuntimeError)


def test_native_streams_follow_the_paste_schedule(plugin, small):
    """The foreground reader tosses the schedule's coins in its window and skips unpasted files
    unless the foreground decode is naive (what the coins do: the coin tests above)."""
    for decode, skip_tails in (("region", True), ("naive", False)):
        config = TrainConfig(style="cifar", image_size=8, batch_size=4, epochs=10, cmo_start=2,
                             cmo_end=3, probability=0.5, foreground_decode=decode, seed=4)
        streams = TrainingPipeline(small, config).streams
        arguments = streams.foreground.reader_arguments()
        assert {k: arguments[k] for k in ("coin_probability", "coin_per_sample", "coin_epochs",
                                          "coin_stream", "skip_tails", "seed", "stream")} == \
            dict(coin_probability=0.5, coin_per_sample=False, coin_epochs=[3, 7],
                 coin_stream="paste", skip_tails=skip_tails, seed=4, stream="foreground")
        assert "coin_probability" not in streams.background.reader_arguments()


def test_argument_errors_are_clear(plugin, small, tmp_path):
    cases = [
        (dict(sampling="bogus"), "sampling must be 'permutation' or 'weighted', got 'bogus'"),
        (dict(sampling="weighted", weights=[1.0, 2.0]), "2 weights for 31 files"),
        (dict(sampling="weighted", weights=[-1.0] * 31),
         "weights must be a 1-D array of finite values >= 0 with a positive sum"),
        (dict(weights=[1.0] * 31), "weights apply only to sampling='weighted'"),
        (dict(on_bad_image="ignore"), "on_bad_image must be one of error, skip; got 'ignore'"),
        (dict(random_shuffle=True), "random_shuffle does not apply"),
    ]
    for extra, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _pipeline(4, **_files(small), **extra)
    broken = tmp_path / "broken.txt"
    broken.write_text("a.jpg 0\n# fine\nb.jpg x\n")
    with pytest.raises(ValueError, match=f"{broken}:3: label 'x' is not an integer"):
        _pipeline(4, file_list=str(broken))


# ------------------------------------------------------------------------------ pipelines

def test_training_pipeline_native_reader_follows_its_twin(plugin, small):
    """Targets are the mirrored indices' labels; P and Q match the Python reader's exactly
    (same seed), and so does the whole first epoch, lambdas included. (The operators' random
    draws follow the batch slots, and the native reader's padded last batch uses more of them,
    so later epochs' lambdas part ways.)"""
    results = {}
    for reader in ("native", "python"):
        pipeline = _training(small, reader, "error")
        iterator = CMOIterator(pipeline)
        batches = [list(iterator.epoch_batches()) for _ in range(2)]
        results[reader] = pipeline, batches
    pipeline, batches = results["native"]
    streams = pipeline.streams
    for epoch, epoch_batches in enumerate(batches):
        assert [len(b) for b in epoch_batches] == [6] * 5 + [1]    # 31 = 5 x 6 + 1
        target_b = torch.cat([b.target_b for b in epoch_batches]).numpy()
        target_f = torch.cat([b.target_f for b in epoch_batches]).numpy()
        np.testing.assert_array_equal(target_b, small.labels[streams.background.epoch_indices(epoch)])
        np.testing.assert_array_equal(target_f, small.labels[streams.foreground.epoch_indices(epoch)])
        python_batches = results["python"][1][epoch]
        np.testing.assert_array_equal(
            target_b, torch.cat([b.target_b for b in python_batches]).numpy())
        np.testing.assert_array_equal(
            target_f, torch.cat([b.target_f for b in python_batches]).numpy())
    lams = {reader: torch.cat([b.lam for b in batches[0]]).numpy()
            for reader, (_, batches) in results.items()}
    assert (lams["native"] < 1).sum() > 20
    np.testing.assert_array_equal(lams["native"], lams["python"])


def test_a_stream_position_restores_with_its_own_reader_only(plugin, small):
    python = CMOIterator(_training(small, "python", "error"))
    next(python.epoch_batches())
    with pytest.raises(ValueError) as caught:
        CMOIterator(_training(small, "native", "error"), state=python.state_dict())
    assert str(caught.value) == ("this stream position was saved with reader='python', not "
                                 "'native'; resume with reader='python' (train.py --reader python)")


def test_training_pipeline_shards(plugin, small):
    """Two ranks: equal batch counts, every background sample at least once per epoch, the
    repeats being the shorter shard's last sample (DALI's padding)."""
    seen = []
    for rank in range(2):
        config = TrainConfig(style="cifar", image_size=8, variant="none", batch_size=4,
                             epochs=8, num_threads=1, prefetch=1, seed=2)
        pipeline = TrainingPipeline(small, config, shard_id=rank, num_shards=2)
        batches = list(CMOIterator(pipeline).epoch_batches())
        assert len(batches) == 4 and sum(len(b) for b in batches) == 16
        seen.append(pipeline.streams.background.epoch_indices(0))
    indices = np.concatenate(seen)
    assert sorted(set(indices.tolist())) == list(range(31))
    assert len(indices) == 32 and indices[15] == indices[14]    # shard 0 holds 15 + 1 repeat


def test_native_pipeline_resumes_exactly(plugin, small):
    pipeline = _training(small, "native", "error")
    iterator = CMOIterator(pipeline)
    first = list(iterator.epoch_batches())
    generator = iterator.epoch_batches()
    next(generator), next(generator)
    state = iterator.state_dict()
    rest = list(generator)
    resumed = CMOIterator(_training(small, "native", "error"), state=state)
    again = list(resumed.epoch_batches())
    assert len(first) == 6 and len(rest) == len(again) == 4
    for a, b in zip(rest, again):
        assert torch.equal(a.images, b.images) and torch.equal(a.lam, b.lam)
        assert torch.equal(a.target_b, b.target_b) and torch.equal(a.target_f, b.target_f)


def test_a_stream_position_resumes_with_its_own_reader_only(plugin, small):
    iterator = CMOIterator(_training(small, "python", "error"))
    next(iterator.epoch_batches())
    state = iterator.state_dict()
    assert state["reader"] == "python"
    old = {k: v for k, v in state.items() if k != "reader"}   # saved before the native reader
    for saved in (state, old):
        with pytest.raises(ValueError, match=r"this stream position was saved with "
                                             r"reader='python', not 'native'; resume with "
                                             r"reader='python' \(train.py --reader python\)"):
            CMOIterator(_training(small, "native", "error"), state=saved)


# ------------------------------------------------------------------------------ README example

def test_readme_class_balanced_reader(plugin, small):
    """The README's stand-alone example, verbatim between the markers."""
    split_file, image_root = str(small.root / "train.txt"), str(small.root)
    # --- README example begins
    import numpy as np
    from nvidia.dali import fn, pipeline_def, types

    import dali_cmo
    from dali_cmo.data.datasets import read_split_file

    dali_cmo.load_plugin()                       # registers fn.readers.weighted_file
    train = read_split_file(split_file, image_root)
    weights = 1.0 / train.class_counts[train.labels]   # every class equally often

    @pipeline_def(batch_size=64, num_threads=4, device_id=None, seed=0)
    def balanced():
        jpegs, labels, index = fn.readers.weighted_file(
            file_list=split_file, file_root=image_root, sampling="weighted",
            weights=weights.tolist(), name="reader")
        images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
        images = fn.resize(images, size=[8, 8])
        return images, labels

    pipe = balanced()
    pipe.build()
    images, labels = pipe.run()
    # --- README example ends
    drawn = np.array(labels.as_tensor()).reshape(-1)
    assert np.array(images.as_tensor()).shape == (64, 8, 8, 3)
    assert set(drawn.tolist()) <= set(range(6)) and len(set(drawn.tolist())) >= 4
    # the only image of class 5 is drawn about 64 / 6 times instead of 64 / 31 times
    assert (drawn == 5).sum() >= 4
