"""Manifold metrics from k-nearest-neighbour balls around feature vectors.

- Improved precision and recall (Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric
  for Assessing Generative Models"), k = 3: precision is the share of generated samples inside
  the union of balls around real samples, each ball reaching its centre's k-th nearest real
  neighbour; recall swaps the roles. Membership is ``distance <= radius`` as in the authors' code.
- Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models"), k = 5: density counts how many real balls contain each generated sample
  (divided by k; about 1 for matching distributions, above 1 where samples crowd), coverage is
  the share of real balls that hold at least one generated sample. Membership is
  ``distance < radius`` as in the authors' code (clovaai/prdc).

Distances are Euclidean, computed in float64 in row chunks so 50k x 50k never sits in memory.
The k-th neighbour of a point excludes the point itself.
"""
from __future__ import annotations

import numpy as np
import torch

CHUNK = 2048


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [len(a), len(b)] (float64)."""
    d2 = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None]
    return d2.clamp_(min=0).sqrt_()


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def knn_radii(features, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point (float64 [N])."""
    x = _t(features)
    if len(x) <= k:
        raise ValueError(f"need more than k={k} samples, got {len(x)}")
    out = []
    for start in range(0, len(x), CHUNK):
        d = _pairwise(x[start:start + CHUNK], x)
        # k + 1 smallest: the point itself (distance 0) comes first.
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out).numpy()


def _balls(centres: torch.Tensor, radii: torch.Tensor, points: torch.Tensor, strict: bool):
    """(is each point inside any ball, how many balls hold it, each centre's nearest point).

    Distances are computed with the centres as rows, chunked as in knn_radii, so a set compared
    with itself reproduces the radii bit for bit (ties at the k-th neighbour resolve the same way).
    """
    inside = torch.zeros(len(points), dtype=torch.bool)
    counts = torch.zeros(len(points), dtype=torch.int64)
    nearest = []
    for start in range(0, len(centres), CHUNK):
        d = _pairwise(centres[start:start + CHUNK], points)
        r = radii[start:start + CHUNK, None]
        hit = d < r if strict else d <= r
        inside |= hit.any(0)
        counts += hit.sum(0)
        nearest.append(d.min(1).values)
    return inside, counts, torch.cat(nearest)


def precision_recall(real, fake, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` [M, D] with respect to ``real`` [N, D]."""
    real_t, fake_t = _t(real), _t(fake)
    real_r, fake_r = _t(knn_radii(real, k)), _t(knn_radii(fake, k))
    precision = _balls(real_t, real_r, fake_t, strict=False)[0].double().mean()
    recall = _balls(fake_t, fake_r, real_t, strict=False)[0].double().mean()
    return float(precision), float(recall)


def density_coverage(real, fake, *, k: int = 5) -> tuple[float, float]:
    """Density and coverage of ``fake`` [M, D] with respect to ``real`` [N, D]."""
    real_t, fake_t = _t(real), _t(fake)
    real_r = _t(knn_radii(real, k))
    _, counts, nearest = _balls(real_t, real_r, fake_t, strict=True)
    density = counts.double().sum() / (k * len(fake_t))
    # Coverage: a real ball is covered when its nearest generated sample lies inside it.
    coverage = (nearest < real_r).double().mean()
    return float(density), float(coverage)


def nearest_distances(queries, pool, *, exclude_self: bool = False) -> np.ndarray:
    """Distance from each query to its nearest point in ``pool`` (float64 [len(queries)]).
    With exclude_self, queries are pool[:len(queries)] and a point is not its own neighbour."""
    q, p = _t(queries), _t(pool)
    out = []
    for start in range(0, len(q), CHUNK):
        chunk = q[start:start + CHUNK]
        d = _pairwise(chunk, p)
        if exclude_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + start] = float("inf")
        # the nearest point's distance again, from the difference: |a|^2 - 2ab + |b|^2 leaves an
        # exact duplicate at about 1e-6, not 0, which had hidden a training set's duplicates from
        # memorization's tau (and set tau to that rounding noise)
        out.append((chunk - p[d.argmin(1)]).norm(dim=1))
    return torch.cat(out).numpy()
