"""The compiled DALI operators and how they are built and loaded.

``csrc/`` holds the C++/CUDA sources, one operator per file set (``cmo_paste``, ``cmo_box``,
``cmo_region``, the reader; ``cmo_cache``: the foreground cache's two operators) plus the box
sampling they share; :mod:`dali_cmo.ops.build` compiles them
into ``lib/`` when the package is installed; :func:`dali_cmo.ops.plugin.load_plugin` loads
them into DALI.
"""
