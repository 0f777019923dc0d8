"""Never lose a run: atomic checkpoints, RNG states, stop requests (SIGTERM/SIGINT) and the
run's identity.

A checkpoint is written to a temporary file, synced, and renamed into place; the one before is
kept as ``checkpoint.prev.pt`` and used when the latest is truncated or corrupt. It records what
defines the run (:func:`run_identity`); a resumed run must match it (:func:`check_identity`).
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dali_cmo.data.datasets import labelled_lines
from dali_cmo.training.distributed import any_rank, gather_objects

CHECKPOINT, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"
BEST_MODEL, LOG, METRICS = "best_model.pt", "log.jsonl", "metrics.json"
# a folder holding one of these holds a run (train.py refuses it without --resume or --overwrite)
RUN_RECORD = (CHECKPOINT, PREVIOUS, BEST_MODEL, LOG, METRICS)
# what a run writes into its folder (--test-only's files included), removed when one starts
# afresh there
RUN_FILES = RUN_RECORD + (f".{CHECKPOINT}.tmp", f".{BEST_MODEL}.tmp", "per_class_accuracy.png",
                          "cmo_samples.png", "evaluation_*.json", "evaluation_*_per_class.png")
# What defines a run, by flag: a resumed run must keep these (the data are compared by content;
# "world size" is torchrun's number of ranks; "classifier" is cosine for --loss ldam; "--reader"
# is the reader that reads, see dali_cmo.streams.make_streams).
FIXED = ("--data", "--batch-size", "world size", "--model", "classifier", "--image-size",
         "--style", "--augment", "--variant", "--seed", "--q-scheme", "--q-r", "--q-beta",
         "--per-sample", "--normalisation", "--reader")
# What a resumed run may change when --allow-change names it.
CHANGEABLE = ("--epochs", "--loss", "--lr", "--momentum", "--wd", "--warmup", "--decay",
              "--decay-epochs", "--decay-factor", "--drw-epoch", "--cmo-start", "--cmo-end",
              "--cmo-prob", "--alpha", "--foreground-decode", "--max-steps-per-epoch",
              "--val-data", "--device", "--amp", "--channels-last")


class CheckpointError(Exception):
    """A run record that cannot be written, read or continued: one line naming the file or
    flag and what to do; ``train.py`` prints it as its error and exits with ``status`` (2: the
    arguments, 1: the disk)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def held_run(folder: Path) -> str | None:
    """What in ``folder`` shows that it holds (part of) the record of a run, in words, or
    None."""
    found = next((name for name in RUN_RECORD if (folder / name).exists()), None)
    if found is None:
        return None
    return "a checkpoint" if found == CHECKPOINT else f"a run's {found}"


def clear_run(folder: Path) -> None:
    """Remove the files a run wrote into ``folder`` (a new run starts its own record there)."""
    for pattern in RUN_FILES:
        for path in folder.glob(pattern):
            path.unlink()


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loops save and exit at the next batch.

    ``reason`` names what asked to stop (``"SIGTERM"``, ``"SIGINT"``, or the text given to
    :meth:`request`); ``exit_status`` is ``128 + signal number`` after a signal, else 0.
    """

    def __init__(self):
        self.signum = None
        self.reason = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum, self.reason = signum, signal.Signals(signum).name

    def request(self, reason: str) -> None:
        """Ask to stop without a signal (another rank's request, a test hook)."""
        self.reason = self.reason or reason

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum) if self.signum is not None else 0

    def requested(self, world: int) -> bool:
        """Whether any rank was asked to stop (all ranks then stop at the same step)."""
        if any_rank(self.reason is not None, world):
            self.request("another rank's signal")
            return True
        return False


@dataclass
class Run:
    """This process's place in the run: its rank among ``world``, its device, the run folder
    and the stop request (SIGTERM/SIGINT) every loop checks."""
    rank: int
    world: int
    device: torch.device
    output: Path
    stop: StopRequest
    channels_last: bool = False  # NHWC inputs (--channels-last)
    global_step: int = 0  # training steps this process has taken

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class _ByteCounter:
    """A write-only file that counts the bytes written to it."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _serialise(content, handle) -> None:
    if isinstance(content, bytes):
        handle.write(content)
    else:
        torch.save(content, handle)


def write_atomically(content, path: Path, previous: Path | None = None) -> Path:
    """``content`` (bytes, or an object for ``torch.save``) to ``path`` atomically: a temporary
    file beside it, fsynced, renamed into place (the current file kept as ``previous`` first,
    when given).

    Raises:
        CheckpointError: the write failed (a full disk, no permission): one line naming ``path``,
            the bytes it needs and the free space; the temporary file is removed and the file
            that was in place is kept.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            _serialise(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(_write_failure(path, content, error), status=1) from None
    return path


def _write_failure(path: Path, content, error: OSError) -> str:
    """The one-line message of a failed :func:`write_atomically`."""
    counter = _ByteCounter()
    _serialise(content, counter)
    try:
        free = f", {shutil.disk_usage(path.parent).free:,} free there"
    except OSError:
        free = ""
    kept = f"; the {path.name} written before is kept" if path.exists() else ""
    return (f"cannot write {path}: {error.strerror or error} (it needs {counter.size:,} "
            f"bytes{free}){kept}")


def save_checkpoint(state: dict, folder: Path) -> Path:
    """Atomically into ``folder``: the current checkpoint is kept as ``checkpoint.prev.pt``,
    then the new one takes its place."""
    return write_atomically(state, folder / CHECKPOINT, folder / PREVIOUS)


def save_best_model(folder: Path, model, evaluation: dict, identity: dict) -> Path:
    """The weights of the best evaluated epoch so far (highest top-1, as the reference's
    ``ckpt.best.pth.tar``), atomically into ``folder/best_model.pt``: ``{"model": state_dict,
    "evaluation": evaluation, "identity": identity}``, ``evaluation`` being that epoch's
    ``log.jsonl`` entry and ``identity`` the run's (:func:`run_identity`).
    Load with ``model.load_state_dict(torch.load(path)["model"])``."""
    return write_atomically({"model": model.state_dict(), "evaluation": evaluation,
                             "identity": identity}, folder / BEST_MODEL)


def load_weights(folder: Path, which: str) -> tuple[Path, dict, str]:
    """``--test-only``: the saved weights of the run in ``folder``, ``which`` being ``"last"``
    (``checkpoint.pt``) or ``"best"`` (``best_model.pt``). Returns the file, its contents and
    where the weights stand (for the report).

    Raises:
        CheckpointError: no such file, or one that cannot be read.
    """
    path = folder / (CHECKPOINT if which == "last" else BEST_MODEL)
    if not path.exists():
        raise CheckpointError(f"--test-only {which}: {path} not found (the weights of a run trained "
                         f"with --output {folder})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # truncated zip, bad pickle
        raise CheckpointError(f"--test-only {which}: {path} cannot be read ({type(error).__name__}: "
                         f"{error})") from None
    if which == "best":
        return path, state, f"best epoch {state['evaluation']['epoch']}"
    epoch, position = state["epoch"], state["iterators"][0]["position"]
    return path, state, (f"after epoch {epoch}" if position == 0 else
                         f"in epoch {epoch + 1} after batch {position}")


def check_weights_identity(state: dict, now: dict, which: str, path: Path) -> None:
    """``--test-only``: refuse weights trained with other flags that define the model or its
    data (the number of ranks and the reader do not matter to an evaluation).

    Raises:
        CheckpointError: naming every difference.
    """
    changes = identity_changes(state, now)
    differ = [flag for flag in FIXED if flag not in ("world size", "--reader") and flag in changes]
    if differ:
        listed = ", ".join(f"{flag} (weights: {changes[flag][0]}, now: {changes[flag][1]})"
                           for flag in differ)
        raise CheckpointError(f"--test-only {which}: {path} was trained with other flags: {listed}; "
                         f"give the flags the run was trained with")


CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "iterators", "rng", "args", "world_size")


def save_run(run, tag: str, model, optimizer, scaler, iterator, totals: dict, history: list,
             last_evaluation: dict | None, settings: dict, identity: dict) -> None:
    """Every rank's stream position, RNG state and sums of the epoch in progress, with the
    model, optimiser and scaler, the arguments, the run's identity and the epochs' history,
    written atomically by rank 0 into ``run.output``.

    Args:
        run: this process's :class:`Run` (rank, world size, output folder, log).
        tag: what the log line says before "checkpoint written".
        model, optimizer, scaler: their ``state_dict()`` is saved.
        iterator: the training ``CMOIterator`` (its ``state_dict()`` and epoch).
        totals: this rank's sums over the epoch in progress.
        history: one entry per finished epoch, with its evaluation (see
            :func:`awaiting_evaluation` for one not yet evaluated).
        last_evaluation: ``{"epoch": n, "report": accuracy report}`` of the last evaluated
            epoch (what ``metrics.json`` reports), or None.
        settings: the run's settings by flag name (``RunSettings.record()``), saved as
            ``"args"``.
        identity: :func:`run_identity` of the run.
    """
    ranks = gather_objects({"iterator": iterator.state_dict(), "rng": rng_states(),
                            "totals": totals}, run.world)
    if run.is_main:
        path = save_checkpoint({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "epoch": iterator.epoch,
            "iterators": [r["iterator"] for r in ranks], "rng": [r["rng"] for r in ranks],
            "epoch_totals": [r["totals"] for r in ranks], "args": settings,
            "identity": identity, "world_size": run.world, "history": history,
            "last_evaluation": last_evaluation}, run.output)
        run.log(f"{tag}: checkpoint written to {path}")


def awaiting_evaluation(state: dict) -> dict | None:
    """The history entry of the epoch a checkpoint ends with when that epoch was due for
    evaluation but was not evaluated (a stop request during the evaluation, or a checkpoint
    written before evaluations were part of their epoch), else None. A resume evaluates it
    first: its top-1 may be the run's best."""
    from dali_cmo.training.evaluation import evaluation_due
    history, args = state.get("history") or [], state["args"]
    if not history or state["iterators"][0]["position"] != 0 \
            or history[-1]["epoch"] != state["epoch"] or "top1" in history[-1]:
        return None
    due = evaluation_due(history[-1]["epoch"], args["epochs"], args["eval_every"])
    return history[-1] if due else None


def _read_checkpoint(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"missing entries {missing}")
    return state


def load_checkpoint(resume: str, output: Path, log) -> dict | None:
    """The checkpoint to continue from, or None for ``--resume auto`` without one.

    A named file or folder that does not exist is an error; a truncated or corrupt checkpoint
    is refused (with the reason) and the previous checkpoint beside it is used instead.

    Args:
        resume: ``--resume``: a checkpoint file, a run folder, or ``"auto"`` (``output``'s).
        output: the run folder.
        log: prints a message (rank 0).
    """
    if resume == "auto":
        path = output / CHECKPOINT
        if not path.exists() and not (output / PREVIOUS).exists():
            log(f"--resume auto: no checkpoint in {output}; starting a new run")
            return None
    else:
        path = Path(resume)
        if not path.exists():
            raise CheckpointError(f"--resume {resume}: no such file or folder")
        if path.is_dir():
            path = path / CHECKPOINT
    candidates = [path, path.with_name(PREVIOUS)]
    for candidate in candidates:
        if not candidate.exists():
            log(f"checkpoint {candidate} not found")
            continue
        try:
            state = _read_checkpoint(candidate)
        except Exception as error:  # truncated zip, bad pickle, wrong content
            log(f"refusing checkpoint {candidate}: it is truncated or corrupt "
                f"({type(error).__name__}: {error})")
            continue
        state["path"] = str(candidate)
        position = state["iterators"][0]["position"]
        log(f"resuming from {candidate}: {where_stopped(state['epoch'], position)}")
        return state
    raise CheckpointError(f"--resume {resume}: no usable checkpoint among "
                     f"{', '.join(map(str, candidates))}")


def where_stopped(epoch: int, position: int) -> str:
    """Where a stream stands, counted from 1: ``epoch`` is the epoch of the next batch (from
    0), ``position`` the batches of it already done."""
    if position == 0:
        return f"{epoch} epoch(s) done, continuing with epoch {epoch + 1}"
    return f"in epoch {epoch + 1} after batch {position}"


# --------------------------------------------------------------------------- run identity

def data_fingerprint(dataset) -> str:
    """``"740 images in 10 classes, list 3f2a9c01d4e5"``: the size and a digest of the file
    list and labels (the same data under another root has the same fingerprint)."""
    digest = hashlib.sha1()  # over "<path>\t<label>\n" lines: the form saved checkpoints hold
    for lines in labelled_lines(dataset.files, dataset.labels, "\t"):
        digest.update(lines)
    return (f"{len(dataset)} images in {dataset.num_classes} classes, list "
            f"{digest.hexdigest()[:12]}")


def run_identity(settings: dict, world: int, train_set=None, val_set=None) -> dict:
    """What defines a run, by flag (:data:`FIXED` and :data:`CHANGEABLE`).

    Args:
        settings: the run's settings by flag name (``RunSettings.record()``; a checkpoint's
            ``"args"``).
        world: the number of ranks.
        train_set: the training dataset (for ``--data``); None leaves it out.
        val_set: the evaluation dataset (for ``--val-data``); None leaves it out.
    """
    dests = {flag: flag[2:].replace("-", "_") for flag in FIXED + CHANGEABLE
             if flag.startswith("--") and flag not in ("--data", "--val-data")}
    identity = {flag: settings[dest] for flag, dest in dests.items() if dest in settings}
    identity["world size"] = world
    identity["classifier"] = "cosine" if settings["loss"] == "ldam" else "linear"
    if train_set is not None:
        identity["--data"] = data_fingerprint(train_set)
    if val_set is not None:
        identity["--val-data"] = data_fingerprint(val_set)
    return identity


def identity_changes(state: dict, now: dict) -> dict:
    """Flag -> (saved, now) for every flag of the run's identity ``now`` (:func:`run_identity`)
    that differs from the one saved in ``state`` (a checkpoint or ``best_model.pt``)."""
    saved = state.get("identity") or run_identity(state["args"], state["world_size"])
    return {flag: (saved[flag], now[flag]) for flag in now
            if flag in saved and saved[flag] != now[flag]}


def check_identity(state: dict, now: dict, allowed) -> list[str]:
    """Refuse to continue ``state`` (a checkpoint) as the run ``now`` describes when they differ
    in a flag that defines the run, or in one the run may change that ``allowed`` (from
    ``--allow-change``) does not name. Returns the allowed changes, as ``"--flag old -> new"``.

    Raises:
        CheckpointError: naming every difference, and what to do.
    """
    changes = identity_changes(state, now)

    def listed(flags):
        return ", ".join(f"{flag} (checkpoint: {changes[flag][0]}, now: {changes[flag][1]})"
                         for flag in flags)

    fixed = [flag for flag in changes if flag in FIXED]
    refused = [flag for flag in changes if flag not in FIXED and flag not in allowed]
    sentences = []
    if fixed:
        sentences.append(f"these define the run and cannot change: {listed(fixed)}; start a "
                         f"new run (another --output, or --overwrite) to use them")
    if refused:
        sentences.append(f"these differ: {listed(refused)}; to continue with the new values "
                         f"add --allow-change {' '.join(f.lstrip('-') for f in refused)}")
    if sentences:
        raise CheckpointError(f"--resume {state.get('path', '')}: the checkpoint's run differs "
                         f"from this one: " + "; ".join(sentences))
    return [f"{flag} {old} -> {new}" for flag, (old, new) in changes.items()]
