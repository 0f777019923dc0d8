"""The foreground cache of the CMO pipeline: a pasted tail image is decoded once, not each time.

Q gives every class the same share of foregrounds, so the images of small classes are pasted
again and again, always decoding to the same pixels. With a budget (``TrainConfig.fg_cache_gb``)
the pipeline keeps decoded foregrounds in memory (``fn.cmo_cache_lookup`` /
``fn.cmo_cache_window``, ``dali_cmo/ops/csrc/cmo_cache.cc``): a pasted foreground whose image is
held is cut from it, an admitted miss is decoded whole once and stored, any other miss is
region-decoded as without the cache. A region decode equals the full decode cropped, so the
batches are bit for bit those without the cache.

Admission is static: the images of highest per-image Q probability first (the smallest classes;
dataset order among equals) while their decoded sizes (from the files' headers) fit in the
budget; the store never holds more than the budget. The key is the dataset index: each entry of
the list is its own image, even when two entries name one file.

The cache is not training state: checkpoints do not hold it, a resumed run fills it again.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dali_cmo.data.datasets import LongTailDataset
from dali_cmo.data.cache import lists_dir, write_once

GIB = 2 ** 30
MEMINFO = Path("/proc/meminfo")
HEADER_CHUNK = 256  # headers read at a time while admitting


def available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is none)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_budget(gib: float, held: int = 0) -> int:
    """``gib`` (validated by ``TrainConfig``) in bytes; refuses a budget over the memory
    available now plus the ``held`` bytes that the store already holds (a store shared with a
    live pipeline)."""
    available = available_memory()
    if available is not None and gib * GIB > available + held:
        raise ValueError(f"fg_cache_gb {gib:g} GiB exceeds the memory available "
                         f"({available / GIB:.1f} GiB, MemAvailable in {MEMINFO}); give a "
                         f"smaller budget")
    return int(gib * GIB)


def decoded_bytes(dataset: LongTailDataset, indices, threads: int = 8) -> np.ndarray:
    """``H * W * 3`` (RGB, as decoded) of the images at ``indices``, from their headers; 0 for
    a file that cannot be read (the reader deals with it)."""
    from PIL import Image

    def size(i) -> int:
        try:
            with Image.open(dataset.path(int(i))) as image:
                return image.width * image.height * 3
        except OSError:
            return 0
    with ThreadPoolExecutor(threads) as pool:
        return np.fromiter(pool.map(size, indices), dtype=np.int64, count=len(indices))


def admission(dataset: LongTailDataset, probabilities: np.ndarray, budget_bytes: int
              ) -> np.ndarray:
    """The dataset indices the cache may store, best first: the highest ``probabilities``
    first (dataset order among equals), as long as their decoded bytes fit in
    ``budget_bytes``."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    chosen, left = [], budget_bytes
    for lo in range(0, len(order), HEADER_CHUNK):
        part = order[lo:lo + HEADER_CHUNK]
        sizes = np.cumsum(decoded_bytes(dataset, part))
        fit = int(np.searchsorted(sizes, left, side="right"))
        chosen.append(part[:fit])
        if fit < len(part):
            break
        left -= int(sizes[-1])
    return np.concatenate(chosen) if chosen else np.zeros(0, np.int64)


@functools.lru_cache(maxsize=1)
def _stats_function():
    import dali_cmo
    function = ctypes.CDLL(str(dali_cmo.load_plugin())).dali_cmo_cache_stats
    function.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64)]
    function.restype = ctypes.c_int
    return function


def store_stats(name: str) -> dict:
    """The counters of the store ``name``: ``hits``, ``misses`` (pasted foregrounds looked up
    so far), ``images`` stored, ``bytes`` held and ``hit_rate``; zeros before a pipeline's first
    paste and once no pipeline holds the store."""
    values = (ctypes.c_int64 * 4)()
    _stats_function()(name.encode(), values)
    hits, misses, images, held = (int(v) for v in values)
    looked_up = hits + misses
    return {"hits": hits, "misses": misses, "images": images, "bytes": held,
            "hit_rate": hits / looked_up if looked_up else 0.0}


@dataclass(frozen=True)
class ForegroundCache:
    """One pipeline's cache: its store's name, the budget, the admission file the operators
    read (one byte per dataset index, written once per content), the admitted indices (best
    first) and the share of Q's draws they take (the steady-state hit rate)."""
    name: str
    budget_bytes: int
    admission_file: Path
    admitted: np.ndarray = field(repr=False, compare=False)
    expected_hit_rate: float = 0.0

    @classmethod
    def for_stream(cls, dataset: LongTailDataset, probabilities: np.ndarray, gib: float,
                   folder: Path | None = None) -> "ForegroundCache":
        """A cache of ``gib`` GiB for a foreground stream drawing dataset index ``i`` with
        ``probabilities[i]``; refuses a budget over the memory available."""
        budget = int(gib * GIB)
        # named by what it holds: the pipelines of one process over one list share a store
        key = hashlib.blake2b(dataset.files.digest().encode(), digest_size=12)
        for part in (dataset.labels.tobytes(), np.asarray(probabilities).tobytes(),
                     str(budget).encode()):
            key.update(part)
        name = f"fg-{key.hexdigest()}"
        check_budget(gib, held=store_stats(name)["bytes"])
        admitted = admission(dataset, probabilities, budget)
        flags = np.zeros(len(dataset), np.uint8)
        flags[admitted] = 1
        mask = flags.tobytes()
        path = write_once(folder or lists_dir(), f"admission-"
                           f"{hashlib.blake2b(mask, digest_size=12).hexdigest()}.bin", [mask])
        hit_rate = float(np.sum(probabilities[admitted]) / np.sum(probabilities))
        return cls(name, budget, path, admitted, hit_rate)

    def fill(self, dataset: LongTailDataset, batch_size: int = 32, num_threads: int = 2):
        """Decodes and stores every admitted image now (what a run's first epochs do as they
        go) once a pipeline using this cache is built: a warm start, for benchmarks. Returns
        the filling pipeline: while it exists, the store outlives the pipelines using it."""
        from nvidia.dali import fn, pipeline_def, types
        indices = self.admitted
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
        """See :func:`store_stats`."""
        return store_stats(self.name)

    def describe(self) -> str:
        """One line for the run log."""
        s = self.stats()
        return (f"foreground cache: {s['hits']} hits, {s['misses']} misses (hit rate "
                f"{s['hit_rate']:.2f}; {self.expected_hit_rate:.2f} once full), {s['images']} of "
                f"{len(self.admitted)} admitted images held, {s['bytes'] / GIB:.2f} of "
                f"{self.budget_bytes / GIB:g} GiB")
