"""A progress line for long work: rewritten in place on a terminal, plain lines otherwise; and
a relay of everything else written to stderr that never glues it onto an open progress line."""
from __future__ import annotations

import itertools
import os
import sys
import threading
import time

_LOCK = threading.Lock()
_TERMINAL = {"stream": None, "open": None}  # the real stderr while a relay runs; the open line
_SYNC = "\x00dali_cmo relay sync "  # a line StderrRelay.sync writes to itself


def end_open_line() -> None:
    """End a terminal progress line left open, so that other text starts on a line of its own."""
    with _LOCK:
        _end_open_line()


def _end_open_line() -> None:  # holding _LOCK
    line, _TERMINAL["open"] = _TERMINAL["open"], None
    if line is not None:
        line.stream.write("\n")
        line.stream.flush()


class ProgressLine:
    """Shows progress on ``stream`` (stderr by default).

    On a terminal the line is rewritten in place, at most every ``tty_every_s`` seconds; in a log
    a plain line is written at most every ``every_s`` seconds. ``final=True`` always shows and
    ends the line.
    """

    def __init__(self, every_s: float = 5.0, tty_every_s: float = 0.2, stream=None):
        self.stream = stream or _TERMINAL["stream"] or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = tty_every_s if self.tty else every_s
        self.start = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def show(self, text: str, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        with _LOCK:
            if self.tty:
                self.stream.write("\r" + text + ("\n" if final else ""))
                _TERMINAL["open"] = None if final else self
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Ends a terminal line left open (work stopped before its final update)."""
        if _TERMINAL["open"] is self:
            end_open_line()


class EpochProgress:
    """The epoch's progress: a bar with images/s on a terminal, plain periodic lines otherwise
    (rank 0 only)."""

    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool, every_s: float):
        self.total, self.prefix = total, f"epoch {epoch + 1}/{epochs}"
        self.line = ProgressLine(every_s=every_s, tty_every_s=0.0) if enabled else None

    def update(self, done: int, images_per_s: float, loss: float) -> None:
        if self.line is None:
            return
        if self.line.tty:
            width = 30
            filled = int(width * done / max(self.total, 1))
            bar = "#" * filled + "." * (width - filled)
            text = (f"{self.prefix} [{bar}] {done}/{self.total} "
                    f"{images_per_s:7.1f} img/s  loss {loss:.4f} ")
        else:
            text = (f"{self.prefix}: {done}/{self.total} batches, {images_per_s:.1f} img/s, "
                    f"loss {loss:.4f}")
        self.line.show(text, final=done == self.total)

    def close(self) -> None:
        if self.line is not None:
            self.line.close()


class StderrRelay:
    """Routes file descriptor 2 (Python's warnings and C libraries' messages alike, e.g.
    libjpeg's "Corrupt JPEG data") through a pipe to the real stderr, line by line: an open
    progress line is ended before each line, and ``on_line`` sees every line (to trace a
    decoder warning to its file). Progress lines go to the real stderr directly.

    Args:
        on_line: called with each line (without its newline), in the relay's thread.
    """

    def __init__(self, on_line=None):
        self.on_line = on_line
        self._syncs: dict[str, threading.Event] = {}
        self._sync_ids = itertools.count()

    def __enter__(self) -> "StderrRelay":
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.stream = os.fdopen(os.dup(self._saved), "w", buffering=1)
        _TERMINAL["stream"] = self.stream
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True,
                                        name="dali_cmo_stderr")
        self._thread.start()
        return self

    def _pump(self, read_end: int) -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._emit(line.decode(errors="replace"))
        if pending:
            self._emit(pending.decode(errors="replace"))

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every line written to stderr before the call (by Python or a C library)
        has been relayed and seen by ``on_line``."""
        marker = f"{_SYNC}{next(self._sync_ids)}"
        done = self._syncs[marker] = threading.Event()
        sys.stderr.flush()
        os.write(2, f"{marker}\n".encode())
        done.wait(timeout)

    def _emit(self, line: str) -> None:
        if line in self._syncs:
            self._syncs.pop(line).set()
            return
        with _LOCK:
            _end_open_line()
            self.stream.write(line + "\n")
        if self.on_line is not None:
            self.on_line(line)

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's write end: the relay reads to its end
        os.close(self._saved)
        self._thread.join(timeout=10)
        _TERMINAL["stream"] = None
        self.stream.close()
