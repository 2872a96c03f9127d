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
# one write of the whole line: print's text and newline are two, and two ranks' lines had
# interleaved in the shared pipe ("RANK 0 PID 9701RANK 1 PID 9702"), hiding rank 1's from the test
sys.stdout.write(f"RANK {rank} PID {os.getpid()}\n")
sys.stdout.flush()

from ganforge.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
