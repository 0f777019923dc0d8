"""dali-cmo: CMO (context-rich minority oversampling) for NVIDIA DALI.

``import dali_cmo; dali_cmo.load_plugin()`` registers ``nvidia.dali.fn.cmo_paste`` and
``nvidia.dali.fn.cmo_box``. The rest of the package (datasets, samplers, pipelines' sources,
iterator, losses, metrics) is imported from its submodules.
"""
from dali_cmo.plugin import PluginError, build_info, load_plugin

__version__ = "0.1.0"

__all__ = ["PluginError", "build_info", "load_plugin", "__version__"]
