"""Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium"), on any extractor's features.

FID = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^(1/2)), in float64.

The trace of the matrix square root is computed as sum(sqrt(eig(A))) with
A = S_1^(1/2) S_2 S_1^(1/2): A is symmetric positive semi-definite and has the same eigenvalues
as S_1 S_2, so two symmetric eigendecompositions (numpy.linalg.eigh) replace scipy's sqrtm on a
non-symmetric product. It stays exact when S_1 or S_2 is singular (fewer samples than
dimensions), where sqrtm returns complex noise and needs an epsilon offset. Tiny negative
eigenvalues from rounding are clipped to 0.

FID is biased upwards for small n (Chong & Forsyth 2020): compare numbers at equal n only.
"""
from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64; the covariance is unbiased (divides by n - 1)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr((S_1 S_2)^(1/2)) for symmetric positive semi-definite S_1, S_2."""
    r = _psd_sqrt(np.asarray(s1, np.float64))
    a = r @ np.asarray(s2, np.float64) @ r
    w = np.linalg.eigvalsh((a + a.T) / 2)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)  # rounding can leave -1e-12 for identical statistics


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets [N_a, D] and [N_b, D]."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
