"""Helpers shared by the benchmarks: datasets to benchmark on, timing statistics, a description
of the machine, JSON output and plain-text tables.

Run the benchmarks from the repository root (``python benchmarks/throughput.py``); importing
this module puts the repository root on ``sys.path`` so that ``pipelines`` and ``dali_cmo``
resolve without an install.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from dali_cmo.data.datasets import repeated_file_dataset  # noqa: E402
from dali_cmo.training.reports import cpu_model  # noqa: E402

# --------------------------------------------------------------------------- datasets

def benchmark_dataset(images_dir=None, split=None, root=None, num_images=None,
                      imbalance_ratio: float = 256.0, n_max: int = 1280):
    """The dataset a benchmark runs on, and a one-line description of it.

    ``split`` (a split file, iNat JSON or image folder, read by ``load_dataset``) wins over
    ``images_dir`` (a folder of JPEGs made long-tailed); the default is the long-tailed list
    over the shared ImageNet samples.
    """
    if split is not None:
        from dali_cmo.data.datasets import load_dataset
        dataset = load_dataset(split, root)
    elif images_dir is not None:
        dataset = repeated_file_dataset(images_dir, imbalance_ratio, n_max, num_images)
    else:
        from dali_cmo.data.shared_data import imagenet_samples_dataset
        dataset = imagenet_samples_dataset(num_images, imbalance_ratio, n_max)
    counts = dataset.class_counts
    described = (f"{dataset.source}: {len(dataset)} images, {dataset.num_classes} classes, "
                 f"n_k {counts.max()}..{counts.min()}")
    return dataset, described


# --------------------------------------------------------------------------- timing

def summarize(values: Sequence[float]) -> dict:
    """Median, min, max and the spread ``(max - min) / median`` (percent) of repetitions."""
    values = [float(v) for v in values]
    median = statistics.median(values)
    return {"median": median, "min": min(values), "max": max(values),
            "spread_pct": 100.0 * (max(values) - min(values)) / median if median else 0.0,
            "reps": values}


def time_steps(step: Callable[[], object], warmup: int, steps: int,
               sync: Callable[[], None] | None = None,
               on_start: Callable[[], None] | None = None) -> float:
    """Seconds taken by ``steps`` calls of ``step`` after ``warmup`` untimed calls.

    The untimed calls run back to back with the timed ones, so prefetch queues are in steady
    state (drained by a consumer faster than the producer) when the clock starts. ``sync``
    (e.g. ``torch.cuda.synchronize``) runs before the clock starts and before it stops;
    ``on_start`` just before the clock starts.
    """
    for _ in range(warmup):
        step()
    if sync:
        sync()
    if on_start:
        on_start()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if sync:
        sync()
    return time.perf_counter() - start


def cpu_seconds(pids: Iterable[int] = ()) -> float:
    """CPU time (user + system) used so far by this process and by the processes ``pids``
    (e.g. DataLoader workers; read from /proc, a pid that is gone counts 0).

    Under load from other processes, CPU seconds per image measure a pipeline's cost far more
    steadily than wall-clock time does.
    """
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


# --------------------------------------------------------------------------- machine

def _version(module: str) -> str | None:
    try:
        import importlib
        return importlib.import_module(module).__version__
    except Exception:  # noqa: BLE001 - a missing or broken package is just "unknown"
        return None


def machine_description() -> dict:
    """CPU, memory, GPU and library versions: enough to tell two benchmark runs apart."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_gib": None,
        "gpu": None,
        "versions": {name: _version(module) for name, module in (
            ("dali", "nvidia.dali"), ("torch", "torch"), ("torchvision", "torchvision"),
            ("pillow", "PIL"), ("numpy", "numpy"), ("dali_cmo", "dali_cmo"))},
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                           "memory_gib": round(props.total_memory / 2 ** 30, 1),
                           "cuda": torch.version.cuda}
    except Exception:  # noqa: BLE001
        pass
    try:
        import dali_cmo
        info["operator_build"] = dali_cmo.build_info()
    except Exception:  # noqa: BLE001
        pass
    return info


# --------------------------------------------------------------------------- output

# an absolute path: a "/" at the start or after a space, "=", "(" or a quote, then folders;
# group 1 is the last component
_ABSOLUTE_PATH = re.compile(r"(?<![^\s=(\"'])/(?:[\w.+-]+/)*([\w.+-]+)")


def portable(text: str) -> str:
    """``text`` with every absolute path cut to its last component: a summary names the files
    and folders it ran on, not where the machine that wrote it keeps them."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (str, Path)):
        return portable(str(value))
    return value


def write_json(path: str | os.PathLike, data: dict) -> None:
    """``data`` as indented JSON, absolute paths cut to their last component (``portable``)."""
    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(data), indent=2) + "\n")


def save_result(path: str | os.PathLike | None, data: dict) -> None:
    """A benchmark's ``--json``: ``data`` written to ``path`` (nothing without one), said on
    stderr."""
    if path:
        write_json(path, data)
        print(f"wrote {path}", file=sys.stderr)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
