"""An audit hook that records every file-system write a process makes under a directory: tests
check with it that ranks other than 0 write nothing in the run directory."""
import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.unlink", "os.truncate",
           "shutil.rmtree", "os.symlink", "os.link")


def record_writes(folder) -> list[str]:
    """Start recording (for the rest of the process: audit hooks cannot be removed); the list
    returned fills with one line per write under ``folder``."""
    root = Path(folder).resolve()
    writes: list[str] = []

    def under(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(root)
        except (TypeError, ValueError, OSError):
            return False

    def audit(event: str, args) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            if writing and under(path):
                writes.append(f"open {path}")
        elif event in _EVENTS and args and under(args[0]):
            writes.append(f"{event} {args[0]}")

    sys.addaudithook(audit)
    return writes
