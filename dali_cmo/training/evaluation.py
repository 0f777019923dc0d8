"""The trainer's evaluation: the evaluation set checked before training, then scored.

Bad images are found before training starts (:meth:`Evaluation.check_files`, the quick check the
training reader runs on every file: missing, empty, truncated, not an image), so that one cannot
end a run after its first epoch. Under ``--on-bad-image skip`` bad evaluation images are left out
of scoring (never replaced by another image, which would score one image twice) and reported;
an image that passes the quick check and fails to decode is left out the same way when it is
met (one process; with several ranks it ends the run, naming the file).

``train.py --test-only`` scores saved weights (:func:`evaluate_saved_weights`), optionally
after re-estimating their BatchNorm statistics over one epoch of a chosen training stream
(:func:`recompute_bn_statistics`, ``--bn-stats-from``).
"""
from __future__ import annotations

import torch

from dali_cmo.data.groups import GROUP_RULES
from dali_cmo.data.integrity import BadImageError, quick_check_files
from dali_cmo.training.distributed import all_reduce_sum, gather_objects
from dali_cmo.training.metrics import ConfusionCounter, accuracy_report
from dali_cmo.training.models import autocast
from dali_cmo.training.progress import ProgressLine
from dali_cmo.training.settings import RunSettings


def evaluation_due(epoch: int, epochs: int, eval_every: int) -> bool:
    """Whether a run of ``epochs`` evaluates its epoch ``epoch`` (counted from 1): every
    ``eval_every``-th (0: none) and the last."""
    return epoch == epochs or bool(eval_every) and epoch % eval_every == 0


class Evaluation:
    """Scores a model on the evaluation set: top-1 and Many / Medium / Few accuracy over every
    rank's shard.

    Args:
        dataset: the evaluation ``LongTailDataset``.
        train_counts: training images per class (the Many / Medium / Few groups).
        settings: the run's :class:`~dali_cmo.training.settings.RunSettings` (it reads
            ``dali_threads``, ``on_bad_image``, ``amp``, ``print_every``, ``groups``).
        run: this process's :class:`~dali_cmo.training.checkpoint.Run` (rank, world size,
            device, stop request, log).
        pipeline: the evaluation pipeline of a dataset (``pipelines.evaluation.EvalPipeline``
            with the run's settings): called again when bad images are left out.
    """

    def __init__(self, dataset, train_counts, settings: RunSettings, run, pipeline):
        self.dataset, self.train_counts = dataset, train_counts
        self.settings, self.run = settings, run
        self.pipeline = pipeline
        self.left_out: dict[str, str] = {}  # path -> problem, under --on-bad-image skip
        self._iterator = None

    def check_files(self) -> None:
        """The quick check of every evaluation file (each rank checks every world-th one).

        Raises:
            BadImageError: ``--on-bad-image error`` and a bad file (the first; the message
                counts the others). Under ``skip`` the bad files are left out instead.
        """
        if self.dataset.in_memory:
            return  # pixels in memory: nothing to read
        run, n = self.run, len(self.dataset)
        mine = list(range(run.rank, n, run.world))
        line = ProgressLine(every_s=self.settings.print_every) if run.is_main else None

        def progress(done: int) -> None:
            if line is not None:
                line.show(f"checking {n:,} evaluation images: {done * run.world:,} done")

        found = quick_check_files([self.dataset.path(i) for i in mine], self.settings.dali_threads,
                                  stop=lambda: run.stop.reason is not None, progress=progress)
        if line is not None:
            line.close()
        bad: dict[int, str] = {}
        for part in gather_objects({mine[k]: problem for k, problem in found.items()},
                                   run.world):
            bad.update(part)
        if not bad:
            return
        if self.settings.on_bad_image != "skip":
            first = min(bad)
            more = f" (and {len(bad) - 1} more bad evaluation images)" if len(bad) > 1 else ""
            raise BadImageError(self.dataset.path(first), bad[first] + more, index=first,
                                hint=False)
        self._leave_out(bad)

    def _leave_out(self, bad: dict[int, str]) -> None:
        first = min(bad)
        self.run.log(f"evaluation: {len(bad)} bad image(s) left out of scoring "
                     f"(--on-bad-image skip), e.g. {self.dataset.path(first)}: {bad[first]}")
        self.left_out.update({str(self.dataset.path(i)): problem for i, problem in bad.items()})
        keep = [i for i in range(len(self.dataset)) if i not in bad]
        self.dataset = self.dataset.subset(keep, f"{len(self.left_out)} bad images left out")
        self._iterator = None

    def recent_paths(self) -> list[str]:
        """The files of the evaluation pipeline's recent batches (none before it is built)."""
        return self._iterator.pipeline.sequence.recent_paths() if self._iterator else []

    def _batches(self):
        if self._iterator is None:
            from dali_cmo.data.iterator import EvalIterator
            self._iterator = EvalIterator(self.pipeline(self.dataset))
        return self._iterator

    def __call__(self, model) -> dict | None:
        """The accuracy report of ``model``, or None when a stop request ended the pass."""
        while True:
            try:
                return self._score(model)
            except BadImageError as error:
                if self.settings.on_bad_image != "skip" or self.run.world > 1:
                    raise
                self._leave_out({error.index: error.reason})

    @torch.no_grad()
    def _score(self, model) -> dict | None:
        run = self.run
        model.eval()
        counter = ConfusionCounter(len(self.train_counts), device=run.device)
        for images, targets in self._batches():
            if run.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(run.device.type, self.settings.amp):
                counter.update(model(images), targets)
            if run.stop.reason is not None:
                self._iterator = None  # its pipeline stopped mid-pass
                break
        if run.stop.requested(run.world):
            return None
        counts = all_reduce_sum(counter.counts(), run.world).cpu()
        return accuracy_report(counts[0], counts[1], self.train_counts,
                               GROUP_RULES[self.settings.groups])


@torch.no_grad()
def recompute_bn_statistics(model, iterator, settings: RunSettings, run) -> bool:
    """Replace ``model``'s BatchNorm running statistics by their plain mean over one epoch of
    ``iterator`` (training-mode forward passes, no gradient: the weights stay as saved), in
    place of the momentum average the last training batches left; with several ranks, the
    mean of the ranks' means. A diagnostic: which batches' statistics the weights score best
    with (CMO trains on pasted batches; the reference's last epochs paste nothing). Returns
    False when a stop request ended the pass."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative mean
    model.train()
    line = ProgressLine(every_s=settings.print_every) if run.is_main else None
    for done, batch in enumerate(iterator.epoch_batches(), 1):
        images = batch.images
        if run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(run.device.type, settings.amp):
            model(images)
        if line is not None:
            line.show(f"BatchNorm statistics from the {settings.bn_stats_from} stream: "
                      f"{done}/{len(iterator)} batches", final=done == len(iterator))
        if run.stop.requested(run.world):
            return False
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
        for stat in (norm.running_mean, norm.running_var):
            stat.copy_(all_reduce_sum(stat, run.world) / run.world)
    model.eval()
    return True


def evaluate_saved_weights(settings: RunSettings, run, evaluation: Evaluation, train_set, val_source: str,
                           bad_training_image, bn_stream) -> int:
    """``train.py --test-only last|best``: score the run's saved weights once on the evaluation
    set and report (:func:`dali_cmo.training.reports.write_test_report`); returns the exit
    status. The flags that define the model and its data must be the training run's.
    ``bad_training_image`` turns a :class:`BadImageError` of the training stream
    (``--bn-stats-from``) into the exception to raise (one naming the training set);
    ``bn_stream()`` builds that stream (a ``CMOIterator`` over one epoch of it)."""
    from dali_cmo.training.checkpoint import check_weights_identity, load_weights, run_identity
    from dali_cmo.training.models import build_model
    from dali_cmo.training.reports import write_test_report
    path, state, where = load_weights(run.output, settings.test_only)
    # the evaluation set may differ from training's: it is left out of the comparison
    check_weights_identity(state, run_identity(settings.record(), run.world, train_set),
                           settings.test_only, path)
    model = build_model(settings.model, train_set.num_classes,
                        normed_linear=settings.loss == "ldam")
    model.load_state_dict(state["model"])
    model = model.to(run.device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if settings.bn_stats_from is not None:
        where += f"; BatchNorm statistics from one epoch of the {settings.bn_stats_from} stream"
        try:
            if not recompute_bn_statistics(model, bn_stream(), settings, run):
                return run.stop.exit_status
        except BadImageError as error:
            raise bad_training_image(error) from None
    run.log(f"--test-only {settings.test_only}: scoring {path} ({where}) on "
            f"{len(evaluation.dataset):,} evaluation images")
    report = evaluation(model)
    if report is None:
        return run.stop.exit_status
    if run.is_main:
        write_test_report(run, settings, report, path, where, train_set, val_source,
                          evaluation.left_out)
    return 0
