"""One place for training statistics: scalars are summed on the device between log intervals
(no host sync per step) and written as one JSON line per interval, plus TensorBoard when installed.
Events (diagnostics, rollbacks) are JSON lines of their own with an ``event`` key."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch


class MetricsLogger:
    def __init__(self, run_dir: Path | None, enabled: bool = True):
        self.enabled = enabled and run_dir is not None
        self.path = Path(run_dir) / "metrics.jsonl" if run_dir is not None else None
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self.tb = None
        if self.enabled:
            try:  # optional dependency
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed (ImportError) or unusable
                self.tb = None

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

    def truncate_to(self, size: int | None, step: int) -> int:
        """Drop what was logged after a checkpoint: the lines past byte ``size`` (its
        ``metrics_bytes``), which describe training a resume from it redoes and would log again,
        including a killed process's partial last line. Events logged before the checkpoint (a
        rollback whose learning-rate scale it carries) stay. A checkpoint of an older version
        has no size: then the training records after ``step`` and a partial line go, and the
        events stay. Returns how many lines were dropped."""
        if not self.enabled or not self.path.is_file():
            return 0
        from ..atomic import atomic_write_text

        if size is not None:
            data = self.path.read_bytes()
            if len(data) <= size:
                return 0
            kept, cut = data[:size].decode(errors="replace"), data[size:].decode(errors="replace")
            dropped = sum(1 for line in cut.splitlines() if line.strip())
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
        if dropped:
            atomic_write_text(self.path, kept)
        return dropped

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")
        if self.tb is not None and "step" in record:
            step = record["step"]
            if "event" in record:
                self.tb.add_text(f"events/{record['event']}", json.dumps(record), step)
            else:
                for k, v in record.items():
                    if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                        self.tb.add_scalar(k, v, step)

    def add_image(self, tag: str, image_chw: torch.Tensor, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, image_chw, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
