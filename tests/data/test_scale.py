"""Long lists: the reader's list by reference (``file_list`` + ``weights_file``) against the
argument form, the list files' checks, compact paths, and a stream position that does not grow
with the list."""
from __future__ import annotations

import io

import numpy as np
import pytest

from dali_cmo.data.datasets import LongTailDataset, PathList, labelled_lines, read_split_file
from dali_cmo.streams.native import reader_file_list, reader_weights_file
from dali_cmo.data.sampling import sample_weights
from tests.data.test_reader import _files, _pipeline, _run, small  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def plugin():
    import dali_cmo
    dali_cmo.load_plugin()


def test_by_reference_reader_draws_the_argument_forms_stream(plugin, small, tmp_path):
    """Same seed, same list: file order, labels, indices and weighted draws are identical."""
    weights = sample_weights(small.labels).astype(np.float32)
    by_reference = dict(file_root=str(small.root), file_list=str(reader_file_list(small, tmp_path)))
    for sampling, extra, by_file in (
            ("permutation", {}, {}),
            ("weighted", dict(weights=weights.tolist()),
             dict(weights_file=str(reader_weights_file(weights, tmp_path))))):
        old = _run(_pipeline(5, **_files(small), sampling=sampling, seed=7, **extra), 14)
        new = _run(_pipeline(5, **by_reference, sampling=sampling, seed=7, **by_file), 14)
        for a, b in zip(old, new):
            assert [x.tobytes() for x in a[0]] == [x.tobytes() for x in b[0]]
            for x, y in zip(a[1:], b[1:]):
                np.testing.assert_array_equal(x, y)


def test_list_files_are_written_once_by_content(small, tmp_path):
    first = reader_file_list(small, tmp_path)
    again = reader_file_list(small.subset(np.arange(len(small)), "all"), tmp_path)
    assert first == again and len(list(tmp_path.glob("list-*.txt"))) == 1
    lines = first.read_text().splitlines()
    assert lines[0] == f"{small.files[0]} {small.labels[0]}" and len(lines) == len(small)
    weights = np.linspace(1, 2, len(small))
    assert reader_weights_file(weights, tmp_path) == reader_weights_file(weights, tmp_path)
    np.testing.assert_array_equal(np.load(reader_weights_file(weights, tmp_path)),
                                  weights.astype(np.float32))


def _npy(path, array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_malformed_lists_and_weights_name_the_file(plugin, small, tmp_path):
    arguments = dict(file_root=str(small.root), file_list=str(reader_file_list(small, tmp_path)),
                     sampling="weighted")
    n = len(small)
    whole = _npy(tmp_path / "ok.npy", np.ones(n, np.float32))
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(open(whole, "rb").read()[:-6])
    cases = [
        (_npy(tmp_path / "short.npy", np.ones(n - 1, np.float32)),
         f"holds {n - 1} weights for {n} files"),
        (str(truncated), f"truncated: {n} weights take {4 * n} bytes, the file holds {4 * n - 6}"),
        (_npy(tmp_path / "ints.npy", np.ones(n, np.int64)), "little-endian float32 or float64"),
        (_npy(tmp_path / "square.npy", np.ones((n, 2), np.float32)), "must be one-dimensional"),
        (str(small.root / "c0_0.jpg"), "not a .npy file"),
        (str(tmp_path / "absent.npy"), "missing"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=f"weights_file {path}.*{message}"):
            _pipeline(4, **arguments, weights_file=path)
    for k, (text, line, message) in enumerate((
            ("a.jpg 0\nb.jpg\n", 2, "missing label"),
            ("a.jpg 0\n\nc.jpg -3\n", 3, "label -3 is negative"),
            ("a.jpg 0\nb.jpg 99999999999\n", 2, "label 99999999999 does not fit in int32"))):
        broken = tmp_path / f"broken{k}.txt"
        broken.write_text(text)
        with pytest.raises(ValueError, match=f"{broken}:{line}: {message}"):
            _pipeline(4, file_list=str(broken))
    _run(_pipeline(4, **arguments, weights_file=whole), 1)  # the well-formed file reads


def test_split_file_fast_and_slow_lines_agree(tmp_path):
    """Plain lines (parsed with NumPy) and odd ones (the line rule) give the same entries."""
    (tmp_path / "img").mkdir()
    text = ("img/a.jpg 0\n#c\n  img/b c.jpg\t1  \r\n\nimg/d.jpg  004\nimg/é.jpg 2\n"
            "img/e.jpg +1\nimg/f.jpg 3")
    split = tmp_path / "train.txt"
    split.write_text(text, encoding="utf-8")
    dataset = read_split_file(split, check_files=False)
    assert dataset.files == ("img/a.jpg", "img/b c.jpg", "img/d.jpg", "img/é.jpg", "img/e.jpg",
                             "img/f.jpg")
    assert dataset.labels.tolist() == [0, 1, 4, 2, 1, 3]
    assert dataset.lines.tolist() == [1, 3, 5, 6, 7, 8]
    assert isinstance(dataset.files, PathList)


def test_path_list_is_a_sequence_of_str():
    paths = PathList(["a/1.jpg", "b/ü.jpg", "a/1.jpg", "c"])
    assert list(paths) == ["a/1.jpg", "b/ü.jpg", "a/1.jpg", "c"] and paths[1] == "b/ü.jpg"
    assert paths[1:3] == ("b/ü.jpg", "a/1.jpg") and paths.take([3, 0]) == ["c", "a/1.jpg"]
    assert paths.duplicates() == ["a/1.jpg"] and PathList(["x", "y"]).duplicates() == []
    assert paths.digest() != PathList(["a/1.jp", "gb/ü.jpg", "a/1.jpg", "c"]).digest()


def _stream_position_bytes(dataset) -> int:
    import torch

    from dali_cmo.data.iterator import CMOIterator
    from pipelines.training import TrainConfig, TrainingPipeline
    config = TrainConfig(style="cifar", image_size=8, batch_size=4, epochs=10, cmo_start=-1,
                         probability=1.0)
    iterator = CMOIterator(TrainingPipeline(dataset, config))
    next(iterator.epoch_batches())
    buffer = io.BytesIO()
    torch.save(iterator.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def test_checkpoint_does_not_grow_with_the_list(plugin, small):
    """A stream position is counters and seeds: 31 and 31,000 samples save as many bytes."""
    many = np.arange(31_000) % len(small)
    longer = LongTailDataset(small.root, small.files.take(many), small.labels[many],
                             small.class_names, "longer")
    assert _stream_position_bytes(longer) == _stream_position_bytes(small)


def test_labelled_lines_and_last_position_match_the_string_rules():
    paths = PathList(["a/1.jpg", "b/c/ü x.jpg", "", "c", "/abs/d.jpg", "e/"])
    labels = np.array([0, 7, 12345, 10, 999_999_999_999, 3])
    for separator in " \t":
        assert b"".join(labelled_lines(paths, labels, separator)) == "".join(
            f"{p}{separator}{k}\n" for p, k in zip(paths, labels.tolist())).encode()
    assert paths.last_position("/").tolist() == [p.rfind("/") for p in paths]
    folders, names = paths.take([5, 1, 3]).split_after_last("/")
    assert list(folders) == ["e/", "b/c/", ""] and list(names) == ["", "ü x.jpg", "c"]


def test_data_fingerprint_keeps_the_saved_form(small):
    """Checkpoints saved before the vectorised digest still resume: same value."""
    import hashlib

    from dali_cmo.training.checkpoint import data_fingerprint
    old = hashlib.sha1("".join(f"{f}\t{k}\n" for f, k in zip(small.files, small.labels.tolist()))
                       .encode()).hexdigest()[:12]
    assert data_fingerprint(small) == (f"{len(small)} images in {small.num_classes} classes, "
                                       f"list {old}")


def test_missing_files_agree_with_exists(tmp_path):
    """One listing per folder gives what ``os.path.exists`` per path gives: links (dangling
    or not), unnormalised and absolute paths, files at the root, absent folders."""
    import os

    from dali_cmo.data.datasets import _missing_files
    for k in range(3):
        (tmp_path / f"d{k}").mkdir()
        for j in range(4):
            (tmp_path / f"d{k}" / f"{j}.jpg").write_bytes(b"x")
    (tmp_path / "top.jpg").write_bytes(b"x")
    (tmp_path / "d0" / "link.jpg").symlink_to(tmp_path / "d1" / "0.jpg")
    (tmp_path / "d0" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "d2" / "sub").symlink_to(tmp_path / "d1", target_is_directory=True)
    paths = ["d0/0.jpg", "d0/9.jpg", "d0/link.jpg", "d0/dangling.jpg", "top.jpg", "nope.jpg",
             "d1//1.jpg", "./d1/2.jpg", "d1/../d2/3.jpg", "d2/sub/3.jpg", "absent/0.jpg",
             str(tmp_path / "d2" / "0.jpg"), str(tmp_path / "d2" / "7.jpg"), "d1/", "d1/0.jpg"]
    expected = [i for i, p in enumerate(paths) if not os.path.exists(tmp_path / p)]
    assert expected == [1, 3, 5, 10, 12]
    assert _missing_files(tmp_path, PathList(paths)) == expected
    assert _missing_files(tmp_path, paths) == expected  # a plain sequence too


def test_missing_files_are_named_whichever_folder_holds_the_name(tmp_path):
    """A name present in one folder is still missing from another, and a prefix or extension
    of a present name is missing too (hashes compare whole paths)."""
    from dali_cmo.data.datasets import _missing_files
    for k in range(2):
        (tmp_path / f"d{k}").mkdir()
    for name in ("x.jpg", "y.jpg"):
        (tmp_path / "d0" / name).write_bytes(b"x")
    (tmp_path / "d1" / "x.jpg").write_bytes(b"x")
    paths = ["d0/x.jpg", "d1/y.jpg", "d0/x.jp", "d0/x.jpgg", "d1/x.jpg", "d0/y.jpg", "d0/",
             "d2/x.jpg", "d0//x.jpg"] * 3
    expected = [i for i, p in enumerate(paths) if p in ("d1/y.jpg", "d0/x.jp", "d0/x.jpgg",
                                                        "d2/x.jpg")]
    assert _missing_files(tmp_path, PathList(paths)) == expected
    assert _missing_files(tmp_path, PathList(paths).take(np.arange(len(paths))[::-1])) == \
        [len(paths) - 1 - i for i in reversed(expected)]


def test_missing_files_stat_only_what_the_listings_do_not_show(tmp_path, monkeypatch):
    """Paths a folder listing shows are not stat-ed one by one; the others are."""
    import os

    from dali_cmo.data.datasets import _missing_files
    for k in range(3):
        (tmp_path / f"d{k}").mkdir()
        for j in range(50):
            (tmp_path / f"d{k}" / f"{j}.jpg").write_bytes(b"x")
    paths = [f"d{k}/{j}.jpg" for j in range(50) for k in range(3)] + ["d1/gone.jpg", "d9/0.jpg"]
    asked = []
    exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: asked.append(path) or exists(path))
    assert _missing_files(tmp_path, PathList(paths)) == [150, 151]
    assert sorted(asked) == [os.path.join(os.fsencode(tmp_path), p) for p in
                             (b"d1/gone.jpg", b"d9/0.jpg")]


def test_path_hashes_depend_on_the_strings_alone():
    """Packed, gathered and re-encoded lists hash alike; a folder hash is its string's hash;
    strings that differ (a byte more, a NUL more, the same bytes elsewhere) hash apart."""
    from dali_cmo.data.datasets import _polynomial_hashes
    names = ["a/1.jpg", "b/c/ü x.jpg", "", "c", "/abs/d.jpg", "e/", "a/1.jpg\0", "a/1.jp",
             "1.jpg/a", "ab/1.jpg"] + [f"d{i % 7}/{i}.jpg" for i in range(600)]
    packed = PathList(names)
    paths, folders = packed.hashes()
    again = PathList(list(reversed(names))).hashes()
    np.testing.assert_array_equal(again[0][::-1], paths)
    gathered = packed.take(np.arange(len(names))[::-1])
    assert not gathered.is_packed() and packed.is_packed()
    np.testing.assert_array_equal(gathered.hashes()[0][::-1], paths)
    folder_strings = [n[:n.rfind("/") + 1] for n in names]
    np.testing.assert_array_equal(PathList(folder_strings).hashes()[0], folders)
    assert len(set(paths.tolist())) == len(set(names))
    data = np.frombuffer(b"xyabcabcab", np.uint8)  # h(x + y) = h(x) + base^len(x) * h(y)
    whole, head = _polynomial_hashes(data, np.array([2, 5]), np.array([8, 8]), np.array([5, 5]))
    tail = _polynomial_hashes(data, np.array([5]), np.array([8]))[0]
    assert head[0] == _polynomial_hashes(data, np.array([2]), np.array([5]))[0][0]
    assert int(whole[0]) == (int(head[0]) + pow(0x9E3779B97F4A7C15, 3, 1 << 64) * int(tail[0])) \
        % (1 << 64)
    assert whole[1] == tail[0] and head[1] == 0


def test_packed_path_lists_and_their_digest(tmp_path):
    """A split file's paths are copied out of its bytes; the digest keeps the value it had
    before (list file names in caches stay valid) and is computed once."""
    from dali_cmo.data.datasets import PathList as Paths
    names = ["a/1.jpg", "b/ü x.jpg", "", "c"] + [f"d{i % 7}/{i}.jpg" for i in range(70000)]
    assert PathList(names).digest() == "ba2abb49219d5ca88dae7b2a"
    lines = "".join(f"{name} {k}\n" for k, name in enumerate(names))
    data = np.frombuffer(lines.encode(), np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    ends = np.array([e - len(str(k)) - 1 for k, e in enumerate(ends)])
    starts = ends - [len(n.encode()) for n in names]
    packed = Paths.compacted(data, starts, ends)
    assert packed.is_packed() and len(packed._bytes) == sum(len(n.encode()) for n in names)
    assert list(packed) == names and packed.digest() == "ba2abb49219d5ca88dae7b2a"
    assert packed.take(np.arange(len(names))).digest() == "ba2abb49219d5ca88dae7b2a"
    packed._bytes = None  # a kept digest does not read the bytes again
    assert packed.digest() == "ba2abb49219d5ca88dae7b2a"
    with pytest.raises(ValueError, match="increasing, disjoint"):
        Paths.compacted(data, starts[::-1], ends[::-1])
    split = tmp_path / "train.txt"
    split.write_text("train/a/1.jpg 0\n  train/b/my photo.jpg\t1\n")
    dataset = read_split_file(split, check_files=False)
    assert dataset.files.is_packed() and dataset.files.digest() == "69f0f88babbac296adf53711"
    assert dataset.files._bytes.tobytes() == b"train/a/1.jpgtrain/b/my photo.jpg"


# ------------------------------------------------------------------------ the native list

def _native_labels(file_list, n):
    """The reader's label of every index of ``file_list`` (n entries), without reading a
    file (every coin tails)."""
    _, labels, indices, _ = _run(_pipeline(n, file_list=str(file_list), coin_probability=0.0,
                                           skip_tails=True), 1)[0]
    out = np.full(n, -1)
    out[indices] = labels
    return out


def test_native_list_reads_what_read_split_file_reads(plugin, small, tmp_path):
    """Odd lines (spaces, tabs, CRLF, comments, a last line without a line break): the
    reader's paths and labels are Python's, byte for byte."""
    names = [f"c{k}_{i}.jpg" for k, n in enumerate([12, 8, 5, 3, 2, 1]) for i in range(n)]
    shapes = ["{} {}", "  {}\t{}", "{}   {}  ", "{} +{}", "{} 00{}", "{} {}\r"]
    lines = [shapes[i % len(shapes)].format(name, small.labels[i])
             for i, name in enumerate(names)]
    text = "# odd lines\n\n" + "\n".join(lines[:10]) + "\n   \n#x 1\n" + "\n".join(lines[10:])
    listed = small.root / "odd.txt"
    listed.write_text(text)
    python = read_split_file(listed)
    n = len(python)
    np.testing.assert_array_equal(_native_labels(listed, n), python.labels)
    encoded, labels, indices = _run(_pipeline(n, file_list=str(listed), seed=3), 1)[0]
    for data, label, i in zip(encoded, labels, indices):
        assert data.tobytes() == python.path(int(i)).read_bytes()
        assert label == python.labels[i]


def test_native_list_lines_across_read_blocks(plugin, tmp_path):
    """The reader reads its list a block (1 MiB) at a time: lines that straddle blocks, a
    line longer than a block and a last line without a line break keep their labels, and a
    malformed line is named by its number wherever it falls."""
    long_name = "d/" + "x" * (1_300_000) + ".jpg"
    lines = [f"d{i % 7}/{'y' * (i % 61)}{i}.jpg {i % 997}" for i in range(40_000)]
    lines.insert(23_456, f"{long_name} 5")
    labels = [int(line.rsplit(" ", 1)[1]) for line in lines]
    listed = tmp_path / "long.txt"
    listed.write_text("\n".join(lines))  # no line break at the end
    np.testing.assert_array_equal(_native_labels(listed, len(lines)), labels)
    offsets = np.cumsum([len(line) + 1 for line in lines])
    for at in (int(np.searchsorted(offsets, 1 << 20)), 23_456 + 1, len(lines) - 1):
        broken = tmp_path / f"broken{at}.txt"
        bad = lines[:at] + [lines[at].rsplit(" ", 1)[0] + " -3"] + lines[at + 1:]
        broken.write_text("\n".join(bad) + ("" if at == len(lines) - 1 else "\n"))
        with pytest.raises(ValueError, match=f"{broken}:{at + 1}: label -3 is negative"):
            _pipeline(4, file_list=str(broken))
    listed.write_text("\n".join(lines) + "\n")  # with a line break at the end
    np.testing.assert_array_equal(_native_labels(listed, len(lines)), labels)
