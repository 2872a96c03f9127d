"""Cost of the live monitor: training step time of the dcgan-fashion-mnist preset with
monitor.enabled=true (gradient norms every step; every log interval a probe batch's pixel
diversity, the shipped fashion-mnist-cnn's features and class count of it, and the detectors)
against monitor.enabled=false, through Trainer.fit with the preset's log interval (50 steps).
Target (issue 5): overhead <= 5% of step time.

    python benchmarks/monitor_overhead.py [--segment 100] [--pairs 8] [--threads 1] [--preset NAME]

--preset times another preset with its own log interval (toy-grid25: every 500 steps, where the
probe counts the modes 2,500 samples capture); give --segment two of its intervals.

How: both trainers live in one process and train in alternating segments (on, off, off, on,
...), so slow drifts of the machine hit both alike; each adjacent on/off pair gives one ratio and
the median ratio is reported. Both wall time and the process's CPU time are measured: CPU time is
much less sensitive to other jobs sharing the cores, wall time is what a user waits.
"""
from __future__ import annotations

import statistics
import time

from _common import Parser, positive_int, run_main

import torch

from ganforge import api
from ganforge.config import load_config
from ganforge.training.trainer import Trainer


def make_trainer(enabled: bool, preset: str = "dcgan-fashion-mnist") -> Trainer:
    _, cfg = load_config(preset, [f"monitor.enabled={str(enabled).lower()}",
                                                 "train.device=cpu", "train.sample_every=100000",
                                                 "train.checkpoint_every=100000"])
    objective, dataset = api.build(cfg)
    device = torch.device("cpu")
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, device), run_dir=None,
                      device=device, progress=False)
    for _ in range(20):  # warm-up, not timed
        trainer.train_step()
    trainer.step = 0
    return trainer


def segment(trainer: Trainer, steps: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``steps`` more steps of Trainer.fit."""
    trainer.cfg.train.steps = trainer.step + steps
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment", type=positive_int, default=100, help="steps per timed segment (2 log intervals)")
    ap.add_argument("--pairs", type=positive_int, default=8)
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--preset", default="dcgan-fashion-mnist", help="the preset timed (dcgan-fashion-mnist)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    trainers = {True: make_trainer(True, args.preset), False: make_trainer(False, args.preset)}
    bs = trainers[True].cfg.train.batch_size
    ratios = {"wall": [], "cpu": []}
    speed = {True: [], False: []}
    for p in range(args.pairs):
        order = (True, False) if p % 2 == 0 else (False, True)
        t = {enabled: segment(trainers[enabled], args.segment) for enabled in order}
        ratios["wall"].append(t[True][0] / t[False][0])
        ratios["cpu"].append(t[True][1] / t[False][1])
        for enabled in (True, False):
            speed[enabled].append(bs * args.segment / t[enabled][0])
        print(f"  pair {p + 1}: on {speed[True][-1]:7.1f} img/s, off {speed[False][-1]:7.1f} img/s;"
              f" on/off wall {ratios['wall'][-1]:.3f}, cpu {ratios['cpu'][-1]:.3f}", flush=True)
    wall, cpu = statistics.median(ratios["wall"]), statistics.median(ratios["cpu"])
    print(f"monitor overhead: {100 * (cpu - 1):+.1f}% of step CPU time, {100 * (wall - 1):+.1f}% of "
          f"wall time (median of {args.pairs} pairs of {args.segment}-step segments; "
          f"monitor off {statistics.median(speed[False]):.0f} img/s, on "
          f"{statistics.median(speed[True]):.0f} img/s; threads {args.threads}; {args.preset})")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
