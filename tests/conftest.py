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


requires_gpu = pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU")
