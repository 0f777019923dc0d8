"""``python -m dali_cmo <command>``: ``stats`` and ``check`` (``build`` is in
:mod:`dali_cmo.ops.build`)."""
