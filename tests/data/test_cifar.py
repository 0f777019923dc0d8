"""CIFAR-LT from python pickles and JPEG trees as raw pixels; the tarball cache under races."""
from __future__ import annotations

import multiprocessing
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dali_cmo.data.cifar import load_cifar_lt
from dali_cmo.data.datasets import ArrayDataset, DatasetError
from dali_cmo.data.iterator import CMOIterator, EvalIterator
from dali_cmo.data.shared_data import extract_once
from pipelines.evaluation import EvalPipeline
from dali_cmo.constants import CIFAR_MEAN, CIFAR_STD
from pipelines.training import TrainConfig, TrainingPipeline


def write_pickles(root: Path, cifar100: bool, per_class: int, seed: int = 1):
    """Small pickles in the official layout; returns (train images HWC, labels, test images)."""
    classes = 100 if cifar100 else 10
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(classes), per_class))
    images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (classes, 32, 32, 3), dtype=np.uint8)
    folder = root / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = b"fine_labels" if cifar100 else b"labels"

    def dump(name, pixels, targets):
        rows = pixels.transpose(0, 3, 1, 2).reshape(len(pixels), -1)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": rows, key: [int(t) for t in targets]}, handle)

    names = ["train"] if cifar100 else [f"data_batch_{i}" for i in range(1, 6)]
    for name, part in zip(names, np.array_split(np.arange(len(labels)), len(names))):
        dump(name, images[part], labels[part])
    dump("test" if cifar100 else "test_batch", test, np.arange(classes))
    meta_key = b"fine_label_names" if cifar100 else b"label_names"
    with open(folder / ("meta" if cifar100 else "batches.meta"), "wb") as handle:
        pickle.dump({meta_key: [f"class{k:02d}".encode() for k in range(classes)]}, handle)
    return images, labels, test


def reference_subset(images, labels, classes, imb_factor):
    """github.com/naver-ai/cmo imbalance_data/imbalance_cifar.py, written out again."""
    np.random.seed(0)
    img_max = len(images) / classes
    new_data, new_targets = [], []
    for the_class in np.unique(labels):
        the_img_num = int(img_max * (imb_factor ** (the_class / (classes - 1.0))))
        idx = np.where(labels == the_class)[0]
        np.random.shuffle(idx)
        new_data.append(images[idx[:the_img_num], ...])
        new_targets.extend([the_class] * the_img_num)
    return np.vstack(new_data), np.array(new_targets)


@pytest.mark.parametrize("cifar100, per_class, ratio", [(False, 30, 10.0), (True, 6, 5.0)])
def test_pickles_give_the_reference_subset_image_for_image(tmp_path, cifar100, per_class, ratio):
    images, labels, test = write_pickles(tmp_path, cifar100, per_class)
    classes = 100 if cifar100 else 10
    train, val = load_cifar_lt(tmp_path, classes, ratio)
    expected_images, expected_labels = reference_subset(images, labels, classes, 1 / ratio)
    assert isinstance(train, ArrayDataset)
    np.testing.assert_array_equal(train.images, expected_images)
    np.testing.assert_array_equal(train.labels, expected_labels)
    np.testing.assert_array_equal(val.images, test)
    assert val.class_names[3] == "class03"


def test_png_tree_in_pickle_order_gives_the_same_subset_and_is_decoded_once(tmp_path):
    images, labels, test = write_pickles(tmp_path / "pickles", False, 30)
    tree = tmp_path / "tree"
    for split, pixels, targets in (("train", images, labels), ("test", test, np.arange(10))):
        for n, (image, label) in enumerate(zip(pixels, targets)):  # in-class order = pickle's
            folder = tree / split / f"class{label:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{n:04d}.png")
    cache = tmp_path / "cache"
    cache.mkdir()
    from_pickles, _ = load_cifar_lt(tmp_path / "pickles", 10, 10.0)
    from_tree, val = load_cifar_lt(tree, 10, 10.0, cache=cache)
    np.testing.assert_array_equal(from_tree.images, from_pickles.images)
    np.testing.assert_array_equal(val.images, test)
    assert sorted(p.name.split("-")[1] for p in cache.iterdir()) == ["test", "train"]
    next((tree / "train" / "class09").iterdir()).unlink()  # a changed tree is decoded again
    load_cifar_lt(tree, 10, 10.0, cache=cache)
    assert len(list(cache.iterdir())) == 3


def test_bad_cifar_data_is_named(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_cifar_lt(tmp_path, 10, 100)
    assert str(error.value) == (f"{tmp_path}: neither CIFAR python pickles (cifar-10-batches-py "
                                f"or cifar-100-python) nor a JPEG tree with train/ and test/")
    write_pickles(tmp_path, False, 3)
    with pytest.raises(DatasetError) as error:
        load_cifar_lt(tmp_path, 100, 1)
    assert str(error.value) == f"{tmp_path}: 10 classes, expected 100"


def flat_dataset(classes: int = 4, per_class: int = 12) -> ArrayDataset:
    """Image i of class c is flat grey ``40 * c + 30``: a pixel tells its class."""
    labels = np.repeat(np.arange(classes), per_class)
    images = np.broadcast_to((40 * labels + 30).astype(np.uint8)[:, None, None, None],
                             (len(labels), 32, 32, 3)).copy()
    return ArrayDataset(Path("mem"), tuple(f"i{n}" for n in range(len(labels))), labels,
                        tuple(f"c{k}" for k in range(classes)), "flat", images=images)


def test_raw_pixels_through_training_and_evaluation_pipelines(plugin):
    dataset = flat_dataset()
    mean, std = np.array(CIFAR_MEAN), np.array(CIFAR_STD)
    evaluated = list(EvalIterator(EvalPipeline(dataset, style="cifar", batch_size=16,
                                               image_size=32, num_threads=1)))
    images = np.concatenate([batch[0].numpy() for batch in evaluated])
    expected = (dataset.images.astype(np.float32) - mean) / std
    np.testing.assert_allclose(images, expected.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-5)

    config = TrainConfig(style="cifar", image_size=32, batch_size=16, epochs=2, cmo_start=-1,
                         cmo_end=0, probability=1.0, num_threads=1)
    batches = list(CMOIterator(TrainingPipeline(dataset, config)).epoch_batches())
    assert len(batches) == 3
    for batch in batches:
        grey = (batch.images.numpy()[:, 0] * std[0] + mean[0]).round()
        for k in range(len(batch)):
            b, f = 40 * int(batch.target_b[k]) + 30, 40 * int(batch.target_f[k]) + 30
            values = set(np.unique(grey[k]).tolist())
            assert values <= {0.0, b, f}  # padding, background, pasted foreground
            if f != b:  # the pasted box covers 1 - lam of the image (padding may hide some)
                assert np.count_nonzero(grey[k] == f) <= round((1 - batch.lam[k].item()) * 1024)
    assert sum(int((batch.lam < 1).sum()) for batch in batches) > 0


def _extract(archive, target, barrier):
    barrier.wait()
    extract_once(archive, target)


def test_runs_extracting_the_tarball_together_both_succeed(tmp_path):
    source = tmp_path / "src" / "cifar" / "train" / "a"
    source.mkdir(parents=True)
    for n in range(200):
        (source / f"{n}.jpg").write_bytes(b"x" * 500)
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar", arcname="cifar")
    target = tmp_path / "cache" / "cifar10-jpeg"
    target.parent.mkdir()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_extract, args=(archive, target, barrier))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(list((target / "train" / "a").iterdir())) == 200
    assert sorted(p.name for p in target.parent.iterdir()) == ["cifar10-jpeg"]
