"""The trainer: one run's model, loop, evaluation and record, read top to bottom.

``train.py`` parses the arguments, loads the data and builds the pipelines (this package never
imports ``pipelines``); a :class:`Trainer` then either trains (:meth:`Trainer.fit`, continuing
a checkpoint through :meth:`Trainer.resume`) or scores saved weights (:meth:`Trainer.score`,
``--test-only``). Both check the evaluation set first and end in one ``finish`` (the process
group torn down) on every path that returns an exit status.

The pieces the loop is made of live beside it: checkpoints and the run's identity
(``checkpoint``), the evaluation (``evaluation``), losses and models, the report files
(``reports``) and the progress lines (``progress``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Callable, NamedTuple

import torch

from dali_cmo.data.integrity import BadImageError, command_line_advice
from dali_cmo.data.iterator import CMOIterator
from dali_cmo.training.checkpoint import (CHECKPOINT, awaiting_evaluation, check_identity,
                                          clear_run, load_checkpoint, run_identity,
                                          save_best_model, save_run, set_rng_states)
from dali_cmo.training.distributed import all_reduce_sum, finish
from dali_cmo.training.evaluation import Evaluation, evaluate_saved_weights, evaluation_due
from dali_cmo.training.losses import DeferredReweighting, build_loss, mixed_loss
from dali_cmo.training.metrics import best_evaluation
from dali_cmo.training.models import autocast, build_model, load_pretrained
from dali_cmo.training.progress import EpochProgress
from dali_cmo.training.settings import RunSettings, UsageError
from dali_cmo.training.reports import (FirstPastePicture, FirstStepRecord, code_version,
                                       describe_code, machine_name, write_log,
                                       write_run_report)


class Data(NamedTuple):
    """The training and evaluation sets of a run (``LongTailDataset`` s) and what was read for
    each (for messages: ``python -m dali_cmo check <source>``)."""
    train: object
    val: object
    train_source: str
    val_source: str


@dataclasses.dataclass
class EpochTotals:
    """This rank's sums over the batches of an epoch; kept in checkpoints, so that an epoch
    interrupted and resumed reports all of its batches."""
    loss: float = 0.0
    batches: int = 0
    images: int = 0
    seconds: float = 0.0


def bad_image(error: BadImageError, dataset, source: str, on_bad_image: str) -> UsageError:
    """``error`` as the one-line message a user sees: where the file is listed and what to do
    (exit status 1)."""
    location = dataset.location(error.index) if error.index is not None else None
    advice = command_line_advice(error, on_bad_image=on_bad_image, dataset=source)
    return UsageError(f"{error.describe(location)}; {advice}", status=1)


def describe_pasting(active: range, epochs: int) -> str:
    """The epochs (counted from 1) in which CMO pastes, for the log."""
    if not active:
        return "no pasting"
    return f"pasting in epochs {active[0] + 1}..{active[-1] + 1} of {epochs}"


class Trainer:
    """One run of ``train.py`` on this rank.

    Args:
        settings: the run's :class:`~dali_cmo.training.settings.RunSettings`.
        run: this process's :class:`~dali_cmo.training.checkpoint.Run` (rank, device, output
            folder, stop request).
        data: the run's :class:`Data`.
        evaluation_pipeline: the evaluation pipeline of a dataset, this rank's shard (for
            :class:`~dali_cmo.training.evaluation.Evaluation`).
        tracer: the ``DecoderWarningTracer`` that learns which files the pipelines read last.
        relay: the ``StderrRelay`` carrying stderr to the terminal.
    """

    def __init__(self, settings: RunSettings, run, data: Data, evaluation_pipeline, tracer,
                 relay):
        self.settings, self.run, self.data = settings, run, data
        self.tracer, self.relay = tracer, relay
        self.evaluation = Evaluation(data.val, data.train.class_counts, settings, run,
                                     evaluation_pipeline)
        self.machine = machine_name(run.device)  # in every epoch's entry of log.jsonl

    # ----------------------------------------------------------------------- the two commands

    def fit(self, training_pipeline: Callable[[], object]) -> int:
        """Train the epochs the run has left, evaluating as ``--eval-every`` says, and write
        its record; returns the exit status. ``training_pipeline()`` builds this rank's
        ``pipelines.training.TrainingPipeline`` (after the evaluation set is checked)."""
        return self._finished(lambda: self._fit(training_pipeline()))

    def score(self, bn_stream: Callable[[], CMOIterator]) -> int:
        """``--test-only``: score the run's saved weights once; returns the exit status.
        ``bn_stream()`` builds the training stream of ``--bn-stats-from``."""
        settings, data = self.settings, self.data

        def scored() -> int:
            try:
                return evaluate_saved_weights(
                    settings, self.run, self.evaluation, data.train, data.val_source,
                    bad_training_image=lambda error: bad_image(
                        error, data.train, data.train_source, settings.on_bad_image),
                    bn_stream=bn_stream)
            except BadImageError as error:
                raise self._bad_evaluation_image(error) from None
        return self._finished(scored)

    def _finished(self, work: Callable[[], int]) -> int:
        """``work()`` after the evaluation set's check (a bad image cannot end the run after
        its first epoch), then the one ``finish`` of the run."""
        run = self.run
        try:
            self.evaluation.check_files()
        except BadImageError as error:
            raise bad_image(error, self.data.val, self.data.val_source,
                            self.settings.on_bad_image) from None
        if run.stop.requested(run.world):
            run.log(f"stopped by {run.stop.reason} before training")
            status = run.stop.exit_status
        else:
            status = work()
        finish(run.world)
        return status

    # ----------------------------------------------------------------------- fit

    def _fit(self, train_pipe) -> int:
        # the reader that reads is part of the run's identity (in-memory pixels and short
        # epochs always use the Python sources)
        self.settings = self.settings.with_reader(train_pipe.reader)
        settings, run = self.settings, self.run
        self._build(train_pipe)
        unevaluated = self.resume()
        self._open_record(unevaluated)
        code = code_version() if run.is_main else None  # recorded in metrics.json
        if unevaluated is not None:
            run.log(f"epoch {unevaluated['epoch']} was trained but not evaluated: evaluating it")
            if not self._end_epoch(unevaluated, evaluate=True):
                return self._stopped()
        run.log(f"training {settings.model} ({settings.loss} loss) for epochs "
                f"{self.start_epoch + 1}.."
                f"{settings.epochs} on {settings.device}; output in {run.output}; code: "
                f"{describe_code(code) if code else ''}")
        run_tic = time.perf_counter()
        for epoch in range(self.start_epoch, settings.epochs):
            if self.drw is not None:
                self.loss_fn.set_class_weights(self.drw.weights(epoch))
            try:
                finished = self.train_one_epoch(epoch)
            except BadImageError as error:
                raise bad_image(error, self.data.train, self.data.train_source,
                                settings.on_bad_image) from None
            if not finished:
                self._save(f"stopped by {run.stop.reason} in epoch {epoch + 1} after batch "
                           f"{self.iterator.position}")
                return self._stopped()
            steps = len(self.iterator)
            last_lr = self.schedule.lr_at(epoch + (steps - 1) / steps)
            self.history.append({"epoch": epoch + 1, **self._epoch_statistics(last_lr)})
            self.totals = EpochTotals()
            if not self._end_epoch(self.history[-1],
                                   evaluation_due(epoch + 1, settings.epochs, settings.eval_every)):
                return self._stopped()
        elapsed = time.perf_counter() - run_tic

        if run.is_main:  # the last epoch is always evaluated: last_evaluation holds it
            last = self.last_evaluation
            write_run_report(run, settings, last["report"], last["epoch"], self.history, elapsed,
                             self.data.train, self.train_pipe.streams.reader.bad_files,
                             self.evaluation.left_out, code)
        return 0

    def _build(self, train_pipe) -> None:
        """The stream, model, loss, optimiser, scaler and schedule of a fresh run."""
        settings, run, train_set = self.settings, self.run, self.data.train
        self.train_pipe, self.iterator = train_pipe, CMOIterator(train_pipe)
        self.tracer.candidates = lambda: (self.iterator.recent_paths()
                                          + self.evaluation.recent_paths())
        counts = train_set.class_counts
        run.log(f"data: {len(train_set)} training images in {train_set.num_classes} classes "
                f"(largest {counts.max()}, smallest {counts.min()}, imbalance "
                f"{counts.max() / counts.min():.0f}), {len(self.evaluation.dataset)} evaluation "
                f"images; global batch {settings.batch_size} = {run.world} rank(s) x "
                f"{settings.rank_batch_size}; variant {settings.variant}, "
                f"{describe_pasting(train_pipe.schedule.pasting_epochs, settings.epochs)}")

        self.model = build_model(settings.model, train_set.num_classes,
                                 normed_linear=settings.loss == "ldam").to(run.device)
        if settings.pretrained:
            try:
                fresh = load_pretrained(self.model, settings.pretrained)
            except ValueError as error:
                raise UsageError(f"--pretrained {error}") from None
            run.log(f"weights from {settings.pretrained}" + (f"; new: {', '.join(fresh)}" if fresh
                                                          else ""))
        if settings.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = build_loss(settings.loss, counts).to(run.device)
        self.drw = DeferredReweighting(counts, settings.drw_epoch) \
            if settings.drw_epoch is not None else None
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=settings.lr,
                                         momentum=settings.momentum, weight_decay=settings.wd)
        self.scaler = torch.amp.GradScaler("cuda",
                                           enabled=settings.amp and settings.device == "cuda")
        self.schedule = settings.lr_schedule()
        self.ddp_model = self.model  # what trains and scores; the weights are self.model's
        if run.world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[run.device.index] if settings.device == "cuda" else None)

    def resume(self) -> dict | None:
        """Continue ``--resume``'s checkpoint, if any: the same run (identity), then model,
        optimiser, scaler, RNG states, this rank's exact stream position, the sums of the
        epoch in progress and the record so far. Returns the history entry of an epoch that
        was trained but not evaluated (a resume evaluates it first), else None."""
        settings, run = self.settings, self.run
        self.identity = run_identity(settings.record(), run.world, self.data.train, self.data.val)
        self.history, self.totals, state = [], EpochTotals(), None
        self.last_evaluation = {"epoch": None, "report": None}  # what metrics.json reports
        if settings.resume:
            state = load_checkpoint(settings.resume, run.output, run.log)
        if state is not None:
            changes = check_identity(state, self.identity, settings.allow_change)
            if changes:
                run.log(f"continuing with changes (--allow-change): {', '.join(changes)}")
            threads = state["args"].get("torch_threads")
            # CPU sums are split by thread
            if settings.device == "cpu" and threads != settings.torch_threads:
                run.log(f"--torch-threads {settings.torch_threads} differs from the checkpoint's "
                        f"{threads}: the run continues, but not bit-exactly as it would have")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            set_rng_states(state["rng"][run.rank])
            try:
                self.iterator.load_state_dict(state["iterators"][run.rank])
            except ValueError as error:  # saved with the other reader
                raise UsageError(f"--resume {settings.resume}: {error}") from None
            self.history = state.get("history", [])
            self.totals = EpochTotals(**state.get("epoch_totals", [{}] * run.world)[run.rank])
            self.last_evaluation = state.get("last_evaluation") or self.last_evaluation
        self.resumed, self.start_epoch = state is not None, self.iterator.epoch
        if self.start_epoch > settings.epochs:
            raise UsageError(f"--epochs {settings.epochs}: the checkpoint has {self.start_epoch} "
                             f"epochs done; give --epochs {self.start_epoch} or more")
        return awaiting_evaluation(state) if state is not None else None

    def _open_record(self, unevaluated: dict | None) -> None:
        """The run folder: a new record (or the log so far), the debug files and the first
        pasted batch's picture."""
        settings, run = self.settings, self.run
        run.output.mkdir(parents=True, exist_ok=True)
        if run.is_main:
            if not self.resumed:  # a new record (the folder holds none, or --overwrite said so)
                clear_run(run.output)
            write_log(run.output, [entry for entry in self.history if entry is not unevaluated])
        if settings.debug_shards:
            indices = {e: self.train_pipe.streams.background.epoch_indices(e).tolist()
                       for e in range(min(2, settings.epochs))}
            (run.output / f"shard_rank{run.rank}.json").write_text(json.dumps(indices))
        self.debug_step = FirstStepRecord(run.output / f"step_rank{run.rank}.json",
                                          self.train_pipe, self.loss_fn) \
            if settings.debug_shards else None
        samples = run.output / "cmo_samples.png"
        self.pictures = FirstPastePicture(
            samples if run.is_main and self.train_pipe.has_foreground and not samples.exists()
            else None, self.train_pipe.config.mean_std, self.data.train.class_names)

    # ----------------------------------------------------------------------- one epoch

    def train_one_epoch(self, epoch: int) -> bool:
        """Train the rest of epoch ``epoch`` (counted from 0), adding to ``self.totals``.
        Returns False when a stop request ended it early (checked after every batch).

        The loss is summed on the device; it is read back (a wait for the device) only after
        the first step, every ``--log-every`` steps and at the end.

        Raises:
            UsageError: a step's loss was not finite (before anything of it could be saved).
        """
        settings, run, totals, iterator = self.settings, self.run, self.totals, self.iterator
        self.ddp_model.train()
        steps = len(iterator)
        progress = EpochProgress(steps, epoch, settings.epochs, run.is_main, settings.print_every)
        loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
        first_bad = torch.full((), -1, dtype=torch.int64, device=run.device)  # non-finite loss
        shown_loss = None
        tic = time.perf_counter()
        for batch in iterator.epoch_batches():
            step = iterator.position  # batches of this epoch done, this one included
            self.schedule.apply(self.optimizer, epoch + (step - 1) / steps)
            loss = self._step(batch)
            loss_sum += loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step,
                                    first_bad)
            totals.batches += 1
            totals.images += len(batch)
            self.pictures(batch)
            if step % settings.log_every == 0 or step == steps or shown_loss is None:
                shown_loss = (totals.loss + loss_sum.item()) / totals.batches
                self._check_finite(shown_loss, first_bad, epoch)
            seconds = totals.seconds + time.perf_counter() - tic
            progress.update(step, totals.images * run.world / max(seconds, 1e-9), shown_loss)
            run.global_step += 1
            if settings.stop_after_steps and run.global_step == settings.stop_after_steps:
                run.stop.request("--stop-after-steps")
            if run.stop.requested(run.world):
                break
        progress.close()
        totals.loss += loss_sum.item()
        # before a stop request's checkpoint could save the weights
        self._check_finite(totals.loss, first_bad, epoch)
        totals.seconds += time.perf_counter() - tic
        return run.stop.reason is None

    def _step(self, batch) -> torch.Tensor:
        """One optimiser step on ``batch``; returns its loss (on the device)."""
        settings, run = self.settings, self.run
        inputs = batch.images
        if settings.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with autocast(settings.device, settings.amp):
            logits = self.ddp_model(inputs)
            # weight sums over the global batch: the loss of the reference's one-process step
            loss = mixed_loss(self.loss_fn, logits.float(), batch.target_b, batch.target_f,
                              batch.lam, world_size=run.world,
                              all_reduce=(lambda t: all_reduce_sum(t, run.world))
                              if run.world > 1 else None)
        if self.debug_step is not None:
            self.debug_step(batch, logits, loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss

    def _check_finite(self, loss_read: float, first_bad: torch.Tensor, epoch: int) -> None:
        """Refuse a non-finite loss, naming the first step whose loss was not finite."""
        if math.isfinite(loss_read):
            return
        steps = len(self.iterator)
        bad_step = int(first_bad.item())
        lr = self.schedule.lr_at(epoch + (bad_step - 1) / steps)
        raise UsageError(
            f"the loss is not finite in epoch {epoch + 1}, step {bad_step} of {steps} "
            f"(lr {lr:.4g}): training diverged, and nothing of this epoch was saved; "
            f"lower --lr (or --wd, --momentum) and start again", status=1)

    def _epoch_statistics(self, lr: float) -> dict:
        """The epoch's loss, lr, images, images/s and training seconds over every rank, and the
        machine that trained it."""
        run, totals = self.run, self.totals
        sums = all_reduce_sum(torch.tensor([totals.loss, totals.batches, totals.images,
                                            totals.seconds], dtype=torch.float64,
                                           device=run.device), run.world).cpu().tolist()
        loss, batches, images, seconds = sums
        return {"loss": loss / max(batches, 1), "lr": lr, "train_images": int(images),
                "train_images_per_second": images / max(seconds / run.world, 1e-9),
                "train_seconds": seconds / run.world, "machine": self.machine}

    # ----------------------------------------------------------------------- end of an epoch

    def _end_epoch(self, entry: dict, evaluate: bool) -> bool:
        """The end of the epoch of ``entry`` (in ``history``): its evaluation when ``evaluate``
        (the top-1 added to ``entry``; ``best_model.pt`` when it is the best so far), then the
        checkpoint and ``log.jsonl``. An epoch's evaluation is part of it: stopped during the
        evaluation (returns False), the checkpoint records the epoch as not evaluated and a
        resume evaluates it first."""
        settings, run, epoch = self.settings, self.run, entry["epoch"]
        if evaluate:
            tic = time.perf_counter()
            try:
                report = self.evaluation(self.ddp_model)
            except BadImageError as error:
                if run.world == 1:  # keep the epoch's training (other ranks would wait to score)
                    self._save(f"epoch {epoch} trained, not evaluated")
                raise self._bad_evaluation_image(error) from None
            if report is None:
                self._save(f"stopped by {run.stop.reason} while evaluating epoch {epoch}")
                return False
            self.last_evaluation.update(epoch=epoch, report=report)
            entry.update({k: report[k] for k in ("top1", "many", "medium", "few")},
                         eval_seconds=time.perf_counter() - tic)
            if run.is_main and best_evaluation(self.history) is entry:
                save_best_model(run.output, self.model, entry, self.identity)
        self._save(f"epoch {epoch} done")
        if run.is_main:
            write_log(run.output, self.history)
        # the epoch's decoder warnings, traced to their files, before its line
        self.relay.sync()
        self.tracer.wait()
        self.relay.sync()
        shown = "  ".join(f"{k} {entry[k]:.2f}" for k in ("top1", "many", "medium", "few")
                          if entry.get(k) is not None)
        run.log(f"epoch {epoch}/{settings.epochs}: loss {entry['loss']:.4f}, lr "
                f"{entry['lr']:.4g}, {entry['train_images_per_second']:.0f} img/s"
                + (f"; {shown}" if shown else ""))
        if self.train_pipe.fg_cache is not None:
            run.log(self.train_pipe.fg_cache.describe())
        return True

    def _save(self, tag: str) -> None:
        """The checkpoint (``tag`` says why it is written)."""
        save_run(self.run, tag, self.model, self.optimizer, self.scaler, self.iterator,
                 dataclasses.asdict(self.totals), self.history, self.last_evaluation,
                 self.settings.record(), self.identity)

    def _stopped(self) -> int:
        """A stop request ended the run, its checkpoint written: say how to continue."""
        self.run.log(f"resume with: --resume {self.run.output / CHECKPOINT}")
        return self.run.stop.exit_status

    def _bad_evaluation_image(self, error: BadImageError) -> UsageError:
        return bad_image(error, self.evaluation.dataset, self.data.val_source,
                         self.settings.on_bad_image)
