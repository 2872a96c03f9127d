"""What a user sees of a training run while it trains: the tqdm bar's numbers on a terminal, or a
plain line every tenth of the steps on a log file or in CI (``LineProgress``), and the guard
that stops training with a checkpoint when the reader of its output has gone (``ReaderGone``).
The Trainer picks one and feeds it each record; nothing here knows a family.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import time
from typing import Any, Callable


def is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal a progress bar can be drawn in: a TTY of known width. One
    that reports 0 columns (``docker run -t``, CI runners' ptys, ``script``) had shown no progress
    at all (tqdm draws nothing at width 0): it gets the plain lines a pipe gets."""
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):  # replaced, closed, or of unknown size
        return False


def rate_text(v: float) -> str:
    """A throughput in whole units, or 3 significant digits below 10 (a voice-conversion run at
    batch 1 makes 0.94 clips/s, which had read clips/s=0)."""
    return f"{v:.0f}" if v >= 10 else f"{v:.3g}"


def clock(seconds: float) -> str:
    """'4:05' or '1:02:03', as tqdm shows a time."""
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class ReaderGone:
    """sys.stdout or sys.stderr while training: a write to a pipe whose reader has gone (``ganforge
    train ... | head -1``) stops training as a signal does, with a checkpoint, instead of raising
    BrokenPipeError out of a progress line or a warning (the run had ended with exit 141 and no
    checkpoint since step 0: 350 steps lost). Later writes go nowhere: the file descriptor is
    pointed at os.devnull, so Python's flush at exit cannot fail either."""

    def __init__(self, stream, on_gone: Callable[[], None]):
        self._stream, self._on_gone = stream, on_gone

    def _guard(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
                raise
            with contextlib.suppress(AttributeError, OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
            self._on_gone()
            return len(args[0]) if args and isinstance(args[0], str) else None

    def write(self, text: str):
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


class LineProgress:
    """Progress for a log file or CI (stderr not a terminal): a plain line every 10% of the
    steps or every 30 seconds, with the step, the rate, the time taken and left (as the bar
    shows them) and the losses of the last record logged. tqdm there wrote every refresh joined
    by carriage returns, one line of kilobytes. Stands in for the tqdm bar (update,
    set_postfix_str, write, n, close)."""

    SECONDS = 30.0

    def __init__(self, total: int, initial: int, file=None):
        self.total, self.n, self.file = total, initial, file
        self.every = max(1, total // 10)
        self.postfix = ""
        self._postfix_step, self._fresh = None, False  # the step of the record the numbers are from
        self._last_step, self._last_time = initial, time.perf_counter()
        self._start, self._done = self._last_time, 0  # steps run here, rolled back ones too

    def update(self, k: int) -> None:
        if self.n < self._last_step:  # a rollback set n back
            self._last_step = self.n
        self.n += k
        self._done += k
        if self._fresh:  # the trainer sets a record's numbers, then moves to its step
            self._postfix_step, self._fresh = self.n, False
        now = time.perf_counter()
        mark = self.n // self.every > self._last_step // self.every or self.n >= self.total
        if self.n > self._last_step and (mark or now - self._last_time >= self.SECONDS):
            rate = (self.n - self._last_step) / max(now - self._last_time, 1e-9)
            # the time left at the pace so far, saves and samples included, as the bar's
            elapsed = now - self._start
            left = (f", {clock((self.total - self.n) * elapsed / self._done)} left"
                    if self.n < self.total else "")
            # numbers of an earlier record say so: repeated unmarked, they had read as a stalled run
            at = f" (logged at step {self._postfix_step})" if self._postfix_step not in (None, self.n) else ""
            numbers = f", {self.postfix}{at}" if self.postfix else ""
            print(f"ganforge: step {self.n}/{self.total} ({100 * self.n // max(self.total, 1)}%), "
                  f"{rate:.3g} steps/s, {clock(elapsed)} elapsed{left}{numbers}",
                  file=self.file or sys.stderr, flush=True)
            self._last_step, self._last_time = self.n, now

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix, self._fresh = text, True

    def forget_postfix(self) -> None:
        """No record's numbers to show (after a rollback), until the next record's."""
        self.postfix, self._fresh, self._postfix_step = "", False, None

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


def postfix_parts(record: dict[str, Any], rate: str = "img/s", raw: bool = False) -> list[tuple[str, str]]:
    """The progress bar's numbers as (key, text) in the order shown; D(x) and D(G(z)) are one
    part, "d_outputs" (see postfix)."""
    names = {"d_loss": "D", "g_loss": "G", "d_real": "D(x)", "d_fake": "D(G(z))",
             "ada_p": "ADA p", "img_per_s": rate}  # ADA p: adaptive augmentation's probability
    parts: list[tuple[str, str]] = []
    for key, label in names.items():
        v = record.get(key)
        if isinstance(v, float) and math.isfinite(v):
            text = f"{label}={rate_text(v)}" if key == "img_per_s" else f"{label}={v:.3f}"
        elif v is None and f"{key}_0" in record:  # one value per level (LAPGAN), coarse to fine
            levels = [record[f"{key}_{i}"] for i in range(len(record)) if f"{key}_{i}" in record]
            if not all(isinstance(x, float) and math.isfinite(x) for x in levels):
                continue
            text = f"{label}=" + "/".join(f"{x:.3f}" for x in levels)
        else:
            continue
        if key in ("d_real", "d_fake") and parts and parts[-1][0] == "d_outputs":
            parts[-1] = ("d_outputs", f"{parts[-1][1]} {text}")
        else:
            parts.append(("d_outputs" if key in ("d_real", "d_fake") else key, text))
    if raw:
        parts = [(k, f"{t} (raw scores)" if k == "d_outputs" else t) for k, t in parts]
    return parts


def postfix(record: dict[str, Any], rate: str = "img/s", raw: bool = False) -> str:
    """The progress bar's numbers; ``rate``: what img_per_s counts ("clips/s" for audio);
    ``raw``: D(x) and D(G(z)) are raw scores, not probabilities, and the line says so (LAPGAN's
    D(x)=0.033 had read as a D that rejects the real images)."""
    return " ".join(text for _, text in postfix_parts(record, rate, raw))


# What a narrow terminal's bar keeps of its numbers, first to last: tqdm had cut them where
# the width ran out ("D(x)=0.688 D(G(z" at 80 columns), images per second never shown
FIT_ORDER = ("d_loss", "g_loss", "img_per_s", "ada_p", "d_outputs")


def fit_postfix(parts: list[tuple[str, str]], bar) -> str:
    """The numbers (``postfix_parts``) for ``bar``: all of them on a log file's lines; on a
    terminal, those that fit beside the bar (at least 5 columns of it) by FIT_ORDER, whole, in the
    order shown."""
    if isinstance(bar, LineProgress):
        return " ".join(text for _, text in parts)
    try:
        columns = os.get_terminal_size(bar.fp.fileno()).columns
        meter = len(bar.format_meter(**{**bar.format_dict, "postfix": None, "ncols": None}))  # a 10-column bar
    except Exception:  # noqa: BLE001 - no terminal size to fit (the bar's own width then rules)
        return " ".join(text for _, text in parts)
    # the meter was laid out with a bar of 10 columns; 5 are enough, and 2 spare: the rate and
    # times grow as training goes (80 columns then keep D, G and img/s)
    room = columns - (meter - 10 + 5) - len(", ") - 2
    keep: set[str] = set()
    for key in FIT_ORDER:
        text = next((t for k, t in parts if k == key), None)
        if text is not None and sum(len(t) + 1 for k, t in parts if k in keep) + len(text) <= room:
            keep.add(key)
    return " ".join(text for key, text in parts if key in keep)
