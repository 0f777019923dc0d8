"""Dataset readers and long-tailed subsets (small files written per test)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dali_cmo.data.datasets import (DatasetError, LongTailDataset, _split_entries, load_dataset,
                                    long_tailed_counts, long_tailed_subset, read_image_folder,
                                    read_inat_json, read_split_file)
from dali_cmo.data.shared_data import SharedDataMissing, cifar10_dir


def touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write_split(tmp_path: Path, text: str, name: str = "split.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- split files

def test_split_file_reads_paths_labels_comments_and_spaces(tmp_path):
    touch(tmp_path, "train/a/1.jpg", "train/b/my photo.jpg", "train/a/2.jpg")
    split = write_split(tmp_path, "# header\n\ntrain/a/1.jpg 0\r\n  train/b/my photo.jpg\t1\n"
                                  "train/a/2.jpg   0\n")
    dataset = read_split_file(split)
    assert dataset.root == tmp_path
    assert dataset.files == ("train/a/1.jpg", "train/b/my photo.jpg", "train/a/2.jpg")
    assert dataset.labels.tolist() == [0, 1, 0]
    assert dataset.labels.dtype == np.int64
    assert dataset.class_names == ("0", "1")
    assert dataset.num_classes == 2 and len(dataset) == 3
    assert dataset.class_counts.tolist() == [2, 1]
    assert dataset.path(1) == tmp_path / "train/b/my photo.jpg"
    assert dataset.source == str(split)
    with pytest.raises(ValueError):
        dataset.labels[0] = 1


def test_split_file_class_names_and_root(tmp_path):
    touch(tmp_path / "images", "x.jpg", "y.jpg")
    split = write_split(tmp_path, "x.jpg 1\ny.jpg 0\n")
    dataset = read_split_file(split, tmp_path / "images", class_names=["cat", "dog"])
    assert dataset.class_names == ("cat", "dog")
    assert dataset.root == tmp_path / "images"


@pytest.mark.parametrize("text, line, pattern", [
    ("a.jpg 0\nb.jpg\n", 2, "missing label"),
    ("a.jpg 0\n# c\nb.jpg x1\n", 3, "label 'x1' is not an integer"),
    ("a.jpg 0\nb.jpg 1.5\n", 2, "label '1.5' is not an integer"),
    ("a.jpg -1\n", 1, "label -1 is negative"),
])
def test_split_file_malformed_lines_name_file_and_line(tmp_path, text, line, pattern):
    split = write_split(tmp_path, text)
    with pytest.raises(DatasetError, match=re.escape(f"{split}:{line}: ") + pattern):
        read_split_file(split, check_files=False)


def test_split_file_label_beyond_num_classes(tmp_path):
    split = write_split(tmp_path, "a.jpg 0\nb.jpg 1\nc.jpg 3\n")
    with pytest.raises(DatasetError, match=re.escape(f"{split}:3: label 3 >= num_classes (3)")):
        read_split_file(split, num_classes=3, check_files=False)


def test_split_file_empty_classes_are_named(tmp_path):
    split = write_split(tmp_path, "a.jpg 0\nb.jpg 2\nc.jpg 9\n")
    with pytest.raises(DatasetError, match=re.escape(
            f"{split}: 7 of 10 classes have no images: 1, 3, 4, 5, 6, ... (2 more)")):
        read_split_file(split, check_files=False)
    with pytest.raises(DatasetError, match="1 of 4 classes have no images: 3"):
        read_split_file(write_split(tmp_path, "a.jpg 0\nb.jpg 1\nc.jpg 2\n"), num_classes=4,
                        check_files=False)


def test_split_file_without_entries(tmp_path):
    split = write_split(tmp_path, "# nothing\n\n")
    with pytest.raises(DatasetError, match="no entries"):
        read_split_file(split, check_files=False)


def test_split_file_duplicates_warn(tmp_path):
    split = write_split(tmp_path, "a.jpg 0\nb.jpg 1\na.jpg 0\nb.jpg 1\nc.jpg 1\n")
    with pytest.warns(UserWarning, match=r"2 paths listed more than once: a\.jpg, b\.jpg"):
        dataset = read_split_file(split, check_files=False)
    assert len(dataset) == 5


def test_split_file_missing_root(tmp_path):
    split = write_split(tmp_path, "a.jpg 0\n")
    with pytest.raises(DatasetError, match="image root .*nowhere does not exist"):
        read_split_file(split, tmp_path / "nowhere", check_files=False)


def test_split_file_missing_files_summarised_with_line_numbers(tmp_path):
    touch(tmp_path, "d/ok0.jpg", "d/ok1.jpg")
    lines = ["d/ok0.jpg 0", "d/ok1.jpg 1"] + [f"d/gone{i}.jpg {i % 2}" for i in range(7)]
    split = write_split(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as error:
        read_split_file(split)
    message = str(error.value)
    assert message.startswith(f"{split}: 7 of 9 files missing under {tmp_path}: "
                              "line 3: d/gone0.jpg, line 4: d/gone1.jpg")
    assert "line 7: d/gone4.jpg, ... (2 more)" in message
    assert len(read_split_file(split, check_files=False)) == 9


def test_split_file_check_follows_symlinks(tmp_path):
    touch(tmp_path, "real.jpg")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "real.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "absent.jpg")
    split = write_split(tmp_path, "real.jpg 0\nlink.jpg 0\ndangling.jpg 0\n")
    with pytest.raises(DatasetError, match="1 of 3 files missing .*: line 3: dangling.jpg$"):
        read_split_file(split)


def _reference_split(text: str, source: str) -> tuple[list[str], list[int], list[int]]:
    """The split-file rule, line by line in plain Python: ``(paths, labels, line numbers)``,
    or the :class:`DatasetError` message of the first malformed line."""
    paths, labels, numbers = [], [], []
    for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) < 2:
            raise DatasetError(f"{source}:{number}: missing label "
                               f"(expected '<relative/path> <label>', got {line!r})")
        try:
            label = int(parts[1])
        except ValueError:
            raise DatasetError(f"{source}:{number}: label {parts[1]!r} is not an "
                               "integer") from None
        if label < 0:
            raise DatasetError(f"{source}:{number}: label {label} is negative")
        paths.append(parts[0])
        labels.append(label)
        numbers.append(number)
    return paths, labels, numbers


def _agree_with_reference(tmp_path: Path, text: str, name: str = "split.txt") -> None:
    split = tmp_path / name
    split.write_bytes(text.encode("utf-8"))
    try:
        expected = _reference_split(text, str(split))
    except DatasetError as error:
        with pytest.raises(DatasetError) as raised:
            _split_entries(split, str(split))
        assert str(raised.value) == str(error)
        return
    data, starts, ends, labels, numbers = _split_entries(split, str(split))
    assert [data[s:e].tobytes().decode() for s, e in zip(starts, ends)] == expected[0]
    assert labels.tolist() == expected[1] and numbers.tolist() == expected[2]


ODD_LINES = [
    "a/b.jpg 3", "a/b.jpg\t3", "a/b.jpg  3", "  a/b.jpg 3", "a/b.jpg 3  ", "a/b.jpg 3\r",
    "a b/c d.jpg 7", "a/12 3.jpg 4", "# a/b.jpg 3", "#", "", "   ", "\t", "a/é.jpg 2",
    "a/b.jpg\u00a0 5", "\u00a0a/b.jpg 5", "a/b\u2003.jpg 5", "a/b.jpg\x1c5", "a/b\x1cc.jpg 6",
    "a/b.jpg\x0b5", "a/b.jpg +1", "a/b.jpg 007", "a/b.jpg 999999999", "a/b.jpg 1000000000",
    "a/b.jpg 12345678901", "a/b.jpg 1_000", "a/b.jpg \u0663", "x 0", "x\t\t0",
    "a/b.jpg\t 9", "a/b.jpg 0", "c.jpg 10",
]
BAD_LINES = ["a/b.jpg", "a/b.jpg x1", "a/b.jpg 1.5", "a/b.jpg -1", "a/b.jpg 3x", " 5",
             "a/b.jpg -0", "a/b.jpg ٣x"]


def test_split_parser_agrees_with_the_line_rule(tmp_path):
    """Every line shape (the NumPy path and the line rule's) against a plain-Python reading
    of the rule: same paths, labels and line numbers, or the same message."""
    text = "\n".join(ODD_LINES)
    _agree_with_reference(tmp_path, text)
    _agree_with_reference(tmp_path, text + "\n")
    _agree_with_reference(tmp_path, "\ufeff" + text + "\r\n")
    for k, bad in enumerate(BAD_LINES):
        _agree_with_reference(tmp_path, "\n".join(ODD_LINES[:5] + [bad] + ODD_LINES),
                              f"bad{k}.txt")
    rng = np.random.default_rng(0)
    alphabet = list("ab/.# \t\r0123456789-+") + ["é", "\u00a0", "\x1c", "\x0c"]
    for k in range(200):  # random lines, mostly well formed
        lines = []
        for _ in range(int(rng.integers(1, 12))):
            path = "".join(rng.choice(alphabet, int(rng.integers(0, 8))))
            label = str(int(rng.integers(0, 10 ** int(rng.integers(1, 12)))))
            lines.append(path + str(rng.choice([" ", "\t", "  ", ""])) + label
                         if rng.random() < 0.9 else path)
        _agree_with_reference(tmp_path, "\n".join(lines) + str(rng.choice(["", "\n"])),
                              f"random{k}.txt")


# --------------------------------------------------------------------------- iNat JSON

def inat_document() -> dict:
    return {
        "images": [{"id": 10, "file_name": "train/p/a.jpg"},
                   {"id": 11, "file_name": "train/q/b.jpg"},
                   {"id": 12, "file_name": "train/p/c.jpg"},
                   {"id": 13, "file_name": "train/r/d.jpg"}],
        "annotations": [{"image_id": 11, "category_id": 2}, {"image_id": 10, "category_id": 7},
                        {"image_id": 12, "category_id": 7}, {"image_id": 13, "category_id": 40}],
        "categories": [{"id": 40, "name": "Zea"}, {"id": 7, "name": "Abies"}, {"id": 2}],
    }


def write_json(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "train2018.json"
    path.write_text(json.dumps(document, indent=1))
    return path


def test_inat_json_maps_sorted_category_ids_to_contiguous_labels(tmp_path):
    touch(tmp_path, "train/p/a.jpg", "train/q/b.jpg", "train/p/c.jpg", "train/r/d.jpg")
    dataset = read_inat_json(write_json(tmp_path, inat_document()))
    # sorted ids 2, 7, 40 -> labels 0, 1, 2; category 2 has no name.
    assert dataset.class_names == ("2", "Abies", "Zea")
    assert dataset.files == ("train/p/a.jpg", "train/q/b.jpg", "train/p/c.jpg", "train/r/d.jpg")
    assert dataset.labels.tolist() == [1, 0, 1, 2]
    assert dataset.root == tmp_path


def test_inat_json_without_categories_uses_annotation_ids(tmp_path):
    document = inat_document()
    del document["categories"]
    dataset = read_inat_json(write_json(tmp_path, document), check_files=False)
    assert dataset.class_names == ("2", "7", "40")
    assert dataset.labels.tolist() == [1, 0, 1, 2]


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d.pop("images"), r"lacks 'images'"),
    (lambda d: d.pop("annotations"), r"lacks 'annotations'"),
    (lambda d: d["images"][2].pop("file_name"), r"images\[2\] lacks 'file_name'"),
    (lambda d: d["annotations"][1].pop("category_id"), r"annotations\[1\] lacks 'category_id'"),
    (lambda d: d["categories"][0].pop("id"), r"categories\[0\] lacks 'id'"),
    (lambda d: d["annotations"].pop(0), r"1 images without annotation: 11 \(train/q/b.jpg\)"),
    (lambda d: d["annotations"].append({"image_id": 10, "category_id": 2}),
     r"annotations\[4\]: image_id 10 has more than one annotation"),
    (lambda d: d["annotations"][3].update(category_id=41),
     r"annotations\[3\]: category_id 41 is not in categories"),
    (lambda d: d["categories"].append({"id": 99}), r"1 of 4 classes have no images: 3"),
])
def test_inat_json_malformed(tmp_path, edit, pattern):
    document = inat_document()
    edit(document)
    path = write_json(tmp_path, document)
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*" + pattern):
        read_inat_json(path, check_files=False)


def test_inat_json_syntax_error_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n "images": [\n  {"id": 1,}\n ]\n}\n')
    with pytest.raises(DatasetError, match=re.escape(f"{path}:3: invalid JSON")):
        read_inat_json(path)


def test_inat_json_missing_files(tmp_path):
    touch(tmp_path, "train/p/a.jpg", "train/q/b.jpg", "train/p/c.jpg")
    with pytest.raises(DatasetError, match="1 of 4 files missing .*: train/r/d.jpg$"):
        read_inat_json(write_json(tmp_path, inat_document()))


# --------------------------------------------------------------------------- image folders

def test_image_folder_like_torchvision(tmp_path):
    touch(tmp_path, "dog/b.jpg", "dog/a.PNG", "dog/notes.txt", "cat/z.jpeg", "cat/sub/y.jpg",
          "ant/x.webp")
    dataset = read_image_folder(tmp_path)
    assert dataset.class_names == ("ant", "cat", "dog")
    assert dataset.files == ("ant/x.webp", "cat/z.jpeg", "cat/sub/y.jpg", "dog/a.PNG", "dog/b.jpg")
    assert dataset.labels.tolist() == [0, 1, 1, 2, 2]
    assert dataset.source == str(tmp_path)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no class folders"):
        read_image_folder(tmp_path)
    touch(tmp_path, "cat/a.jpg", "dog/readme.txt")
    with pytest.raises(DatasetError, match="class folder 'dog' holds no images"):
        read_image_folder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        read_image_folder(tmp_path / "absent")


def test_load_dataset_dispatches_on_kind(tmp_path):
    touch(tmp_path / "folder", "a/1.jpg", "b/2.jpg")
    touch(tmp_path, "train/p/a.jpg", "train/q/b.jpg", "train/p/c.jpg", "train/r/d.jpg")
    split = write_split(tmp_path, "folder/a/1.jpg 0\nfolder/b/2.jpg 1\n", "list.txt")
    assert load_dataset(tmp_path / "folder").class_names == ("a", "b")
    assert load_dataset(write_json(tmp_path, inat_document())).class_names[1] == "Abies"
    assert load_dataset(split).files == ("folder/a/1.jpg", "folder/b/2.jpg")
    with pytest.raises(DatasetError, match="found 2 classes, expected num_classes=3"):
        load_dataset(tmp_path / "folder", num_classes=3)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "absent.txt")
    with pytest.raises(DatasetError, match="root applies"):
        load_dataset(tmp_path / "folder", tmp_path)


# --------------------------------------------------------------------------- long-tailed subsets

def test_long_tailed_counts_formula():
    cifar10 = long_tailed_counts(10, 100, 5000)
    assert cifar10.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert cifar10.sum() == 12406
    cifar100 = long_tailed_counts(100, 100, 500)
    assert cifar100.sum() == 10847
    assert (cifar100[0], cifar100[-1]) == (500, 5)
    assert long_tailed_counts(100, 10, 500).sum() == 19573  # CIFAR-100-LT ratio 10
    assert long_tailed_counts(10, 1, 7).tolist() == [7] * 10
    assert long_tailed_counts(1, 50, 9).tolist() == [9]
    for ratio in (0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="imbalance_ratio"):
            long_tailed_counts(10, ratio, 100)


def synthetic(counts: list[int]) -> LongTailDataset:
    labels = np.repeat(np.arange(len(counts)), counts)
    order = np.random.default_rng(1).permutation(len(labels))  # interleave classes
    return LongTailDataset(Path("/data"), tuple(f"img{i}.jpg" for i in order), labels[order],
                           tuple(f"c{k}" for k in range(len(counts))), "synthetic")


def test_long_tailed_subset_counts_order_and_determinism():
    dataset = synthetic([80, 80, 70, 60])
    subset = long_tailed_subset(dataset, 10, seed=3, n_max=60)
    assert subset.class_counts.tolist() == long_tailed_counts(4, 10, 60).tolist() == [60, 27, 12, 6]
    assert subset.class_names == dataset.class_names
    # Every kept file keeps its label and the original order.
    position = {file: i for i, file in enumerate(dataset.files)}
    kept = [position[file] for file in subset.files]
    assert kept == sorted(kept)
    assert subset.labels.tolist() == dataset.labels[kept].tolist()
    assert "imbalance_ratio=10" in subset.source
    again = long_tailed_subset(dataset, 10, seed=3, n_max=60)
    other = long_tailed_subset(dataset, 10, seed=4, n_max=60)
    assert again.files == subset.files
    assert other.files != subset.files
    default = long_tailed_subset(dataset, 10)  # n_max = largest class count
    assert default.class_counts.tolist() == [80, 37, 17, 8]


def test_long_tailed_subset_errors():
    dataset = synthetic([100, 20, 100])
    with pytest.raises(DatasetError, match=r"1 classes have fewer images .*: 1 \(20 < 31\)"):
        long_tailed_subset(dataset, 10)
    with pytest.raises(ValueError, match="imbalance_ratio"):
        long_tailed_subset(dataset, 0.9)


def test_cifar10_long_tailed_ratio_100():
    try:
        root = cifar10_dir()
    except SharedDataMissing as missing:
        pytest.skip(f"real CIFAR-10 not available: {missing}")
    train = read_image_folder(root / "train", check_files=True)
    assert train.class_counts.tolist() == [5000] * 10
    assert train.class_names[0] == "airplane" and train.class_names[-1] == "truck"
    subset = long_tailed_subset(train, 100, seed=0)
    assert len(subset) == 12406
    assert subset.class_counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert all(subset.path(i).is_file() for i in range(0, len(subset), 997))
    groups = subset.class_groups()
    assert groups.many.tolist() == list(range(8)) and groups.medium.tolist() == [8, 9]
    assert len(groups.few) == 0


# --------------------------------------------------------------------------- stats CLI

def run_stats(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m dali_cmo stats ...`` through a local parser built with ``add_parser``."""
    import argparse

    from dali_cmo.cli import stats as cli_stats

    parser = argparse.ArgumentParser(prog="dali_cmo")
    cli_stats.add_parser(parser.add_subparsers(dest="command"))
    status = cli_stats.run(parser.parse_args(["stats", *argv]))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def made_up_split(tmp_path) -> Path:
    """Counts 150, 50, 10, 20: Many {0}, Medium {1, 3}, Few {2}; 230 images, ratio 15."""
    counts = [150, 50, 10, 20]
    lines = [f"img/{k}_{i}.jpg {k}" for k, n in enumerate(counts) for i in range(n)]
    return write_split(tmp_path, "\n".join(lines) + "\n")


def test_stats_text(made_up_split, capsys):
    status, out, err = run_stats([str(made_up_split), "--no-check-files"], capsys)
    assert (status, err) == (0, "")
    assert out == f"""\
source           {made_up_split}
classes          4
images           230
imbalance ratio  15.00 (largest / smallest class)
head class       0 (id 0): 150 images
tail class       2 (id 2): 10 images
groups           many > 100, medium 20..100, few < 20 images
Q                scheme=reference, r=1.0

group     classes    images   P share   Q share
many            1       150    0.6522    0.2500
medium          2        70    0.3043    0.5000
few             1        10    0.0435    0.2500
"""


def test_stats_json(made_up_split, capsys):
    status, out, _ = run_stats([str(made_up_split), "--no-check-files", "--json", "--scheme",
                                "class_power", "--r", "2", "--few", "21", "--many", "49"], capsys)
    assert status == 0
    stats = json.loads(out)
    assert (stats["num_classes"], stats["num_images"], stats["imbalance_ratio"]) == (4, 230, 15.0)
    assert stats["head"] == {"class_id": 0, "name": "0", "count": 150}
    assert stats["tail"] == {"class_id": 2, "name": "2", "count": 10}
    assert stats["q"] == {"scheme": "class_power", "r": 2.0}
    assert stats["thresholds"] == {"many": 49, "few": 21, "few_inclusive": False}
    # many > 49: {0, 1}; few < 21: {2, 3}; Q share ∝ n^-2.
    inverse_squares = np.array([150, 50, 10, 20], dtype=float) ** -2
    q = inverse_squares / inverse_squares.sum()
    groups = stats["groups"]
    assert (groups["many"]["classes"], groups["many"]["images"]) == (2, 200)
    assert (groups["medium"]["classes"], groups["medium"]["images"]) == (0, 0)
    assert (groups["few"]["classes"], groups["few"]["images"]) == (2, 30)
    assert groups["many"]["p_share"] == pytest.approx(200 / 230)
    assert groups["many"]["q_share"] == pytest.approx(q[0] + q[1])
    assert groups["few"]["q_share"] == pytest.approx(q[2] + q[3])


def test_stats_effective_number_paper_beta_and_subset(tmp_path, capsys):
    split = write_split(tmp_path, "".join(f"{k}/{i}.jpg {k}\n" for k in range(3) for i in range(8)))
    status, out, _ = run_stats([str(split), "--no-check-files", "--json", "--imbalance-ratio", "4",
                                "--scheme", "effective_number", "--beta", "paper"], capsys)
    assert status == 0
    stats = json.loads(out)
    assert stats["num_images"] == 8 + 4 + 2 and stats["imbalance_ratio"] == 4.0
    assert stats["q"] == {"scheme": "effective_number", "beta": 13 / 14}
    assert "imbalance_ratio=4.0" in stats["source"]


def test_stats_errors_go_to_stderr(made_up_split, tmp_path, capsys):
    status, out, err = run_stats([str(tmp_path / "absent.txt")], capsys)
    assert (status, out) == (1, "") and "absent.txt: not found" in err
    status, _, err = run_stats([str(made_up_split), "--no-check-files", "--beta", "0.9"], capsys)
    assert status == 1 and "beta applies only to scheme='effective_number'" in err
    status, _, err = run_stats([str(made_up_split)], capsys)
    assert status == 1 and "230 of 230 files missing" in err
