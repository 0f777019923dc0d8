"""A run's settings, typed: what the trainer's parts receive instead of a parsed command line.

``train.py``'s command line (:mod:`dali_cmo.cli.train_args`) resolves its flags (presets fill
what is left unset) and hands the library one :class:`RunSettings`. Its field names are the
flags' (``batch_size`` is ``--batch-size``), so :meth:`RunSettings.record` is the run's command line
as checkpoints and ``metrics.json`` have always recorded it, and a run's identity (what may not
change on resume, :mod:`dali_cmo.training.checkpoint`) is read from that record.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dali_cmo.training.recipes import LRSchedule


class UsageError(Exception):
    """A user mistake or unusable input: ``train.py`` prints ``train.py: error: <message>`` (no
    traceback, no usage text) and exits with ``status`` (2: arguments, 1: data).

    Args:
        message: one line naming the flag or file and what to do.
        status: the exit status.
    """

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RunSettings:
    """What the trainer's parts read of a run's resolved settings, typed, and the whole command
    line as a record. ``train.py --help`` says what each value means (field ``x_y`` is flag
    ``--x-y``) and its default: no field has one here, the command line is their one home. The
    CMO values (variant, window, probability, Q) reach the trainer inside the training pipeline
    it is handed, not from here.

    Build with :meth:`from_command_line`.
    """
    command_line: dict  # every resolved value by flag name (``--batch-size`` -> ``batch_size``)
    # data, model and loss
    dataset: str
    groups: str
    model: str
    pretrained: str | None
    loss: str
    drw_epoch: int | None
    variant: str
    on_bad_image: str
    # optimisation
    epochs: int
    batch_size: int
    rank_batch_size: int  # batch_size / world_size
    lr: float
    momentum: float
    wd: float
    warmup: int
    decay: str
    decay_epochs: list[int]
    decay_factor: float
    # machine
    device: str
    amp: bool
    channels_last: bool
    dali_threads: int
    torch_threads: int
    # the run's record and what to do with it
    resume: str | None
    allow_change: list[str]
    test_only: str | None
    bn_stats_from: str | None
    eval_every: int
    log_every: int
    print_every: float
    stop_after_steps: int
    debug_shards: bool

    @classmethod
    def from_command_line(cls, values: dict) -> "RunSettings":
        """The settings of the resolved command line ``values`` (flag name -> value)."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "command_line"]
        return cls(command_line=dict(values), **{name: values[name] for name in names})

    def record(self) -> dict:
        """Every resolved value by flag name (checkpoints, ``metrics.json``, the run's
        identity)."""
        return dict(self.command_line)

    def with_reader(self, reader: str) -> "RunSettings":
        """These settings recording ``reader`` as the reader that reads (in-memory pixels and
        short epochs always use the Python sources): a stream position restores with it only,
        so it is part of the run's identity."""
        return dataclasses.replace(self, command_line={**self.command_line, "reader": reader})

    def lr_schedule(self) -> LRSchedule:
        """The learning-rate schedule the settings describe."""
        return LRSchedule(self.lr, self.epochs, warmup_epochs=self.warmup, decay=self.decay,
                          decay_epochs=self.decay_epochs, decay_factor=self.decay_factor)
