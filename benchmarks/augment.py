"""Does synthetic data from a conditional GAN help a classifier trained on scarce real data?

    python benchmarks/augment.py                                   # the BENCHMARKS.md run
    python benchmarks/augment.py --sizes 10 --seeds 0 --gan-steps 300   # a quick look

A thin wrapper over ``ganforge bench augment`` (protocol in ganforge/bench/augment.py) that pins
one thread (the numbers are then per core and do not depend on what else the machine runs),
writes the JSON next to a timestamped output folder and prints the table. Every option of
``ganforge bench augment`` passes through; its defaults are the settings BENCHMARKS.md records.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from ganforge.cli import main

    sys.exit(main(["bench", "augment", *sys.argv[1:]]))
