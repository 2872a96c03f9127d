"""Atomic file writes, used everywhere ganforge writes a file a reader may see half-written:
the data goes to a temporary name beside the destination, is flushed to disk, and is renamed
over the destination in one step, so a reader (or a later run after a crash) sees the old file
or the new one, never a part. A failed write removes its temporary file.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

from .errors import CheckpointError, StorageError

# errnos of a place that cannot be written (full, read-only, no permission), as opposed to a bug:
# they become one-line StorageErrors.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EFBIG})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def temporary_name(dest: Path) -> Path:
    """A hidden name beside ``dest`` that keeps its suffix (writers that pick the format by
    extension, such as PIL and numpy, still write the right format)."""
    return dest.with_name(f".{dest.name}.tmp{os.getpid()}{dest.suffix}")


_TEMPORARY = re.compile(r"\.(?P<dest>.+)\.tmp\d+(?P<suffix>.*)")


def is_temporary_name(name: str) -> str | None:
    """The destination name a ``temporary_name`` stands for, or None for any other name."""
    match = _TEMPORARY.fullmatch(name)
    if match is None or match["suffix"] != Path(match["dest"]).suffix:
        return None
    return match["dest"]


def probe_writable(dest: Path, *, name: Path | None = None) -> None:
    """Make and remove ``dest``'s temporary file: a StorageError naming ``name`` (default
    ``dest``) where no file can be made (/proc, a read-only mount), before any work."""
    if not dest.parent.is_dir():  # atomic_path makes the parent first, then probes
        return
    tmp = temporary_name(dest)
    if tmp.is_dir() and not tmp.is_symlink():  # left by a killed process of the same pid
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.touch()
        tmp.unlink()
    except OSError as exc:
        raise StorageError(f"cannot write {name or dest}: {exc.strerror or exc} in {dest.parent}; "
                           f"choose another path") from None


def save_tensors(tensors: dict, path: Path | str, metadata: dict[str, str] | None = None) -> None:
    """safetensors' ``save_file``, with the permissions any other file written here gets: it
    creates its file owner-only (0600), so an exported model folder was unreadable for another
    user or a container, and loading it said "No such file or directory"."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    normal_mode(path)


def normal_mode(path: Path | str) -> None:
    """Give a file created owner-only (safetensors, mkstemp: 0600) the mode any new file gets,
    0666 less the umask, so another user or a container sharing the folder can read it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def check_readable(path: Path | str, what: str) -> None:
    """One line when ``path`` exists but this user may not read it (safetensors reports that as
    a missing file)."""
    path = Path(path)
    if path.exists() and not os.access(path, os.R_OK):
        raise CheckpointError(f"{what} {path} exists but this user may not read it (mode "
                              f"{oct(path.stat().st_mode & 0o777)}); make it readable (chmod a+r)")


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write (a file or a folder); when the block ends without an
    error it replaces ``dest``, otherwise it is removed. The parent folder is created."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, read-only, ...
        raise StorageError(f"cannot write {dest}: cannot create {dest.parent} "
                           f"({exc.strerror or exc}); choose another path") from None
    probe_writable(dest)
    tmp = temporary_name(dest)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException as exc:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # e.g. read-only: it was never created
                tmp.unlink(missing_ok=True)
        if isinstance(exc, IsADirectoryError) and dest.is_dir():
            raise StorageError(f"cannot write {dest}: it is a directory; give a file name (the "
                               f"directory was left as it was)") from None
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            fix = "free some space" if exc.errno in FULL_ERRNOS else "make it writable"
            raise StorageError(f"cannot write {dest}: {exc.strerror}; {fix} or choose "
                               f"another path ({dest.name} was left as it was)") from None
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """A JSON result file, indented, with a final newline; strict JSON (RFC 8259): NaN and
    infinities, which json.dumps would write as bare NaN/Infinity, are written as null."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
