"""The monitor's diversity probe: samples of a fixed latent batch against a fixed real batch,
in pixels and, where the dataset has its own classifier, in its features and classes."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import GanforgeError
from ..labels import class_kwargs
from .monitor import pairwise_diversity


class DiversityProbe:
    """Mean pairwise distance of samples from a fixed latent batch, next to the same statistic
    on a fixed real batch (a collapsed generator scores near 0); with the dataset's classifier,
    the same in its feature space and the classes the probe covers.

    The collapse detector judges pixel diversity and class coverage, not feature diversity: on
    Fashion-MNIST, 64 real images of one class have 0.55 of the 10-class feature diversity and a
    healthy DCGAN at step 1500 has 0.52, so that ratio cannot tell them apart, while the class
    count (1 against 8-10) can (BENCHMARKS.md, monitor)."""

    def __init__(self, cfg, device: torch.device, *, warn: Callable[[str], None]):
        self.cfg, self.device, self.warn = cfg, device, warn
        self._real: dict[str, float] | None = None  # of a fixed real batch, measured once
        self._features = None  # the dataset's classifier, or False: see extractor()

    def extractor(self):
        """The training dataset's own classifier (``<data.name>-cnn``, e.g. the shipped
        fashion-mnist-cnn) when its weights exist, else None."""
        if self._features is None:
            self._features = False
            from ..metrics.features import ClassifierExtractor, classifier_weights

            name = self.cfg.data.name
            if classifier_weights(name) is not None:
                try:
                    self._features = ClassifierExtractor(name, device=self.device)
                except GanforgeError as exc:  # unreadable weights: pixels only, and say why
                    self.warn(f"ganforge: monitor without {name}-cnn features ({exc})")
        return self._features or None

    def stats(self, images: torch.Tensor) -> dict[str, float]:
        """Statistics of one probe batch (float [N, C, H, W] in [-1, 1], or points [N, D]):
        pixel diversity always; with the dataset's classifier, diversity in its 128-d features
        and the number of classes the batch falls in."""
        stats = {"diversity": float(pairwise_diversity(images))}
        extractor = self.extractor() if images.dim() == 4 else None
        if extractor is not None:
            from ..metrics.features import to_uint8

            out = extractor(to_uint8(images).cpu())
            stats["diversity_features"] = float(pairwise_diversity(torch.from_numpy(out.features)))
            stats["classes"] = float(len(np.unique(out.logits.argmax(1))))
        return stats

    @torch.no_grad()
    def __call__(self, batches, objective, nets) -> dict[str, float]:
        """The probe's record for this logging interval, sampling ``objective`` with ``nets``
        (the EMA copies) and measuring ``batches.probe`` once."""
        n = self.cfg.monitor.probe_size
        if self._real is None:
            self._real = self.stats(batches.probe(n))
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 54321)
        # a conditional generator is asked for every class equally often (the grid's rows gave
        # 64 samples of classes 0-7 only, so a perfect one covered 8 of 10 against the real 10)
        fake = self.stats(objective.sample(n, generator=gen, nets=nets, **class_kwargs(objective, n)))
        real = self._real
        record = {"diversity": fake["diversity"], "diversity_real": real["diversity"]}
        if "classes" in fake:
            record.update(diversity_features=fake["diversity_features"],
                          diversity_features_real=real["diversity_features"],
                          probe_classes=fake["classes"], probe_classes_real=real["classes"])
        return record
