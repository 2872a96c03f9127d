"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):
exp(E_x KL(p(y|x) || p(y))), from a classifier's logits, mean and standard deviation over
``splits`` splits (10, as in the original code; fewer when a split would hold under
MIN_PER_SPLIT samples, and one split, with no std, below twice that). The splits are taken after a fixed shuffle:
the original code splits the samples in the order given, which is right for random draws but
gives a score near 1 for samples ordered by class (a per-class evaluation draws them so), each
split then holding one class and p(y) being that class. With the inception extractor it is
the standard IS; with a dataset's classifier it is that classifier's score (at most its number of
classes), comparable only with numbers from the same classifier.
"""
from __future__ import annotations

import numpy as np


MIN_PER_SPLIT = 100  # p(y) of a handful of images is their own p(y|x): IS tends to 1


def is_splits(splits: int, n: int) -> int:
    """How many splits ``n`` samples are cut into: at most ``splits``, each of at least
    MIN_PER_SPLIT samples (one split below 2 * MIN_PER_SPLIT; its std is then NaN)."""
    return max(1, min(splits, n // MIN_PER_SPLIT))


def inception_score(logits: np.ndarray, *, splits: int = 10) -> tuple[float, float]:
    logits = np.asarray(logits, np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))  # log softmax
    splits = is_splits(splits, len(logits))
    logp = logp[np.random.default_rng(0).permutation(len(logp))]
    scores = []
    for part in np.array_split(logp, splits):
        p = np.exp(part)
        log_py = np.log(p.mean(0) + 1e-30)
        scores.append(np.exp((p * (part - log_py)).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores)) if splits > 1 else float("nan")
