"""Evaluation numbers that had been wrong in particular setups: exact duplicates in memorization,
the reference cache of module extractors, and where the class metrics read the reference."""
import numpy as np
import torch
from torch import nn

from ganforge.metrics import evaluation
from ganforge.metrics.features import Features, ModuleExtractor
from ganforge.metrics.memorization import memorization
from ganforge.metrics.prdc import nearest_distances
from ganforge.metrics.reference import Reference


def _exact_nearest(a, b):
    return np.sqrt(((a[:, None, :].astype(np.float64) - b[None].astype(np.float64)) ** 2).sum(-1)).min(1)


def test_exact_duplicates_are_at_distance_zero_and_copies_are_counted():
    rng = np.random.default_rng(0)
    train = np.maximum(rng.normal(2, 3, size=(600, 64)), 0).astype(np.float32)
    dup = rng.choice(600, 40, replace=False)
    train[dup[:20]] = train[dup[20:]]  # 3% of the training set duplicated
    assert (nearest_distances(train[dup[:20]], train[dup[20:]]) == 0).all()  # had been about 1e-6
    fake = np.concatenate([train[rng.choice(600, 30)], np.maximum(rng.normal(2, 3, size=(270, 64)), 0)])
    result = memorization(fake.astype(np.float32), train)
    delta = np.array([_exact_nearest(train[i:i + 1], np.delete(train, i, 0))[0] for i in range(600)])
    tau = np.quantile(delta[delta > 0], 0.01)
    assert np.isclose(result["memorization_tau"], tau)  # had been the rounding noise, ~1e-6
    assert result["memorization"] == np.mean(_exact_nearest(fake, train) < tau) >= 0.1


def test_module_extractors_with_the_same_weights_but_other_code_do_not_share_a_cache_key():
    avg = ModuleExtractor(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), resolution=8)
    mx = ModuleExtractor(nn.Sequential(nn.AdaptiveMaxPool2d(2), nn.Flatten()), resolution=8)
    assert avg.describe() != mx.describe()  # both have no parameters: the same weights hash
    again = ModuleExtractor(nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), resolution=8)
    assert avg.describe() == again.describe()  # the same network keeps its cache


def test_class_metrics_read_the_reference_where_the_evaluation_did(monkeypatch):
    seen = {}

    def fake_reference(dataset, extractor, **kw):
        seen.update(kw)
        return Reference(Features(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)), None, None, {})

    monkeypatch.setattr(evaluation, "reference_features", fake_reference)
    ref = Reference(Features(np.zeros((2, 3), np.float32), None), None, None,
                    {"dataset": "fashion-mnist", "split": "test", "n": 2, "resolution": 28, "channels": 1})
    ctx = evaluation._Context(fake=ref.features, ref=ref, labels=None, extractor=object(), classifier=object(),
                              images=torch.zeros(2, 1, 28, 28, dtype=torch.uint8), train=lambda: ref, cache=False,
                              data_dir="/my/data")
    assert ctx.ref_class_logits.shape == (2, 4) and seen["data_dir"] == "/my/data"
