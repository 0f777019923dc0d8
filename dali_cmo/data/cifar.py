"""CIFAR-10-LT / CIFAR-100-LT as raw pixels: the official python pickles, or a JPEG tree decoded
once into a cached ``.npy``.

Small images are cheap to keep in memory (CIFAR-10 train: 150 MB as uint8 HWC), so the training
and evaluation pipelines take the pixels as they are instead of decoding JPEGs every epoch
(:class:`dali_cmo.data.datasets.ArrayDataset`; the rest of the graph is unchanged).

The long-tailed subset follows the reference rule image for image (github.com/naver-ai/cmo,
``imbalance_data/imbalance_cifar.py``, from LDAM-DRW): ``np.random.seed(0)``, then for each class
c in order ``idx = np.where(targets == c)[0]; np.random.shuffle(idx); keep idx[:n_c]`` with
``n_c = int(n_max * (1 / ratio) ** (c / (C - 1)))``; the subset is stored class by class in that
shuffled order. On a JPEG tree the rule runs over each class's files in sorted file-name order,
so it picks the pickle's images only if that order is the pickle's in-class order.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from dali_cmo.data.datasets import (ArrayDataset, DatasetError, LongTailDataset,
                                    long_tailed_counts, read_image_folder)

#: pickle folder -> (training batches, test batch, label key, meta file, class-name key)
PICKLES = {
    "cifar-10-batches-py": ([f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels",
                            "batches.meta", b"label_names"),
    "cifar-100-python": (["train"], "test", b"fine_labels", "meta", b"fine_label_names"),
}
NUM_CLASSES = {"cifar-10-batches-py": 10, "cifar-100-python": 100}

#: ``--dataset`` name -> number of classes.
CIFAR_LT_CLASSES = {"cifar10-lt": 10, "cifar100-lt": 100}


def reference_lt_indices(labels: np.ndarray, num_classes: int, imbalance_ratio: float,
                         seed: int = 0) -> np.ndarray:
    """The reference's long-tailed subset of ``labels``: indices, class by class, each class in
    its shuffled order (see the module docstring).

    Args:
        labels: class of every image, in dataset order.
        num_classes: C; ``n_max`` is ``len(labels) / C`` as in the reference.
        imbalance_ratio: n_max / n_min (the reference's ``1 / imb_factor``).
        seed: the reference's ``rand_number`` (0).
    """
    labels = np.asarray(labels, dtype=np.int64)
    quotas = long_tailed_counts(num_classes, imbalance_ratio, len(labels) // num_classes)
    rng = np.random.RandomState(seed)  # the legacy generator np.random.seed / shuffle use
    keep = []
    for label, quota in enumerate(quotas):
        idx = np.where(labels == label)[0]
        if len(idx) < quota:
            raise DatasetError(f"class {label} has {len(idx)} images; imbalance_ratio="
                               f"{imbalance_ratio} asks for {quota}")
        rng.shuffle(idx)
        keep.append(idx[:quota])
    return np.concatenate(keep)


# --------------------------------------------------------------------------- pickles

def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found (expected the official CIFAR python pickles)") \
            from None
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DatasetError(f"{path}: not a CIFAR pickle ({error})") from None


def read_cifar_pickles(folder: str | os.PathLike, train: bool = True) -> ArrayDataset:
    """One split of ``cifar-10-batches-py`` or ``cifar-100-python`` (as torchvision reads it:
    batches in order, rows ``(3, 32, 32)`` transposed to HWC).

    Args:
        folder: the extracted pickle folder (its name says which CIFAR it is), or a folder
            holding it.
        train: the training batches, else the test batch.
    """
    found = find_pickle_folder(Path(folder))
    if found is None:
        raise DatasetError(f"{folder}: no CIFAR python pickles ({' or '.join(PICKLES)})")
    folder = found
    batches, test, label_key, meta, names_key = PICKLES[folder.name]
    images, labels, files = [], [], []
    for name in (batches if train else [test]):
        entry = _unpickle(folder / name)
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(entry[label_key])
        files.extend(f"{name}[{i}]" for i in range(len(data)))
    names = [n.decode() for n in _unpickle(folder / meta)[names_key]]
    return ArrayDataset(folder, tuple(files), np.asarray(labels, np.int64), tuple(names),
                        str(folder), images=np.ascontiguousarray(np.concatenate(images)))


def find_pickle_folder(folder: Path) -> Path | None:
    """``folder`` if it is a CIFAR pickle folder, else the one inside it; None when neither."""
    for candidate in (folder, *(folder / name for name in PICKLES)):
        if candidate.name in PICKLES and candidate.is_dir():
            return candidate
    return None


# --------------------------------------------------------------------------- JPEG tree

def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` through a unique temporary file and a rename, so that runs
    starting together never read a half-written file (the last rename wins; both are equal)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.save(out, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def decoded_images(dataset: LongTailDataset, cache: Path) -> np.ndarray:
    """Every image of ``dataset`` decoded (Pillow) to uint8 HWC RGB, stacked; cached in ``cache``
    under a name that depends on the root and the file list."""
    from PIL import Image

    key = hashlib.sha1("\n".join([str(dataset.root.resolve()), *dataset.files]).encode())
    path = cache / f"decoded-{dataset.root.name}-{len(dataset)}-{key.hexdigest()[:16]}.npy"
    if path.exists():
        return np.load(path)
    images = np.stack([np.asarray(Image.open(dataset.path(i)).convert("RGB"))
                       for i in range(len(dataset))])
    _atomic_save(path, images)
    return images


def read_jpeg_tree(folder: Path, cache: Path) -> ArrayDataset:
    """An image folder (``<class>/<file>``) decoded once into raw pixels (see
    :func:`decoded_images`)."""
    files = read_image_folder(folder)
    return ArrayDataset(files.root, files.files, files.labels, files.class_names, files.source,
                        images=decoded_images(files, cache))


# --------------------------------------------------------------------------- CIFAR-LT

def load_cifar_lt(data: str | os.PathLike, num_classes: int, imbalance_ratio: float, *,
                  raw: bool = True, cache: Path | None = None):
    """(long-tailed training set, full test set) of CIFAR-10 or CIFAR-100.

    Args:
        data: the pickle folder (``cifar-10-batches-py`` / ``cifar-100-python``, or a folder
            holding it), or a JPEG tree with ``train/<class>/`` and ``test/<class>/``.
        num_classes: 10 or 100; must match the data.
        imbalance_ratio: n_max / n_min of the training subset (reference rule, seed 0).
        raw: raw pixels (pickles, or the JPEG tree decoded once into ``cache``); False keeps
            a JPEG tree as files decoded every epoch (pickles are always raw).
        cache: folder for the decoded JPEG tree (default :func:`dali_cmo.data.cache.cache_dir`).
    """
    data = Path(data)
    pickles = find_pickle_folder(data)
    if pickles is not None:
        train, test = read_cifar_pickles(pickles, True), read_cifar_pickles(pickles, False)
    elif (data / "train").is_dir() and (data / "test").is_dir():
        if raw:
            from dali_cmo.data.cache import cache_dir
            cache = cache or cache_dir()
            train, test = read_jpeg_tree(data / "train", cache), read_jpeg_tree(data / "test", cache)
        else:
            train, test = read_image_folder(data / "train"), read_image_folder(data / "test")
    else:
        raise DatasetError(f"{data}: neither CIFAR python pickles ({' or '.join(PICKLES)}) nor "
                           f"a JPEG tree with train/ and test/")
    if train.num_classes != num_classes:
        raise DatasetError(f"{data}: {train.num_classes} classes, expected {num_classes}")
    keep = reference_lt_indices(train.labels, num_classes, imbalance_ratio)
    return train.subset(keep, f"long-tailed: imbalance_ratio={imbalance_ratio}, reference "
                             f"subset rule"), test
