"""BigGAN's truncated latents are the same for sample i at any count (README, "Reproducing a
run"): the resampled values had been drawn after the batch's normals from the same stream, so
sample 0's followed how many were drawn (`sample(1, seed=3, truncation=0.5)` differed from
`sample(7, ...)[0]` by 0.16). The stream after the draw, the untruncated z and the values inside
the threshold stay as they were, and the resampled values are still the truncated normal."""
from __future__ import annotations

import pytest
import torch
from scipy import stats

import ganforge
from ganforge import api
from ganforge.config import from_dict
from ganforge.latents import normal
from ganforge.models.biggan import Sampler
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.biggan import truncated_z

COUNTS = (1, 2, 5, 7, 16, 17, 20, 33, 64)


def _old_truncated_z(shape, threshold, generator):
    """truncated_z before the fix, the reference for what must not change."""
    z = normal(shape, generator)
    u = torch.rand(shape, generator=generator, device=generator.device)
    if threshold is None:
        return z
    t = torch.tensor(float(threshold), dtype=torch.float64)
    lo, hi = torch.special.ndtr(-t), torch.special.ndtr(t)
    inside = torch.special.ndtri(lo + u.cpu().double() * (hi - lo)).clamp(-t, t).float()
    return torch.where(z.abs() <= threshold, z, inside.to(z.device))


def _gen(seed=3):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_rand_draws_element_by_element(dtype):
    """What the fix relies on: CPU torch.rand's first k numbers are those of a longer draw, also
    for counts that are not multiples of 16 (torch.randn's are not: latents.normal pads)."""
    full = torch.rand(2000, generator=_gen(), dtype=dtype)
    for k in (1, 5, 15, 16, 17, 31, 33, 120, 121, 1000):
        assert torch.equal(torch.rand(k, generator=_gen(), dtype=dtype), full[:k]), k


@pytest.mark.parametrize("z_dim", [120, 6])
@pytest.mark.parametrize("threshold", [0.5, 1.5])
def test_row_i_of_a_truncated_z_is_the_same_at_any_count(z_dim, threshold):
    full = truncated_z((64, z_dim), threshold, _gen())
    assert (full.abs() < normal((64, z_dim), _gen()).abs()).any()  # some values were resampled
    for n in COUNTS:
        z = truncated_z((n, z_dim), threshold, _gen())
        assert torch.equal(z, full[:n]), f"n={n}: rows differ from the first n of 64"
    # and for the second batch of a stream, after a first of either size
    gen_a, gen_b = _gen(), _gen()
    truncated_z((5, z_dim), threshold, gen_a), truncated_z((5, z_dim), threshold, gen_b)
    assert torch.equal(truncated_z((3, z_dim), threshold, gen_a), truncated_z((9, z_dim), threshold, gen_b)[:3])


@pytest.mark.parametrize("shape", [(1, 120), (7, 6), (20, 120), (64, 6)])
@pytest.mark.parametrize("threshold", [None, 0.5, 2.0, 1e9])
def test_the_stream_the_untruncated_z_and_the_values_inside_are_as_before(shape, threshold):
    """Training draws through this generator: with no threshold the result and the generator's
    state afterwards are bit-identical to before the fix; with one the state afterwards is too
    (the next batch's z is the same at every threshold), and only values beyond it changed."""
    gen_new, gen_old = _gen(), _gen()
    new = truncated_z(shape, threshold, gen_new)
    old = _old_truncated_z(shape, threshold, gen_old)
    assert torch.equal(gen_new.get_state(), gen_old.get_state())
    if threshold is None or threshold > 100:
        assert torch.equal(new, old)
        return
    inside = normal(shape, _gen()).abs() <= threshold
    assert torch.equal(new[inside], old[inside]) and new.abs().max() <= threshold
    # the stream's next draw is untouched, whichever threshold came before it
    assert torch.equal(truncated_z(shape, None, gen_new), _old_truncated_z(shape, None, gen_old))


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_resampled_values_are_the_normal_restricted_to_the_threshold(threshold):
    gen = _gen(11)
    plain_gen = _gen(11)
    zs, plains = [], []
    for n in (1, 7, 20, 64, 500, 1000):  # several batches of one stream: each gets its own draw
        zs.append(truncated_z((n, 50), threshold, gen))
        plains.append(truncated_z((n, 50), None, plain_gen))
    z, plain = torch.cat(zs), torch.cat(plains)
    redrawn = z[plain.abs() > threshold]
    assert redrawn.numel() > 3000 and redrawn.abs().max() <= threshold
    truncnorm = stats.truncnorm(-threshold, threshold).cdf
    assert stats.kstest(redrawn.double().numpy(), truncnorm).pvalue > 1e-3
    assert stats.kstest(z.flatten().double().numpy(), truncnorm).pvalue > 1e-3
    # the test tells apart a uniform draw on [-T, T] (its power at T = 0.5 is the lowest)
    assert stats.kstest(redrawn.double().numpy(), stats.uniform(-threshold, 2 * threshold).cdf).pvalue < 1e-4
    # the redrawn values are not the same from batch to batch (each is seeded from the stream)
    a, b = zs[-2][:500], zs[-1][:500]
    both = (plains[-2][:500].abs() > threshold) & (plains[-1][:500].abs() > threshold)
    assert both.sum() > 20 and (a[both] != b[both]).float().mean() > 0.99


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("big-prefix")
    api.train(from_dict(OBJECTIVES["biggan"].example_config(root / "data")), root / "run", progress=False)
    return ganforge.load(root / "run")


def test_a_runs_truncated_sample_i_is_the_same_at_any_n(big_run, monkeypatch):
    seen = []
    forward = Sampler.forward

    def recording(self, z, labels):
        seen.append(z.clone())
        return forward(self, z, labels)

    monkeypatch.setattr(Sampler, "forward", recording)
    one = big_run.sample(1, seed=3, truncation=0.5)
    z_one = seen[-1]
    for n in (7, 20):
        many = big_run.sample(n, seed=3, truncation=0.5)
        assert torch.equal(seen[-1][:1], z_one), f"n={n}: sample 0's latent differs from n=1's"
        # G's float results depend slightly on the batch size (2e-7, untruncated too)
        assert torch.allclose(many[:1], one, atol=1e-5, rtol=0), \
            f"n={n}: image 0 differs from n=1's by {(many[:1] - one).abs().max():.3g}"
