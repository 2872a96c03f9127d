"""Metrics as pure functions of features and logits, checked against closed forms, an
independent scipy/numpy reference, and cases whose answer is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from ganforge.metrics import (class_coverage, density_coverage, fid, frechet_distance, gaussian_stats,
                              inception_score, intra_fid, kid, label_accuracy, memorization,
                              polynomial_mmd2, precision_recall)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero():
    x = _rng().normal(size=(500, 32)) * 3 + 7
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    # Fewer samples than dimensions: singular covariance, still exactly 0.
    y = _rng(1).normal(size=(20, 64))
    assert fid(y, y) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()  # 5 + (1 + 1 + 4) = 11
    assert expected == 11.0
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(11.0, abs=1e-12)


def _scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(2000, 8), (40, 16), (10, 48)])  # full rank, then singular
def test_fid_matches_scipy_sqrtm(n, d):
    rng = _rng(d)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 2  # non-commuting covariances
    stats = (*gaussian_stats(a), *gaussian_stats(b))
    assert frechet_distance(*stats) == pytest.approx(_scipy_fid(*stats), rel=1e-7)


def test_fid_of_samples_converges_to_the_population_value():
    rng = _rng(3)
    d = 4
    a_mat = rng.normal(size=(d, d))
    s1, s2 = np.eye(d), a_mat @ a_mat.T / d + 0.5 * np.eye(d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    population = _scipy_fid(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert fid(x, y) == pytest.approx(population, rel=0.02)


# ---------------------------------------------------------------- KID


def test_polynomial_mmd_matches_a_loop():
    rng = _rng(4)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)) + 1
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(4) for j in range(4) if i != j) / 12
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(x[i], y[j]) for i in range(4) for j in range(5)) / 20
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_unbiased_and_detects_a_shift():
    rng = _rng(5)
    # Unbiased: over many independent pairs of samples of one distribution the mean is ~0,
    # within 4 standard errors (a biased estimator would sit at a positive offset).
    values = [polynomial_mmd2(rng.normal(size=(50, 8)), rng.normal(size=(50, 8))) for _ in range(400)]
    stderr = np.std(values) / math.sqrt(len(values))
    assert abs(np.mean(values)) < 4 * stderr
    same_mean, _ = kid(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)), n_subsets=20, subset_size=500)
    shifted_mean, shifted_std = kid(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)) + 0.5,
                                    n_subsets=20, subset_size=500)
    assert abs(same_mean) < 0.01 < shifted_mean
    assert shifted_mean > 10 * shifted_std / math.sqrt(20)


# ---------------------------------------------------------------- IS


def test_inception_score_known_cases():
    uniform = np.zeros((100, 10))
    assert inception_score(uniform)[0] == pytest.approx(1.0, abs=1e-9)
    confident = 50.0 * np.eye(10)[np.arange(1000) % 10]  # certain, and every class equally often
    mean, std = inception_score(confident, splits=10)
    assert 9.3 < mean <= 10.0 and std < 0.3  # random splits of 100 are not exactly balanced
    assert inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    # ordered by class, as a per-class evaluation draws them: still about 10, not one class per split (1)
    by_class = 50.0 * np.eye(10)[np.repeat(np.arange(10), 100)]
    assert 9.3 < inception_score(by_class, splits=10)[0] <= 10.0
    one_class = 50.0 * np.eye(10)[np.zeros(1000, int)]  # certain, but always the same class
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_small_samples_get_real_spreads_or_none():
    """Ten confident samples of ten classes score IS 10 in one split (ten splits of one image
    each scored exactly 1); KID subsets as large as the sets all equal the sets, and their
    spread was exactly 0: half-size subsets give a real one."""
    ten = 50.0 * np.eye(10)
    mean, std = inception_score(ten, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6) and math.isnan(std)
    assert inception_score(50.0 * np.eye(10)[np.arange(300) % 10], splits=10)[1] >= 0  # 3 splits of 100
    rng = _rng(3)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 0.3
    mean, std = kid(a, b, n_subsets=50, subset_size=1000)
    assert std > 0.05 * abs(mean) and mean > 0
    assert kid(a, b, n_subsets=50, subset_size=10)[1] > 0  # subsets smaller than the sets: as before
    from ganforge.metrics.kid import subset_m

    # just above the subset size the subsets were nearly the whole set (std 30x too small)
    assert [subset_m(1000, n, n) for n in (40, 1000, 1001, 1999, 2000, 10_000)] == [20, 500, 500, 999, 1000, 1000]


# ---------------------------------------------------------------- precision / recall / density / coverage


def _brute_prdc(real, fake, k_pr=3, k_dc=5):
    """Straight from the papers' definitions, with scipy distances."""
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_pr = np.sort(rr, 1)[:, k_pr]
    f_pr = np.sort(ff, 1)[:, k_pr]
    r_dc = np.sort(rr, 1)[:, k_dc]
    precision = (rf <= r_pr[:, None]).any(0).mean()
    recall = (rf <= f_pr[None, :]).any(1).mean()
    density = (rf < r_dc[:, None]).sum() / (k_dc * len(fake))
    coverage = (rf.min(1) < r_dc).mean()
    return precision, recall, density, coverage


def test_prdc_match_a_brute_force_reference():
    rng = _rng(6)
    real = rng.normal(size=(300, 5))
    fake = rng.normal(size=(250, 5)) * 1.3 + 0.3
    p, r = precision_recall(real, fake, k=3)
    d, c = density_coverage(real, fake, k=5)
    assert (p, r, d, c) == pytest.approx(_brute_prdc(real, fake), abs=1e-12)
    assert 0.2 < p < 1 and 0.2 < r < 1  # a real test: neither trivially 0 nor 1


def test_prdc_identical_and_disjoint_sets():
    x = _rng(7).normal(size=(400, 6))
    assert precision_recall(x, x) == (1.0, 1.0)
    density, cov = density_coverage(x, x)
    assert cov == 1.0 and density == pytest.approx(1.0, abs=1e-12)  # each ball holds its k neighbours
    far = x + 100.0
    assert precision_recall(x, far) == (0.0, 0.0)
    assert density_coverage(x, far) == (0.0, 0.0)


def test_precision_high_recall_low_for_a_collapsed_generator():
    rng = _rng(8)
    real = rng.normal(size=(1000, 2))
    fake = rng.normal(size=(1000, 2)) * 0.1  # all samples near one point of the data
    p, r = precision_recall(real, fake)
    d, c = density_coverage(real, fake)
    assert p > 0.95 and r < 0.2
    assert c < 0.2  # most of the data uncovered


# ---------------------------------------------------------------- classes


def test_class_coverage_flags_a_one_class_generator():
    rng = _rng(9)
    real_logits = 10 * np.eye(10)[np.arange(1000) % 10] + rng.normal(size=(1000, 10))
    balanced = 10 * np.eye(10)[rng.integers(0, 10, 1000)]
    one_class = 10 * np.eye(10)[np.full(1000, 3)]
    good = class_coverage(balanced, real_logits)
    bad = class_coverage(one_class, real_logits)
    assert good["classes_covered"] == 10 and good["class_kl"] < 0.01
    assert bad["classes_covered"] == 1
    assert bad["class_kl"] == pytest.approx(math.log(10), abs=0.01)
    # A class needs a quarter of its reference share: 2% of samples is not enough, 3% is.
    labels = np.r_[np.zeros(20, int), np.ones(980, int)]
    assert class_coverage(10 * np.eye(10)[labels], real_logits)["classes_covered"] == 1
    labels = np.r_[np.zeros(30, int), np.ones(970, int)]
    assert class_coverage(10 * np.eye(10)[labels], real_logits)["classes_covered"] == 2


def test_label_accuracy_and_intra_fid():
    logits = np.eye(3)[[0, 1, 2, 2]]
    assert label_accuracy(logits, np.array([0, 1, 2, 0])) == 0.75
    rng = _rng(10)
    real = np.r_[rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 5]
    real_labels = np.r_[np.zeros(500, int), np.ones(500, int)]
    fake = np.r_[rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 5]
    right, per_class = intra_fid(fake, real_labels, real, real_labels)
    swapped, _ = intra_fid(fake, 1 - real_labels, real, real_labels)
    assert right < 0.2 and set(per_class) == {0, 1}
    assert swapped > 90  # 4 dims x 5^2 = 100: the labels do not match the images
    # The overall FID cannot see the swap: only the class-conditional one can.
    assert fid(fake, real) < 0.2


# ---------------------------------------------------------------- memorization


def test_memorization_flags_exact_copies_and_not_fresh_samples():
    rng = _rng(11)
    train = rng.normal(size=(4000, 8))
    fresh = rng.normal(size=(2000, 8))
    copies = train[rng.choice(4000, 2000, replace=False)]
    half = np.r_[fresh[:1000], copies[:1000]]
    floor = memorization(fresh, train)
    assert floor["memorization"] == pytest.approx(0.01, abs=0.01)  # the 1% quantile: ~1% by chance
    assert memorization(copies, train)["memorization"] == 1.0
    assert memorization(half, train)["memorization"] == pytest.approx(0.5, abs=0.02)
    assert floor["memorization_tau"] > 0
