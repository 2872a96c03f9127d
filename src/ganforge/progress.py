"""Progress lines of long jobs outside training (a download, a features pass, an export): one
plain line per tenth of the job, or after ``seconds`` without one; never a carriage return, so a
log file gets readable lines. (Training has its own: training.display.)"""
from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Callable, Iterator

# Off inside ``silenced()``: a training started with progress off (``ganforge train --quiet``,
# ``api.train(progress=False)``) had still printed "read 53 of 523 images (10%)" ten times
_SHOWN = contextvars.ContextVar("ganforge_progress_shown", default=True)


def shown() -> bool:
    """Whether progress lines of jobs outside training (reading a folder) are said here."""
    return _SHOWN.get()


@contextlib.contextmanager
def silenced(silent: bool = True) -> Iterator[None]:
    """No progress lines within (``silent``); warnings and errors are said as ever."""
    token = _SHOWN.set(not silent and _SHOWN.get())
    try:
        yield
    finally:
        _SHOWN.reset(token)


class Tenths:
    """``progress(done)`` after each piece of a job of ``total`` units: ``say(line(done))`` at each
    new tenth (the last one included) and when ``seconds`` passed without a line. ``total`` None
    (unknown, or too small to be followed in tenths): by time alone."""

    def __init__(self, say: Callable[[str], None], total: int | None, line: Callable[[int], str], *,
                 seconds: float = 10.0):
        self.say, self.total, self.line, self.seconds = say, total, line, seconds
        self.last_time, self.last_tenth = time.monotonic(), 0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        tenth = min(10, done * 10 // self.total) if self.total else 0
        if tenth > self.last_tenth or now - self.last_time >= self.seconds:
            self.say(self.line(done))
            self.last_time, self.last_tenth = now, tenth
