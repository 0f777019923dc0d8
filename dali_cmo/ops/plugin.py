"""Loading the compiled operators (``cmo_paste``, ``cmo_box``, ``cmo_region``) into DALI."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from dali_cmo.ops.build import BUILD_INFO_NAME, LIB_DIR, LIBRARY_NAME

REBUILD_HINT = "rebuild it with `python -m dali_cmo build` (or reinstall: `pip install -e .`)"


class PluginError(RuntimeError):
    """The operator library is missing, stale, or failed to load."""


_lock = threading.Lock()
_loaded_from: Path | None = None


def build_info(lib_dir: Path = LIB_DIR) -> dict:
    """What the library in ``lib_dir`` was built against (DALI version, CUDA, archs, size)."""
    path = lib_dir / BUILD_INFO_NAME
    if not (lib_dir / LIBRARY_NAME).is_file() or not path.is_file():
        raise PluginError(f"the dali_cmo operator library is not built ({lib_dir / LIBRARY_NAME} "
                          f"missing); {REBUILD_HINT}")
    return json.loads(path.read_text())


def load_plugin(lib_dir: Path = LIB_DIR) -> Path:
    """Load the operators into DALI once; afterwards ``nvidia.dali.fn.cmo_paste`` exists.

    Idempotent and thread-safe. Raises :class:`PluginError` when the library is missing or was
    built for another DALI version than the one installed, saying how to rebuild.
    """
    global _loaded_from
    with _lock:
        if _loaded_from is not None:
            return _loaded_from
        import nvidia.dali as dali
        from nvidia.dali import plugin_manager

        info = build_info(lib_dir)
        if info.get("dali_version") != dali.__version__:
            raise PluginError(
                f"the dali_cmo operator library was built for DALI {info.get('dali_version')}, "
                f"but DALI {dali.__version__} is installed; {REBUILD_HINT}")
        library = lib_dir / LIBRARY_NAME
        try:
            plugin_manager.load_library(str(library))
        except RuntimeError as err:
            raise PluginError(f"DALI could not load {library}: {err}; {REBUILD_HINT}") from err
        _loaded_from = library
        return library


def has_gpu_operator() -> bool:
    """Whether the loaded library was built with the CUDA operator."""
    return bool(build_info().get("cuda"))
