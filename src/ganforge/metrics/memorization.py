"""Memorization: does the generator copy its training images?

Definition (in the extractor's feature space, Euclidean distance):

    delta(t)  = distance from training image t to its nearest *other* training image
    tau       = the QUANTILE (1%) quantile of delta over up to N_THRESHOLD (10,000) training
                images drawn with a fixed seed, each compared against the whole training set
    memorization = share of generated samples whose nearest training image is closer than tau

A fresh draw from the data distribution is as close to the training set as a training image is
to the other training images, so a generator that does not copy scores about QUANTILE (0.01;
the "floor": held-out real images measure this), while a generator that replays training images
scores near 1 (a copy is at distance 0). Exact duplicates within the training set (delta = 0)
are left out of the quantile, so they cannot set tau to 0; near-duplicates that the training set
itself contains keep tau small, so an edited copy counts only when it is that close. In the
spirit of the authenticity test of Alaa et al. 2022 ("How Faithful is your Synthetic Data?") and
the nearest-neighbour copy checks of Meehan et al. 2020.
"""
from __future__ import annotations

import numpy as np

from .prdc import nearest_distances

QUANTILE = 0.01
N_THRESHOLD = 10_000


def memorization_threshold(train_features: np.ndarray, *, quantile: float = QUANTILE,
                           n_threshold: int = N_THRESHOLD, seed: int = 0) -> float:
    """tau: the ``quantile`` of training images' distances to their nearest other training image."""
    train = np.asarray(train_features)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(train))
    m = min(n_threshold, len(train))
    # Put the sampled images first so exclude_self can mask the diagonal.
    pool = train[idx]
    delta = nearest_distances(pool[:m], pool, exclude_self=True)
    # Exact duplicates inside the training set (distance 0) would set tau = 0 and hide every copy.
    positive = delta[delta > 0]
    return float(np.quantile(positive if len(positive) else delta, quantile))


def memorization(fake_features: np.ndarray, train_features: np.ndarray, *, quantile: float = QUANTILE,
                 n_threshold: int = N_THRESHOLD, threshold: float | None = None) -> dict[str, float]:
    """{"memorization": share of samples closer than tau to a training image, "memorization_tau": tau}."""
    tau = memorization_threshold(train_features, quantile=quantile, n_threshold=n_threshold) \
        if threshold is None else threshold
    nearest = nearest_distances(fake_features, train_features)
    return {"memorization": float((nearest < tau).mean()), "memorization_tau": tau}
