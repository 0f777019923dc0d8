"""A progress line for long work: rewritten in place on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time


class ProgressLine:
    """Shows progress on ``stream`` (stderr by default).

    On a terminal the line is rewritten in place, at most every ``tty_every_s`` seconds; in a log
    a plain line is written at most every ``every_s`` seconds. ``final=True`` always shows and
    ends the line.
    """

    def __init__(self, every_s: float = 5.0, tty_every_s: float = 0.2, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = tty_every_s if self.tty else every_s
        self.start = self.last = time.monotonic()
        self._open = False  # a terminal line waiting for its newline

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def show(self, text: str, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
            self._open = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends a terminal line left open (work stopped before its final update)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


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
