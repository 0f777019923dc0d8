"""Loading the compiled operators (``cmo_paste``, ``cmo_box``, ``cmo_region``,
``readers.weighted_file``) into DALI."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from dali_cmo.ops.library import (BUILD_INFO_NAME, LIB_DIR, LIBRARY_NAME, DaliNotFound,
                                  installed_dali, same_dali)

REBUILD_HINT = "rebuild it with `python -m dali_cmo build` (or reinstall: `pip install -e .`)"


class PluginError(RuntimeError):
    """The operator library is missing, stale, or failed to load."""


_lock = threading.Lock()
_loaded_from: Path | None = None


def build_info(lib_dir: Path = LIB_DIR) -> dict:
    """What the library in ``lib_dir`` was built against (DALI distribution and version, CUDA,
    archs, size)."""
    path = lib_dir / BUILD_INFO_NAME
    if not (lib_dir / LIBRARY_NAME).is_file() or not path.is_file():
        raise PluginError(f"the dali_cmo operator library is not built ({lib_dir / LIBRARY_NAME} "
                          f"missing); {REBUILD_HINT}")
    return json.loads(path.read_text())


def library_path(lib_dir: Path = LIB_DIR) -> Path:
    """The operator library, checked against the installed DALI but not loaded.

    For DALI's own plugin loading: ``DALI_PRELOAD_PLUGINS=<this path>`` makes any process that
    starts DALI (a server, a subprocess, a non-Python host) load the operators. Raises
    :class:`PluginError` when the library is missing or was built for another DALI (another
    flavour such as ``nvidia-dali-cuda130``, or another version), saying how to rebuild.
    """
    info = build_info(lib_dir)
    try:
        installed = installed_dali()
    except DaliNotFound as err:
        raise PluginError(str(err)) from err
    if not same_dali(info, installed):
        raise PluginError(
            f"the dali_cmo operator library was built for {info.get('dali_distribution', 'DALI')} "
            f"{info.get('dali_version')}, but {installed['dali_distribution']} "
            f"{installed['dali_version']} is installed; {REBUILD_HINT}")
    return lib_dir / LIBRARY_NAME


def load_plugin(lib_dir: Path = LIB_DIR) -> Path:
    """Load the operators into DALI once; afterwards ``nvidia.dali.fn.cmo_paste`` exists.

    Idempotent and thread-safe. Raises :class:`PluginError` as :func:`library_path` does, or
    when DALI cannot load the library.
    """
    global _loaded_from
    with _lock:
        if _loaded_from is not None:
            return _loaded_from
        library = library_path(lib_dir)
        from nvidia.dali import plugin_manager

        try:
            plugin_manager.load_library(str(library))
        except RuntimeError as err:
            raise PluginError(f"DALI could not load {library}: {err}; {REBUILD_HINT}") from err
        _loaded_from = library
        return library
