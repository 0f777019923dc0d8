"""Learning-rate schedule at hand-picked epochs, the presets against the reference scripts,
the global batch, and fine-tuning from a state-dict file."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dali_cmo.constants import INAT_MEAN, INAT_STD
from dali_cmo.data.groups import GROUP_RULES, IMAGENET_RULE
from dali_cmo.training.models import build_model, load_pretrained
from dali_cmo.training.recipes import PRESETS, LRSchedule, drw_switch_epoch, rank_batch_size


def schedule_from_preset(preset: dict) -> LRSchedule:
    """The schedule a preset describes (train.py builds it from the flags the preset fills)."""
    return LRSchedule(preset["lr"], preset["epochs"], warmup_epochs=preset["warmup_epochs"],
                      decay=preset["decay"], decay_epochs=preset["decay_epochs"],
                      decay_factor=preset["decay_factor"])


def test_step_schedule_cifar_recipe():
    s = LRSchedule(0.1, 200, warmup_epochs=5, decay="step", decay_epochs=(160, 180),
                   decay_factor=0.01)
    assert s.lr_at(0) == pytest.approx(0.02)
    assert s.lr_at(2.5) == pytest.approx(0.07)  # 0.1 * 3.5 / 5, per-iteration warm-up
    assert s.lr_at(4) == pytest.approx(0.1)
    assert s.lr_at(4.5) == pytest.approx(0.1)
    assert s.lr_at(159.99) == pytest.approx(0.1)
    assert s.lr_at(160) == pytest.approx(1e-3)
    assert s.lr_at(179.5) == pytest.approx(1e-3)
    assert s.lr_at(180) == pytest.approx(1e-5)
    assert s.lr_at(199.9) == pytest.approx(1e-5)


def reference_step_lr(epoch: int, first: int, second: int) -> float:
    """The reference scripts' ``adjust_learning_rate`` (lr 0.1, warm-up 5): x0.1 after epoch
    ``first``, x0.01 after ``second`` (epochs counted from 1 there)."""
    epoch = epoch + 1
    if epoch <= 5:
        return 0.1 * epoch / 5
    if epoch > second:
        return 0.1 * 0.01
    if epoch > first:
        return 0.1 * 0.1
    return 0.1


def test_step_schedule_matches_reference_at_integer_epochs():
    def reference(epoch):  # adjust_learning_rate of the reference imagenet_train.py
        return reference_step_lr(epoch, first=60, second=80)

    s = schedule_from_preset(PRESETS["imagenet-lt"])
    for epoch in range(100):
        assert s.lr_at(epoch) == pytest.approx(reference(epoch)), epoch


def test_cosine_schedule():
    s = LRSchedule(0.1, 100, warmup_epochs=0, decay="cosine")
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(50) == pytest.approx(0.05)
    assert s.lr_at(25) == pytest.approx(0.05 * (1 + math.sqrt(0.5)))
    assert s.lr_at(100) == pytest.approx(0.0, abs=1e-12)
    w = LRSchedule(0.1, 110, warmup_epochs=10, decay="cosine")
    assert w.lr_at(0) == pytest.approx(0.01)
    assert w.lr_at(9) == pytest.approx(0.1)
    assert w.lr_at(10) == pytest.approx(0.1)
    assert w.lr_at(60) == pytest.approx(0.05)  # midpoint of (10, 110)


def test_apply_sets_every_param_group():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 5.0}], lr=1.0)
    lr = LRSchedule(0.1, 10, warmup_epochs=2, decay_epochs=(5,)).apply(opt, 0)
    assert lr == pytest.approx(0.05)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.05])


@pytest.mark.parametrize("kwargs, name", [
    (dict(base_lr=0.0, epochs=10), "base_lr"),
    (dict(base_lr=0.1, epochs=0), "epochs"),
    (dict(base_lr=0.1, epochs=10, warmup_epochs=10), "warmup_epochs"),
    (dict(base_lr=0.1, epochs=10, decay="linear"), "decay"),
    (dict(base_lr=0.1, epochs=10, decay_epochs=(6, 4)), "decay_epochs"),
    (dict(base_lr=0.1, epochs=10, decay_epochs=(12,)), "decay_epochs"),
    (dict(base_lr=0.1, epochs=10, decay_epochs=(5,), decay_factor=0.0), "decay_factor"),
])
def test_invalid_arguments_are_named(kwargs, name):
    kwargs.setdefault("decay_epochs", (5,))
    with pytest.raises(ValueError, match=name):
        LRSchedule(**kwargs)


def test_presets_are_complete_and_build_schedules():
    keys = {"model", "epochs", "batch_size", "lr", "weight_decay", "momentum", "warmup_epochs",
            "decay", "decay_epochs", "decay_factor", "cmo_start", "cmo_end", "loss",
            "drw_epoch", "drw_switch", "image_size", "groups", "normalisation", "pretrained",
            "source", "augment"}
    assert {"cifar10-lt", "cifar100-lt", "imagenet-lt", "imagenet-lt-400", "inat2018",
            "inat2018-200", "inat2018-400", "cifar10-lt-400", "cifar100-lt-400",
            "places-lt"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert set(preset) == keys, name
        assert isinstance(schedule_from_preset(preset), LRSchedule)
        assert preset["cmo_start"] < preset["epochs"] - preset["cmo_end"]
        assert preset["groups"] in GROUP_RULES


def test_drw_recipes_switch_where_the_reference_scripts_do():
    """`idx = epoch // 160` (cifar_train.py, inat18_train.py), `epoch // 80` (imagenet)."""
    assert [drw_switch_epoch(n) for n in ("cifar100-lt", "cifar10-lt", "inat2018-200",
                                          "imagenet-lt")] == [160, 160, 160, 80]
    assert all(PRESETS[n]["drw_epoch"] is None for n in PRESETS)  # DRW only when asked
    with pytest.raises(ValueError) as error:
        drw_switch_epoch("imagenet-lt-400")
    assert str(error.value) == (
        "preset 'imagenet-lt-400' has no DRW recipe in the reference code; presets with one: "
        "cifar100-lt, cifar10-lt, imagenet-lt, inat2018, inat2018-200")


def test_inat_200_epoch_recipe_matches_the_reference_schedule():
    def reference(epoch):  # adjust_learning_rate of the reference inat18_train.py
        return reference_step_lr(epoch, first=75, second=160)

    preset = PRESETS["inat2018-200"]
    assert (preset["epochs"], preset["batch_size"]) == (200, 256)
    s = schedule_from_preset(preset)
    for epoch in range(200):
        assert s.lr_at(epoch) == pytest.approx(reference(epoch)), epoch


def test_presets_name_the_reference_group_convention_and_normalisation():
    assert [PRESETS[n]["groups"] for n in ("cifar100-lt", "imagenet-lt", "inat2018")] == \
        ["lt20", "le20", "le20"]
    assert GROUP_RULES["le20"] == IMAGENET_RULE
    assert [PRESETS[n]["normalisation"] for n in ("cifar100-lt", "imagenet-lt", "inat2018",
                                                  "inat2018-200")] == \
        ["cifar", "imagenet", "inat", "inat"]
    assert PRESETS["places-lt"]["pretrained"] and "NOT from the CMO paper" in \
        PRESETS["places-lt"]["source"]


def test_inat_normalisation_reaches_the_evaluation_pipeline(tmp_path):
    from dali_cmo.data.datasets import LongTailDataset
    from pipelines.evaluation import EvalPipeline
    from dali_cmo.data.iterator import EvalIterator
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    dataset = LongTailDataset(tmp_path, ["a.png"], np.array([0]), ["c0"], "one")
    pipeline = EvalPipeline(dataset, style="cifar", image_size=8, batch_size=1,
                            normalisation=PRESETS["inat2018"]["normalisation"])
    images, _ = next(iter(EvalIterator(pipeline)))
    # the reference's transforms.Normalize([0.466, 0.471, 0.380], [0.195, 0.194, 0.192])
    expected = (pixels / 255.0 - np.array([0.466, 0.471, 0.380])) / np.array([0.195, 0.194, 0.192])
    np.testing.assert_allclose(images[0].numpy(), expected.transpose(2, 0, 1), atol=1e-5)
    assert INAT_MEAN == pytest.approx([0.466 * 255, 0.471 * 255, 0.380 * 255])
    assert INAT_STD == pytest.approx([0.195 * 255, 0.194 * 255, 0.192 * 255])


def test_the_global_batch_is_shared_by_the_ranks():
    assert rank_batch_size(128, 1) == 128
    assert rank_batch_size(128, 8) == 16
    with pytest.raises(ValueError) as error:
        rank_batch_size(100, 8)
    assert str(error.value) == ("the global batch 100 does not divide over 8 ranks; choose a "
                                "multiple of 8")


def test_load_pretrained_keeps_all_but_a_new_head(tmp_path):
    torch.manual_seed(0)
    source = build_model("resnet32", 10)
    path = tmp_path / "resnet32.pth"
    torch.save(source.state_dict(), path)
    target = build_model("resnet32", 4)
    assert load_pretrained(target, path) == ["fc.weight", "fc.bias"]
    mine, theirs = target.state_dict(), source.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if not k.startswith("fc."))
    assert mine["fc.weight"].shape == (4, 64)
    same = build_model("resnet32", 10)  # the same head shape: loaded too
    assert load_pretrained(same, path) == []
    assert torch.equal(same.state_dict()["fc.weight"], theirs["fc.weight"])


def test_load_pretrained_refuses_a_file_that_does_not_fit(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(16, 3, 3, 3)}, path)
    with pytest.raises(ValueError) as error:
        load_pretrained(build_model("resnet32", 4), path)
    assert str(error.value).startswith(f"{path}: does not fit the model: ")
    assert "entries missing, e.g. bn1.weight, bn1.bias, bn1.running_mean" in str(error.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as error:
        load_pretrained(build_model("resnet32", 4), tmp_path / "junk.pth")
    assert str(error.value) == (f"{tmp_path / 'junk.pth'}: not a torch state-dict file (it does "
                                f"not unpickle as tensors)")
