"""Evaluation during training: a hook the Trainer calls every ``eval.every`` steps."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .errors import EvalError
from .evaluation import MIN_IMAGES, evaluate, parse_metrics
from .features import CLASSIFIER_DATASETS, classifier_weights, get_extractor, to_uint8

DEFAULT_METRICS = ("fid", "kid")
CHUNK = 500


def training_extractor(dataset: str, inception_weights=None) -> str:
    """The cheap extractor first: the dataset's ganforge CNN where there is one, else inception."""
    if dataset in CLASSIFIER_DATASETS and classifier_weights(dataset) is not None:
        return f"{dataset}-cnn"
    return "inception"


def training_hook(cfg, *, metrics: Sequence[str], n: int, split: str | None = None, extractor=None,
                  seed: int = 0) -> Callable[[object, int], dict[str, float]]:
    """A ``hook(trainer, step) -> {"fid": ..., ...}`` that draws ``n`` samples (fixed noise,
    ``torch.Generator().manual_seed(seed)``) from the EMA nets, in chunks, and scores them against
    the cached features of ``n`` images of ``cfg.data`` (the test split of named datasets).

    The extractor is the dataset's ganforge CNN when it has one (fast on CPU), else inception;
    it is built here, so a missing extractor fails before training starts. The nets are put in
    eval mode while sampling and restored afterwards; no global RNG is touched.
    """
    names = parse_metrics(list(metrics)) or list(DEFAULT_METRICS)
    if n < MIN_IMAGES:
        raise EvalError(f"eval.n must be at least {MIN_IMAGES}, got {n}")
    dataset = cfg.data.name
    split = split or ("train" if dataset.startswith("folder:") else "test")
    ext = get_extractor(extractor or training_extractor(dataset))

    def hook(trainer, step: int) -> dict[str, float]:
        objective = trainer.objective
        modes = {name: net.training for name, net in objective.nets.items()}
        gen = torch.Generator().manual_seed(seed)
        chunks = []
        try:
            for net in objective.nets.values():
                net.eval()
            with torch.no_grad():
                for start in range(0, n, CHUNK):
                    fake = objective.sample(min(CHUNK, n - start), generator=gen, nets=trainer.sample_nets())
                    chunks.append(to_uint8(fake.cpu()))
        finally:
            for name, net in objective.nets.items():
                net.train(modes[name])
        result = evaluate(torch.cat(chunks), ref=dataset, split=split, metrics=names, n_ref=n,
                          extractor=ext, data_dir=cfg.data.data_dir)
        return {k: float(v) for k, v in result.values.items()}

    return hook
