"""The data path, in the order data flows through it.

1. :mod:`~dali_cmo.data.datasets`: split files, iNat JSON, image folders -> a
   ``LongTailDataset`` (files, labels, class counts); :mod:`~dali_cmo.data.groups`: the
   Many / Medium / Few rule.
2. :mod:`~dali_cmo.data.sampling`: the P (per-epoch permutation) and Q (per-epoch weighted
   draws) samplers.
3. :mod:`dali_cmo.streams` (a wing of its own): the streams of a CMO variant, read by the
   native reader or by Python sources, and the paste schedule;
   :mod:`~dali_cmo.data.integrity` checks every file.
4. ``pipelines/`` (outside the package): the DALI graphs that decode, crop and call the
   operators of :mod:`dali_cmo.ops`.
5. :mod:`~dali_cmo.data.iterator`: the PyTorch iterators (``CMOIterator``, ``EvalIterator``);
   :mod:`~dali_cmo.data.targets`: mixed soft targets.

:mod:`~dali_cmo.data.demo` generates the built-in demo data set into the user's cache folder
(:mod:`~dali_cmo.data.cache`); :mod:`~dali_cmo.data.shared_data` locates the development
checkout's real data for tests and benchmarks.
"""
