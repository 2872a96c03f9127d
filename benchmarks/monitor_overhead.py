"""Cost of the live monitor: training images/s of the dcgan-fashion-mnist preset with
monitor.enabled=true (gradient norms every step, a probe batch's diversity and the detectors every
log interval) against monitor.enabled=false, through Trainer.fit with the preset's log interval.
Target (issue 5): overhead <= 5% of step time.

    python benchmarks/monitor_overhead.py [--steps 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ganforge import api
from ganforge.config import load_config
from ganforge.training.trainer import Trainer


def measure(enabled: bool, steps: int) -> float:
    _, cfg = load_config("dcgan-fashion-mnist", [f"monitor.enabled={str(enabled).lower()}",
                                                 f"train.steps={steps}", "train.device=cpu",
                                                 "train.sample_every=100000",
                                                 "train.checkpoint_every=100000"])
    objective, dataset = api.build(cfg)
    device = torch.device("cpu")
    trainer = Trainer(cfg, objective, api.make_batches(dataset, cfg, device), run_dir=None,
                      device=device, progress=False)
    for _ in range(20):  # warm-up, not timed
        trainer.train_step()
    trainer.step = 0
    start = time.perf_counter()
    trainer.fit()
    return cfg.train.batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = {True: [], False: []}
    for r in range(args.repeats):
        for enabled in ((True, False) if r % 2 == 0 else (False, True)):
            runs[enabled].append(measure(enabled, args.steps))
            print(f"  repeat {r + 1}: monitor {'on ' if enabled else 'off'} "
                  f"{runs[enabled][-1]:7.1f} img/s", flush=True)
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"monitor off: {off:.1f} img/s, on: {on:.1f} img/s, overhead {100 * (off / on - 1):.1f}% "
          f"of step time (median of {args.repeats}; threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
