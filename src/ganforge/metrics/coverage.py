"""Class-based metrics from a dataset's classifier: the mode-collapse numbers, and how well a
conditional generator follows its labels (Shmelkov et al. 2018, "How good is my GAN?", use the
same idea of judging samples with a classifier trained on real data).

- ``classes_covered``: how many classes get a meaningful share of the generated samples, where
  meaningful means at least ``MIN_SHARE_RATIO`` (1/4) of that class's share among the reference
  images, both as predicted by the classifier. Balanced 10 classes: a class needs >= 2.5%.
- ``class_kl``: KL(p_gen || p_ref) in nats between the predicted class histograms of generated and
  reference images. 0 when the histograms match; log(K) (2.30 for 10 balanced classes) for a
  generator that outputs a single class. The reference histogram gets half a pseudo-count per
  class so a class the reference never predicts does not make it infinite.
- ``label_accuracy``: for labeled samples, the share the classifier assigns to their label.
"""
from __future__ import annotations

import numpy as np

MIN_SHARE_RATIO = 0.25


def class_histogram(logits: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Share of samples predicted as each class (float64 [K])."""
    logits = np.asarray(logits)
    k = num_classes or logits.shape[1]
    counts = np.bincount(logits.argmax(1), minlength=k).astype(np.float64)
    return counts / max(counts.sum(), 1)


def class_coverage(fake_logits: np.ndarray, real_logits: np.ndarray, *,
                   min_share_ratio: float = MIN_SHARE_RATIO) -> dict[str, float]:
    """{"classes_covered": count, "class_kl": nats} (see the module docstring)."""
    k = real_logits.shape[1]
    p_fake = class_histogram(fake_logits, k)
    real_counts = class_histogram(real_logits, k) * len(real_logits)
    p_real = (real_counts + 0.5) / (real_counts.sum() + 0.5 * k)
    covered = int((p_fake >= min_share_ratio * p_real).sum())
    nz = p_fake > 0
    kl = float((p_fake[nz] * np.log(p_fake[nz] / p_real[nz])).sum())
    return {"classes_covered": covered, "class_kl": max(kl, 0.0)}


def label_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose predicted class is their label."""
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def intra_fid(fake_features: np.ndarray, fake_labels: np.ndarray, real_features: np.ndarray,
              real_labels: np.ndarray, *, min_per_class: int = 2) -> tuple[float, dict[int, float]]:
    """Intra-class FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): the FID
    between generated and real samples of each class, averaged over the classes that have at
    least ``min_per_class`` samples on both sides. Returns (mean, {class: fid})."""
    from .fid import fid

    per_class = {}
    for c in np.unique(real_labels):
        f, r = fake_features[fake_labels == c], real_features[real_labels == c]
        if len(f) >= min_per_class and len(r) >= min_per_class:
            per_class[int(c)] = fid(f, r)
    if not per_class:
        raise ValueError("no class has enough samples on both sides for intra-class FID")
    return float(np.mean(list(per_class.values()))), per_class
