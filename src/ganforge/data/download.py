"""Where datasets live on disk, and downloads that are verified before they are trusted.

A download goes to a temporary file in the destination folder, is checked against a known
checksum, and only then renamed into place (atomic on POSIX), so an interrupted or tampered
download never looks like a good file, and two processes fetching at once cannot corrupt it.
The temporary file is named after the host and process writing it, so the partial file a killed
download left is removed by the next download of the same file, never a live one's.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import DataError
from ..progress import Tenths, shown

# Seconds to wait on a silent connection; tests lower it.
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 20
# Progress of a download: see _progress
PROGRESS_SECONDS = 10.0
_PROGRESS_MIN_BYTES = 8 << 20


class DownloadFailed(Exception):
    """The network (or the server) failed; the caller turns it into a DataError with a fix."""


class ChecksumMismatch(DownloadFailed):
    """A mirror sent a file that is not the known one (and no other sent the right one): trying
    the same mirror again will not help, the caller says how to get the file by hand."""


def cache_root() -> Path:
    """$GANFORGE_CACHE, else $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge."""
    if os.environ.get("GANFORGE_CACHE"):
        return Path(os.environ["GANFORGE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ganforge"


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def one_line(exc: BaseException) -> str:
    """An exception as text fit for a one-line error message."""
    reason = getattr(exc, "reason", None) or exc  # URLError wraps the socket error in .reason
    return " ".join(str(reason).split()) or type(exc).__name__


def _part(dest: Path, host: str, pid: int) -> Path:
    return dest.with_name(f".{dest.name}.{host}.{pid}.part")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def remove_stale_parts(dest: Path) -> None:
    """Delete the partial files of `dest` that a killed download of this host left (SIGTERM, a
    crash: Ctrl-C cleans up after itself); a running process's file is left alone."""
    host = socket.gethostname()
    pattern = re.compile(re.escape(f".{dest.name}.{host}.") + r"(\d+)\.part")
    with contextlib.suppress(OSError):
        for path in dest.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if match and (int(match[1]) == os.getpid() or not _alive(int(match[1]))):
                with contextlib.suppress(OSError):
                    path.unlink()


def _progress(url: str, total: int | None) -> Callable[[int], None]:
    """A line on stderr per tenth of a file of at least _PROGRESS_MIN_BYTES, else per
    PROGRESS_SECONDS (a slow mirror, or a server that sends no Content-Length); none where
    progress lines are silenced (--quiet)."""
    done = [0]
    if not shown():
        return lambda nbytes: None

    def line(nbytes: int) -> str:
        of = f" of {total / 1e6:.1f} MB ({100 * nbytes // total}%)" if total else " so far"
        return f"ganforge: downloading {url}: {nbytes / 1e6:.1f} MB{of}"

    tenths = Tenths(lambda text: print(text, file=sys.stderr, flush=True),
                    total if total and total >= _PROGRESS_MIN_BYTES else None, line, seconds=PROGRESS_SECONDS)

    def progress(nbytes: int) -> None:  # called with each block's size
        done[0] += nbytes
        tenths(done[0])
    return progress


def _content_length(response) -> int | None:
    try:
        value = int(response.headers.get("Content-Length") or 0)
    except ValueError:
        return None
    return value or None


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; returns those created, deepest first. A folder
    that cannot be created (a file in the path, no permission, a read-only file system) is a
    DataError naming it, not a traceback."""
    missing, p = [], folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(missing)
        raise DataError(_unwritable(folder, exc)) from None
    return missing


def _unwritable(folder: Path, exc: OSError) -> str:
    return (f"cannot write to the dataset cache folder {folder} ({exc.strerror or one_line(exc)}); set "
            f"GANFORGE_CACHE to a writable folder, or pass --data-dir DIR with the dataset's files in it")


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a download created, deepest first, where they are still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):  # rmdir fails if not empty
            folder.rmdir()


def _discard(path: Path) -> None:
    # On a read-only file system unlink fails too: that must not hide the error being handled.
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def download(urls: list[str], dest: Path, checksum: str) -> str:
    """Fetch the first URL that answers into `dest`, verified; returns the URL used.

    checksum is "md5:<hex>" or "sha256:<hex>". A URL that fails, is cut off, or sends a file
    that does not match, is followed by the next; when none gives the file, ChecksumMismatch if
    one sent a wrong file (nothing of it is kept), else DownloadFailed; a destination folder that
    cannot be written, DataError. Folders this call created are removed again when it fails.
    """
    created = _make_folder(dest.parent)
    try:
        return _first_verified(urls, dest, checksum)
    except BaseException:
        _remove_empty(created)  # leave no empty cache folder behind
        raise


def _first_verified(urls: list[str], dest: Path, checksum: str) -> str:
    algorithm, _, expected = checksum.partition(":")
    remove_stale_parts(dest)
    tmp = _part(dest, socket.gethostname(), os.getpid())
    failures, mismatched = [], False
    for url in urls:
        try:
            # open(): the umask's mode, as any other file (mkstemp's 0600 hid shared datasets)
            out = open(tmp, "wb")
        except OSError as exc:  # not the network's fault: no other mirror will help
            raise DataError(_unwritable(dest.parent, exc)) from None
        received, total = 0, None
        try:
            h = hashlib.new(algorithm)
            request = urllib.request.Request(url, headers={"User-Agent": "ganforge"})
            with out, urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
                total = _content_length(response)
                progress = _progress(url, total)
                for block in iter(lambda: response.read(_CHUNK), b""):
                    h.update(block)
                    out.write(block)
                    received += len(block)
                    progress(len(block))
                out.flush()
                os.fsync(out.fileno())
        except http.client.IncompleteRead as exc:  # a chunked transfer cut off
            _discard(tmp)
            failures.append(_cut_off(url, received + len(exc.partial), total))
            continue
        # timeouts are OSErrors; HTTPException: a connection dropped mid-response, a bad status line
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            _discard(tmp)
            if one_line(exc) not in failures:
                failures.append(one_line(exc))
            continue
        except BaseException:
            _discard(tmp)
            raise
        if total is not None and received < total:  # the server closed the connection early
            _discard(tmp)
            failures.append(_cut_off(url, received, total))
            continue
        if h.hexdigest() != expected.lower():
            _discard(tmp)
            mismatched = True
            failures.append(f"{url} has {algorithm} {h.hexdigest()}, expected {expected}")
            continue
        os.replace(tmp, dest)
        return url
    cut = any(" transfer cut off after " in f for f in failures)  # said once, not after each mirror
    raise (ChecksumMismatch if mismatched else DownloadFailed)("; ".join(failures) + ("; try again" if cut else ""))


def _cut_off(url: str, received: int, total: int | None) -> str:
    of = f" of {total}" if total else ""
    return f"{url}: transfer cut off after {received}{of} bytes"
