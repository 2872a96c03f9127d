"""Atomic file writes, used everywhere ganforge writes a file a reader may see half-written:
the data goes to a temporary name beside the destination, is flushed to disk, and is renamed
over the destination in one step, so a reader (or a later run after a crash) sees the old file
or the new one, never a part. A failed write removes its temporary file; a killed one's is
removed by a later write of the same file. A folder replaces an old one by two renames
(``replace_folder``), and ``restore_replaced`` finishes such a replacement that a kill cut short.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import CheckpointError, StorageError

# errnos of a place that cannot be written (full, read-only, no permission), as opposed to a bug:
# they become one-line StorageErrors.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EFBIG})
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# A killed write's temporary file is removed only once it is this old as well: its pid says
# nothing of a process on another machine writing into a shared folder (NFS, a cache volume),
# and a live write keeps touching its file.
STALE_SECONDS = 600


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


def is_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs here (our own pid counts as gone: a leftover named with
    it was left by an earlier process that had it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # EPERM: another user's live process
        return False
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _leftovers(dest: Path, kind: str) -> list[tuple[Path, int]]:
    """(path, pid) of the hidden names ``.NAME.<kind><pid>...`` beside ``dest``."""
    prefix = f".{dest.name}.{kind}"
    try:
        names = [p for p in dest.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    found = []
    for path in names:
        pid = re.match(r"\d+", path.name[len(prefix):])
        if pid is not None:
            found.append((path, int(pid[0])))
    return found


def _remove_dead_temporaries(dest: Path) -> None:
    """Remove ``dest``'s temporary files (and folders) left by killed writes: those of a process
    that is gone and untouched for STALE_SECONDS; never a live process's."""
    now = time.time()
    for path, pid in _leftovers(dest, "tmp"):
        if is_temporary_name(path.name) != dest.name or not is_gone(pid):
            continue
        try:
            stale = now - path.lstat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if stale:
            _remove(path)


def _aside_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.old-{os.getpid()}")


def replace_folder(staged: Path, dest: Path) -> None:
    """Put the complete folder ``staged`` at ``dest``, replacing the folder there: the old one is
    renamed aside, the new one renamed in, and only then the old one deleted. Deleting first had
    left half of the old folder and none of the new after a kill. After a kill ``dest`` holds the
    old or the new folder whole, or (between the renames) is missing while the old one waits
    aside whole: ``restore_replaced`` puts it back."""
    staged, dest = Path(staged), Path(dest)
    if not dest.exists():
        os.replace(staged, dest)
        fsync_dir(dest.parent)
        return
    aside = _aside_name(dest)
    _remove(aside)  # left by an earlier process with this pid
    os.replace(dest, aside)
    try:
        os.replace(staged, dest)
    except BaseException:
        os.replace(aside, dest)
        raise
    fsync_dir(dest.parent)
    shutil.rmtree(aside, ignore_errors=True)


def restore_replaced(dest: Path | str) -> None:
    """Finish a ``replace_folder`` of ``dest`` that a killed process cut short: where ``dest`` is
    missing, the old folder it had moved aside is put back (it is whole: the kill came between
    the renames); where ``dest`` is there, the old folder (perhaps half deleted) is removed.
    Call it before looking at ``dest``. Leftovers of live processes are left alone."""
    dest = Path(dest)
    for aside, pid in sorted(_leftovers(dest, "old-")):
        if aside.name != f".{dest.name}.old-{pid}" or not is_gone(pid):
            continue
        if dest.exists() or dest.is_symlink():
            _remove(aside)
        else:
            with contextlib.suppress(OSError):  # read-only now: writing out would fail anyway
                os.replace(aside, dest)
                fsync_dir(dest.parent)


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
    except OSError as exc:
        raise StorageError(f"cannot write {name or dest}: {exc.strerror or exc} in {dest.parent}; "
                           f"choose another path") from None
    finally:  # also when a stop signal lands inside touch, after the file was made (it had stayed)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def save_tensors(tensors: dict, path: Path | str, metadata: dict[str, str] | None = None) -> None:
    """safetensors' ``save_file``, with the permissions any other file written here gets: it
    creates its file owner-only (0600), so an exported model folder was unreadable for another
    user or a container, and loading it said "No such file or directory"."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:
        # "I/O error: No space left on device (os error 28)": an OSError, so that atomic_path
        # (and the checkpoint writer) give the full disk its one line instead of a traceback
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from exc
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
    error it replaces ``dest`` (a folder by ``replace_folder``), otherwise it is removed. The
    parent folder is created, and temporary files of ``dest`` that killed writes left removed."""
    dest = Path(dest)
    existed = os.path.lexists(dest)  # a failed write of a new file leaves none (False where unreadable)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, read-only, ...
        raise StorageError(f"cannot write {dest}: cannot create {dest.parent} "
                           f"({exc.strerror or exc}); choose another path") from None
    _remove_dead_temporaries(dest)
    probe_writable(dest)
    tmp = temporary_name(dest)
    try:
        yield tmp
        _fsync_file(tmp)
        if tmp.is_dir() and not tmp.is_symlink() and dest.is_dir() and not dest.is_symlink():
            replace_folder(tmp, dest)
        else:
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
            # a new file's failed write had said "(new.png was left as it was)" of a file never there
            kept = f"{dest.name} was left as it was" if existed else "nothing was written"
            raise StorageError(f"cannot write {dest}: {exc.strerror}; {fix} or choose "
                               f"another path ({kept})") from None
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
