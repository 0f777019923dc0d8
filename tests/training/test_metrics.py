"""Per-class counting, Many/Medium/Few reports on a made-up confusion, and the report pictures."""
import pytest
import torch

from dali_cmo.data.groups import IMAGENET_RULE
from PIL import Image

from dali_cmo.training.metrics import (ConfusionCounter, accuracy_report, best_evaluation,
                                      format_report_table)
from dali_cmo.training.reports import plot_per_class_accuracy, sample_captions, save_sample_grid

# Training counts: classes 0-1 Many (>100), 2-4 Medium (20..100), 5-6 Few (<20).
TRAIN_COUNTS = [500, 150, 100, 50, 20, 19, 5]
CORRECT = [9, 7, 5, 4, 3, 2, 0]
TOTAL = [10, 10, 10, 10, 10, 10, 0]  # class 6 has no test samples


def test_confusion_counter_counts_and_merges():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    a = ConfusionCounter(3)
    a.update(logits, torch.tensor([0, 1, 1, 2]))  # hits: class 0, class 1
    assert a.counts().tolist() == [[1, 1, 0], [1, 2, 1]]
    b = ConfusionCounter(3)
    b.update(torch.tensor([2, 2]), torch.tensor([2, 0]))  # predictions, not logits
    merged = ConfusionCounter.from_counts(a.counts() + b.counts())
    assert merged.counts().tolist() == [[1, 1, 1], [2, 2, 2]]
    assert merged.counts().dtype == torch.int64
    assert a.merge(b).counts().tolist() == merged.counts().tolist()
    with pytest.raises(ValueError):
        a.merge(ConfusionCounter(4))


def test_accuracy_report_groups_by_hand():
    r = accuracy_report(CORRECT, TOTAL, TRAIN_COUNTS)
    assert r["per_class"][:6] == pytest.approx([90, 70, 50, 40, 30, 20])
    assert r["per_class"][6] is None
    assert r["top1"] == pytest.approx(100 * 30 / 60)
    assert r["many"] == pytest.approx((90 + 70) / 2)
    assert r["medium"] == pytest.approx((50 + 40 + 30) / 3)  # 100, 50 and 20 images
    assert r["few"] == pytest.approx(20)  # class 6 has no test samples: left out
    assert r["groups"] == "many > 100, medium 20..100, few < 20"


def test_accuracy_report_few_inclusive_and_empty_groups():
    r = accuracy_report(CORRECT, TOTAL, TRAIN_COUNTS, IMAGENET_RULE)
    assert r["medium"] == pytest.approx((50 + 40) / 2)
    assert r["few"] == pytest.approx((30 + 20) / 2)  # 20 images counts as Few here
    assert r["groups"] == "many > 100, medium 21..100, few <= 20"
    head_only = accuracy_report([1, 2], [2, 2], [300, 200])
    assert head_only["many"] == pytest.approx(75)
    assert head_only["medium"] is None and head_only["few"] is None


def test_best_evaluation_is_the_first_epoch_with_the_highest_top1():
    """The reference reports `best_acc1` (is_best = acc1 > best_acc1), not the last epoch."""
    history = [{"epoch": 1, "top1": 30.0}, {"epoch": 2, "top1": 52.5}, {"epoch": 3, "top1": 41.0},
               {"epoch": 4, "top1": 52.5}, {"epoch": 5, "top1": 50.0}, {"epoch": 6}]
    assert best_evaluation(history)["epoch"] == 2
    assert best_evaluation([{"epoch": 1}]) is None  # nothing evaluated


def test_format_report_table():
    table = format_report_table({"cmo": accuracy_report(CORRECT, TOTAL, TRAIN_COUNTS),
                                 "baseline-ce": {"top1": 41.0, "many": None}})
    lines = table.splitlines()
    assert lines[0].split() == ["run", "overall", "many", "medium", "few"]
    assert lines[2].split() == ["cmo", "50.00", "80.00", "40.00", "20.00"]
    assert lines[3].split() == ["baseline-ce", "41.00", "-", "-", "-"]
    assert len({len(line) for line in lines}) == 1


def test_plot_per_class_accuracy_writes_png(tmp_path):
    report = accuracy_report(CORRECT, TOTAL, TRAIN_COUNTS)
    path = plot_per_class_accuracy(report["per_class"], TRAIN_COUNTS, tmp_path / "acc.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0


def test_sample_grid_layout_and_denormalisation(tmp_path):
    # 10 float images that are all zero after normalisation: de-normalised to the mean.
    images = torch.zeros(10, 3, 8, 6)
    path = save_sample_grid(images, tmp_path / "grid.png", nrow=4, mean=(0.2, 0.4, 0.6),
                            std=(0.5, 0.5, 0.5))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (4 * (6 + 2) + 2, 3 * (8 + 2) + 2)
        assert image.getpixel((2, 2)) == (51, 102, 153)  # round(255 * mean)
        assert image.getpixel((0, 0)) == (255, 255, 255)  # padding


def test_sample_grid_with_captions(tmp_path):
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    captions = sample_captions(torch.tensor([3, 1, 0]), torch.tensor([7, 2, 2]),
                               torch.tensor([0.62, 1.0, 0.25]))
    assert captions[0] == "bg 3 / fg 7 / λ=0.62"
    path = save_sample_grid(images, tmp_path / "cmo.png", captions=captions)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.height > 32 + 4  # room for the caption line
        assert image.width > 3 * (32 + 2)  # tiles enlarged to fit the captions
