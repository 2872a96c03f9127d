"""The monitor's diversity probe: samples of a fixed latent batch against a fixed real batch,
in pixels and, where the dataset has its own classifier, in its features and classes; on a toy
mixture (toy:ring8, toy:grid25), whose modes are known, the modes the samples cover."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data.toy import N_SAMPLES, mode_metrics, toy_mixture
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
    count (1 against 8-10) can (BENCHMARKS.md, monitor).

    On a toy mixture the "classes" are its modes, counted as the mode benchmark counts captured
    modes (``ganforge.data.toy.mode_metrics``: a sample within 3 sigma of its nearest mode
    centre captures it): pixel diversity misses a partial collapse there too (a run stuck on 3 of
    the ring's 8 modes kept 0.55 of the real diversity)."""

    def __init__(self, cfg, device: torch.device, *, warn: Callable[[str], None], given_data: bool = False):
        self.cfg, self.device, self.warn = cfg, device, warn
        # images passed from Python (api.train's dataset=) under another name than data.name are
        # not its dataset: its classifier had "found" 3 Fashion-MNIST classes in random noise, so
        # pixels only
        self.given_data = given_data
        self._real: dict[str, float] | None = None  # of a fixed real batch, measured once
        self._features = None  # the dataset's classifier, or False: see extractor()

    @property
    def data_name(self) -> str | None:
        """The named dataset the run trains on (data.name), or None for data passed from Python."""
        return None if self.given_data else self.cfg.data.name

    def extractor(self):
        """The training dataset's own classifier (``<data.name>-cnn``, e.g. the shipped
        fashion-mnist-cnn) when its weights exist, else None (and for data passed from Python).
        Built with torch's global generator put back: its layer init drew from it at the first
        probe, moving the stream a plugin family or a hook draws from in training (ganforge's
        own draws use seeded generators), so with or without it training draws alike."""
        if self._features is None:
            self._features = False
            from ..metrics.features import ClassifierExtractor, classifier_weights

            name = self.data_name
            if name is not None and classifier_weights(name) is not None:
                try:
                    with torch.random.fork_rng(devices=[]):
                        self._features = ClassifierExtractor(name, device=self.device)
                except GanforgeError as exc:  # unreadable weights: pixels only, and say why
                    self.warn(f"ganforge: monitor without {name}-cnn features ({exc})")
        return self._features or None

    def coverage_size(self, n: int) -> int:
        """How many samples the coverage is counted on: ``n`` (the probe's), or on a toy mixture
        as many as the mode benchmark scores (``data.toy.N_SAMPLES``, 2,500), fakes and reals
        alike. The probe's 64 are too few: 64 real points cover about 25 * (1 - (24/25)**64) =
        23.2 of the grid's 25 modes, give or take 1.3, and a healthy toy-grid25 run has only 5-13%
        of its samples within 3 sigma of a mode at steps 800-1400, so its 64 (or 250) probe
        samples had captured 9-14 modes, called a collapse at step 1200, while its 2,500 capture
        21-22 and it reaches 24."""
        if self.data_name is None or toy_mixture(self.data_name) is None:
            return n
        return max(n, N_SAMPLES)

    def stats(self, images: torch.Tensor, coverage: torch.Tensor | None = None) -> dict[str, float]:
        """Statistics of one probe batch (float [N, C, H, W] in [-1, 1], or points [N, D]):
        pixel diversity always; with the dataset's classifier, diversity in its 128-d features
        and the number of classes the batch falls in; on a toy mixture, the number of its modes
        that ``coverage`` (more points [K, D] of the same source; else ``images``) captures."""
        stats = {"diversity": float(pairwise_diversity(images))}
        toy = toy_mixture(self.data_name) if images.dim() == 2 and self.data_name is not None else None
        if toy is not None:
            # the mode benchmark's own definition of a captured mode
            points = (images if coverage is None else coverage).detach().float().cpu()
            modes = mode_metrics(points, toy.modes, toy.sigma)
            # and its share of high-quality points: a generator that spreads its points over the
            # whole plane captures every mode, yet few of its points lie near one
            stats["classes"], stats["hq"] = float(modes["modes"]), float(modes["hq"])
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
        m = self.coverage_size(n)  # n, except on a toy mixture with many modes
        if self._real is None:
            real = batches.probe(m)  # its first n rows are batches.probe(n)
            self._real = self.stats(real[:n], coverage=real if m > n else None)
        seed = self.cfg.train.seed + 54321  # the probe's own generators: training's RNG is untouched
        gen = torch.Generator().manual_seed(seed)
        # a conditional generator is asked for every class equally often (the grid's rows gave
        # 64 samples of classes 0-7 only, so a perfect one covered 8 of 10 against the real 10)
        fake = objective.sample(n, generator=gen, nets=nets, **class_kwargs(objective, n))
        coverage = None
        if m > n:
            gen = torch.Generator().manual_seed(seed)
            coverage = objective.sample(m, generator=gen, nets=nets, **class_kwargs(objective, m))
        fake = self.stats(fake, coverage=coverage)
        real = self._real
        record = {"diversity": fake["diversity"], "diversity_real": real["diversity"]}
        if "diversity_features" in fake:
            record.update(diversity_features=fake["diversity_features"],
                          diversity_features_real=real["diversity_features"])
        if "classes" in fake:
            record.update(probe_classes=fake["classes"], probe_classes_real=real["classes"])
        if "hq" in fake:
            record.update(probe_hq=fake["hq"], probe_hq_real=real["hq"])
        return record
