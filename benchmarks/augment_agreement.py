"""Op-by-op agreement of the DALI augmentations (dali_cmo.augment) with the reference's PIL
transforms (benchmarks/reference_transforms.py, torchvision on PIL images) on real images.

For each operation at the stated magnitudes: the largest per-pixel difference (0..255) and the
share of pixel values that differ by more than 1 level, over ImageNet samples resized to
224 x 224 (the warps also at 32 x 32, as the CIFAR recipe sees them). Where the reference draws
bilinear or bicubic (timm's warps) both are compared; DALI's warps are linear.

    python benchmarks/augment_agreement.py --json runs/augment-agreement.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts the repository root on sys.path)

import numpy as np  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402
from nvidia.dali import fn, pipeline_def  # noqa: E402
from nvidia.dali.auto_aug.core import signed_bin  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

from dali_cmo.augment import autoaugment, color, filters  # noqa: E402
from dali_cmo.augment.randaugment import NAMES, RandAugment, operation  # noqa: E402
from reference_transforms import policy_operation, timm_operation  # noqa: E402


def run(build, images, *params):
    """``build(images, *params)`` in a CPU pipeline; outputs as lists of arrays."""
    @pipeline_def(batch_size=len(images), num_threads=2, device_id=None, seed=1,
                  enable_conditionals=True)
    def graph():
        nodes = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        values = [fn.external_source(source=_constant(p), batch=True) for p in params]
        return build(nodes, *values)
    pipe = graph()
    pipe.build()
    outputs = pipe.run()
    return [[np.array(o[i]) for i in range(len(o))] for o in outputs]


def _constant(values):
    batch = [np.float32(v) for v in values]

    def source():
        return batch
    return source


def compare(ours, reference) -> dict:
    diff = np.stack([np.abs(a.astype(np.int32) - np.asarray(b, np.int32))
                     for a, b in zip(ours, reference)])
    return {"max": int(diff.max()), "over_1": float((diff > 1).mean())}


def colour_rows(images):
    pil = [Image.fromarray(i) for i in images]
    n = len(images)
    rows = []
    for name, ours, theirs, values in (
            ("brightness", color.adjust_brightness, TF.adjust_brightness, (0.6, 1.4)),
            ("contrast", color.adjust_contrast, TF.adjust_contrast, (0.6, 1.4)),
            ("saturation", color.adjust_saturation, TF.adjust_saturation, (0.6, 1.4)),
            ("hue", color.adjust_hue, TF.adjust_hue, (-0.1, 0.1, 0.5))):
        for value in values:
            out = run(ours, images, [value] * n)[0]
            ref = [theirs(img, float(np.float32(value))) for img in pil]
            rows.append(("ColorJitter " + name, f"{value:g}", compare(out, ref)))
    out = run(color.grayscale, images)[0]
    rows.append(("RandomGrayscale", "-", compare(out, [TF.rgb_to_grayscale(i, 3) for i in pil])))
    for sigma in (0.1, 1.0, 2.0):
        out = run(filters.gaussian_blur, images, [sigma] * n)[0]
        ref = [i.filter(ImageFilter.GaussianBlur(float(np.float32(sigma)))) for i in pil]
        rows.append(("GaussianBlur (PIL)", f"sigma {sigma:g}", compare(out, ref)))
    return rows


def randaugment_rows(images, level: float = 9.5):
    size = images[0].shape[:2]
    spec = RandAugment(size=size)
    pil = [Image.fromarray(i) for i in images]
    n = len(images)
    signs = [1.0 if k % 2 else -1.0 for k in range(n)]

    def graph(x, lv, sg):
        return tuple(operation(x, name, lv, sg, spec) for name in NAMES)
    outputs = run(graph, images, [level] * n, signs)
    rows = []
    for name, out in zip(NAMES, outputs):
        for resample, label in ((Image.BILINEAR, "bilinear"), (Image.BICUBIC, "bicubic")):
            ref = [timm_operation(name, img, level, s, resample) for img, s in zip(pil, signs)]
            warp = name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
            rows.append((f"RandAugment {name}" + (f" vs {label}" if warp else ""),
                         f"level {level:g} ({size[0]} px)", compare(out, ref)))
            if not warp:
                break
    return rows


def autoaugment_rows(images):
    size = images[0].shape[:2]
    pil = [Image.fromarray(i) for i in images]
    rows = []
    augmentations = {aug.name: aug for sub in autoaugment.CIFAR10_POLICY.sub_policies
                     for aug, _, _ in sub}
    for name in ("shear_y", "translate_x", "translate_y", "rotate", "color",
                 "contrast", "brightness", "sharpness", "posterize", "solarize",
                 "auto_contrast", "equalize", "invert"):
        aug = augmentations[name]
        level = None if aug.mag_range is None else 9
        def graph(x, aug=aug, level=level):
            if level is None:
                return aug(x, magnitude_bin=0, num_magnitude_bins=10, size=size)
            magnitude_bin = signed_bin(level, random_sign=fn.constant(idata=0, shape=[]))
            return aug(x, magnitude_bin=magnitude_bin, num_magnitude_bins=10, size=size)
        out = run(graph, images)[0]
        magnitude = None if level is None else aug.mag_range[level]
        ref = [policy_operation(aug.name, img, magnitude, 1) for img in pil]
        label = "-" if level is None else f"level {level} = {magnitude:.3g}"
        rows.append((f"AutoAugment {name}", f"{label} ({size[0]} px)",
                     compare(out, ref)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="ImageNet samples to use")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    from dali_cmo.data.shared_data import imagenet_samples_dir
    files = sorted(imagenet_samples_dir().glob("*.JPEG"))[:args.images]
    originals = [Image.open(f).convert("RGB") for f in files]
    large = [np.asarray(i.resize((224, 224), Image.BICUBIC)) for i in originals]
    small = [np.asarray(i.resize((32, 32), Image.BICUBIC)) for i in originals]
    rows = (colour_rows(large) + randaugment_rows(large) + randaugment_rows(small)
            + autoaugment_rows(small))
    table = [[name, magnitude, str(r["max"]), f"{100 * r['over_1']:.3f}"]
             for name, magnitude, r in rows]
    print(common.format_table(["operation", "magnitude", "max diff", "% > 1"], table))
    if args.json:
        common.write_json(args.json, {"images": [f.name for f in files], "rows": [
            {"operation": n, "magnitude": m, **r} for n, m, r in rows]})
    return rows


if __name__ == "__main__":
    main()
