"""Scores of a real-vs-generated detector: average precision and accuracy at a threshold.

Average precision is the area under the precision-recall curve summed over thresholds,
``AP = sum_n (R_n - R_{n-1}) P_n`` with one threshold per distinct score (tied scores move
together), the definition of scikit-learn's ``average_precision_score`` that Wang et al. (2020)
report. It is written out here rather than pulled from scikit-learn (not a ganforge dependency)
or torchmetrics (not installed) because it is ten lines; tests check it against a hand
computation.
"""
from __future__ import annotations

import numpy as np


def average_precision(scores, is_fake) -> float:
    """AP of ``scores`` (higher = more likely generated) for the positives ``is_fake`` (bool)."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(is_fake, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} must be matching 1-D arrays")
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("average precision needs at least one generated (positive) image")
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # one threshold per value
    tp = np.cumsum(positive)[last_of_tie]
    predicted = last_of_tie + 1
    precision, recall = tp / predicted, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def accuracy(scores, is_fake, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy of "generated when score > threshold" overall, on real and on generated images."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(is_fake, dtype=bool)
    said_fake = scores > threshold
    out = {"acc": float(np.mean(said_fake == positive))}
    if (~positive).any():
        out["real_acc"] = float(np.mean(~said_fake[~positive]))
    if positive.any():
        out["fake_acc"] = float(np.mean(said_fake[positive]))
    return out
