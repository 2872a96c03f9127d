"""One place for training statistics: scalars are summed on the device between log intervals
(no host sync per step) and written as one JSON line per interval, plus TensorBoard when installed.
Events (diagnostics, rollbacks) are JSON lines of their own with an ``event`` key.

TensorBoard's writer is made at the first record; a resume or a rollback first sets
``purge_step`` (the first step it redoes, ``purge_from``), so TensorBoard drops the events written
earlier of those steps. Its background thread writes the event file; an OSError there (a full
disk) is raised by the writer's next call in the main thread, which ``write``/``add_image``/
``close`` turn into an OSError naming the folder, for the Trainer's one line (the thread's own
"Exception in thread" traceback is kept quiet). A tensorboard/ folder removed while training (its
event file cannot be appended to: ENOENT) is made again by a new writer, with one warning; the
training goes on."""
from __future__ import annotations

import errno
import json
import math
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import torch


class MetricsLogger:
    def __init__(self, run_dir: Path | None, enabled: bool = True, *,
                 warn: Callable[[str], None] | None = None):
        self.enabled = enabled and run_dir is not None
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self.path = Path(run_dir) / "metrics.jsonl" if run_dir is not None else None
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.tb = None
        self.tb_dir = Path(run_dir) / "tensorboard" if run_dir is not None else None
        self.purge_step: int | None = None  # set by a resume or a rollback (purge_from)
        self._tb_tried = not self.enabled
        self._tb_off = False  # TensorBoard cannot write here at all (a path it cannot encode)

    def _writer(self):
        """TensorBoard's writer, made on first use; None when tensorboard is not installed."""
        if not self._tb_tried and not self._tb_off:
            self._tb_tried = True
            try:  # optional dependency
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed (ImportError) or unusable
                return None
            _quiet_writer_threads()
            self.tb = self._guarded(SummaryWriter, log_dir=str(self.tb_dir), purge_step=self.purge_step)
        return self.tb

    def _guarded(self, fn, *args, **kwargs):
        """``fn(...)`` of TensorBoard; an OSError (the writer's own, or its thread's, which it
        re-raises) closes the writer and is raised again naming the folder. A folder whose path
        is not valid UTF-8 (TensorBoard encodes its file names as UTF-8) had ended the run at its
        first record with a traceback: TensorBoard is optional output, so it is turned off with
        one warning and None is returned; the training goes on."""
        try:
            return fn(*args, **kwargs)
        except UnicodeError:
            self.close(quiet=True)
            self._tb_tried = self._tb_off = True
            shown = str(self.tb_dir).encode("utf-8", "backslashreplace").decode()  # printable
            self.warn(f"ganforge: warning: no TensorBoard events for this run: TensorBoard cannot "
                      f"write to {shown}, whose path is not valid UTF-8 (metrics.jsonl, "
                      f"checkpoints and samples are written); a run folder with a UTF-8 name gets them")
            return None
        except OSError as exc:
            self.close(quiet=True)
            self._tb_tried = True  # no new writer after a failed one
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.tb_dir)) from None

    def _tb_call(self, method: str, *args):
        """The writer's ``method(*args)``. Where tensorboard/ was removed while training (the run
        folder still there), a new writer makes it again and the call is made once more: a
        traceback had ended the run. Its removal with the run folder is raised, for the Trainer."""
        try:
            return self._guarded(getattr(self.tb, method), *args)
        except OSError as exc:
            if not self._tb_removed(exc):
                raise
        self._tb_tried = False  # _guarded closed the old writer, whose events went with the folder
        self.warn(f"ganforge: {self.tb_dir} was removed while training; made it again (the "
                  f"TensorBoard events it held are gone)")
        writer = self._writer()
        return None if writer is None else self._guarded(getattr(writer, method), *args)

    def _tb_removed(self, exc: OSError) -> bool:
        """Whether ``exc`` is tensorboard/ gone from a run folder that is still there."""
        return (exc.errno == errno.ENOENT and self.tb_dir is not None and not self.tb_dir.is_dir()
                and self.tb_dir.parent.is_dir())

    def purge_from(self, step: int) -> None:
        """TensorBoard drops what it holds of ``step`` and later once the next record is written:
        a resume or a rollback redoes those steps (a rollback's had been drawn again over the old
        ones, a vertical zigzag). An open writer is closed; the next record opens one that purges."""
        self.close()
        self.purge_step = step

    def accumulate(self, scalars: dict[str, torch.Tensor]) -> None:
        for name, value in scalars.items():
            if name == "loss":
                continue
            value = value.detach().float()
            if name in self._sums:
                self._sums[name] += value
                self._counts[name] += 1
            else:
                self._sums[name] = value.clone()
                self._counts[name] = 1

    def flush_means(self) -> dict[str, float]:
        """Means since the last call, fetched from the device in one transfer."""
        if not self._sums:
            return {}
        names = list(self._sums)
        values = torch.stack([self._sums[n] for n in names]).cpu().tolist()
        out = {n: v / self._counts[n] for n, v in zip(names, values)}
        self._sums.clear()
        self._counts.clear()
        return out

    def size(self) -> int | None:
        """Bytes written so far (a checkpoint records it: ``truncate_to`` goes back to it)."""
        if not self.enabled:
            return None
        return self.path.stat().st_size if self.path.is_file() else 0

    def truncate_to(self, size: int | None, step: int, *, keep_events: bool = False) -> int:
        """Drop what was logged after a checkpoint: the lines past byte ``size`` (its
        ``metrics_bytes``), which describe training a resume from it redoes and would log again,
        including a killed process's partial last line. Events logged before the checkpoint (a
        rollback whose learning-rate scale it carries) stay. A checkpoint of an older version
        has no size: then the training records after ``step`` and a partial line go, and the
        events stay. Returns how many lines were dropped that a resume redoes (the record of how
        the last process ended, which goes too, is no such line: resuming a finished run to train
        longer said "dropped 1 line" each time). ``keep_events``: a resume that changes the
        config does not redo that training but replaces it, so the events past the checkpoint (a
        divergence, its rollbacks, how the run ended) stay as its history; only the training
        records go (a resume with lower rates after a divergence had erased the divergence)."""
        if not self.enabled or not self.path.is_file():
            return 0
        from ..atomic import atomic_write_text

        if size is not None:
            data = self.path.read_bytes()
            if len(data) <= size:
                return 0
            kept, cut = data[:size].decode(errors="replace"), data[size:].decode(errors="replace")
            gone = [line for line in cut.splitlines() if line.strip()]
            if keep_events:
                events = [line for line in gone if _is_event(line)]
                kept = kept + "".join(f"{line}\n" for line in events)
                gone = [line for line in gone if not _is_event(line)]
            dropped = sum(1 for line in gone if not _is_end(line))
        else:
            lines, dropped = [], 0
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    obj = json.loads(line)
                    keep = isinstance(obj, dict) and ("event" in obj or obj.get("step", math.inf) <= step)
                except json.JSONDecodeError:
                    keep = False
                if keep:
                    lines.append(line)
                elif line.strip():
                    dropped += 1
            kept = "".join(f"{line}\n" for line in lines)
            gone = [None] * dropped
        if gone:
            atomic_write_text(self.path, kept)
        return dropped

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(clean) + "\n")
        except OSError as exc:  # a full disk: name the file (a write's own error does not)
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path)) from None
        if "step" in record and self._writer() is not None:
            step = record["step"]
            if "event" in record:
                self._tb_call("add_text", f"events/{record['event']}", json.dumps(record), step)
            else:
                for k, v in record.items():
                    if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                        self._tb_call("add_scalar", k, v, step)

    def add_image(self, tag: str, image_chw: torch.Tensor, step: int) -> None:
        if self.enabled and self._writer() is not None:
            self._tb_call("add_image", tag, image_chw, step)

    def close(self, *, quiet: bool = False) -> None:
        """Flush and close TensorBoard's writer (once). ``quiet``: an OSError is swallowed (a
        close on the way out of another error must not replace it). tensorboard/ removed since
        the last record is a warning: its last events are lost, the run's training is not."""
        tb, self.tb = self.tb, None
        if tb is None:
            return
        self._tb_tried, self.purge_step = False, None  # a later record opens a new writer
        try:
            try:
                tb.flush()
            finally:
                tb.close()
        except OSError as exc:
            if not quiet and self._tb_removed(exc):
                self.warn(f"ganforge: {self.tb_dir} was removed while training; its last "
                          f"TensorBoard events are lost")
            elif not quiet:
                raise OSError(exc.errno, exc.strerror or str(exc), str(self.tb_dir)) from None


def _is_event(line: str) -> bool:
    """Whether ``line`` is a complete event record (divergence, rollback, end, ...), not a
    training record or a killed process's partial line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "event" in obj


def _is_end(line: str) -> bool:
    """Whether ``line`` is the trainer's record of how a run ended (``{"event": "end", ...}``)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("event") == "end"


def _quiet_writer_threads() -> None:
    """Keep the OSError that ends TensorBoard's writer thread (a full disk) from being printed
    as "Exception in thread ...": the writer raises it again in the main thread, where it
    becomes one line. Other threads' exceptions, and other errors, go to the hook as before."""
    previous = threading.excepthook
    if getattr(previous, "ganforge_quiet", False):
        return

    def hook(args):
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.ganforge_quiet = True
    threading.excepthook = hook
