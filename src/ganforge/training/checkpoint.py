"""Checkpoints as state dicts, never pickled code.

Layout of ``RUN/checkpoints/``::

    step_0001000/weights.safetensors   every net, and its EMA copy as "ema.<net>.<param>"
    step_0001000/state.pt              optimizers, scaler, step, RNG states, data position, config
    latest                             name of the newest complete checkpoint (one line)
    best                               (optional) name of the best checkpoint by a metric

A checkpoint directory is written under a temporary name, fsynced and renamed, and ``latest`` is
replaced atomically after it, so a process killed at any moment leaves the previous checkpoint
loadable. ``state.pt`` loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write_text, fsync_dir
from ..errors import CheckpointError

WEIGHTS = "weights.safetensors"
STATE = "state.pt"


def flatten_weights(nets: dict[str, torch.nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for name, net in nets.items():
        for key, tensor in net.state_dict().items():
            out[f"{prefix}{name}.{key}"] = tensor.detach().cpu().contiguous()
    return out


def unflatten_weights(flat: dict[str, torch.Tensor], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, tensor in flat.items():
        if not key.startswith(prefix):
            continue
        net, _, param = key[len(prefix):].partition(".")
        out.setdefault(net, {})[param] = tensor
    return out


def save(ckpt_root: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
         keep: int, protect: tuple[str, ...] = ()) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune to ``keep``."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(weights, str(tmp / WEIGHTS))
    torch.save(state, tmp / STATE)
    for file in (WEIGHTS, STATE):
        with open(tmp / file, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():  # same step written again (e.g. a signal right after a periodic save)
        old = ckpt_root / f".old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / "latest", name + "\n")
    _prune(ckpt_root, keep, protect=(name, *protect, _read_pointer(ckpt_root, "best") or ""))
    return final


def mark_best(ckpt_root: Path, name: str) -> None:
    """Point ``best`` at checkpoint ``name``; pruning keeps it."""
    atomic_write_text(ckpt_root / "best", name + "\n")


def _prune(ckpt_root: Path, keep: int, protect: tuple[str, ...]) -> None:
    complete = sorted(p for p in ckpt_root.glob("step_*") if _is_complete(p))
    for path in complete[:-keep] if keep > 0 else []:
        if path.name not in protect:
            shutil.rmtree(path, ignore_errors=True)
    for leftover in ckpt_root.glob(".tmp-*"):  # from a process killed mid-write
        if not leftover.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(leftover, ignore_errors=True)


def _is_complete(path: Path) -> bool:
    return (path / WEIGHTS).is_file() and (path / STATE).is_file()


def _read_pointer(ckpt_root: Path, pointer: str) -> str | None:
    try:
        return (ckpt_root / pointer).read_text().strip() or None
    except OSError:
        return None


def find(run_dir: Path, which: str = "latest") -> Path:
    """The checkpoint directory for ``which``: 'latest', 'best' or a step_XXXXXXX name."""
    ckpt_root = Path(run_dir) / "checkpoints"
    if which in ("latest", "best"):
        name = _read_pointer(ckpt_root, which)
        if name and _is_complete(ckpt_root / name):
            return ckpt_root / name
        if which == "best":
            raise CheckpointError(f"{run_dir} has no 'best' checkpoint (it needs eval.every > 0 "
                                  f"during training); use --checkpoint latest")
        complete = sorted(p for p in ckpt_root.glob("step_*") if _is_complete(p))
        if complete:
            return complete[-1]
        raise CheckpointError(f"no checkpoint in {ckpt_root}; train first "
                              f"(ganforge train PRESET --out {run_dir})")
    path = ckpt_root / which
    if not _is_complete(path):
        raise CheckpointError(f"checkpoint '{which}' not found in {ckpt_root}; "
                              f"use latest, best or one of: "
                              f"{', '.join(p.name for p in sorted(ckpt_root.glob('step_*')))}")
    return path


def load(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(flat weights, state) of a checkpoint directory; a corrupt file is a CheckpointError."""
    try:
        weights = load_file(str(path / WEIGHTS), device=str(map_location))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path / WEIGHTS} is corrupt or unreadable "
                              f"({str(exc).splitlines()[0][:120]}); delete {path} to fall back to "
                              f"an earlier checkpoint, or retrain") from None
    try:
        state = torch.load(path / STATE, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise CheckpointError(f"checkpoint {path / STATE} is corrupt or unreadable "
                              f"({str(exc).splitlines()[0][:120]}); delete {path} to fall back to "
                              f"an earlier checkpoint, or retrain") from None
    return weights, state
