"""Long-tailed datasets: file lists, labels and class counts.

(One module for the three on-disk formats and their checks, so that every format reports a
problem the same way: by file and line. Hence its length.)

A dataset is a list of image files (relative to a root folder) with one integer label each,
``0 <= label < C``, every class non-empty. Three on-disk formats are read:

* split files (``ImageNet_LT_train.txt``, ``Places_LT_train.txt``, ``iNaturalist18_train.txt``):
  one ``relative/path.jpg <label>`` per line, see :func:`read_split_file`;
* iNaturalist 2018 COCO-style JSON, see :func:`read_inat_json`;
* image folders ``root/<class>/<file>`` like torchvision's ``ImageFolder``, see
  :func:`read_image_folder`.

:func:`long_tailed_subset` builds CIFAR-LT style subsets with an exponential class profile, and
:meth:`LongTailDataset.class_groups` splits classes into Many / Medium / Few shots
(:mod:`dali_cmo.data.groups`).
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from dali_cmo.data.groups import CIFAR_RULE, ClassGroups, GroupRule

#: How many offending items an error or warning message lists before summarising the rest.
MAX_LISTED = 5

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DatasetError(ValueError):
    """A dataset description is malformed or inconsistent; the message names file and line."""


class MissingFilesError(DatasetError):
    """Listed files are not there (the message names the first few, with their lines)."""


def _summarise(items: Sequence[object], noun: str) -> str:
    """``"3 <noun>: a, b, c"``, listing at most :data:`MAX_LISTED` items."""
    listed = ", ".join(str(item) for item in items[:MAX_LISTED])
    more = f", ... ({len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return f"{len(items)} {noun}: {listed}{more}"


class PathList(Sequence[str]):
    """File paths held compactly: their UTF-8 bytes in one array, each path a ``[start, end)``
    span of it. A list of 2.7M paths costs its bytes plus 16 per path, not a Python string
    each (about 80 bytes more); items are decoded when asked for. Compares equal to any
    sequence of the same strings (a tuple of paths, say).

    Args:
        paths: the paths (str).
    """

    __slots__ = ("_bytes", "_starts", "_ends", "_hashes", "_sorted", "_digest")
    CHUNK = 65_536  # paths decoded at a time when iterating

    def __init__(self, paths: Iterable[str] = ()) -> None:
        encoded = [path.encode("utf-8") for path in paths]
        self._bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        self._starts = self._ends - [len(e) for e in encoded]
        self._hashes = self._sorted = self._digest = None

    @classmethod
    def from_spans(cls, data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> "PathList":
        """The paths ``data[starts[i]:ends[i]]`` (uint8 UTF-8 bytes; shared, not copied)."""
        out = cls.__new__(cls)
        out._bytes, out._starts, out._ends = data, np.asarray(starts, np.int64), \
            np.asarray(ends, np.int64)
        out._hashes = out._sorted = out._digest = None
        return out

    @classmethod
    def compacted(cls, data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> "PathList":
        """The paths ``data[starts[i]:ends[i]]`` copied back to back into a buffer of their
        own (spans in increasing order, not overlapping: a split file's paths), so that
        :meth:`joined`, :meth:`digest` and :meth:`hashes` read one contiguous slice, and the
        bytes between paths (labels, line breaks) are not kept."""
        starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
        lengths = ends - starts
        if len(starts) > 1 and ((starts[1:] < ends[:-1]).any() or (lengths < 0).any()):
            raise ValueError("compacted() takes increasing, disjoint spans")
        offsets = np.cumsum(lengths)
        packed = np.empty(int(offsets[-1]) if len(offsets) else 0, dtype=np.uint8)
        for lo in range(0, len(starts), cls.CHUNK):  # a mask of each block's path bytes
            s, e = starts[lo:lo + cls.CHUNK], ends[lo:lo + cls.CHUNK]
            bounds = np.empty(2 * len(s) - 1, dtype=np.int64)  # path, gap, ..., gap, path
            bounds[0::2], bounds[1::2] = s - s[0], e[:-1] - s[0]
            keep = np.zeros(len(bounds), dtype=bool)
            keep[0::2] = True
            sizes = np.diff(np.append(bounds, e[-1] - s[0]))
            out = offsets[lo + len(s) - 1]
            packed[out - sizes[0::2].sum():out] = data[s[0]:e[-1]][np.repeat(keep, sizes)]
        return cls.from_spans(packed, offsets - lengths, offsets)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.from_spans(self._bytes, self._starts[i], self._ends[i])
        return str(memoryview(self._bytes)[self._starts[i]:self._ends[i]], "utf-8")

    def take(self, indices) -> "PathList":
        """The paths ``indices`` (in that order), sharing this list's bytes."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.from_spans(self._bytes, self._starts[indices], self._ends[indices])

    def __iter__(self):
        view = memoryview(self._bytes)
        for lo in range(0, len(self), self.CHUNK):
            for start, end in zip(self._starts[lo:lo + self.CHUNK].tolist(),
                                  self._ends[lo:lo + self.CHUNK].tolist()):
                yield str(view[start:end], "utf-8")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # mutable-free but compared by value, like a list

    def __repr__(self) -> str:
        shown = ", ".join(repr(path) for path in self[:3])
        return f"PathList([{shown}{', ...' if len(self) > 3 else ''}], {len(self)} paths)"

    def lengths(self) -> np.ndarray:
        """The byte length of each path."""
        return self._ends - self._starts

    def first_and_last_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each path's first and last byte (0 for an empty path)."""
        empty = self._ends == self._starts
        first = np.where(empty, 0, self._bytes[np.where(empty, 0, self._starts)])
        last = np.where(empty, 0, self._bytes[np.where(empty, 0, self._ends - 1)])
        return first, last

    def joined(self, lo: int = 0, hi: int | None = None) -> tuple[bytes, np.ndarray]:
        """Paths ``lo:hi`` as one ``bytes`` back to back, and the offset where each ends."""
        starts, ends = self._starts[lo:hi], self._ends[lo:hi]
        lengths = ends - starts
        offsets = np.cumsum(lengths)
        if len(starts) and (starts[1:] == ends[:-1]).all():  # contiguous: one slice
            return self._bytes[starts[0]:ends[-1]].tobytes(), offsets
        total = int(offsets[-1]) if len(offsets) else 0
        gather = np.arange(total) + np.repeat(starts - (offsets - lengths), lengths)
        return self._bytes[gather].tobytes(), offsets

    def encoded(self, indices) -> list[bytes]:
        """The UTF-8 bytes of the paths ``indices``, one ``bytes`` each.

        Gathered with NUL after each path (no path holds one) and split in C: no Python code
        per path."""
        indices = np.asarray(indices, dtype=np.int64)
        if not len(indices) or not len(self._bytes):
            return [b""] * len(indices)
        starts = self._starts[indices]
        lengths = self._ends[indices] - starts
        ends = np.cumsum(lengths + 1)  # where each path's NUL ends
        source = np.arange(int(ends[-1])) + np.repeat(starts - (ends - lengths - 1), lengths + 1)
        out = self._bytes[np.minimum(source, len(self._bytes) - 1)]
        out[ends - 1] = 0
        paths = out.tobytes().split(b"\0")[:-1]
        if len(paths) != len(indices):  # as os.path.exists would say
            raise ValueError("a path holds a NUL byte (embedded null byte)")
        return paths

    def last_position(self, character: str) -> np.ndarray:
        """Where each path's last ``character`` (one ASCII character) is, as an index into
        the path (-1 where it has none); vectorised over the list's bytes."""
        found = np.flatnonzero(self._bytes == ord(character))
        at = np.full(len(self), -1, dtype=np.int64)
        if len(found):
            k = np.searchsorted(found, self._ends) - 1  # the last one before each path's end
            last = found[np.maximum(k, 0)]
            inside = (k >= 0) & (last >= self._starts)
            at[inside] = (last - self._starts)[inside]
        return at

    def split_after_last(self, character: str) -> tuple["PathList", "PathList"]:
        """Each path cut after its last ``character``: ``"a/b/c.jpg"`` gives ``"a/b/"`` and
        ``"c.jpg"``, a path without it ``""`` and itself. Both lists share this list's
        bytes."""
        cut = self._starts + self.last_position(character) + 1
        return (self.from_spans(self._bytes, self._starts, cut),
                self.from_spans(self._bytes, cut, self._ends))

    def hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """64-bit hashes (uint64) of every path and of its folder (the path up to its last
        ``/``): :func:`_polynomial_hashes` of the bytes, vectorised; equal strings hash equal,
        different ones almost never do. One pass for both, kept: the duplicate search and the
        existence check share it."""
        return self._hash_parts()[:2]

    def _hash_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`hashes`' path and folder hashes, and each folder's length in bytes."""
        if self._hashes is not None:
            return self._hashes
        cut = self.last_position("/") + 1  # each folder's length
        if self.is_packed():  # the paths in order in one buffer: hashed where they are
            paths, folders = _polynomial_hashes(self._bytes, self._starts, self._ends,
                                                self._starts + cut)
        else:
            paths, folders = np.zeros(len(self), np.uint64), np.zeros(len(self), np.uint64)
            lengths = self.lengths()
            for lo in range(0, len(self), self.CHUNK):
                data, ends = self.joined(lo, lo + self.CHUNK)
                hi = lo + len(ends)
                starts = ends - lengths[lo:hi]
                paths[lo:hi], folders[lo:hi] = _polynomial_hashes(
                    np.frombuffer(data, np.uint8), starts, ends, starts + cut[lo:hi])
        self._hashes = paths, folders, cut
        return self._hashes

    def drop_hashes(self) -> None:
        """Forget :meth:`hashes` and :meth:`sorted_hashes` (the loading checks' shared work;
        24 bytes a path) once the checks are done; asked again, they are computed again."""
        self._hashes = self._sorted = None

    def sorted_hashes(self) -> np.ndarray:
        """The path hashes of :meth:`hashes`, sorted (kept: the duplicate search and the
        existence check share them)."""
        if self._sorted is None:
            self._sorted = np.sort(self.hashes()[0])
        return self._sorted

    def is_packed(self) -> bool:
        """Whether the paths lie in order, back to back, in the buffer."""
        return bool((self._starts[1:] == self._ends[:-1]).all())

    def duplicates(self) -> list[str]:
        """The paths listed more than once (each once, in first-listed order).

        Vectorised: :meth:`hashes`, then only the paths whose hash repeats are compared as
        strings."""
        if len(self) < 2:
            return []
        hashes, ordered = self.hashes()[0], self.sorted_hashes()
        if not (ordered[1:] == ordered[:-1]).any():  # the usual case: no sort of indices
            return []
        order = np.argsort(hashes, kind="stable")
        repeated = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        suspects = np.unique(np.concatenate([order[repeated], order[repeated + 1]]))
        counts = Counter(self[int(i)] for i in suspects)
        return [path for path, n in counts.items() if n > 1]

    def digest(self) -> str:
        """A hex digest of the paths (their bytes and boundaries), computed once and kept
        (a list is read-only: every stream, rank and cache asks for the same value)."""
        if self._digest is None:
            digest = hashlib.blake2b(digest_size=12)
            for lo in range(0, len(self), self.CHUNK):
                data, ends = self.joined(lo, lo + self.CHUNK)
                digest.update(data)
                digest.update(ends.tobytes())
            self._digest = digest.hexdigest()
        return self._digest


#: The polynomial hash's base (odd, so its powers modulo 2^64 are invertible) and inverse.
_BASE = 0x9E3779B97F4A7C15
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_POWERS: list[np.ndarray] = []  # [base^i, base^-i, sum of base^j for j < i], grown on demand


def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``base^i`` and ``base^-i`` (mod 2^64) for ``i < size``, and their running sums
    ``sum(base^j, j < i)`` for ``i <= size`` (kept for the next call)."""
    if not _POWERS or len(_POWERS[0]) < size:
        size = max(size, _HASH_BYTES + 1)
        tables = []
        for base in (_BASE, _BASE_INVERSE):
            table = np.full(size, base, dtype=np.uint64)
            table[0] = 1
            tables.append(np.cumprod(table, dtype=np.uint64))  # wraps modulo 2^64
        tables.append(np.concatenate([np.zeros(1, np.uint64),
                                     np.cumsum(tables[0], dtype=np.uint64)]))
        _POWERS[:] = tables
    return _POWERS[0], _POWERS[1], _POWERS[2]


_HASH_BYTES = 1 << 18  # bytes hashed at a time (the power tables' length)


def _polynomial_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                       cuts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``h(data[s:e])`` for every span and ``h(data[s:c])`` for every cut ``c`` (``s <= c <=
    e``; default ``s``), as uint64, where ``h(b) = sum((b[j] + 1) * base^j) mod 2^64``: so
    ``h(x + y) = h(x) + base^len(x) * h(y)``, and appending bytes changes a string's hash.

    ``data``: uint8; spans in increasing order, not overlapping. About :data:`_HASH_BYTES`
    bytes at a time: one multiply and one running sum over them, then a few operations per
    span (its sum from the running sum, shifted to start at power 0 by ``base^-s``)."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    cuts = starts if cuts is None else np.asarray(cuts, np.int64)
    whole, head = np.zeros(len(starts), np.uint64), np.zeros(len(starts), np.uint64)
    if not len(starts):
        return whole, head
    marks = starts[0] + _HASH_BYTES * np.arange(1, (ends[-1] - starts[0]) // _HASH_BYTES + 1)
    bounds = np.unique(np.concatenate([[0], np.searchsorted(starts, marks), [len(starts)]]))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        base = int(starts[lo])
        chunk = data[base:int(ends[hi - 1])]
        powers, inverse, sums = _power_tables(len(chunk) + 1)
        running = np.zeros(len(chunk) + 1, dtype=np.uint64)
        np.cumsum(np.multiply(chunk, powers[:len(chunk)], dtype=np.uint64), out=running[1:])
        s, e, c = starts[lo:hi] - base, ends[lo:hi] - base, cuts[lo:hi] - base
        shift = inverse[s]  # sum of (b + 1) * base^j over [s, x), times base^-s
        whole[lo:hi] = (running[e] - running[s] + sums[e] - sums[s]) * shift
        head[lo:hi] = (running[c] - running[s] + sums[c] - sums[s]) * shift
    return whole, head


def labelled_lines(files: PathList, labels: np.ndarray, separator: str):
    """``<path><separator><label>\\n`` per entry, as ``bytes`` of :attr:`PathList.CHUNK` lines
    at a time, built with NumPy (labels: non-negative integers)."""
    labels = np.asarray(labels, dtype=np.int64)
    powers = 10 ** np.arange(1, 19, dtype=np.int64)
    for lo in range(0, len(files), PathList.CHUNK):
        data, path_ends = files.joined(lo, lo + PathList.CHUNK)
        path_lengths = np.diff(path_ends, prepend=0)
        chunk = labels[lo:lo + len(path_ends)]
        digits = np.searchsorted(powers, chunk, side="right") + 1
        ends = np.cumsum(path_lengths + digits + 2)  # separator and line break
        starts = ends - path_lengths - digits - 2
        out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
        out[np.arange(len(data)) + np.repeat(starts - (path_ends - path_lengths),
                                             path_lengths)] = np.frombuffer(data, np.uint8)
        out[starts + path_lengths] = ord(separator)
        for k in range(int(digits.max(initial=0))):  # the k-th digit from the right
            has = digits > k
            out[(ends - 2 - k)[has]] = ord("0") + (chunk[has] // 10 ** k) % 10
        out[ends - 1] = ord("\n")
        yield out.tobytes()


@dataclass(frozen=True, eq=False)
class LongTailDataset:
    """Image files with one label each.

    Args:
        root: the folder the file paths are relative to.
        files: ``files[i]``, the path of sample i relative to ``root`` (as listed in the source;
            held as a :class:`PathList`).
        labels: ``labels[i]``, the class of sample i in ``0..num_classes-1`` (stored as a
            read-only int64 array).
        class_names: ``class_names[k]``, the name of class k.
        source: where the description was read from (for messages).
        lines: ``lines[i]``, the line of ``source`` that lists sample i (split files), or None
            (held as a read-only int64 array).
    """

    root: Path
    files: PathList
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    lines: np.ndarray | None = None

    def __post_init__(self) -> None:
        labels = np.array(self.labels, dtype=np.int64)
        labels.flags.writeable = False
        object.__setattr__(self, "root", Path(self.root))
        if not isinstance(self.files, PathList):
            object.__setattr__(self, "files", PathList(self.files))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "labels", labels)
        if self.lines is not None:
            lines = np.array(self.lines, dtype=np.int64)
            lines.flags.writeable = False
            object.__setattr__(self, "lines", lines)
        if labels.ndim != 1 or len(labels) != len(self.files):
            raise DatasetError(f"{self.source}: {len(self.files)} files but labels of shape "
                               f"{labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DatasetError(f"{self.source}: labels must lie in 0..{len(self.class_names) - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> np.ndarray:
        """``n_k``, the number of images of class k (int64, length ``num_classes``)."""
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def in_memory(self) -> bool:
        """Whether the images are held as decoded pixels (:class:`ArrayDataset`), not files."""
        return False

    def path(self, i: int) -> Path:
        return self.root / self.files[i]

    def location(self, i: int) -> str | None:
        """Where sample i is listed, for messages (``"line 17 of train.txt"``), when known."""
        return f"line {self.lines[i]} of {self.source}" if self.lines is not None else None

    def subset(self, keep: Sequence[int], note: str) -> "LongTailDataset":
        """The samples ``keep`` (in that order), with ``note`` added to the source.

        Args:
            keep: indices of the samples to keep.
            note: what the subset is, appended to ``source`` in parentheses.
        """
        keep = np.asarray(keep, dtype=np.int64)
        lines = self.lines[keep] if self.lines is not None else None
        return LongTailDataset(self.root, self.files.take(keep), self.labels[keep],
                               self.class_names, f"{self.source} ({note})", lines)

    def class_groups(self, rule: GroupRule = CIFAR_RULE) -> ClassGroups:
        """Many / Medium / Few split of this dataset's classes under ``rule``."""
        return ClassGroups.from_counts(self.class_counts, rule)


@dataclass(frozen=True, eq=False)
class ArrayDataset(LongTailDataset):
    """A :class:`LongTailDataset` whose images are in memory: ``images[i]`` is sample i as uint8
    HWC RGB (one array, all images the same shape). ``files[i]`` names where it came from (for
    messages). The pipelines hand these pixels to DALI as they are, without decoding."""

    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        images = self.images
        if images is None or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[0] != len(self.files) or images.shape[3] != 3:
            shape = None if images is None else (images.shape, images.dtype)
            raise DatasetError(f"{self.source}: images must be uint8 of shape "
                               f"({len(self.files)}, H, W, 3); got {shape}")

    @property
    def in_memory(self) -> bool:
        return True

    def subset(self, keep: Sequence[int], note: str) -> "ArrayDataset":
        """The samples ``keep`` (in that order), pixels included; see
        :meth:`LongTailDataset.subset`."""
        files = super().subset(keep, note)
        return ArrayDataset(files.root, files.files, files.labels, files.class_names,
                            files.source, files.lines,
                            images=self.images[np.asarray(keep, dtype=np.int64)])


# --------------------------------------------------------------------------- checks

def _check_root(root: Path, source: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"{source}: image root {root} does not exist or is not a folder")


def _plain_entries(folder: bytes) -> tuple[bytes, int]:
    """The names of the non-symlink entries of ``folder``, NUL-separated, and their number
    (``(b"", 0)`` when it cannot be listed)."""
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if not entry.is_symlink()]
    except OSError:
        return b"", 0
    return b"\0".join(names), len(names)


def _missing_files(root: Path, files: Sequence[str], workers: int = 4,
                   batch: int = 256) -> list[int]:
    """Indices ``i`` with ``not os.path.exists(root / files[i])``, in increasing order.

    Each folder (the part of a path up to its last ``/``, told apart by hash) is listed once
    (threads across folders; ``batch`` listings hashed at a time); the names of its plain
    entries (not symbolic links) are hashed as the paths are (:meth:`PathList.hashes`:
    ``h(folder + name) = h(folder) + base^len(folder) * h(name)``), and a path whose hash
    is among the listed entries' is there. Only the others (absent, symbolic links,
    unnormalised paths, folders that cannot be listed) are ``stat``-ed, so every index
    returned is a file ``os.path.exists`` denies; a missing file passes only if its 64-bit
    hash equals that of a listed one (odds about 1 in 2^64 / (files x entries)).
    No Python code runs per path or per hash: per folder, and per entry inside the listing.
    """
    files = files if isinstance(files, PathList) else PathList(files)
    if not len(files):
        return []
    hashes, folder_hashes, cut = files._hash_parts()
    # one path per distinct folder hash (runs first: lists are mostly sorted by folder)
    run = np.flatnonzero(np.concatenate([[True], folder_hashes[1:] != folder_hashes[:-1]]))
    first = run[np.unique(folder_hashes[run], return_index=True)[1]]
    first.sort()
    folders = PathList.from_spans(files._bytes, files._starts[first],
                                  files._starts[first] + cut[first]).encoded(
                                      np.arange(len(first)))
    powers = _power_tables(int(cut.max()) + 1)[0]
    root = os.fsencode(root)
    listed = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        listings = pool.map(_plain_entries, [os.path.join(root, folder) for folder in folders])
        for lo in range(0, len(first), batch):  # hashed while the next ones are listed
            part = first[lo:lo + batch]
            names, counts = zip(*(next(listings) for _ in part))
            counts = np.array(counts, dtype=np.int64)
            if not counts.sum():
                continue
            joined = np.frombuffer(b"\0".join(name for name in names if name) + b"\0",
                                   dtype=np.uint8)
            ends = np.flatnonzero(joined == 0)
            starts = np.concatenate([[0], ends[:-1] + 1])
            name_hashes = _polynomial_hashes(joined, starts, ends)[0]
            owner = np.repeat(part, counts)  # a path of the entry's folder
            listed.append(folder_hashes[owner] + powers[cut[owner]] * name_hashes)
    # sorted against sorted (a search with sorted keys stays in cache), then the hashes not
    # found back to their indices
    listed = np.sort(np.concatenate(listed)) if listed else np.zeros(1, np.uint64)
    ordered = files.sorted_hashes()
    found = listed[np.minimum(np.searchsorted(listed, ordered), len(listed) - 1)] == ordered
    absent = np.unique(ordered[~found])
    suspects = np.flatnonzero(absent[np.minimum(np.searchsorted(absent, hashes),
                                                len(absent) - 1)] == hashes) \
        if len(absent) else absent.astype(np.int64)
    return [i for i, path in zip(suspects.tolist(), files.encoded(suspects))
            if not os.path.exists(os.path.join(root, path))]


def _check_files(root: Path, files: Sequence[str], source: str,
                 describe: Callable[[int], str] | None = None) -> None:
    """Raise one :class:`MissingFilesError` listing the first missing files.

    ``describe(i)``, when given, replaces ``files[i]`` in the message (e.g. ``"line 7: a.jpg"``).
    """
    missing = _missing_files(root, files)
    if missing:
        names = [describe(i) if describe else files[i] for i in missing]
        noun = f"of {len(files)} files missing under {root}"
        hint = ("; none of the listed files is there: is the image root right (--root)?"
                if len(missing) == len(files) else "")
        raise MissingFilesError(f"{source}: {_summarise(names, noun)}{hint}")


def _check_classes(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Every class ``0..num_classes-1`` must hold at least one image."""
    empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(empty):
        noun = f"of {num_classes} classes have no images"
        raise DatasetError(f"{source}: {_summarise(empty.tolist(), noun)} "
                           "(labels must cover 0..C-1)")


def _warn_duplicates(files: PathList, source: str) -> None:
    duplicates = files.duplicates()
    if duplicates:
        warnings.warn(f"{source}: {_summarise(duplicates, 'paths listed more than once')}",
                      stacklevel=3)


def _class_names(class_names: Sequence[str] | None, num_classes: int,
                 source: str) -> tuple[str, ...]:
    if class_names is None:
        return tuple(str(k) for k in range(num_classes))
    if len(class_names) != num_classes:
        raise DatasetError(f"{source}: {len(class_names)} class names for {num_classes} classes")
    return tuple(class_names)


# --------------------------------------------------------------------------- split files

def _read_text(path: Path) -> str:
    """The text of a JSON list: UTF-8 (:func:`_check_utf8`), a leading byte-order mark
    dropped."""
    data = np.fromfile(path, dtype=np.uint8)
    _check_utf8(data, str(path))
    return data.tobytes().decode("utf-8-sig")


def _parse_split_line(line: str, where: str) -> tuple[str, int]:
    """``"relative/path with spaces.jpg 17"`` -> ``("relative/path with spaces.jpg", 17)``."""
    parts = line.rsplit(None, 1)
    if len(parts) < 2:
        raise DatasetError(f"{where}: missing label "
                           f"(expected '<relative/path> <label>', got {line!r})")
    path, token = parts
    try:
        label = int(token)
    except ValueError:
        raise DatasetError(f"{where}: label {token!r} is not an integer") from None
    if label < 0:
        raise DatasetError(f"{where}: label {label} is negative")
    return path, label


_DIGITS = 9  # labels up to 999,999,999 take the vectorised path


def _split_entries(path: Path, source: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A split file's bytes and, per entry, ``(path start, path end, label, line number)``.

    Lines of the plain form ``<path><one space or tab><digits>`` (path without surrounding
    whitespace, not a comment) are parsed with NumPy all at once; every other line (blank,
    comments, CRLF, odd spacing, bad labels) goes through :func:`_parse_split_line`, the rule
    of the format, which also raises the errors naming file and line.

    One pass finds every byte up to the space (line breaks, spaces, tabs, control
    characters); a line's label is what follows the last of them before its end, and its
    digits are read from the end, as many passes over the lines as the longest label has.
    """
    data = np.fromfile(path, dtype=np.uint8)
    _check_utf8(data, source)
    step = 1 << 24  # (a block at a time: no temporary as large as the file)
    blank = np.concatenate([np.flatnonzero(data[lo:lo + step] <= ord(" ")) + lo
                            for lo in range(0, len(data), step)] or [np.zeros(0, np.int64)])
    breaks = blank[data[blank] == ord("\n")]
    # a byte-order mark (some editors write one) is not part of the first path
    starts = np.concatenate([[len(codecs.BOM_UTF8) if data[:3].tobytes() == codecs.BOM_UTF8
                              else 0], breaks + 1])
    ends = np.concatenate([breaks, [len(data)]])
    if starts[-1] == len(data):  # the file ends with a line break
        starts, ends = starts[:-1], ends[:-1]
    numbers = np.arange(1, len(starts) + 1)
    # the last blank byte before each line's end, and the token after it
    separator = blank[np.maximum(np.searchsorted(blank, ends) - 1, 0)] if len(blank) \
        else np.full(len(starts), -1, dtype=np.int64)
    digits = ends - separator - 1
    candidate = ((separator > starts) & (digits >= 1) & (digits <= _DIGITS)
                 & np.isin(data[np.maximum(separator, 0)], (ord(" "), ord("\t"))))
    label = np.zeros(len(starts), dtype=np.int64)
    for k in range(1, int(digits[candidate].max(initial=0)) + 1):  # the k-th digit from the end
        has = candidate & (digits >= k)
        digit = data[np.where(has, ends - k, 0)] - np.uint8(ord("0"))  # wraps below "0"
        candidate &= ~has | (digit <= 9)
        label += np.where(has, digit, 0).astype(np.int64) * 10 ** (k - 1)
    path_end = separator
    first = data[np.minimum(starts, len(data) - 1)]
    last = data[np.maximum(path_end - 1, 0)]
    plain = (candidate & (first > ord(" ")) & (first < 0x80) & (first != ord("#"))
             & (last > ord(" ")) & (last < 0x80))
    odd = np.flatnonzero(~plain)
    if len(odd):  # the format's own rule, line by line
        path_end = path_end.copy()
        text = data.tobytes() if len(odd) > 1000 else None
        keep = np.ones(len(starts), dtype=bool)
        view = memoryview(data)
        for j in odd.tolist():
            raw = (text[starts[j]:ends[j]] if text is not None
                   else bytes(view[starts[j]:ends[j]])).decode("utf-8")
            line = raw.strip()
            if not line or line.startswith("#"):
                keep[j] = False
                continue
            file, label[j] = _parse_split_line(line, f"{source}:{j + 1}")
            offset = raw.index(file)  # the path's bytes within the line
            starts[j] += len(raw[:offset].encode("utf-8"))
            path_end[j] = starts[j] + len(file.encode("utf-8"))
        starts, path_end, label, numbers = starts[keep], path_end[keep], label[keep], numbers[keep]
    return data, starts, path_end, label, numbers


def _check_utf8(data: np.ndarray, source: str, chunk: int = 1 << 24) -> None:
    """Raise a :class:`DatasetError` naming the line where ``data`` stops being UTF-8."""
    if not len(data) or data.max() < 0x80:  # ASCII is UTF-8
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for lo in range(0, len(data), chunk):
        try:
            decoder.decode(view[lo:lo + chunk], final=lo + chunk >= len(data))
        except UnicodeDecodeError as error:
            line = int(np.count_nonzero(data[:lo + error.start] == ord("\n"))) + 1
            raise DatasetError(f"{source}:{line}: not UTF-8 ({error.reason})") from None


def read_split_file(path: str | os.PathLike, root: str | os.PathLike | None = None, *,
                    num_classes: int | None = None, class_names: Sequence[str] | None = None,
                    check_files: bool = True) -> LongTailDataset:
    """Read a split file: one ``relative/path.jpg <label>`` per line.

    The last whitespace-separated token is the label, everything before it the path (so
    paths may contain spaces). Blank lines and lines starting with ``#`` are ignored.
    ``root`` defaults to the split file's folder. The number of classes C is ``num_classes``
    (or ``len(class_names)``), else ``max(label) + 1``; every class in ``0..C-1`` must occur.
    Class names default to ``str(k)``. Duplicate paths give a warning. The paths are copied
    out of the file's bytes into one buffer (:class:`PathList`): memory grows with their bytes,
    not with the entries.

    Args:
        path: the split file.
        root: the folder the listed paths are relative to.
        num_classes: C, when the list may not show every class's label.
        class_names: names of the classes (sets C too).
        check_files: check that every listed file exists.
    """
    path = Path(path)
    source = str(path)
    root = Path(root) if root is not None else path.parent
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    data, starts, ends, labels, line_numbers = _split_entries(path, source)
    if not len(labels):
        raise DatasetError(f"{source}: no entries")
    if num_classes is not None and labels.max() >= num_classes:
        j = int(np.argmax(labels >= num_classes))
        raise DatasetError(f"{source}:{line_numbers[j]}: label {labels[j]} >= num_classes "
                           f"({num_classes})")
    files = PathList.compacted(data, starts, ends)
    del data
    num_classes = num_classes if num_classes is not None else int(labels.max()) + 1
    _check_classes(labels, num_classes, source)
    _warn_duplicates(files, source)
    _check_root(root, source)
    if check_files:
        _check_files(root, files, source,
                     lambda i: f"line {line_numbers[i]}: {files[i]}")
    files.drop_hashes()
    return LongTailDataset(root, files, labels, _class_names(class_names, num_classes, source),
                           source, line_numbers)


# --------------------------------------------------------------------------- iNat JSON

def _field(entry: object, key: str, where: str) -> object:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{where} lacks {key!r}")
    return entry[key]


def _inat_categories(document: dict, annotations: list, source: str) -> tuple[list, list[str]]:
    """Sorted category ids and their names (``name`` field, else ``str(id)``).

    Without a ``categories`` list the ids are those used by the annotations.
    """
    if "categories" not in document:
        ids = sorted({_field(a, "category_id", f"{source}: annotations[{i}]")
                      for i, a in enumerate(annotations)})
        return ids, [str(i) for i in ids]
    names = {_field(c, "id", f"{source}: categories[{i}]"): c.get("name", str(c["id"]))
             for i, c in enumerate(document["categories"])}
    ids = sorted(names)
    return ids, [str(names[i]) for i in ids]


def read_inat_json(path: str | os.PathLike, root: str | os.PathLike | None = None, *,
                   check_files: bool = True) -> LongTailDataset:
    """Read an iNaturalist 2018 COCO-style annotation file.

    Uses ``images[{id, file_name}]``, ``annotations[{image_id, category_id}]`` and
    ``categories[{id, name}]``. Category ids are mapped to contiguous labels ``0..C-1`` in
    sorted id order; files keep the order of ``images``. Every image needs exactly one
    annotation and every category at least one image. ``root`` defaults to the JSON's folder
    (iNat ``file_name`` values are relative to the data folder).

    Args:
        path: the JSON file (``train2018.json``, ``val2018.json``).
        root: the folder ``file_name`` values are relative to.
        check_files: check that every listed file exists.
    """
    path = Path(path)
    source = str(path)
    root = Path(root) if root is not None else path.parent
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DatasetError(f"{source}:{error.lineno}: invalid JSON ({error.msg})") from None
    images = _field(document, "images", source)
    annotations = _field(document, "annotations", source)
    category_ids, names = _inat_categories(document, annotations, source)
    label_of_category = {c: k for k, c in enumerate(category_ids)}

    label_of_image: dict[object, int] = {}
    for i, annotation in enumerate(annotations):
        where = f"{source}: annotations[{i}]"
        image_id = _field(annotation, "image_id", where)
        category = _field(annotation, "category_id", where)
        if category not in label_of_category:
            raise DatasetError(f"{where}: category_id {category!r} is not in categories")
        if image_id in label_of_image:
            raise DatasetError(f"{where}: image_id {image_id!r} has more than one annotation")
        label_of_image[image_id] = label_of_category[category]

    files = [str(_field(image, "file_name", f"{source}: images[{i}]"))
             for i, image in enumerate(images)]
    ids = [_field(image, "id", f"{source}: images[{i}]") for i, image in enumerate(images)]
    unannotated = [f"{i} ({file})" for i, file in zip(ids, files) if i not in label_of_image]
    if unannotated:
        raise DatasetError(f"{source}: {_summarise(unannotated, 'images without annotation')}")
    if not files:
        raise DatasetError(f"{source}: no images")
    labels = np.array([label_of_image[i] for i in ids], dtype=np.int64)
    files = PathList(files)
    _check_classes(labels, len(category_ids), source)
    _warn_duplicates(files, source)
    _check_root(root, source)
    if check_files:
        _check_files(root, files, source)
    files.drop_hashes()
    return LongTailDataset(root, files, labels, tuple(names), source)


# --------------------------------------------------------------------------- image folders

def _image_files(class_dir: Path, extensions: tuple[str, ...]) -> list[str]:
    """Images below ``class_dir`` (recursively), relative to its parent, in torchvision order."""
    found = []
    for folder, _, names in sorted(os.walk(class_dir, followlinks=True)):
        relative = Path(folder).relative_to(class_dir.parent)
        found.extend((relative / name).as_posix() for name in sorted(names)
                     if name.lower().endswith(extensions))
    for file in found:
        _check_utf8_name(class_dir.parent / file)
    return found


def _check_utf8_name(path: Path) -> None:
    """Refuse a file name that is not UTF-8 (Python holds its bytes as surrogates, which no
    list, JSON report or reader downstream can carry)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        raise DatasetError(f"{shown}: the file name is not UTF-8; rename it") from None


def read_image_folder(root: str | os.PathLike, *,
                      extensions: Iterable[str] = IMAGE_EXTENSIONS,
                      check_files: bool = False) -> LongTailDataset:
    """Read ``root/<class>/<file>`` as torchvision's ``ImageFolder`` does.

    Classes are the sub-folders of ``root`` sorted by name (label k = k-th name); files are
    found recursively, in sorted order, by case-insensitive extension. Every class folder must
    hold an image. The files come from a listing, so ``check_files=True`` only catches
    dangling symbolic links.

    Args:
        root: the folder of class folders.
        extensions: file name endings counted as images (case-insensitive).
        check_files: check that every file found exists (dangling links).
    """
    root = Path(root)
    source = str(root)
    _check_root(root, source)
    extensions = tuple(e.lower() for e in extensions)
    class_names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    for name in class_names:
        _check_utf8_name(root / name)
    if not class_names:
        raise DatasetError(f"{source}: no class folders")
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        class_files = _image_files(root / name, extensions)
        if not class_files:
            raise DatasetError(f"{source}: class folder {name!r} holds no images "
                               f"(extensions {', '.join(extensions)})")
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    if check_files:
        _check_files(root, files, source)
    return LongTailDataset(root, tuple(files), np.asarray(labels, dtype=np.int64),
                           tuple(class_names), source)


# --------------------------------------------------------------------------- dispatch

def load_dataset(source: str | os.PathLike, root: str | os.PathLike | None = None, *,
                 check_files: bool = True, num_classes: int | None = None) -> LongTailDataset:
    """Read ``source``: a folder as an image folder, ``*.json`` as iNat JSON, else a split file.

    Args:
        source: split file (``relative/path.jpg <label>`` per line), iNat 2018 JSON, or image
            folder (``<class>/<file>``).
        root: image root of a split file or JSON (default: the file's folder); not for folders.
        check_files: check that every listed file exists (one error summarising the missing).
        num_classes: the number of classes, when known; it must match what is found.

    Raises:
        DatasetError: the source is missing or malformed (the message names file and line).
    """
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: not found")
    if source.is_dir():
        if root is not None:
            raise DatasetError(f"{source}: root applies to split files and JSON, "
                               "not to image folders")
        dataset = read_image_folder(source, check_files=check_files)
    elif source.suffix.lower() == ".json":
        dataset = read_inat_json(source, root, check_files=check_files)
    else:
        return read_split_file(source, root, num_classes=num_classes, check_files=check_files)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise DatasetError(f"{source}: found {dataset.num_classes} classes, "
                           f"expected num_classes={num_classes}")
    return dataset


# --------------------------------------------------------------------------- long-tailed subsets

def long_tailed_counts(num_classes: int, imbalance_ratio: float, n_max: int) -> np.ndarray:
    """CIFAR-LT class sizes: ``n_i = int(n_max * (1 / ratio) ** (i / (C - 1)))``.

    Class 0 keeps ``n_max``, class ``C-1`` keeps ``int(n_max / ratio)``; the profile in between
    is exponential (Cao et al. 2019, as used by CMO). ``C = 1`` keeps ``n_max``.
    """
    if not imbalance_ratio >= 1 or not np.isfinite(imbalance_ratio):
        raise ValueError(f"imbalance_ratio must be a finite number >= 1, got {imbalance_ratio}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if n_max < 1:
        raise ValueError(f"n_max must be >= 1, got {n_max}")
    factor = 1.0 / imbalance_ratio
    steps = max(num_classes - 1, 1)
    return np.array([int(n_max * factor ** (i / steps)) for i in range(num_classes)],
                    dtype=np.int64)


def long_tailed_subset(dataset: LongTailDataset, imbalance_ratio: float, *, seed: int = 0,
                       n_max: int | None = None) -> LongTailDataset:
    """Subsample ``dataset`` to the CIFAR-LT profile of :func:`long_tailed_counts`.

    ``n_max`` defaults to the largest class count. Class k keeps a uniformly random subset of
    its images, drawn by a generator seeded with ``(seed, k)``; files keep their order.
    CIFAR-10 train with ratio 100 keeps 12,406 images, CIFAR-100 10,847.
    """
    counts = dataset.class_counts
    quotas = long_tailed_counts(dataset.num_classes, imbalance_ratio,
                                int(counts.max()) if n_max is None else n_max)
    short = np.flatnonzero(counts < quotas)
    if len(short):
        raise DatasetError(f"{dataset.source}: " + _summarise(
            [f"{k} ({counts[k]} < {quotas[k]})" for k in short],
            f"classes have fewer images than imbalance_ratio={imbalance_ratio} asks for"))
    members = np.split(np.argsort(dataset.labels, kind="stable"), np.cumsum(counts)[:-1])
    keep = np.concatenate([np.random.default_rng([seed, k]).choice(members[k], quota, replace=False)
                           for k, quota in enumerate(quotas)])
    keep.sort()
    return dataset.subset(keep, f"long-tailed subset: imbalance_ratio={imbalance_ratio}, "
                                f"seed={seed}")


def repeated_file_dataset(images_dir: str | os.PathLike, imbalance_ratio: float = 256.0,
                          n_max: int = 1280, num_images: int | None = None) -> LongTailDataset:
    """A long-tailed list over any folder of JPEGs, one class per file.

    The files (found recursively, sorted by relative path) are classes ``0..C-1``; class k's
    file is listed ``max(1, int(n_max * (1 / ratio) ** (k / (C - 1))))`` times, the profile of
    the ImageNet-LT-like list benchmarks use (:func:`dali_cmo.data.shared_data.imagenet_samples_dataset`). ``num_images`` scales the profile to about that
    many entries. Every class keeps at least one entry.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--images-dir {root} is not a folder")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise FileNotFoundError(f"no JPEG files (*.jpg, *.jpeg) under {root}")
    counts = long_tailed_counts(len(files), imbalance_ratio, n_max)
    if num_images is not None:
        counts = (counts * (num_images / counts.sum())).astype(int)
    counts = counts.clip(min=1)
    listed = [name for name, n in zip(files, counts) for _ in range(n)]
    labels = [k for k, n in enumerate(counts) for _ in range(n)]
    names = [Path(name).stem for name in files]
    return LongTailDataset(root, listed, labels, names, f"{root} (long-tailed list)")
