"""Training progress: the one event every way of training a member reports (in this process, from a worker process
as a JSON line, from a Ray task through a queue), and the run's time left estimated from them.

Stages print nothing: they call `on_progress(Progress(...))`; the CLI renders the events.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# When the command began (kit.cli.main sets it): `kit train --time` counts its budget from there, the interpreter's and
# the imports' seconds included.
COMMAND_START: ContextVar[float | None] = ContextVar("COMMAND_START", default=None)


@dataclass(frozen=True)
class Progress:
    """Member `member` (of the run's `members`) has done `epoch` of its `epochs`: 0 when it is queued (`started`
    False: the run will train it) or has just started; after an epoch `logs` has loss, accuracy, val_loss,
    val_accuracy, images_per_s and seconds. `where` names the Ray node that trains it. Once trained, the member
    predicts: `predicted` of its `to_predict` image-views (validation and test rows, in each TTA view); `images` is
    what one of its epochs trains on, so the time left weighs both phases."""

    member: int
    members: int
    epoch: int
    epochs: int
    started: bool = True
    logs: dict[str, float] = field(default_factory=dict)
    where: str = ""
    images: int = 0
    to_predict: int = 0
    predicted: int = 0

    @property
    def predicting(self) -> bool:
        return self.predicted > 0 and self.epoch >= self.epochs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Progress:
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})


ProgressHook = Callable[[Progress], None]


def both(first: ProgressHook | None, second: ProgressHook | None) -> ProgressHook | None:
    """One hook that calls `first`, then `second` (either may be None)."""
    if first is None or second is None:
        return first or second

    def called(event: Progress) -> None:
        first(event)
        second(event)

    return called


LINE = "KIT-EVENT "  # a worker process's Progress on its stdout: this prefix, then the event as JSON


def to_line(event: Progress) -> str:
    return LINE + json.dumps(event.to_dict())


ERROR = "KIT-ERROR "  # a worker's one-line error on its stdout, which reaches the parent when its log cannot be written


def error_line(message: str) -> str:
    return ERROR + " ".join(message.split())


def error_of(line: str) -> str | None:
    """The error a worker's stdout line carries, or None."""
    return line[len(ERROR) :].strip() if line.startswith(ERROR) else None


def from_line(line: str) -> Progress | None:
    """The Progress a worker's stdout line carries; None for any other line (or a garbled one: a lost update)."""
    if not line.startswith(LINE):
        return None
    try:
        return Progress.from_dict(json.loads(line[len(LINE) :]))
    except (ValueError, TypeError, KeyError):
        return None


# How many predicted image-views cost what one trained image does (a training step is a forward and a backward pass
# and the optimizer's): kitnet on 2 CPU cores, float32, 458 img/s trained against 1,708 predicted (3.73x;
# benchmarks/predict_cost.py).
TRAIN_COST = 3.7


class TimeLeft:
    """The run's elapsed time and time left, from its members' events: the work still to do (epochs to train and
    image-views to predict, of every member it was told of, prediction counted in epochs by TRAIN_COST) at the pace
    the run has kept so far (work done per second of wall time, whatever number of members train at once). Unknown
    (None) until some work is done."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: float | None = None
        self._done: dict[int, int] = {}
        self._epochs: dict[int, int] = {}
        self._predicted: dict[int, float] = {}  # in epochs
        self._to_predict: dict[int, float] = {}  # in epochs

    def update(self, event: Progress) -> None:
        if self._start is None:
            self._start = self._clock()
        self._epochs[event.member] = event.epochs
        self._done[event.member] = max(event.epoch, self._done.get(event.member, 0))
        per_epoch = event.images * TRAIN_COST
        if per_epoch > 0:  # an event that does not say (an older worker's) keeps what the member said before
            self._to_predict[event.member] = event.to_predict / per_epoch
            self._predicted[event.member] = max(event.predicted / per_epoch, self._predicted.get(event.member, 0.0))

    def _work(self) -> tuple[float, float]:
        """(done, total) in epochs, prediction included."""
        done = self.epochs_done + sum(self._predicted.values())
        return done, self.epochs_total + sum(self._to_predict.values())

    @property
    def epochs_done(self) -> int:
        return sum(self._done.values())

    @property
    def epochs_total(self) -> int:
        return sum(self._epochs.values())

    def elapsed(self) -> float:
        return 0.0 if self._start is None else self._clock() - self._start

    def left(self) -> float | None:
        (done, total), elapsed = self._work(), self.elapsed()
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, total - done) * elapsed / done


def clock(seconds: float | None) -> str:
    """`h:mm:ss` (or `m:ss` under an hour); `?` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(max(0.0, seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
