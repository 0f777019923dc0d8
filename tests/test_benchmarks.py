"""The benchmarks run end to end (tiny settings) and write complete JSON; their helpers are right.

The smoke runs use a handful of synthetic JPEGs, 64-pixel crops and batches of 8, so they
finish in well under a minute on a loaded 2-core machine; the figures they produce mean
nothing, only their presence and shape are checked.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def run_script(script: str, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def jpeg_dir(tmp_path_factory):
    """Ten small synthetic JPEGs of different sizes (one class each)."""
    from PIL import Image
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for i in range(10):
        h, w = int(rng.integers(72, 120)), int(rng.integers(72, 120))
        coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        pixels = coarse.repeat(8, 0).repeat(8, 1)[:h, :w]
        Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"img_{i:02d}.jpg", quality=90)
    return folder


def run_throughput_quick(jpeg_dir, *args: str) -> subprocess.CompletedProcess:
    """``throughput.py --quick`` on CPU over the fixture JPEGs, small batches and crops."""
    return run_script("throughput.py", "--quick", "--device", "cpu", "--images-dir",
                      str(jpeg_dir), "--n-max", "16", "--batch-size", "8", "--image-size", "64",
                      "--threads", "2", *args)


def test_throughput_quick_writes_every_pipeline(jpeg_dir, tmp_path, plugin):
    import throughput
    out = tmp_path / "throughput.json"
    run_throughput_quick(jpeg_dir, "--json", str(out))
    report = json.loads(out.read_text())
    assert report["settings"]["device"] == "cpu"
    assert report["settings"]["pipelines"] == list(throughput.DEFAULT_PIPELINES)
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["versions"]["dali"]
    for key in throughput.DEFAULT_PIPELINES:
        result = report["results"][key]
        assert result["images_per_s"]["median"] > 0, key
        assert result["cpu_ms_per_image"]["median"] > 0, key
        ratio = report["ratios"][key]
        assert math.isfinite(ratio) and ratio > 0, key
        assert ratio == pytest.approx(result["ratio_to_baseline"]["median"])
    assert report["ratios"]["baseline"] == pytest.approx(1.0)
    assert report["results"]["cmo_p1"]["paste_fraction"] == [1.0]
    assert report["results"]["baseline"]["paste_fraction"] == [0.0]
    assert set(report["targets"]) == {"cmo >= 0.80 x baseline", "cmo_p1 >= 0.65 x baseline",
                                      "cmo faster than torch_reference"}


def test_throughput_cache_row_reports_its_hit_rates(jpeg_dir, tmp_path, plugin):
    out = tmp_path / "cache.json"
    run_throughput_quick(jpeg_dir, "--pipelines", "cmo_cache", "--fg-cache-gb", "0.001",
                         "--json", str(out))
    report = json.loads(out.read_text())
    result = report["results"]["cmo_cache"]
    assert report["settings"]["fg_cache_gb"] == 0.001
    assert result["config"]["fg_cache_gb"] == 0.001
    stats, = result["fg_cache"]
    assert 0 < stats["bytes"] <= 0.001 * 2 ** 30 and stats["images"] == stats["admitted"] > 0
    assert stats["hits"] + stats["misses"] > 0 and 0 <= stats["hit_rate"] <= 1
    assert 0 < stats["expected_hit_rate"] <= 1
    assert 0 < result["fg_cache_predicted_hit_rate"] <= 1


def test_throughput_augmentation_rows_are_paired_with_their_baseline(jpeg_dir, tmp_path, plugin):
    out = tmp_path / "augment.json"
    run_throughput_quick(jpeg_dir, "--pipelines", "baseline", "--augment", "jitter",
                         "--json", str(out))
    report = json.loads(out.read_text())
    results = report["results"]
    assert report["settings"]["pipelines"] == ["baseline", "baseline+jitter", "cmo+jitter",
                                               "torch_reference+jitter"]
    assert results["cmo+jitter"]["config"]["augment"] == "jitter"
    base = results["baseline+jitter"]["images_per_s"]["median"]
    assert report["ratios"]["baseline+jitter"] == pytest.approx(1.0)
    for key in ("cmo+jitter", "torch_reference+jitter"):  # one repetition: the plain quotient
        assert report["ratios"][key] == pytest.approx(results[key]["images_per_s"]["median"]
                                                      / base)


def test_reader_quick_compares_both_readers(jpeg_dir, tmp_path, plugin):
    out = tmp_path / "reader.json"
    run_script("reader.py", "--quick", "--images-dir", str(jpeg_dir), "--n-max", "16",
               "--batch-size", "8", "--image-size", "64", "--json", str(out))
    report = json.loads(out.read_text())
    assert set(report["reader_alone"]) == {"native/1", "python/1", "native/2", "python/2"}
    for key, result in report["reader_alone"].items():
        assert result["images_per_s"]["median"] > 0 and result["mb_per_s"]["median"] > 0, key
        assert result["cpu_ms_per_image"]["median"] > 0, key
    assert report["reader_alone"]["native/2"]["speedup_over_python"]["median"] > 0
    assert set(report["pipelines"]) == {"baseline", "baseline_python", "cmo", "cmo_python"}
    assert report["pipelines"]["cmo"]["speedup_over_python"]["median"] > 0
    assert report["settings"]["distinct_file_bytes_cached"] == \
        sum(p.stat().st_size for p in jpeg_dir.glob("*.jpg"))


def test_paste_op_quick(tmp_path, plugin):
    import paste_op
    out = tmp_path / "paste_op.json"
    run_script("paste_op.py", "--quick", "--device", "cpu", "--batch-size", "8", "--size", "64",
               "--threads", "2", "--json", str(out))
    report = json.loads(out.read_text())
    for name in paste_op.PIPELINES:
        assert report["results"][name]["images_per_s"]["median"] > 0, name
    for name in ("paste", "paste_box"):
        assert report["ratios"][name]["time_ratio"]["median"] > 0
    assert "paste time <= 1.2 x cmn time" in report["target"]


# --------------------------------------------------------------------------- helpers

def test_folder_dataset_follows_the_long_tailed_profile(jpeg_dir):
    from dali_cmo.data.datasets import long_tailed_counts, repeated_file_dataset
    dataset = repeated_file_dataset(jpeg_dir, imbalance_ratio=10, n_max=20)
    assert dataset.num_classes == 10
    np.testing.assert_array_equal(dataset.class_counts, long_tailed_counts(10, 10, 20))
    assert dataset.files[0] == "img_00.jpg" and dataset.files[-1] == "img_09.jpg"
    assert all(dataset.path(i).is_file() for i in range(len(dataset)))
    tiny = repeated_file_dataset(jpeg_dir, imbalance_ratio=256, n_max=8)
    assert tiny.class_counts.min() == 1  # no empty class where the profile rounds to 0
    scaled = repeated_file_dataset(jpeg_dir, num_images=40)
    assert 10 <= len(scaled) <= 40


class ScriptedCentres:
    """Stands in for the generator: ``integers`` returns the scripted centre coordinates."""

    def __init__(self, *draws):
        self.draws = list(draws)

    def integers(self, high):
        value = self.draws.pop(0)
        assert 0 <= value < high
        return value


@pytest.mark.parametrize("lam, centre, box", [
    # H 50, W 64; (y1, x1, y2, x2) worked out by hand from cut = sqrt(1 - lam)
    (0.75, (10, 40), (28, 0, 50, 26)),     # cut 0.5: 32 x 25, clipped left and bottom
    (0.75, (32, 25), (13, 16, 37, 48)),    # the same box inside: 24 rows (25 // 2 = 12 each way)
    (0.0, (0, 0), (0, 0, 25, 32)),         # cut 1: the whole image from the corner, clipped
    (0.9, (63, 49), (42, 53, 50, 64)),     # cut 0.316: 20 x 15 at the far corner, clipped
    (1.0, (5, 5), (5, 5, 5, 5)),           # cut 0: an empty box
])
def test_reference_box_rule(lam, centre, box):
    from torch_reference import rand_bbox
    cx, cy = centre
    assert rand_bbox(50, 64, lam, ScriptedCentres(cx, cy)) == box


def test_minority_weights_give_every_class_the_same_mass():
    from torch_reference import minority_weights
    labels = np.array([0] * 8 + [1] * 2 + [2])
    weights = minority_weights(labels).numpy()
    np.testing.assert_allclose(np.bincount(labels, weights=weights), [1, 1, 1])


def test_balanced_seed_pastes_exactly_half_of_the_timed_batches():
    import throughput
    seed = throughput.balanced_seed(7, 0.5, first=4, count=20)
    schedule = throughput.paste_schedule(0.5, seed)
    assert sum(bool(schedule.flags(0, it, 1)[0]) for it in range(4, 24)) == 10
    assert throughput.balanced_seed(7, 1.0, first=4, count=20) == 7


def test_summarize_and_table():
    from common import format_table, summarize
    s = summarize([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)
    assert s["spread_pct"] == pytest.approx(100.0)
    table = format_table(["name", "value"], [["a", "1.0"], ["long name", "22.5"]]).splitlines()
    assert len(table) == 4 and len({len(line) for line in table}) == 1


def test_summaries_name_files_not_the_folders_of_the_machine_that_wrote_them(tmp_path):
    from common import write_json
    write_json(tmp_path / "summary.json", {
        "dataset": "/data/sets/imagenet-samples (long-tailed list): 9 images, n_k 5..1",
        "command": "reader.py --json /tmp/runs/bench/reader-cpu.json --images-dir ./imgs",
        "data": tmp_path / "cifar10-jpeg",
        "rates": ["310 img/s", "1/4 of batches", "<shared>/imagenet-samples"],
        "nested": {"folder": "ce-none-s0"}})
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "dataset": "imagenet-samples (long-tailed list): 9 images, n_k 5..1",
        "command": "reader.py --json reader-cpu.json --images-dir ./imgs",
        "data": "cifar10-jpeg",
        "rates": ["310 img/s", "1/4 of batches", "<shared>/imagenet-samples"],
        "nested": {"folder": "ce-none-s0"}}


def test_committed_results_name_no_absolute_path():
    from common import portable
    for summary in sorted((BENCHMARKS / "results").glob("*.json")):
        for number, line in enumerate(summary.read_text().splitlines(), 1):
            assert portable(line) == line, f"{summary.name}:{number}: {line.strip()}"


def test_paste_census_counts_every_background_once_and_pastes_about_half(tmp_path, plugin):
    from dali_cmo.data.datasets import read_image_folder
    from dali_cmo.data.demo import demo_dir
    out = tmp_path / "census.json"
    run_script("paste_census.py", "--dataset", "demo", "--epochs", "2", "--batch-size", "32",
               "--json", str(out))
    report = json.loads(out.read_text())
    counts = read_image_folder(demo_dir() / "train").class_counts
    # P: every sample once per epoch
    assert [c["backgrounds"] for c in report["classes"]] == (2 * counts).tolist()
    assert report["samples"] == 2 * counts.sum() and report["batches"] == 2 * 24  # 740 / 32
    # one coin per batch: pasted samples fill whole batches (a clipped-away box pastes nothing)
    pasted = report["pasted_samples"]
    assert sum(c["foregrounds"] for c in report["classes"]) == pasted
    assert pasted <= report["pasted_batches"] * 32
    assert 0.3 < report["pasted_batch_share"] < 0.7
    # Q (reference weights n_y^-1): every class 1/10 of the foregrounds
    assert [c["expected_foreground_share"] for c in report["classes"]] == pytest.approx([0.1] * 10)
    assert all(0 < report["lam_of_pasted"][k] < 1 for k in ("mean", "min", "max"))


def test_foreground_cache_model_counts_what_a_smallest_classes_first_cache_serves():
    import fg_cache_model as model
    counts = np.array([4, 2, 1])  # reference Q: each class a third of the draws
    gib = model.GIB
    rows = model.hit_rates(counts, gib / 4, [0, 0.25, 0.75, 1.0, 5.0], "reference")
    # capacity 0, 1, 3, 4, 7+ images: class 2's image (1/3), then class 1's two (1/6 each), then
    # class 0's (1/12 each)
    assert [r["cached_images"] for r in rows] == [0, 1, 3, 4, 7]
    assert [r["cached_classes"] for r in rows] == [0, 1, 2, 2, 3]
    assert [r["hit_rate"] for r in rows] == pytest.approx([0, 1 / 3, 2 / 3, 3 / 4, 1])
    assert model.budget_for(counts, gib / 4, 3 / 4, "reference") == pytest.approx(1.0)
    assert model.budget_for(counts, gib / 4, 0.5, "reference") == pytest.approx(0.5)
    terms = {"B": 3.0, "F": 0.5, "M": 1.0, "h": 0.2}
    # 3 / (3 + 0.5 + 0.5 * (0.25 * 1 + 0.75 * 0.2))
    assert model.predicted_ratio(terms, 0.75, 0.5) == pytest.approx(3 / 3.7)


def test_imagenet_lt_profile_has_the_published_totals_and_groups():
    import fg_cache_model as model
    counts = model.imagenet_lt_counts()
    assert (len(counts), counts.sum(), counts.max(), counts.min()) == (1000, 115_846, 1280, 5)
    assert ((counts > 100).sum(), ((counts >= 20) & (counts <= 100)).sum(),
            (counts < 20).sum()) == (385, 479, 136)
    assert (np.diff(counts) <= 0).all()  # sorted head to tail


def test_cache_model_writes_its_profile_as_a_split_file(tmp_path):
    import fg_cache_model as model
    for name in ("b.jpg", "a.JPEG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    model.write_split(tmp_path / "split.txt", tmp_path, np.array([2, 1]))
    assert (tmp_path / "split.txt").read_text() == "a.JPEG 0\na.JPEG 0\nb.jpg 1\n"
