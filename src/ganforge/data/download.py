"""Where datasets live on disk, and downloads that are verified before they are trusted.

A download goes to a temporary file in the destination folder, is checked against a known
checksum, and only then renamed into place (atomic on POSIX), so an interrupted or tampered
download never looks like a good file, and two processes fetching at once cannot corrupt it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError

# Seconds to wait on a silent connection; tests lower it.
DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 20


class DownloadFailed(Exception):
    """The network (or the server) failed; the caller turns it into a DataError with a fix."""


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


def download(urls: list[str], dest: Path, checksum: str) -> str:
    """Fetch the first URL that answers into `dest`, verified; returns the URL used.

    checksum is "md5:<hex>" or "sha256:<hex>". A mismatch is a DataError (the file is wrong,
    trying again will not help); network failures on every URL raise DownloadFailed.
    """
    algorithm, _, expected = checksum.partition(":")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.new(algorithm)
            request = urllib.request.Request(url, headers={"User-Agent": "ganforge"})
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    h.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:  # timeouts are OSErrors
            tmp.unlink(missing_ok=True)
            if one_line(exc) not in failures:
                failures.append(one_line(exc))
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if h.hexdigest() != expected.lower():
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"{url} does not match its known {algorithm} checksum (got {h.hexdigest()}, expected {expected}); "
                "the download is corrupt or the mirror changed, so nothing was saved: try again later "
                "or fetch the file by hand"
            )
        os.replace(tmp, dest)
        return url
    with contextlib.suppress(OSError):  # leave no empty cache folder behind (rmdir fails if not empty)
        dest.parent.rmdir()
    raise DownloadFailed("; ".join(failures))
