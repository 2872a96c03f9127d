"""``ganforge`` under torchrun for tests/test_ddp.py: rank 1 records every file-system write it
would make under the run directory (an audit hook) and prints them when it exits, and each rank
prints its pid so that a test can kill one."""
import atexit
import os
import sys

from ddp_audit import record_writes

rank = int(os.environ.get("RANK", "0"))

if rank == 1:
    writes = record_writes(sys.argv[sys.argv.index("--out") + 1])
    atexit.register(lambda: print(f"RANK1 WROTE: {writes}" if writes else "RANK1 WROTE NOTHING", flush=True))
print(f"RANK {rank} PID {os.getpid()}", flush=True)

from ganforge.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
