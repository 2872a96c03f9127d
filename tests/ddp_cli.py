"""``ganforge`` under torchrun for tests/test_ddp.py: rank 1 records every file-system write it
would make under the run directory (an audit hook) and prints them when it exits, and each rank
prints its pid so that a test can kill one."""
import atexit
import os
import sys
from pathlib import Path

rank = int(os.environ.get("RANK", "0"))
run_dir = Path(sys.argv[sys.argv.index("--out") + 1]).resolve()
writes: list[str] = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _under_run(path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(run_dir)
    except (TypeError, ValueError, OSError):
        return False


def audit(event: str, args) -> None:
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
        if writing and _under_run(path):
            writes.append(f"open {path}")
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.unlink",
                   "os.truncate", "shutil.rmtree", "os.symlink", "os.link"):
        if args and _under_run(args[0]):
            writes.append(f"{event} {args[0]}")


if rank == 1:
    sys.addaudithook(audit)
    atexit.register(lambda: print(f"RANK1 WROTE: {writes}" if writes else "RANK1 WROTE NOTHING", flush=True))
print(f"RANK {rank} PID {os.getpid()}", flush=True)

from ganforge.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
