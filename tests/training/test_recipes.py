"""Learning-rate schedule at hand-picked epochs, and the presets."""
import math

import pytest
import torch

from dali_cmo.training.recipes import PRESETS, LRSchedule, schedule_from_preset


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


def test_step_schedule_matches_reference_at_integer_epochs():
    def reference(epoch):  # adjust_learning_rate of the reference imagenet_train.py
        epoch = epoch + 1
        if epoch <= 5:
            return 0.1 * epoch / 5
        if epoch > 80:
            return 0.1 * 0.01
        if epoch > 60:
            return 0.1 * 0.1
        return 0.1

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
            "drw_epoch", "image_size", "augment"}
    assert {"cifar10-lt", "cifar100-lt", "imagenet-lt", "imagenet-lt-400", "inat2018",
            "places-lt"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert set(preset) == keys, name
        assert isinstance(schedule_from_preset(preset), LRSchedule)
        assert preset["cmo_start"] < preset["epochs"] - preset["cmo_end"]
