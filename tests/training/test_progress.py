"""Progress lines and the stderr relay: other text never lands on an open progress line."""
from __future__ import annotations

import io
import os

from dali_cmo.training.progress import ProgressLine, StderrRelay, end_open_line


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_open_progress_line_is_ended_before_other_text():
    terminal = FakeTerminal()
    line = ProgressLine(stream=terminal, tty_every_s=0.0)
    line.show("epoch 1/2 [###...] 3/10")
    line.show("epoch 1/2 [####..] 4/10")
    end_open_line()
    end_open_line()  # nothing open: nothing written
    line.close()
    assert terminal.getvalue() == "\repoch 1/2 [###...] 3/10\repoch 1/2 [####..] 4/10\n"


def test_the_relay_passes_every_stderr_line_and_ends_the_progress_line_first():
    """A C library's write to file descriptor 2 (as libjpeg's warnings) goes through the relay."""
    terminal, seen = FakeTerminal(), []
    with StderrRelay(on_line=seen.append):
        line = ProgressLine(stream=terminal, tty_every_s=0.0)
        line.show("epoch 1/2 [#.....] 1/10")
        os.write(2, b"Corrupt JPEG data: premature end of data segment\n")
    assert seen == ["Corrupt JPEG data: premature end of data segment"]
    assert terminal.getvalue() == "\repoch 1/2 [#.....] 1/10\n"
