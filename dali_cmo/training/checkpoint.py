"""Never lose a run: atomic checkpoints, RNG states and stop requests (SIGTERM/SIGINT).

A checkpoint is written to a temporary file, synced, and renamed into place; the one before is
kept as ``checkpoint.prev.pt`` and used when the latest is truncated or corrupt.
"""
from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import numpy as np
import torch

from dali_cmo.training.distributed import all_reduce_sum

CHECKPOINT, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"


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

    def requested(self, world: int, device) -> bool:
        if world == 1:
            return self.reason is not None
        flag = torch.tensor([1 if self.reason is not None else 0], device=device)
        if all_reduce_sum(flag, world).item():  # every rank stops at the same step
            self.request("another rank's signal")
            return True
        return False


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


def save_checkpoint(state: dict, folder: Path) -> Path:
    """Atomically: write a temporary file in ``folder``, fsync it, keep the current checkpoint
    as ``checkpoint.prev.pt``, then rename the new one into place."""
    path, tmp = folder / CHECKPOINT, folder / f".{CHECKPOINT}.tmp"
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if path.exists():
        os.replace(path, folder / PREVIOUS)
    os.replace(tmp, path)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "iterators", "rng", "args", "world_size")


def _read_checkpoint(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"missing entries {missing}")
    return state


def load_checkpoint(resume: str, output: Path, log) -> dict | None:
    """The checkpoint to continue from; a truncated or corrupt file is refused (with the
    reason) and the previous checkpoint beside it is used instead."""
    if resume == "auto":
        path = output / CHECKPOINT
        if not path.exists() and not (output / PREVIOUS).exists():
            log(f"--resume auto: no checkpoint in {output}; starting a new run")
            return None
    else:
        path = Path(resume)
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
        log(f"resuming from {candidate} (epoch {state['epoch']}, "
            f"batch {state['iterators'][0]['position']})")
        return state
    raise SystemExit(f"error: no usable checkpoint among {', '.join(map(str, candidates))}")
