"""Quality benchmarks run through the public training path (ganforge.api.train).

modes: the PacGAN mode-collapse protocol on the 2-D toy mixtures (toy:ring8, toy:grid25).
augment: does synthetic data from a conditional GAN help a classifier trained on scarce data?
truncation: FID / precision / recall of a trained run against its truncation value.
"""
from __future__ import annotations

import math
import statistics


def mean_std(values) -> tuple[float, float]:
    """(mean, sample standard deviation) over seeds; the spread of one seed is unknown (NaN,
    null in JSON), not 0."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def pm(mean: float, std: float, fmt: str) -> str:
    """'mean ± std', or the mean alone when the spread is unknown (one seed)."""
    return f"{mean:{fmt}}" if math.isnan(std) else f"{mean:{fmt}} ± {std:{fmt}}"


def train_seed(cfg, run_dir, **kwargs):
    """``api.train`` for one benchmark run. A Ctrl-C or SIGTERM stops it with a checkpoint and
    raises TrainingInterrupted, which ends the whole benchmark: it must not score the half-trained
    run as a result."""
    from .. import api

    return api.train(cfg, run_dir, **kwargs)
