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


def intra_fid_classes(fake_labels: np.ndarray, real_labels: np.ndarray | None, *,
                      min_per_class: int = 2) -> tuple[dict[int, tuple[int, int | None]],
                                                       dict[int, tuple[int, int | None]]]:
    """(included, left_out), each {class: (generated, reference)}: the classes the generated
    labels name, split by whether both sides have ``min_per_class`` samples (``intra_fid``
    averages the included ones). ``real_labels`` None: the reference counts are unknown (None)
    and only the generated side decides."""
    def counts(labels) -> dict[int, int]:
        classes, n = np.unique(np.asarray(labels).reshape(-1), return_counts=True)
        return {int(c): int(k) for c, k in zip(classes, n)}

    real_counts = None if real_labels is None else counts(real_labels)
    included, left_out = {}, {}
    for c, f in counts(fake_labels).items():
        r = None if real_counts is None else real_counts.get(c, 0)
        ok = f >= min_per_class and (r is None or r >= min_per_class)
        (included if ok else left_out)[int(c)] = (f, r)
    return included, left_out


def intra_fid(fake_features: np.ndarray, fake_labels: np.ndarray, real_features: np.ndarray,
              real_labels: np.ndarray, *, min_per_class: int = 2) -> tuple[float, dict[int, float]]:
    """Intra-class FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator"): the FID
    between generated and real samples of each class, averaged over the classes that have at
    least ``min_per_class`` samples on both sides (``intra_fid_classes`` says which those are,
    and which are left out). Returns (mean, {class: fid})."""
    from .fid import fid

    included, _ = intra_fid_classes(fake_labels, real_labels, min_per_class=min_per_class)
    per_class = {c: fid(fake_features[fake_labels == c], real_features[real_labels == c]) for c in included}
    if not per_class:
        raise ValueError("no class has enough samples on both sides for intra-class FID")
    return float(np.mean(list(per_class.values()))), per_class
