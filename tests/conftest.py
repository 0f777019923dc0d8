"""Shared fixtures: the operator plugin, real data from ../shared/data (skipped when absent)."""
from __future__ import annotations

import pytest

from dali_cmo.data.shared_data import SharedDataMissing, cifar10_dir, imagenet_samples_dir


def gpu_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def gpu_skip_reason() -> str | None:
    """Why the GPU tests cannot run here, or None: they need a CUDA GPU and an operator library
    built with its CUDA operators (a CPU-only build on a GPU machine would fail them all)."""
    if not gpu_available():
        return "needs a CUDA GPU"
    import dali_cmo
    try:
        cuda = dali_cmo.build_info().get("cuda")
    except dali_cmo.PluginError as err:
        return f"needs the operator library: {err}"
    return None if cuda else ("needs an operator library built with CUDA (this one is CPU-only; "
                              "rebuild with `python -m dali_cmo build --cuda`)")


@pytest.fixture(scope="session")
def plugin():
    """Loads the compiled operators; every DALI test using cmo_paste/cmo_box depends on it."""
    import dali_cmo
    return dali_cmo.load_plugin()


def _or_skip(locate):
    try:
        return locate()
    except SharedDataMissing as err:
        pytest.skip(f"real data not available: {err}")


@pytest.fixture(scope="session")
def cifar10_root():
    """Extracted CIFAR-10 JPEG tree (train/, test/)."""
    return _or_skip(cifar10_dir)


@pytest.fixture(scope="session")
def imagenet_samples():
    """Folder of 1,000 real ImageNet JPEGs."""
    return _or_skip(imagenet_samples_dir)


_gpu_skip_reason = gpu_skip_reason()
requires_gpu = pytest.mark.skipif(_gpu_skip_reason is not None, reason=_gpu_skip_reason or "")
