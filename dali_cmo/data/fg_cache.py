"""The foreground cache of the CMO pipeline: a pasted tail image is decoded once, not each time.

Q gives every class the same share of foregrounds, so the images of small classes are pasted
again and again, always decoding to the same pixels. With a budget (``TrainConfig.fg_cache_gb``)
the pipeline keeps decoded foregrounds in memory (``fn.cmo_cache_lookup`` /
``fn.cmo_cache_window``, ``dali_cmo/ops/csrc/cmo_cache.cc``): a pasted foreground whose image is
held is cut from it, an admitted miss is decoded whole once and stored, any other miss is
region-decoded as without the cache. A region decode equals the full decode cropped, so the
batches are bit for bit those without the cache.

Admission is static: the images of highest per-image Q probability first (the smallest classes;
dataset order among equals), as many as the budget holds at the mean decoded size of a sample
of the list's images; the store also never holds more than the budget. The key is the dataset
index: each entry of the list is its own image, even when two entries name one file.

The cache is not training state: checkpoints do not hold it, a resumed run fills it again.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.reader import _write_once, lists_dir

GIB = 2 ** 30
MEMINFO = Path("/proc/meminfo")
SIZE_SAMPLE = 64  # images whose headers give the mean decoded size


def available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_budget(gib: float) -> int:
    """``gib`` in bytes; refuses a negative budget or one over the memory available now."""
    if gib < 0:
        raise ValueError(f"fg_cache_gb must be >= 0, got {gib:g}")
    available = available_memory()
    if available is not None and gib * GIB > available:
        raise ValueError(f"fg_cache_gb {gib:g} GiB exceeds the memory available "
                         f"({available / GIB:.1f} GiB, MemAvailable in {MEMINFO}); give a "
                         f"smaller budget")
    return int(gib * GIB)


def mean_decoded_bytes(dataset: LongTailDataset, sample: int = SIZE_SAMPLE) -> float:
    """Mean ``H * W * 3`` (RGB) of ``sample`` images spread evenly over the list (headers
    only)."""
    from PIL import Image
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(sample, len(dataset))).astype(int))
    sizes = []
    for i in indices:
        with Image.open(dataset.path(int(i))) as image:
            sizes.append(image.width * image.height * 3)
    return float(np.mean(sizes))


def admission(probabilities: np.ndarray, budget_bytes: int, image_bytes: float) -> np.ndarray:
    """Which dataset indices the cache may store: the highest ``probabilities`` first (dataset
    order among equals), as many as ``budget_bytes`` holds at ``image_bytes`` each."""
    capacity = int(budget_bytes // max(image_bytes, 1.0))
    admitted = np.zeros(len(probabilities), dtype=bool)
    admitted[np.argsort(-np.asarray(probabilities), kind="stable")[:capacity]] = True
    return admitted


@functools.lru_cache(maxsize=1)
def _stats_function():
    import dali_cmo
    function = ctypes.CDLL(str(dali_cmo.load_plugin())).dali_cmo_cache_stats
    function.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]
    function.restype = ctypes.c_int
    return function


@dataclass(frozen=True)
class ForegroundCache:
    """One pipeline's cache: its store's name, the budget and the admission file the
    operators read (one byte per dataset index, written once per content)."""
    name: str
    budget_bytes: int
    admission_file: Path
    admitted: int  # images admission allows

    @classmethod
    def for_stream(cls, dataset: LongTailDataset, probabilities: np.ndarray, gib: float,
                   folder: Path | None = None) -> "ForegroundCache":
        """A cache of ``gib`` GiB for a foreground stream drawing dataset index ``i`` with
        ``probabilities[i]``; refuses a budget over the memory available."""
        budget = check_budget(gib)
        admitted = admission(probabilities, budget, mean_decoded_bytes(dataset))
        mask = admitted.astype(np.uint8).tobytes()
        name = f"admission-{hashlib.blake2b(mask, digest_size=12).hexdigest()}.bin"
        path = _write_once(folder or lists_dir(), name, [mask])
        # named by what it holds: the pipelines of one process over one list share a store
        key = hashlib.blake2b(dataset.files.digest().encode(), digest_size=12)
        for part in (dataset.labels.tobytes(), mask, str(budget).encode()):
            key.update(part)
        return cls(f"fg-{key.hexdigest()}", budget, path, int(admitted.sum()))

    def fill(self, dataset: LongTailDataset, batch_size: int = 32, num_threads: int = 2):
        """Decodes and stores every admitted image now (what a run's first epochs do as they
        go) once a pipeline using this cache is built: a warm start, for benchmarks. Returns
        the filling pipeline: while it exists, the store outlives the pipelines using it."""
        from nvidia.dali import fn, pipeline_def, types
        indices = np.flatnonzero(np.frombuffer(self.admission_file.read_bytes(), np.uint8))
        batches = [indices[lo:lo + batch_size] for lo in range(0, len(indices), batch_size)]

        def source(info):
            if info.iteration >= len(batches):
                raise StopIteration
            chosen = batches[info.iteration]
            return ([np.fromfile(dataset.path(int(i)), np.uint8) for i in chosen],
                    [np.array(i, np.int64) for i in chosen])

        @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=None)
        def filling():
            encoded, index = fn.external_source(source, num_outputs=2, batch=True,
                                                batch_info=True)
            whole = fn.decoders.image(encoded, output_type=types.RGB)
            extent = fn.cast(fn.slice(whole.shape(), 0, 2, axes=[0]), dtype=types.FLOAT)
            return fn.cmo_cache_window(index, extent * 0, extent, whole, cache=self.name)

        pipe = filling()
        pipe.build()
        for _ in batches:
            pipe.run()
        return pipe

    def operator_arguments(self) -> dict:
        """Arguments of ``fn.cmo_cache_lookup``."""
        return dict(cache=self.name, admission_file=str(self.admission_file),
                    budget_bytes=self.budget_bytes)

    def stats(self) -> dict:
        """``hits``, ``misses`` (pasted foregrounds looked up so far), ``images`` stored,
        ``bytes`` held and ``hit_rate``; zeros before the pipeline's first paste and once no
        pipeline holds the cache."""
        values = (ctypes.c_int64 * 4)()
        _stats_function()(self.name.encode(), values)
        hits, misses, images, held = (int(v) for v in values)
        looked_up = hits + misses
        return {"hits": hits, "misses": misses, "images": images, "bytes": held,
                "hit_rate": hits / looked_up if looked_up else 0.0}

    def describe(self) -> str:
        """One line for the run log."""
        s = self.stats()
        return (f"foreground cache: {s['hits']} hits, {s['misses']} misses (hit rate "
                f"{s['hit_rate']:.2f}), {s['images']} of {self.admitted} admitted images held, "
                f"{s['bytes'] / GIB:.2f} of {self.budget_bytes / GIB:g} GiB")
