"""Checkpoints as state dicts, never pickled code.

Layout of ``RUN/checkpoints/``::

    step_0001000/weights.safetensors   every net, and its EMA copy as "ema.<net>.<param>"
    step_0001000/state.pt              optimizers, scaler, step, RNG states, data position, config
    latest                             name of the checkpoint the run continues from (one line):
                                       the newest complete one, or the one a rollback or a
                                       diverged end went back to (see ``point_latest``)
    best                               (optional) name of the best checkpoint by a metric
    <name>.safetensors                 (optional) tensors fixed for the whole run, written once
                                       (a GAN stage's start weights; see RUN_FILES)

A checkpoint directory is written under a temporary name and fsynced; then ``latest`` is
replaced atomically, and the directory renamed into place, so a process killed at any moment
leaves the previous checkpoint or the new one loadable, and ``find`` takes the new one once it is
there (see ``save``). ``state.pt`` loads with ``torch.load(weights_only=True)``. A write that fails for lack
of space or permission (ENOSPC, EROFS, ...) removes its temporary folder and ends with one line;
folders left by a process killed mid-write are removed when the run starts again
(``clean_leftovers``, called under the run directory's lock, so they cannot be another live
process's).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import load_file

import yaml

from ..atomic import (STORAGE_ERRNOS, atomic_path, atomic_write_text, check_readable, fsync_dir, is_temporary_name,
                      save_tensors, temporary_name)
from ..errors import CheckpointError, StorageError, shell_arg, warn
from ..rundir import is_locked

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
STEP_NAME = re.compile(r"step_\d+")
# Key of an objective's extra state for tensors fixed for the whole run (the generator weights a
# GAN stage started from): {name: {key: tensor}}. ``save`` writes each once, as
# checkpoints/<name>.safetensors, never over an existing one (a resumed run keeps what its first
# start wrote), and keeps only the names in state.pt; ``load`` reads them back in (None for a
# file that is missing or unreadable: what needs it says so).
RUN_FILES = "run_files"


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
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune to ``keep``.

    Everything is written and fsynced under temporary names first; then two renames, which need
    no space: ``latest`` is pointed at the new name, and the folder is renamed into place. In
    that order ``latest`` never names a step older than the newest written one (a kill between
    the renames had left a complete newer folder that resume and sample ignored), and a
    ``latest`` that names a folder not (yet) there means that write was cut short: ``find``
    then takes the newest complete checkpoint before it."""
    name = f"step_{step:07d}"
    final = ckpt_root / name
    tmp = ckpt_root / f".tmp-{name}-{os.getpid()}"
    pointer = ckpt_root / "latest"
    tmp_pointer = temporary_name(pointer)
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        state = _save_run_files(ckpt_root, state)  # before the checkpoint that names them
        save_tensors(weights, tmp / WEIGHTS)
        torch.save(state, tmp / STATE)
        for file in (WEIGHTS, STATE):
            with open(tmp / file, "rb") as f:
                os.fsync(f.fileno())
        with open(tmp_pointer, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp_pointer.unlink(missing_ok=True)
        if _is_storage_failure(exc):
            raise _write_failed(exc, ckpt_root, name) from None
        raise
    os.replace(tmp_pointer, pointer)
    if final.exists():  # the same step with other contents (a rollback reached it again)
        # a kill between these two renames leaves the step missing: clean_leftovers puts the
        # new copy (complete: it was fsynced before the old one was moved aside) in its place
        old = ckpt_root / f".old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(ckpt_root)
    _prune(ckpt_root, keep, name, protect=(name, *protect, _read_pointer(ckpt_root, "best") or ""))
    return final


def is_saved(path: Path | None, step: int) -> bool:
    """Whether ``path`` is the complete checkpoint of ``step`` (nothing to write again)."""
    return path is not None and path.name == f"step_{step:07d}" and _is_complete(path)


def _save_run_files(ckpt_root: Path, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the RUN_FILES of its objective state written (once) and replaced by their
    names."""
    extra = state.get("objective")
    files = extra.get(RUN_FILES) if isinstance(extra, dict) else None
    if not isinstance(files, dict):
        return state
    for name, tensors in files.items():
        path = ckpt_root / f"{name}.safetensors"
        if not path.exists():
            with atomic_path(path) as tmp:
                save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
    return {**state, "objective": {**extra, RUN_FILES: sorted(files)}}


def _load_run_files(ckpt_root: Path, state: dict[str, Any], map_location) -> None:
    """The RUN_FILES named in ``state``'s objective state, read back in (None where a file is
    missing or unreadable)."""
    extra = state.get("objective")
    names = extra.get(RUN_FILES) if isinstance(extra, dict) else None
    if not isinstance(names, (list, tuple)):
        return
    files: dict[str, Any] = {}
    for name in names:
        try:
            files[name] = _load_tensors(ckpt_root / f"{name}.safetensors", map_location)
        except (SafetensorError, OSError, ValueError, RuntimeError):
            files[name] = None
    extra[RUN_FILES] = files


# How writers report a full or read-only disk when they do not raise an OSError: safetensors
# ("I/O error: No space left on device (os error 28)") and torch.save's zip writer ("unexpected
# pos N vs M", a short write).
_STORAGE_MESSAGE = re.compile(r"No space left|os error (28|30|122)|Read-only file system|"
                              r"Disk quota|unexpected pos \d+ vs \d+")


def _is_storage_failure(exc: Exception) -> bool:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in STORAGE_ERRNOS
    return bool(_STORAGE_MESSAGE.search(str(exc)))


def _write_failed(exc: Exception, ckpt_root: Path, name: str) -> StorageError:
    """One line for a checkpoint that could not be written for lack of space or permission."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    elif "unexpected pos" in text:
        reason = "the write was cut short: the disk is probably full"
    else:
        reason = next((m for m in ("No space left on device", "Read-only file system", "Disk quota exceeded")
                       if m in text), " ".join(text.split())[:100])
    previous = _read_pointer(ckpt_root, "latest")
    kept = (f"the previous checkpoint {previous} is intact" if previous
            else "no earlier checkpoint exists")
    return StorageError(f"cannot write checkpoint {name} in {ckpt_root} ({reason}); {kept}; free "
                        f"some space (or make the folder writable) and continue with: ganforge "
                        f"train --resume --out {shell_arg(ckpt_root.parent)}")


_MOVED_ASIDE = re.compile(r"\.old-(step_\d+)-(\d+)")
# the trainer's own files outside checkpoints/ that atomic_path writes: samples/step_*, and
# config.yaml and metrics.jsonl in the run directory (other commands' files are left alone: an
# evaluation or a report may be writing there now, without the run's lock)
_RUN_FILES_WRITTEN = (("samples", re.compile(r"step_.*")), ("", re.compile(r"config\.yaml|metrics\.jsonl")))


def clean_leftovers(ckpt_root: Path) -> list[str]:
    """Remove the temporary folders and files of writes that were cut short (a killed process,
    a full disk): in ``ckpt_root``, and the trainer's temporary files in the run directory above
    it (samples/, config.yaml, metrics.jsonl). A step that a kill left moved aside while it was
    being written again is put back first. Only call it while holding the run directory's lock.
    Returns the names removed."""
    removed = []
    if ckpt_root.is_dir():
        for old in ckpt_root.glob(".old-step_*"):
            match = _MOVED_ASIDE.fullmatch(old.name)
            final = ckpt_root / match[1] if match else None
            if final is None or final.exists():
                continue
            new = ckpt_root / f".tmp-{match[1]}-{match[2]}"
            for source in (new, old):  # the new copy was complete before the old was moved aside
                if source.is_dir() and _is_complete(source):
                    os.replace(source, final)
                    break
        for path in ckpt_root.iterdir():
            if path.name.startswith((".tmp-", ".old-")) or (path.name.startswith(".") and ".tmp" in path.name):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path.name)
    for sub, dest in _RUN_FILES_WRITTEN:
        folder = ckpt_root.parent / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            target = is_temporary_name(path.name)
            if target is not None and dest.fullmatch(target) and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(f"{sub}/{path.name}" if sub else path.name)
    return sorted(removed)


def _reason(exc: BaseException, limit: int = 120) -> str:
    """The first sentence of an exception's first line, at most ``limit`` characters, cut at a word
    ("..."): torch's damaged-zip error had been cut mid-word ("This is an internal miniz error.
    If yo")."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = text.split(". ", 1)[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[:limit - 3].rsplit(" ", 1)[0] + "..."


def estimate_bytes(weights: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """About the size of one checkpoint: the weights, two moment tensors per optimized parameter
    (Adam's; RMSprop keeps one) and 1 MB for the rest of state.pt."""
    size = sum(t.numel() * t.element_size() for t in weights.values())
    for opt in optimizers.values():
        size += 2 * sum(p.numel() * p.element_size() for g in opt.param_groups for p in g["params"])
    return size + 2**20


def point_latest(ckpt_root: Path, name: str) -> None:
    """Point ``latest`` back at the earlier checkpoint ``name`` (a rollback's, or the last good
    one of a run that ended diverged): the newer ones are abandoned, and ``find`` takes the
    folder ``latest`` names, so a resume, ``sample`` or the report start from ``name``. The next
    ``save`` removes the abandoned ones (until then they can be looked at with --checkpoint)."""
    atomic_write_text(ckpt_root / "latest", name + "\n")


def mark_best(ckpt_root: Path, name: str) -> None:
    """Point ``best`` at checkpoint ``name``; pruning keeps it."""
    atomic_write_text(ckpt_root / "best", name + "\n")


def _prune(ckpt_root: Path, keep: int, newest: str, protect: tuple[str, ...]) -> None:
    """Keep the ``keep`` newest complete checkpoints up to ``newest`` (the one just written) and
    those in ``protect``. A checkpoint past ``newest`` is from before a rollback or a diverged end
    (``point_latest``): training went back behind it and has now written again, so it is abandoned
    and removed. It had counted among the ``keep`` newest, so a rolled-back run kept its broken
    steps in place of good ones, and listed them as its newest."""
    folders = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    complete = [p for p in folders if _is_complete(p)]
    abandoned = [p for p in complete if p.name > newest]
    kept = [p for p in complete if p.name <= newest]
    # a step folder without its weights or state is of no use (find skips it): one a kill left
    # half-removed (rmtree is not atomic) had stayed for good, beyond keep_checkpoints
    broken = [p for p in folders if not _is_complete(p) and p.name != newest]
    for path in abandoned + (kept[:-keep] if keep > 0 else []) + broken:
        if path.name not in protect:
            _remove(path)
    for leftover in ckpt_root.glob(".tmp-*"):  # from a process killed mid-write
        if not leftover.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(leftover, ignore_errors=True)


def _remove(path: Path) -> None:
    """Remove a checkpoint folder so that a kill part way leaves it whole or gone: renamed first to
    a temporary name (which clean_leftovers and the next prune remove), then deleted."""
    doomed = path.with_name(f".tmp-removing-{path.name}")
    try:
        os.replace(path, doomed)
    except OSError:
        doomed = path
    shutil.rmtree(doomed, ignore_errors=True)


def _complete_names(ckpt_root: Path, last: int | None = None) -> str:
    """The names of the complete checkpoints (the ``last`` newest), for messages: a folder
    without its weights or state had been offered as one to use, by the error refusing it."""
    names = [p.name for p in sorted(ckpt_root.glob("step_*")) if _is_complete(p)]
    return ", ".join(names[-last:] if last else names) or "none yet"


def _is_complete(path: Path) -> bool:
    return (path / WEIGHTS).is_file() and (path / STATE).is_file()


def _read_pointer(ckpt_root: Path, pointer: str) -> str | None:
    try:
        return (ckpt_root / pointer).read_text().strip() or None
    except (OSError, UnicodeDecodeError):  # bytes that are not text: a damaged pointer, as a missing one
        return None


def run_of_checkpoint(path: Path | str, which: str = "latest") -> tuple[Path, str]:
    """(run directory, checkpoint name): a checkpoint folder (RUN/checkpoints/step_XXXXXXX, what
    ``train()`` returns as ``.checkpoint``) stands for its run with that checkpoint (it had been
    read as a run directory: "no checkpoint in .../step_0000004/checkpoints; train first");
    any other path is the run directory itself, with ``which``."""
    path = Path(path)
    if not (STEP_NAME.fullmatch(path.name) and path.parent.name == "checkpoints" and path.is_dir()):
        return path, which
    run_dir = path.parent.parent
    if which not in ("latest", path.name):
        raise CheckpointError(f"{path} is checkpoint {path.name} of run {run_dir}, and checkpoint '{which}' names "
                              f"another; pass the run folder {run_dir} with --checkpoint {which} "
                              f"(checkpoint='{which}' in Python)")
    return run_dir, path.name


def find(run_dir: Path, which: str = "latest") -> Path:
    """The checkpoint directory for ``which``: 'latest', 'best' or a step_XXXXXXX name (of
    ``run_dir``, or the checkpoint folder given as ``run_dir``)."""
    run_dir, which = run_of_checkpoint(run_dir, which)
    ckpt_root = Path(run_dir) / "checkpoints"
    if which not in ("latest", "best") and not STEP_NAME.fullmatch(which):
        # Never a path: --checkpoint ../../other_run/... would load another run's weights.
        names = _complete_names(ckpt_root, 3)
        folder = Path(which).expanduser()
        own = (" (a checkpoint folder stands for its run: pass it in place of the run, with no "
               "--checkpoint)" if STEP_NAME.fullmatch(folder.name) and folder.is_dir() else "")
        raise CheckpointError(f"--checkpoint '{which}' (checkpoint= in Python) is not latest, best or a "
                              f"step_XXXXXXX name of {ckpt_root} (its checkpoints: {names}){own}")
    if which in ("latest", "best"):
        name = _read_pointer(ckpt_root, which)
        if name and STEP_NAME.fullmatch(name) and _is_complete(ckpt_root / name):
            return ckpt_root / name
        if which == "best":
            recent = _complete_names(ckpt_root, 3)
            raise CheckpointError(f"{run_dir} has no 'best' checkpoint{_why_no_best(run_dir)}; use "
                                  f"--checkpoint latest or a step_XXXXXXX name (checkpoint='latest' in Python; its "
                                  f"checkpoints: {recent})")
        complete = sorted(p for p in ckpt_root.glob("step_*") if _is_complete(p))
        if which == "latest" and name and STEP_NAME.fullmatch(name):
            # ``latest`` is pointed at a step just before its folder is renamed into place: a
            # step it names that is not there was cut short, and what the run keeps is the
            # newest checkpoint before it (a newer one is from before a rollback, abandoned)
            complete = [p for p in complete if not STEP_NAME.fullmatch(p.name) or int(p.name[5:]) <= int(name[5:])]
        newer = sorted(p.name for p in ckpt_root.glob("step_*")
                       if p.is_dir() and not _is_complete(p) and (not complete or p.name > complete[-1].name))
        if newer:  # only a hand can leave one (writes are atomic): say what is skipped
            warn(f"{', '.join(newer)} in {ckpt_root} lacks {WEIGHTS} or {STATE} and is "
                          f"skipped; using {complete[-1].name if complete else 'no checkpoint'}")
        if complete:
            return complete[-1]
        raise CheckpointError(f"no checkpoint in {ckpt_root}; {_first_checkpoint_advice(Path(run_dir))}")
    path = ckpt_root / which
    if not _is_complete(path):
        best = ", best" if _read_pointer(ckpt_root, "best") else ""  # offered only where the run has one
        damaged = f" ({which} lacks {WEIGHTS} or {STATE})" if path.is_dir() else ""
        raise CheckpointError(f"checkpoint '{which}' not found in {ckpt_root}{damaged}; "
                              f"use latest{best} or one of: {_complete_names(ckpt_root)}")
    return path


def environment(state: dict[str, Any]) -> dict[str, Any] | None:
    """Where a checkpoint's state says it was trained (Trainer.environment), with ``processes``
    for a run on several (its world_size): their "1 thread" had read as all of the compute."""
    env = state.get("environment") if isinstance(state, dict) else None
    if not isinstance(env, dict):
        return None
    size = state.get("world_size")
    return {**env, "processes": size} if isinstance(size, int) and size > 1 else env


def mismatch(exc: BaseException) -> str:
    """What a load_state_dict error says differs (its first line only names the network):
    'Unexpected key(s) in state_dict: "fc.bias".', cut to a line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
    return detail[:160]


def _first_checkpoint_advice(run_dir: Path) -> str:
    """What to do about a run with no checkpoint yet. A run that holds config.yaml was started and
    stopped (or is still training) before its first checkpoint: train refuses it as the --out of
    a new run, and its --resume continues it; any other folder gets a run trained first."""
    arg = shell_arg(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return f"train first (ganforge train PRESET --out {arg})"
    if is_locked(run_dir):
        return "it is still training and has not saved its first checkpoint yet; try again once it has"
    return f"it stopped before its first checkpoint; continue it: ganforge train --resume --out {arg}"


def _why_no_best(run_dir: Path) -> str:
    """Why a run has no 'best' pointer, from its config.yaml: evaluation during training marks
    it, and many runs (translation, super-resolution, audio) cannot evaluate during training, so
    eval.every is named only when the run set it."""
    try:
        every = int(((yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}).get("eval") or {})
                    .get("every") or 0)
    except Exception:  # a missing or hand-edited config: no reason given
        return ""
    if every > 0:
        return f" yet (one is marked by the evaluations every eval.every={every} steps)"
    return " (one is marked only by evaluation during training, which this run did not do)"


def newest_at_most(run_dir: Path, step: int) -> Path | None:
    """The newest complete checkpoint of ``run_dir`` at or before ``step``, or None."""
    complete = [p for p in sorted((Path(run_dir) / "checkpoints").glob("step_*"))
                if STEP_NAME.fullmatch(p.name) and _is_complete(p) and int(p.name[5:]) <= step]
    return complete[-1] if complete else None


def _load_tensors(path: Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    """safetensors' ``load_file``, also where ``path`` is not valid UTF-8 (a run folder named in
    Latin-1): safetensors refuses such a path ("is not valid UTF-8"), and the intact checkpoint
    had been called corrupt, with the advice to delete it. Such a file is read into memory and
    loaded from its bytes."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as f:
            data = f.read()
        return {key: value.to(map_location) for key, value in load_tensors(data).items()}
    return load_file(name, device=str(map_location))


def load(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(flat weights, state) of a checkpoint directory; a corrupt file is a CheckpointError."""
    try:
        check_readable(path / WEIGHTS, "checkpoint")
        weights = _load_tensors(path / WEIGHTS, map_location)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path / WEIGHTS} is corrupt or unreadable "
                              f"({_reason(exc)}); delete {path} to fall back to "
                              f"an earlier checkpoint, or retrain") from None
    try:
        state = torch.load(path / STATE, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise CheckpointError(f"checkpoint {path / STATE} is corrupt or unreadable "
                              f"({_reason(exc)}); delete {path} to fall back to "
                              f"an earlier checkpoint, or retrain") from None
    _load_run_files(path.parent, state, map_location)
    return weights, state
