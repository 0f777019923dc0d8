"""dali-cmo: CMO (context-rich minority oversampling, Park et al., CVPR 2022) for NVIDIA DALI.

``import dali_cmo; dali_cmo.load_plugin()`` registers ``nvidia.dali.fn.cmo_paste``,
``fn.cmo_box``, ``fn.cmo_region`` and ``fn.readers.weighted_file``; ``dali_cmo.library_path()``
gives the library for ``DALI_PRELOAD_PLUGINS``. The package has three wings:

* :mod:`dali_cmo.ops`: the compiled operators (C++/CUDA), their build and loader;
* :mod:`dali_cmo.data`: the data path: datasets -> samplers -> sources -> (``pipelines/``)
  -> iterator;
* :mod:`dali_cmo.training`: losses, models, recipes, metrics, reports, checkpoints;

plus :mod:`dali_cmo.cli` (``python -m dali_cmo stats|check|build``) and
:mod:`dali_cmo.constants`. ``CMOIterator`` and ``EvalIterator`` are importable from here too
(imported on first use, since they need torch).
"""
from dali_cmo.ops.plugin import PluginError, build_info, library_path, load_plugin

__version__ = "0.1.0"

__all__ = ["PluginError", "build_info", "library_path", "load_plugin", "CMOIterator",
           "EvalIterator", "__version__"]


def __getattr__(name: str):
    if name in ("CMOIterator", "EvalIterator"):
        from dali_cmo.data import iterator
        return getattr(iterator, name)
    raise AttributeError(f"module 'dali_cmo' has no attribute {name!r}")
