"""cmo_paste and cmo_box against the NumPy statement of the method (numpy_reference.py)."""
from __future__ import annotations

import numpy as np
import pytest
from numpy_reference import reference_box, reference_paste, simulate_lambdas

from conftest import requires_gpu

from nvidia.dali import fn, pipeline_def, types

BATCH = 8


def random_images(rng, n, H, W, C=3):
    return [rng.integers(0, 256, size=(H, W, C), dtype=np.uint8) for _ in range(n)]


def paste_pipeline(bgs, fgs, *, device="cpu", extra_inputs=None, seed=42, batch_size=None,
                   checkpointing=False, checkpoint=None, **paste_args):
    """A pipeline feeding fixed batches (lists of lists of arrays) into cmo_paste(output_box)."""
    batch_size = batch_size or len(bgs[0])
    extra_inputs = extra_inputs or {}

    @pipeline_def(batch_size=batch_size, num_threads=2, device_id=0 if device == "gpu" else None,
                  seed=seed, enable_checkpointing=checkpointing)
    def pipe():
        bg = fn.external_source(source=bgs, cycle=True, layout="HWC")
        fg = fn.external_source(source=fgs, cycle=True, layout="HWC")
        args = {name: fn.external_source(source=values, cycle=True)
                for name, values in extra_inputs.items()}
        if device == "gpu":
            bg, fg = bg.gpu(), fg.gpu()
        return tuple(fn.cmo_paste(bg, fg, output_box=True, **args, **paste_args))

    p = pipe(checkpoint=checkpoint) if checkpoint else pipe()
    p.build()
    return p


def run(p):
    """One iteration as NumPy: (images, lam, box) lists."""
    outs = p.run()
    return [[np.array(t.as_cpu() if hasattr(t, "as_cpu") else t) for t in
             (o.as_cpu() if hasattr(o, "as_cpu") else o)] for o in outs]


def test_pure_paste_matches_reference_and_lambda_is_clipped_area(plugin):
    rng = np.random.default_rng(0)
    bgs, fgs = random_images(rng, BATCH, 37, 53), random_images(rng, BATCH, 37, 53)
    p = paste_pipeline([bgs], [fgs], per_sample=True)
    for _ in range(5):
        images, lams, boxes = run(p)
        for bg, fg, img, lam, box in zip(bgs, fgs, images, lams, boxes):
            np.testing.assert_array_equal(img, reference_paste(bg, fg, tuple(box)))
            y1, x1, y2, x2 = box
            assert 0 <= y1 <= y2 <= 37 and 0 <= x1 <= x2 <= 53
            assert lam == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (37 * 53), abs=1e-6)


def test_unclipped_boxes_are_reference_shaped(plugin):
    """cut // 2 on both sides of the centre: an unclipped box of a square image is square and even."""
    rng = np.random.default_rng(1)
    bgs = random_images(rng, BATCH, 64, 64)
    p = paste_pipeline([bgs], [bgs], per_sample=True)
    seen = 0
    for _ in range(30):
        for y1, x1, y2, x2 in run(p)[2]:
            if 0 < y1 and y2 < 64 and 0 < x1 and x2 < 64:
                assert y2 - y1 == x2 - x1 and (y2 - y1) % 2 == 0
                seen += 1
    assert seen > 10


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_lambda_distribution_matches_reference_simulation(plugin, alpha):
    """Two-sample KS test of emitted lambdas against NumPy's Beta + box + clip (p > 0.001)."""
    stats = pytest.importorskip("scipy.stats")  # optional: a GPU host may lack scipy
    H = W = 32
    rng = np.random.default_rng(2)
    bgs = random_images(rng, 64, H, W, C=1)
    p = paste_pipeline([bgs], [bgs], per_sample=True, alpha=alpha, seed=7)
    ours = np.concatenate([np.ravel(run(p)[1]) for _ in range(40)])  # 2,560 draws
    ref = simulate_lambdas(np.random.default_rng(3), 20000, H, W, alpha)
    assert stats.ks_2samp(ours, ref).pvalue > 1e-3


def test_paste_rate_matches_probability(plugin):
    rng = np.random.default_rng(4)
    bgs = random_images(rng, 64, 16, 16, C=1)
    p = paste_pipeline([bgs], [bgs], per_sample=True, probability=0.3)
    boxes = np.concatenate([run(p)[2] for _ in range(50)])
    pasted = ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).mean()
    n = len(boxes)
    # A drawn box is also empty when cut < 2 px, i.e. 1 - lam < (2/16)^2: P = 1/64 for alpha 1.
    expected = 0.3 * (1 - (2 / 16) ** 2)
    assert abs(pasted - expected) < 5 * np.sqrt(0.3 * 0.7 / n)


def test_per_batch_mode_shares_one_box_and_per_sample_mode_does_not(plugin):
    rng = np.random.default_rng(5)
    bgs = random_images(rng, BATCH, 24, 24)
    shared = paste_pipeline([bgs], [bgs], probability=1.0)
    batch_boxes = [run(shared)[2] for _ in range(6)]
    for boxes in batch_boxes:
        assert all(np.array_equal(b, boxes[0]) for b in boxes)
    assert len({tuple(b[0]) for b in batch_boxes}) > 1, "batches should draw different boxes"
    independent = paste_pipeline([bgs], [bgs], probability=1.0, per_sample=True)
    boxes = run(independent)[2]
    assert len({tuple(b) for b in boxes}) > 1


def test_per_batch_coin_is_shared(plugin):
    rng = np.random.default_rng(6)
    bgs = random_images(rng, BATCH, 24, 24)
    p = paste_pipeline([bgs], [bgs], probability=0.5)
    outcomes = []
    for _ in range(40):
        lams = run(p)[1]
        assert len(set(np.ravel(lams).tolist())) == 1
        outcomes.append(float(np.ravel(lams)[0]) < 1.0)
    assert 5 < sum(outcomes) < 35


@pytest.mark.parametrize("dtype,layout", [(types.FLOAT, "CHW"), (types.FLOAT16, "CHW"),
                                          (types.FLOAT, "HWC"), (types.UINT8, "CHW")])
def test_fused_normalise_layout_dtype_and_mirrors(plugin, dtype, layout):
    rng = np.random.default_rng(7)
    H, W = 20, 31
    bgs, fgs = random_images(rng, BATCH, H, W), random_images(rng, BATCH, H, W)
    mirror = [np.array(i % 2, np.int32) for i in range(BATCH)]
    fg_mirror = [np.array((i // 2) % 2, np.int32) for i in range(BATCH)]
    mean, std = [120.0, 110.0, 100.0], [60.0, 55.0, 50.0]
    np_dtype = {types.FLOAT: np.float32, types.FLOAT16: np.float16, types.UINT8: np.uint8}[dtype]
    if dtype == types.UINT8:  # keep values in range: scale the spread, not the offset
        mean, std = [10.0, 20.0, 30.0], [1.0, 1.0, 2.0]
    p = paste_pipeline([bgs], [fgs], extra_inputs={"mirror": [mirror],
                                                   "foreground_mirror": [fg_mirror]},
                       per_sample=True, dtype=dtype, output_layout=layout, mean=mean, std=std)
    images, _, boxes = run(p)
    for i in range(BATCH):
        expected = reference_paste(bgs[i], fgs[i], tuple(boxes[i]), mirror=bool(mirror[i]),
                                   foreground_mirror=bool(fg_mirror[i]), mean=mean, std=std,
                                   dtype=np_dtype, layout=layout)
        assert images[i].dtype == np_dtype and images[i].shape == expected.shape
        np.testing.assert_array_equal(images[i], expected)


def test_region_foreground_from_cmo_box(plugin):
    """cmo_box first, the foreground cut to the box (as a region decode would), then the paste."""
    rng = np.random.default_rng(8)
    H, W = 30, 40
    bgs, fgs = random_images(rng, BATCH, H, W), random_images(rng, BATCH, H, W)
    fg_mirror = [np.array(i % 2, np.int32) for i in range(BATCH)]

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None, seed=11)
    def pipe():
        box, lam = fn.cmo_box(size=[H, W], probability=0.7, per_sample=True)
        bg = fn.external_source(source=[bgs], cycle=True, layout="HWC")
        fg = fn.external_source(source=[fgs], cycle=True, layout="HWC")
        mirror = fn.external_source(source=[fg_mirror], cycle=True)
        # The window of the unflipped foreground that lands on the box once flipped.
        y1, x1, y2, x2 = box[0], box[1], box[2], box[3]
        left = mirror * (W - x2) + (1 - mirror) * x1
        region = fn.slice(fg, fn.stack(left, y1), fn.stack(x2 - x1, y2 - y1), axis_names="WH",
                          normalized_anchor=False, normalized_shape=False)
        images, lam2, box2 = fn.cmo_paste(bg, region, box=box, foreground_mirror=mirror,
                                          output_box=True)
        return images, lam, lam2, box, box2, region

    p = pipe()
    p.build()
    for _ in range(4):
        images, lam, lam2, box, box2, regions = [[np.array(t) for t in o] for o in p.run()]
        for i in range(BATCH):
            np.testing.assert_array_equal(box[i], box2[i])
            assert lam[i] == lam2[i]
            expected = reference_paste(bgs[i], fgs[i], tuple(box[i]),
                                       foreground_mirror=bool(fg_mirror[i]))
            np.testing.assert_array_equal(images[i], expected)


def test_same_seed_same_output_and_seed_matters(plugin):
    rng = np.random.default_rng(9)
    bgs, fgs = random_images(rng, BATCH, 16, 16), random_images(rng, BATCH, 16, 16)
    a, b = (paste_pipeline([bgs], [fgs], per_sample=True, seed=3) for _ in range(2))
    c = paste_pipeline([bgs], [fgs], per_sample=True, seed=4)
    runs_a, runs_b, runs_c = ([run(p)[2] for _ in range(3)] for p in (a, b, c))
    np.testing.assert_array_equal(runs_a, runs_b)
    assert not np.array_equal(runs_a, runs_c)


def test_checkpoint_restore_continues_with_the_same_boxes(plugin):
    rng = np.random.default_rng(10)
    bgs = random_images(rng, BATCH, 16, 16)
    p = paste_pipeline([bgs], [bgs], per_sample=True, checkpointing=True, seed=21)
    for _ in range(3):
        run(p)
    checkpoint = p.checkpoint()
    expected = [run(p)[2] for _ in range(4)]

    # A different seed: the restored state, not the seed, decides the boxes.
    restored = paste_pipeline([bgs], [bgs], per_sample=True, checkpointing=True, seed=99,
                              checkpoint=checkpoint)
    np.testing.assert_array_equal([run(restored)[2] for _ in range(4)], expected)


def test_dynamic_mode_with_rng(plugin):
    import nvidia.dali.experimental.dynamic as ndd

    rng = np.random.default_rng(11)
    bg = ndd.batch(random_images(rng, 4, 12, 12), layout="HWC")
    fg = ndd.batch(random_images(rng, 4, 12, 12), layout="HWC")

    def boxes(seed):
        gen = ndd.random.RNG(seed=seed)
        return [np.array([np.asarray(t) for t in
                          ndd.cmo_paste(bg, fg, rng=gen, per_sample=True, output_box=True,
                                        device="cpu")[2]]) for _ in range(3)]

    first, again, other = boxes(5), boxes(5), boxes(6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    images, lam, box = ndd.cmo_paste(bg, fg, rng=ndd.random.RNG(seed=1), output_box=True,
                                     device="cpu")
    for img, b, f, bx in zip(images, bg, fg, box):
        np.testing.assert_array_equal(
            np.asarray(img), reference_paste(np.asarray(b), np.asarray(f), tuple(np.asarray(bx))))


@pytest.mark.parametrize("args,fg_shape,message", [
    ({"alpha": 0.0}, (8, 8, 3), "`alpha`"),
    ({"alpha": -1.0}, (8, 8, 3), "`alpha`"),
    ({"probability": 1.5}, (8, 8, 3), "`probability`"),
    ({}, (8, 9, 3), "sample 0: foreground shape"),
    ({"output_layout": "NHWC"}, (8, 8, 3), "`output_layout`"),
    ({"dtype": types.INT32}, (8, 8, 3), "`dtype`"),
    ({"mean": [1.0, 2.0]}, (8, 8, 3), "`mean`"),
    ({"resize_foreground": True}, (8, 8, 3), "argument `resize_foreground` needs the `box`"),
])
def test_errors_name_the_argument_or_sample(plugin, args, fg_shape, message):
    bg = [np.zeros((8, 8, 3), np.uint8)] * 2
    fg = [np.zeros(fg_shape, np.uint8)] * 2
    with pytest.raises(RuntimeError, match=message):
        run(paste_pipeline([bg], [fg], **args))


def test_channels_other_than_1_or_3_are_refused(plugin):
    bg = [np.zeros((8, 8, 4), np.uint8)] * 2
    with pytest.raises(RuntimeError, match="1 or 3 channels"):
        run(paste_pipeline([bg], [bg]))


def test_single_channel_images(plugin):
    rng = np.random.default_rng(12)
    bgs, fgs = random_images(rng, 4, 10, 10, C=1), random_images(rng, 4, 10, 10, C=1)
    images, _, boxes = run(paste_pipeline([bgs], [fgs], per_sample=True))
    for bg, fg, img, box in zip(bgs, fgs, images, boxes):
        np.testing.assert_array_equal(img, reference_paste(bg, fg, tuple(box)))


def test_reference_box_formula_by_hand():
    """The NumPy reference itself, on values worked out by hand."""
    # lam = 0.75 on 10x10: cut = 0.5, cut_w = cut_h = 5, 5 // 2 = 2 -> [cx-2, cx+2): 4x4 box.
    assert reference_box(0.75, 5, 5, 10, 10) == ((3, 3, 7, 7), 1 - 16 / 100)
    # Clipped at the corner: centre (0, 0) -> rows/cols [0, 2).
    assert reference_box(0.75, 0, 0, 10, 10) == ((0, 0, 2, 2), 1 - 4 / 100)


def test_operators_registered_for_cpu_and_gpu(plugin):
    from nvidia.dali import ops
    import dali_cmo

    assert {"CmoPaste", "CmoBox", "CmoRegion"} <= set(ops._registry.cpu_ops())
    assert not hasattr(fn, "cmo_box_sampling")  # the shared-arguments schema is internal
    if dali_cmo.build_info()["cuda"]:
        assert "CmoPaste" in ops._registry.gpu_ops()
    assert all(hasattr(fn, name) for name in ("cmo_paste", "cmo_box", "cmo_region"))


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("dtype", [types.UINT8, types.FLOAT, types.FLOAT16])
def test_gpu_equals_cpu_on_the_same_boxes(plugin, dtype, layout):
    """Boxes drawn by the operator (same seed), flips, normalisation with rounding ties: the GPU
    output is the CPU output bit for bit."""
    rng = np.random.default_rng(13)
    bgs, fgs = random_images(rng, BATCH, 57, 41), random_images(rng, BATCH, 57, 41)
    mirror = [np.array(i % 2, np.int32) for i in range(BATCH)]
    mean, std = ([0.5, 0.0, 10.0], [1.0, 2.0, 0.5]) if dtype == types.UINT8 else \
        ([0.4914 * 255, 0.4822 * 255, 0.4465 * 255], [0.2023 * 255, 0.1994 * 255, 0.2010 * 255])
    kwargs = dict(extra_inputs={"mirror": [mirror], "foreground_mirror": [mirror[::-1]]},
                  per_sample=True, probability=0.8, dtype=dtype, output_layout=layout, seed=5,
                  mean=mean, std=std)
    cpu, gpu = paste_pipeline([bgs], [fgs], **kwargs), paste_pipeline([bgs], [fgs], device="gpu",
                                                                      **kwargs)
    for _ in range(3):
        for a, b in zip(run(cpu), run(gpu)):
            np.testing.assert_array_equal(np.array(a), np.array(b))


def test_cmo_region_maps_the_box_into_the_crop_window(plugin):
    """Start/extent of the source window for a box of a 64x64 crop, worked out by hand."""
    anchor = [np.array([10, 20], np.int32), np.array([0, 0], np.int32)]
    window = [np.array([128, 256], np.int32), np.array([32, 32], np.int32)]
    box = [np.array([16, 8, 48, 40], np.int32), np.array([0, 63, 1, 64], np.int32)]
    mirror = [np.array(0, np.int32), np.array(1, np.int32)]

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        inputs = [fn.external_source(source=[v], cycle=True) for v in (anchor, window, box)]
        flip = fn.external_source(source=[mirror], cycle=True)
        return tuple(fn.cmo_region(*inputs, size=64, foreground_mirror=flip))

    p = pipe()
    p.build()
    start, extent, box_size = ([np.array(t) for t in o] for o in p.run())
    # Sample 0: scale (2, 4); rows 16..48 -> 10 + 32 .. +64; columns 8..40 -> 20 + 32 .. +128.
    np.testing.assert_allclose(start[0], [42, 52])
    np.testing.assert_allclose(extent[0], [64, 128])
    np.testing.assert_allclose(box_size[0], [32, 32])
    # Sample 1: scale 0.5, mirrored: columns 63..64 come from 64 - 64 = 0; extents at least 1 px.
    np.testing.assert_allclose(start[1], [0, 0])
    np.testing.assert_allclose(extent[1], [1, 1])
    np.testing.assert_allclose(box_size[1], [1, 1])
