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
import hashlib
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


# The longest name a folder entry may have on the file systems ganforge meets (ext4, xfs, btrfs,
# tmpfs, NFS, APFS): 255 bytes.
NAME_MAX = 255
# What a hidden name adds to its stem at most: the dot, ".tmp" or ".old-", a pid (10 digits).
_HIDDEN_EXTRA = 1 + 5 + 10
# A suffix longer than this is no format's extension: a shortened stem does not keep it.
_SUFFIX_MAX = 32


def _hidden_stem(name: str) -> str:
    """The stem of ``name``'s hidden names (``.STEM.tmpPID.SUFFIX``, ``.STEM.old-PID``):
    ``name`` itself, or where those would pass NAME_MAX bytes (a legal name of 240-255 bytes had
    failed with "File name too long" at its temporary file), its first characters, a hash of the
    whole name (two long names that share their start keep apart) and its suffix. The same for
    every process, so a later write finds a killed one's leftovers."""
    encoded = os.fsencode(name)
    suffix = Path(name).suffix
    if len(os.fsencode(suffix)) > _SUFFIX_MAX:
        suffix = ""
    if len(encoded) + len(os.fsencode(suffix)) + _HIDDEN_EXTRA <= NAME_MAX:
        return name
    tag = f"~{hashlib.sha1(encoded).hexdigest()[:12]}{suffix}"
    room = NAME_MAX - _HIDDEN_EXTRA - len(os.fsencode(suffix)) - len(os.fsencode(tag))
    head, used = [], 0
    for char in name[:len(name) - len(Path(name).suffix)] if suffix else name:
        size = len(os.fsencode(char))
        if used + size > room:
            break
        head.append(char)
        used += size
    # no dot before the tag: the stem's suffix must be the kept one (is_temporary_name checks it)
    return "".join(head).replace(".", "_") + tag


def temporary_name(dest: Path) -> Path:
    """A hidden name beside ``dest`` that keeps its suffix (writers that pick the format by
    extension, such as PIL and numpy, still write the right format), within NAME_MAX bytes
    wherever ``dest``'s own name is."""
    stem = _hidden_stem(dest.name)
    return dest.with_name(f".{stem}.tmp{os.getpid()}{Path(stem).suffix}")


_TEMPORARY = re.compile(r"\.(?P<dest>.+)\.tmp\d+(?P<suffix>.*)")


def is_temporary_name(name: str) -> str | None:
    """The destination name a ``temporary_name`` stands for (for a long name, the shortened stem
    that ``_hidden_stem`` gives it), or None for any other name."""
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
    prefix = f".{_hidden_stem(dest.name)}.{kind}"
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
        if is_temporary_name(path.name) != _hidden_stem(dest.name) or not is_gone(pid):
            continue
        try:
            stale = now - path.lstat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if stale:
            _remove(path)


def _aside_name(dest: Path) -> Path:
    return dest.with_name(f".{_hidden_stem(dest.name)}.old-{os.getpid()}")


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
        if aside.name != f".{_hidden_stem(dest.name)}.old-{pid}" or not is_gone(pid):
            continue
        if dest.exists() or dest.is_symlink():
            _remove(aside)
        else:
            with contextlib.suppress(OSError):  # read-only now: writing out would fail anyway
                os.replace(aside, dest)
                fsync_dir(dest.parent)


def broken_link(path: Path | str) -> str | None:
    """Where ``path`` or a folder above it is a symbolic link that leads nowhere (its target is
    missing, or links lead round in a loop), what it is and the fix: making a folder there fails
    with "File exists", which had been all the user was told. None otherwise."""
    path = Path(path)
    for link in (*reversed(path.parents), path):
        if not os.path.islink(link):
            if not os.path.lexists(link):
                return None  # nothing below a missing folder exists
            continue
        try:
            os.stat(link)
            continue  # a link to something that exists
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return (f"{link} is a symbolic link in a loop (it points to {os.readlink(link)}, "
                        f"which leads back to it); remove the link or point it at a folder")
            if exc.errno != errno.ENOENT:
                return None
        return (f"{link} is a symbolic link to {os.readlink(link)}, which does not exist; create "
                f"that folder or remove the link")
    return None


def probe_writable(dest: Path, *, name: Path | None = None, fix: str = "choose another path") -> None:
    """Make and remove ``dest``'s temporary file: a StorageError naming ``name`` (default
    ``dest``) and ending in ``fix`` where no file can be made (/proc, a read-only mount), before
    any work."""
    if not dest.parent.is_dir():  # atomic_path makes the parent first, then probes
        return
    size = len(os.fsencode(dest.name))
    if size > NAME_MAX:  # its temporary name fits, so only the last rename would have failed
        shown = f"{dest.name[:40]}..." if len(dest.name) > 43 else dest.name
        raise StorageError(f"cannot write {shown}: file name too long ({size} bytes; {NAME_MAX} at "
                           f"most per name); choose a shorter name")
    tmp = temporary_name(dest)
    if tmp.is_dir() and not tmp.is_symlink():  # left by a killed process of the same pid
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.touch()
    except OSError as exc:
        raise StorageError(f"cannot write {name or dest}: {exc.strerror or exc} in {dest.parent}; "
                           f"{fix}") from None
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
    long = next((part for part in dest.parts if len(os.fsencode(part)) > NAME_MAX), None)
    if long is not None:  # before the parents are made: sub/<300 bytes>/x.png had left sub/ behind
        shown = f"{long[:40]}..." if len(long) > 43 else long
        raise StorageError(f"cannot write {shown}: file name too long ({len(os.fsencode(long))} bytes; "
                           f"{NAME_MAX} at most per name); choose a shorter name")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, read-only, a dangling link ...
        problem = broken_link(dest.parent)
        if problem is not None:
            raise StorageError(f"cannot write {dest}: {problem}, or choose another path") from None
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
        elif tmp.is_dir() and broken_link(dest) is not None:  # a folder cannot replace a link
            raise StorageError(f"cannot write {dest}: {broken_link(dest)}, or choose another "
                               f"path (nothing was written)")
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
    """``text`` as UTF-8. A path that is not valid UTF-8 (a folder named in Latin-1) reaches
    Python as surrogate escapes, which UTF-8 cannot encode: a report or a model card naming such
    a data folder had crashed. They are written as ``\\udce9`` and the file stays valid UTF-8."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")


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
