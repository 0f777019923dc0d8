"""One-JPEG decode probe for benchmarks/gpu_check.sh: does DALI decode on this machine's GPU
(the codec libraries it was installed or unpacked with) before anything heavier relies on it?

    python benchmarks/gpu_decode_probe.py cpu|gpu IMAGE_OR_FOLDER OUT.json

Decodes one JPEG (a folder's first by name), whole and a central region (decoders.image_slice,
as the region-decoding pipelines do), on the CPU and, with ``gpu``, on the mixed backend, whose
shapes must match the CPU's; its values may differ by a few levels (JPEG's inverse DCT is not
specified bit for bit), so they are reported, not judged. Needs DALI and NumPy only. Writes
OUT.json; exit status 0 when every decode worked.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

JPEG_SUFFIXES = (".jpg", ".jpeg")


def first_jpeg(path: Path) -> Path:
    if path.is_file():
        return path
    jpegs = sorted(p for p in path.iterdir() if p.suffix.lower() in JPEG_SUFFIXES)
    if not jpegs:
        raise SystemExit(f"decode probe: no JPEG in {path}")
    return jpegs[0]


def decode(data: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole image and its central region, decoded by ``device`` ("cpu" or "mixed")."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=1, num_threads=1, device_id=None if device == "cpu" else 0)
    def pipe():
        encoded = fn.external_source(source=[[data]], cycle=True)
        whole = fn.decoders.image(encoded, device=device, output_type=types.RGB)
        region = fn.decoders.image_slice(encoded, [0.25, 0.25], [0.5, 0.5], device=device,
                                         normalized_anchor=True, normalized_shape=True,
                                         output_type=types.RGB)
        return whole, region

    p = pipe()
    p.build()
    outputs = p.run()
    return tuple(np.array((o.as_cpu() if hasattr(o, "as_cpu") else o)[0]) for o in outputs)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("cpu", "gpu"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    device, source, out = argv
    image = first_jpeg(Path(source))
    data = np.fromfile(image, np.uint8)
    result = {"image": str(image), "bytes": int(data.size), "ok": False}
    t0 = time.perf_counter()
    cpu = decode(data, "cpu")
    result["cpu"] = {"whole": list(cpu[0].shape), "region": list(cpu[1].shape)}
    if device == "gpu":
        try:
            gpu = decode(data, "mixed")
        except Exception as err:  # noqa: BLE001 - the verdict is that it failed, and why
            result["gpu_error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[-1]}"
        else:
            result["gpu"] = {
                name: {"shape": list(g.shape), "same_shape": g.shape == c.shape,
                       "max_abs_diff": int(np.abs(g.astype(int) - c).max())
                       if g.shape == c.shape else None,
                       "mean_abs_diff": round(float(np.abs(g.astype(int) - c).mean()), 4)
                       if g.shape == c.shape else None}
                for name, g, c in zip(("whole", "region"), gpu, cpu)}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["ok"] = device == "cpu" or (
        "gpu" in result and all(v["same_shape"] for v in result["gpu"].values()))
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    if device == "cpu":
        print(f"decoded {image.name} on the CPU: {cpu[0].shape}, region {cpu[1].shape}")
    elif "gpu" in result:
        g = result["gpu"]
        print(f"decoded {image.name} on the GPU: {g['whole']['shape']}, region "
              f"{g['region']['shape']}; shapes {'match' if result['ok'] else 'DIFFER from'} the "
              f"CPU's, max difference {g['whole']['max_abs_diff']} / {g['region']['max_abs_diff']}"
              " levels")
    else:
        print(f"GPU decode of {image.name} FAILED: {result['gpu_error']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
