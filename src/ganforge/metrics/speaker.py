"""The speaker judge of ``ganforge eval-audio``: which of two voices an utterance is, and whether
it is typical of that voice at all.

The two-way judge (``SpeakerJudge.predict``) is logistic regression on ``speaker_features``: the
correlations between mel bands over time after each band of the utterance is normalized to zero
mean and unit variance, so they are unchanged by any per-band shift and positive scaling and
per-band statistics matching cannot move a mel towards the other voice. What is left is how bands
move together as pitch harmonics and formants sweep through them.

A two-way judge has no "neither" answer: anything unlike both voices still falls on one side
(a Gaussian-noise mel was judged en+f3). So ``SpeakerJudge.accepts`` also asks that the utterance
lie in the voice's typical region (``VoiceRegion``), learned from that voice's training
utterances only, with its distance and its cutoff fixed by a rule, not tuned on test material:

- distance: the squared Mahalanobis distance of the standardized features under the covariance
  of probabilistic PCA (Tipping & Bishop 1999; scikit-learn's ``PCA`` fit, ``min(20, n_fit //
  5)`` components, the rest as isotropic noise): the distance inside the main subspace plus the
  residual outside it over the noise variance, so a point off the subspace is far even when its
  projection is central. It orders points as the PPCA negative log-likelihood does; we compute it
  from the components (O(D k)) because ``PCA.score_samples`` builds a D x D precision matrix and
  its log-determinant on every call, seconds each for our D = 3,160 features;
- cutoff (split conformal): a quarter of the voice's training utterances (a fixed random draw)
  is held out from the fit; the cutoff is their ceil((n + 1) q)-th smallest distance, q = 0.99
  (their largest when there are too few for that). A new real utterance of the voice,
  exchangeable with them, then falls inside with probability at least q (at least n / (n + 1)
  when capped: 135 held out of 540 training utterances need no cap, 3 of 14 do).
"""
from __future__ import annotations

import math

import numpy as np

TYPICAL_QUANTILE = 0.99
CALIBRATION_SHARE = 0.25
MAX_COMPONENTS = 20
MIN_UTTERANCES = 8  # below this a voice's region is not learned (2 calibration, 6 fit)


def speaker_features(log_mel: np.ndarray) -> np.ndarray:
    """log-mel [n_mels, T] -> the correlation of every pair of bands over time [n_mels (n_mels -
    1) / 2], after per-utterance, per-band standardization: invariant to x_k -> a_k x_k + b_k
    for any a_k > 0 and b_k."""
    x = np.asarray(log_mel, dtype=np.float64)
    x = (x - x.mean(1, keepdims=True)) / np.maximum(x.std(1, keepdims=True), 1e-3)
    corr = x @ x.T / x.shape[1]
    return corr[np.triu_indices(x.shape[0], 1)]


class VoiceRegion:
    """The typical region of one voice in feature space (see the module docstring)."""

    def __init__(self, features: np.ndarray, *, quantile: float = TYPICAL_QUANTILE, seed: int = 0):
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n = len(features)
        if n < MIN_UTTERANCES:
            raise ValueError(f"{n} utterances: a region needs at least {MIN_UTTERANCES}")
        order = np.random.default_rng(seed).permutation(n)
        n_cal = max(2, int(n * CALIBRATION_SHARE))
        fit, cal = features[order[n_cal:]], features[order[:n_cal]]
        self.components = max(1, min(MAX_COMPONENTS, len(fit) // 5))
        self.model = make_pipeline(StandardScaler(), PCA(self.components, svd_solver="full")).fit(fit)
        self.calibration = np.sort(self.distance(cal))
        rank = min(math.ceil((n_cal + 1) * quantile), n_cal)  # 1-based
        self.cutoff = float(self.calibration[rank - 1])
        self.n_fit, self.n_calibration, self.quantile = len(fit), n_cal, quantile

    def distance(self, features: np.ndarray) -> np.ndarray:
        """features [N, D] -> squared Mahalanobis distance [N] under the voice's PPCA covariance."""
        scaler, pca = self.model[0], self.model[1]
        x = scaler.transform(np.atleast_2d(features)) - pca.mean_
        proj = x @ pca.components_.T  # [N, k]
        residual = np.maximum((x ** 2).sum(1) - (proj ** 2).sum(1), 0.0)
        return (proj ** 2 / pca.explained_variance_).sum(1) + residual / pca.noise_variance_

    def contains(self, features: np.ndarray) -> np.ndarray:
        return self.distance(features) <= self.cutoff

    def describe(self) -> dict:
        return {"components": self.components, "fit": self.n_fit, "calibration": self.n_calibration,
                "quantile": self.quantile, "cutoff": self.cutoff}


class SpeakerJudge:
    """Which of two voices an utterance is (``predict``: logistic regression on
    ``speaker_features``), and whether it passes as a given voice (``accepts``: judged that voice
    AND inside its ``VoiceRegion``). ``regions`` is None when a voice has fewer than
    ``MIN_UTTERANCES`` training utterances; ``accepts`` then answers NaN."""

    def __init__(self, mels_a: list[np.ndarray], mels_b: list[np.ndarray]):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        feats = [np.stack([speaker_features(m) for m in mels]) for mels in (mels_a, mels_b)]
        y = np.array([0] * len(mels_a) + [1] * len(mels_b))
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(
            np.concatenate(feats), y)
        self.regions = ([VoiceRegion(f) for f in feats] if min(len(f) for f in feats) >= MIN_UTTERANCES
                        else None)

    def predict(self, log_mel: np.ndarray) -> int:
        """0 for voice A, 1 for voice B: the two-way answer, never "neither"."""
        return int(self.model.predict(speaker_features(log_mel)[None])[0])

    def accepts(self, log_mel: np.ndarray, voice: int) -> float:
        """1.0 when ``log_mel`` is judged ``voice`` and lies in its typical region, else 0.0;
        NaN when the regions could not be learned."""
        if self.regions is None:
            return math.nan
        x = speaker_features(log_mel)[None]
        return float(self.model.predict(x)[0] == voice and self.regions[voice].contains(x)[0])

    def accuracy(self, mels: list[np.ndarray], voice: int) -> float:
        """The share of ``mels`` (all of voice ``voice``, 0 or 1) judged that voice (two-way)."""
        if not mels:
            return math.nan
        return float(np.mean(self.model.predict(np.stack([speaker_features(m) for m in mels])) == voice))

    def acceptance(self, mels: list[np.ndarray], voice: int) -> float:
        """The share of ``mels`` accepted as voice ``voice`` (NaN without regions or mels)."""
        if not mels or self.regions is None:
            return math.nan
        return float(np.mean([self.accepts(m, voice) for m in mels]))
