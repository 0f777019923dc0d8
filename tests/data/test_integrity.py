"""Bad data: the quick check, full checks, error/skip policies through real pipelines, `check`,
decoder warnings traced to files. The images are built here (no real data needed)."""
from __future__ import annotations

import io
import json
import pickle
import warnings

import numpy as np
import pytest
from PIL import Image

from dali_cmo.__main__ import main as cli_main
from dali_cmo.data.datasets import load_dataset
from dali_cmo.data.integrity import (BadImageError, BadImageWarning, command_line_advice,
                                     decoder_messages, full_check, quick_check, quick_check_file,
                                     quick_check_files, sniff_format)
from dali_cmo.data.iterator import CMOIterator, EvalIterator
from image_fixtures import garbled_scan, garbled_tables, jpeg_bytes, picture

CLASSES = ("airplane", "cat", "dog", "ship")
PER_CLASS = 7
# planted files the quick check must catch (path -> reason fragment)
BAD = {"cat/bad_truncated.jpg": "truncated JPEG", "dog/bad_empty.jpg": "empty file",
       "ship/bad_gif.jpg": "GIF data"}
# odd files DALI must decode fine (to 3 channels)
ODD = ("airplane/png_as.jpg", "airplane/cmyk.jpg", "cat/gray.jpg", "dog/tiny.jpg",
       "ship/huge.jpg")
CORRUPT = "dog/corrupt_middle.jpg"   # passes the quick check, fails the decoder


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    clean = []
    for k, name in enumerate(CLASSES):
        (root / name).mkdir()
        for j in range(PER_CLASS):
            (root / name / f"{j:04d}.jpg").write_bytes(jpeg_bytes(picture(100 * k + j)))
            clean.append((f"{name}/{j:04d}.jpg", k))
    sample = picture(1000)
    good = jpeg_bytes(picture(1001))
    (root / "cat/bad_truncated.jpg").write_bytes(good[:len(good) // 2])
    (root / "dog/bad_empty.jpg").write_bytes(b"")
    sample.save(root / "ship/bad_gif.jpg", format="GIF")
    sample.save(root / "airplane/png_as.jpg", format="PNG")
    (root / "airplane/cmyk.jpg").write_bytes(_jpeg(sample.convert("CMYK")))
    (root / "cat/gray.jpg").write_bytes(_jpeg(sample.convert("L")))
    (root / "dog/tiny.jpg").write_bytes(_jpeg(sample.resize((20, 20))))
    (root / "ship/huge.jpg").write_bytes(_jpeg(sample.resize((4000, 3000)), quality=50))
    (root / CORRUPT).write_bytes(garbled_tables(jpeg_bytes(picture(1002))))
    label = {name: k for k, name in enumerate(CLASSES)}
    odd = [(p, label[p.split("/")[0]]) for p in ODD]
    bad = [(p, label[p.split("/")[0]]) for p in BAD]

    def split(name, entries):
        (root / name).write_text("".join(f"{p} {k}\n" for p, k in entries))

    split("clean.txt", clean + odd)
    split("bad.txt", clean + odd + bad)
    split("corrupt.txt", clean + [(CORRUPT, label["dog"])])
    return root


# ------------------------------------------------------------------------------ unit cases

def test_sniff_format():
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_format(np.frombuffer(b"\x89PNG\r\n\x1a\n....", np.uint8)) == "png"
    assert sniff_format(b"GIF89a....") == "gif"
    assert sniff_format(b"BM......") == "bmp"
    assert sniff_format(b"II*\x00....") == "tiff"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert sniff_format(b"\x00\x00\x00\x0cjP  \r\n\x87\n") == "jp2"
    assert sniff_format(b"<html>") is None
    assert sniff_format(b"") is None


def test_quick_check_cases():
    image = Image.new("RGB", (16, 16), (10, 200, 30))
    jpeg = _jpeg(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    png = buffer.getvalue()
    assert quick_check(jpeg) is None
    assert quick_check(np.frombuffer(jpeg, np.uint8)) is None
    assert quick_check(jpeg + b"\x00" * 100) is None            # padding after EOI is fine
    assert quick_check(png) is None
    assert "empty" in quick_check(b"")
    assert "truncated JPEG" in quick_check(jpeg[:len(jpeg) // 2])
    assert "truncated JPEG" in quick_check(jpeg[:-2])
    assert "truncated PNG" in quick_check(png[:-20])
    buffer = io.BytesIO()
    image.save(buffer, format="GIF")
    assert quick_check(buffer.getvalue()) == "GIF data (DALI cannot decode GIF)"
    assert "unknown image format" in quick_check(b"<!DOCTYPE html><html>404</html>")


def test_full_check_reports(fixture_root):
    cmyk = full_check(fixture_root / "airplane/cmyk.jpg")
    assert cmyk.ok and cmyk.decodable and cmyk.mode == "CMYK" and cmyk.format == "jpeg"
    gray = full_check(fixture_root / "cat/gray.jpg")
    assert gray.ok and gray.mode == "L" and (gray.width, gray.height) == (32, 32)
    png = full_check(fixture_root / "airplane/png_as.jpg")
    assert png.ok and png.format == "png"
    huge = full_check(fixture_root / "ship/huge.jpg")
    assert huge.ok and (huge.width, huge.height) == (4000, 3000)
    corrupt = full_check(fixture_root / CORRUPT)
    assert quick_check((fixture_root / CORRUPT).read_bytes()) is None
    assert not corrupt.ok and corrupt.decodable is False and "decode failed" in corrupt.problem
    missing = full_check(fixture_root / "nope.jpg")
    assert not missing.exists and "missing" in missing.problem
    for path, reason in BAD.items():
        assert reason in full_check(fixture_root / path).problem


def test_bad_image_error_message():
    error = BadImageError("/data/x.jpg", "truncated JPEG", index=7, epoch=3, iteration=2)
    assert str(error) == ("bad image /data/x.jpg (dataset index 7, epoch 4, batch 3): truncated "
                          "JPEG; remove or replace the file, scan the whole dataset with "
                          "`python -m dali_cmo check <dataset> --decode`, or train with "
                          "on_bad_image='skip'")
    assert error.describe("line 9 of a.txt") == ("bad image /data/x.jpg (line 9 of a.txt, "
                                                 "epoch 4, batch 3): truncated JPEG")
    assert isinstance(error, RuntimeError)


def test_command_line_advice_names_the_flag_that_helps():
    error = BadImageError("/data/x.jpg", "truncated JPEG", index=7)
    assert command_line_advice(error, on_bad_image="error", dataset="a.txt") == (
        "remove or replace the file, or pass --on-bad-image skip to train without it; "
        "`python -m dali_cmo check a.txt --decode` lists every such file")
    # skip mode is on already: the advice must not suggest it again
    decoded = BadImageError("/data/x.jpg", "decode failed", index=7, decoded=True)
    assert pickle.loads(pickle.dumps(decoded)).decoded
    advice = command_line_advice(decoded, on_bad_image="skip", dataset="a.txt")
    assert advice.startswith("--on-bad-image skip replaces only the files the read check "
                             "catches") and "pass --on-bad-image skip" not in advice
    # refused by the reader's check under skip: no valid image of its class was left
    assert command_line_advice(error, on_bad_image="skip", dataset="a.txt") == (
        "remove or replace the bad files of its class; `python -m dali_cmo check a.txt "
        "--decode` lists every such file")


def test_quick_check_of_a_file_reads_its_ends_only(tmp_path):
    """The file check agrees with the in-memory check on every case, large files included."""
    big = jpeg_bytes(picture(5, (800, 600)))
    assert len(big) > 3 * 4096
    cases = {"ok.jpg": big, "cut.jpg": big[:-100], "small_cut.jpg": big[:3000],
             "empty.jpg": b"", "html.jpg": b"<html>404</html>", "png.png": _png()}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert quick_check_file(tmp_path / name) == quick_check(data), name
    assert quick_check_file(tmp_path / "nope.jpg") == "missing (file not found)"
    paths = [tmp_path / n for n in ("ok.jpg", "cut.jpg", "nope.jpg", "png.png")]
    assert quick_check_files(paths, workers=2) == {1: quick_check(cases["cut.jpg"]),
                                                   2: "missing (file not found)"}
    assert quick_check_files(paths, stop=lambda: True) == {}


def _png() -> bytes:
    buffer = io.BytesIO()
    picture(6).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decoder_warnings_are_traced_to_their_file(tmp_path):
    """libjpeg warns without naming the file; decoding files one by one names it."""
    good, warns = tmp_path / "good.jpg", tmp_path / "warns.jpg"
    good.write_bytes(jpeg_bytes(picture(7)))
    warns.write_bytes(garbled_scan(jpeg_bytes(picture(8))))
    assert quick_check(warns.read_bytes()) is None
    messages = decoder_messages([good, warns])
    assert list(messages) == [str(warns)]
    assert messages[str(warns)][0] == "Corrupt JPEG data: premature end of data segment"


# ------------------------------------------------------------------------------ pipelines

def _training(fixture_root, split, on_bad_image="error", batch_size=4):
    from pipelines.training import TrainConfig, TrainingPipeline
    dataset = load_dataset(fixture_root / split)
    config = TrainConfig(style="cifar", image_size=32, variant="none", batch_size=batch_size,
                         epochs=2, probability=0.0, num_threads=1, prefetch=1,
                         on_bad_image=on_bad_image)
    return dataset, TrainingPipeline(dataset, config)


def test_error_mode_names_the_file(plugin, fixture_root):
    dataset, pipeline = _training(fixture_root, "bad.txt")
    with pytest.raises(BadImageError) as caught:
        for _ in range(2):
            for _ in CMOIterator(pipeline).epoch_batches():
                pass
    error = caught.value
    assert any(error.path.endswith(p) for p in BAD), str(error)
    assert error.path in str(error) and f"dataset index {error.index}" in str(error)
    assert "epoch 1, batch " in str(error)
    assert str(dataset.path(error.index)) == error.path


def test_skip_mode_completes_epochs(plugin, fixture_root):
    dataset, pipeline = _training(fixture_root, "bad.txt", on_bad_image="skip")
    iterator = CMOIterator(pipeline)
    seen = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            for batch in iterator.epoch_batches():
                assert tuple(batch.images.shape[1:]) == (3, 32, 32)
                assert batch.images.dtype.is_floating_point
                assert bool(batch.images.isfinite().all())
                seen += len(batch)
    assert seen == 2 * len(dataset)
    bad_paths = {str(fixture_root / p) for p in BAD}
    assert set(pipeline.streams.reader.bad_files) == bad_paths
    warned = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]
    assert len(warned) == len(BAD)                   # each bad file reported exactly once
    for path in bad_paths:
        assert sum(path in message for message in warned) == 1


def test_skip_replaces_with_same_class(fixture_root):
    from dali_cmo.streams.python import FileReader
    dataset = load_dataset(fixture_root / "bad.txt")
    reader = FileReader(2, on_bad_image="skip")
    bad_index = [str(f) for f in dataset.files].index("ship/bad_gif.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        data, used = reader.read_batch(dataset, [0, bad_index], np.ones(2, bool), epoch=0)
        again, used_again = reader.read_batch(dataset, [bad_index], np.ones(1, bool), epoch=1)
    assert used[0] == 0 and used[1] != bad_index
    assert dataset.labels[used[1]] == dataset.labels[bad_index]
    assert used_again[0] == used[1]                   # deterministic
    assert quick_check(data[1]) is None and len(reader.bad_files) == 1


def test_odd_images_decode_in_error_mode(plugin, fixture_root):
    """PNG named .jpg, CMYK, grayscale, 20x20 and 4000x3000 all train without complaint."""
    dataset, pipeline = _training(fixture_root, "clean.txt")
    seen = 0
    for batch in CMOIterator(pipeline).epoch_batches():
        assert tuple(batch.images.shape[1:]) == (3, 32, 32)
        assert bool(batch.images.isfinite().all())
        seen += len(batch)
    assert seen == len(dataset) and not pipeline.streams.reader.bad_files


def test_decoder_failure_is_traced_to_the_file(plugin, fixture_root):
    dataset, pipeline = _training(fixture_root, "corrupt.txt")
    with pytest.raises(BadImageError) as caught:
        for _ in CMOIterator(pipeline).epoch_batches():
            pass
    assert caught.value.path == str(fixture_root / CORRUPT)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "epoch 1, batch " in str(caught.value)


def test_eval_decoder_failure_is_traced_to_the_file(plugin, fixture_root):
    from pipelines.evaluation import EvalPipeline
    dataset = load_dataset(fixture_root / "corrupt.txt")
    pipeline = EvalPipeline(dataset, style="cifar", batch_size=4, image_size=32, num_threads=1)
    with pytest.raises(BadImageError) as caught:
        for _ in EvalIterator(pipeline):
            pass
    assert caught.value.path == str(fixture_root / CORRUPT)


# ------------------------------------------------------------------------------ the CLI

def test_check_cli_finds_the_planted_files(fixture_root, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert cli_main(["check", str(fixture_root / "bad.txt"), "--report", str(report),
                     "--workers", "2"]) == 1
    found = {entry["path"] for entry in json.loads(report.read_text())["summary"]["bad_files"]}
    assert found == {str(fixture_root / p) for p in BAD}
    out = capsys.readouterr().out
    for path in BAD:
        assert path in out


def test_check_cli_decode(fixture_root, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert cli_main(["check", str(fixture_root / "corrupt.txt"), "--decode",
                     "--report", str(report)]) == 1
    summary = json.loads(report.read_text())["summary"]
    assert [entry["path"] for entry in summary["bad_files"]] == [str(fixture_root / CORRUPT)]
    # the quick check alone cannot see it
    assert cli_main(["check", str(fixture_root / "corrupt.txt")]) == 0


def test_check_cli_clean(fixture_root, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert cli_main(["check", str(fixture_root / "clean.txt"), "--decode",
                     "--report", str(report)]) == 0
    summary = json.loads(report.read_text())["summary"]
    assert summary["bad"] == 0 and summary["num_images"] == len(CLASSES) * PER_CLASS + len(ODD)
    assert summary["smaller_than_min_size"]["count"] == summary["num_images"] - 1  # all but huge
    assert summary["width"]["max"] == 4000 and summary["empty_classes"] == []
    assert summary["modes"].get("CMYK") == 1 and summary["modes"].get("L") == 1


def test_check_cli_dataset_error(tmp_path, capsys):
    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg\n")
    assert cli_main(["check", str(tmp_path / "list.txt")]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / 'list.txt'}:2: missing label "
                                       f"(expected '<relative/path> <label>', got 'b.jpg')\n")
