"""StyleGAN2 (objective=stylegan2): network properties against explicit computations, the
regularizers against hand and finite-difference computations, exact resume of everything outside
the nets, tracing for export, and each bad input's one-line error."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganforge
from conftest import run_cli
from ganforge import api, inference
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import (Discriminator, Generator, MappingNetwork, fir_downsample,
                                       mix_styles, modulated_conv2d, slerp)
from ganforge.objectives.stylegan2 import StyleGAN2, lazy_adam, path_lengths
from ganforge.training import checkpoint as ckpt


def tiny_G(**kw):
    torch.manual_seed(0)
    args = dict(z_dim=4, w_dim=6, resolution=16, channels=1, width=4, channel_max=8, mapping_layers=2)
    return Generator(**{**args, **kw})


# ----------------------------------------------------------------------------- networks


def test_modulated_conv_equals_an_explicit_per_sample_convolution():
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(3, 5, 6, 6, generator=g), torch.randn(4, 5, 3, 3, generator=g)
    styles = torch.rand(3, 5, generator=g) + 0.5
    for demodulate in (True, False):
        out = modulated_conv2d(x, weight, styles, demodulate=demodulate)
        for n in range(3):
            w = weight * styles[n].view(1, 5, 1, 1)
            if demodulate:  # each output channel's weights to unit L2 norm
                w = w / w.flatten(1).norm(dim=1).view(4, 1, 1, 1)
            expected = F.conv2d(x[n:n + 1], w, padding=1)
            torch.testing.assert_close(out[n:n + 1], expected, rtol=1e-5, atol=1e-5)


def test_demodulation_keeps_unit_output_variance_for_unit_input():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, 32, 32, generator=g)  # i.i.d. unit variance
    weight = torch.randn(16, 64, 3, 3, generator=g) * 5
    styles = torch.rand(4, 64, generator=g) * 3 + 0.1
    out = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]  # inside the zero padding
    assert out.var().item() == pytest.approx(1.0, abs=0.05)
    raw = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 1:-1, 1:-1]
    assert raw.var().item() > 100  # without demodulation the scale of the styles passes through


def test_truncation_psi_0_gives_w_avg_and_psi_1_the_identity():
    m = MappingNetwork(z_dim=4, w_dim=6, num_layers=2)
    m.w_avg.copy_(torch.arange(6.0))
    w = torch.randn(3, 5, 6)
    assert torch.equal(m.truncate(w, 1.0), w)
    assert torch.equal(m.truncate(w, 0.0), m.w_avg.expand(3, 5, 6))
    half = m.truncate(w, 0.5, cutoff=2)
    torch.testing.assert_close(half[:, :2], (w[:, :2] + m.w_avg) / 2)
    assert torch.equal(half[:, 2:], w[:, 2:])


def test_w_avg_tracks_the_mean_w_with_its_decay_only_when_asked():
    m = MappingNetwork(z_dim=4, w_dim=6, num_layers=2, w_avg_beta=0.9)
    z = torch.randn(8, 4)
    w = m(z)
    assert torch.equal(m.w_avg, torch.zeros(6))
    m(z, update_w_avg=True)
    torch.testing.assert_close(m.w_avg, 0.1 * w.mean(0))


def test_style_mixing_switches_to_the_second_w_exactly_at_the_crossover_layer(tmp_path):
    a, b = torch.zeros(2, 8, 3), torch.ones(2, 8, 3)
    mixed = mix_styles(a, b, 5)
    assert mixed[:, :5].eq(0).all() and mixed[:, 5:].eq(1).all()
    # in training: replay the objective's noise stream and check which latent each layer used
    cfg = from_dict(apply_overrides(StyleGAN2.example_config(tmp_path), ["style.mixing_prob=1.0"]))
    obj = StyleGAN2(cfg, {"num_classes": 0})
    rng = torch.Generator().manual_seed(3)
    obj.bind(device=torch.device("cpu"), rng=rng)
    state = rng.get_state()
    _, ws = obj.generate(4, None)
    rng.set_state(state)
    G = obj.nets["G"]
    z1 = torch.randn(4, obj.z_dim, generator=rng)
    torch.rand((), generator=rng)
    cut = int(torch.randint(1, G.num_ws, (), generator=rng))
    z2 = torch.randn(4, obj.z_dim, generator=rng)
    w1, w2 = G.mapping(z1), G.mapping(z2)
    assert 1 <= cut < G.num_ws
    for layer in range(G.num_ws):
        assert torch.equal(ws[:, layer], w1 if layer < cut else w2), layer
    # a batch that does not mix uses the first latent in every layer, and draws the same numbers
    # (the decision stays on the device, so the second latent is drawn either way)
    obj.style.mixing_prob = 1e-12
    state = rng.get_state()
    _, ws = obj.generate(4, None)
    after = torch.rand(5, generator=rng)
    rng.set_state(state)
    z1 = torch.randn(4, obj.z_dim, generator=rng)
    torch.rand((), generator=rng), torch.randint(1, G.num_ws, (), generator=rng)
    torch.randn(4, obj.z_dim, generator=rng)
    torch.testing.assert_close(ws, G.mapping(z1).unsqueeze(1).expand_as(ws), rtol=0, atol=0)
    G.synthesis.make_noise(4, "random", generator=rng, device=torch.device("cpu"))
    assert torch.equal(torch.rand(5, generator=rng), after)


def test_fir_downsample_averages_a_constant_and_halves_the_size():
    x = torch.full((1, 2, 8, 8), 3.0)
    y = fir_downsample(x)
    assert y.shape == (1, 2, 4, 4)
    torch.testing.assert_close(y[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))  # [1,3,3,1] sums to 1


def test_fir_downsample_is_the_1_3_3_1_filter_at_stride_2():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    k = torch.tensor([1.0, 3, 3, 1], dtype=torch.float64)
    k = torch.outer(k, k) / 64
    padded = F.pad(x, (1, 1, 1, 1))
    expected = torch.stack([torch.stack([(padded[:, :, 2 * i:2 * i + 4, 2 * j:2 * j + 4] * k).sum((2, 3))
                                         for j in range(4)], -1) for i in range(4)], -2)
    torch.testing.assert_close(fir_downsample(x), expected)


def test_downsampling_conv_filters_first_and_matches_filtering_after_inside_the_border():
    from ganforge.models.stylegan2 import EqualConv2d

    torch.manual_seed(4)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for kernel in (1, 3):
        conv = EqualConv2d(3, 5, kernel, down=True, activation=False).double()
        with torch.no_grad():
            conv.bias.normal_()
            after = fir_downsample(F.conv2d(x, conv.weight * conv.weight_gain, padding=kernel // 2))
            after = after + conv.bias.view(1, -1, 1, 1)
            ours = conv(x)
        assert ours.shape == after.shape == (2, 5, 8, 8)
        if kernel == 1:  # a 1x1 convolution commutes with the filter everywhere
            torch.testing.assert_close(ours, after)
        else:  # the same linear map; only the padding at the border differs
            torch.testing.assert_close(ours[:, :, 1:-1, 1:-1], after[:, :, 1:-1, 1:-1])
            assert not torch.allclose(ours[:, :, 0], after[:, :, 0])


def test_slerp_keeps_the_norm_between_orthogonal_latents_and_hits_the_ends():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    mid = slerp(a, b, torch.tensor([[0.5]]))
    torch.testing.assert_close(mid, torch.tensor([[3 / math.sqrt(2), 3 / math.sqrt(2)]]))
    torch.testing.assert_close(slerp(a, b, torch.zeros(1, 1)), a)
    torch.testing.assert_close(slerp(a, b, torch.ones(1, 1)), b)


def test_projection_discriminator_scores_are_the_inner_product_with_the_class_embedding():
    torch.manual_seed(0)
    D = Discriminator(resolution=8, channels=1, width=4, channel_max=8, mbstd_group=2, num_classes=3)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1])
    h = D.out(D.fc(D.conv(D.mbstd(D.blocks(D.from_rgb(x)))).flatten(1)))
    e = D.embed(F.one_hot(y, 3).float())
    torch.testing.assert_close(D(x, y), (h * e).sum(1) / math.sqrt(D.cmap_dim))


class _WithNoise(torch.nn.Module):
    """G with the noise as explicit inputs: what an exporter sees."""

    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, z, *noise):
        return self.G(z, noise=list(noise))


def test_forward_pass_traces_for_export_with_explicit_noise():
    G = tiny_G().eval().requires_grad_(False)
    with torch.no_grad():  # the noise inputs matter once their strengths are not 0
        for conv in G.synthesis.convs:
            conv.noise_strength.fill_(0.5)
    shapes = G.synthesis.noise_shapes(2)
    g = torch.Generator().manual_seed(0)
    example = (torch.randn(2, 4, generator=g), *[torch.randn(s, generator=g) for s in shapes])
    exported = torch.export.export(_WithNoise(G), example).module()
    z2 = torch.randn(2, 4, generator=g)
    noise2 = [torch.randn(s, generator=g) for s in shapes]
    torch.testing.assert_close(exported(z2, *noise2), G(z2, noise=noise2))
    assert torch.equal(G(z2, noise=noise2), G(z2, noise=noise2))  # explicit noise: deterministic
    assert not torch.allclose(exported(z2, *noise2), exported(z2, *[n * 0 for n in noise2]))


# ----------------------------------------------------------------------------- regularizers


def test_path_length_is_the_norm_of_the_jacobian_transpose_times_y_by_finite_differences():
    G = tiny_G(resolution=8).double()
    ws = torch.randn(2, G.num_ws, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 1, 8, 8, dtype=torch.float64) / 8
    lengths = path_lengths(G.synthesis(ws, None), ws, y)
    h = 1e-6
    for n in range(2):
        grad = torch.zeros(G.num_ws, 6, dtype=torch.float64)
        for i in range(G.num_ws):
            for j in range(6):
                e = torch.zeros_like(ws)
                e[n, i, j] = h
                with torch.no_grad():
                    plus = (G.synthesis(ws + e, None) * y).sum()
                    minus = (G.synthesis(ws - e, None) * y).sum()
                grad[i, j] = (plus - minus) / (2 * h)
        expected = grad.square().sum(1).mean().sqrt()
        assert lengths[n].item() == pytest.approx(expected.item(), rel=1e-6)


def test_path_length_penalty_gradient_matches_a_finite_difference():
    G = tiny_G(resolution=8).double()
    ws = torch.randn(2, G.num_ws, 6, dtype=torch.float64)
    y = torch.randn(2, 1, 8, 8, dtype=torch.float64) / 8
    param = G.synthesis.convs[1].weight
    pl_mean = 0.3

    def penalty():
        w = ws.clone().requires_grad_(True)
        return (path_lengths(G.synthesis(w, None), w, y) - pl_mean).square().mean()

    (grad,) = torch.autograd.grad(penalty(), param)  # double backpropagation
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 1, 2), (3, 3, 2, 0)]:
        with torch.no_grad():
            param[idx] += h
        plus = penalty().item()
        with torch.no_grad():
            param[idx] -= 2 * h
        minus = penalty().item()
        with torch.no_grad():
            param[idx] += h
        assert abs(grad[idx].item()) > 1e-6
        assert grad[idx].item() == pytest.approx((plus - minus) / (2 * h), rel=1e-5)


def test_lazy_interval_scales_adams_learning_rate_and_betas(tmp_path):
    lr, betas = lazy_adam(0.0025, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert lazy_adam(0.002, (0.5, 0.9), 1) == (0.002, (0.5, 0.9))
    raw = apply_overrides(StyleGAN2.example_config(tmp_path), ["reg.r_interval=16", "style.pl_interval=4"])
    obj = StyleGAN2(from_dict(raw), {"num_classes": 0})
    assert obj.optimizers["D"].lr == pytest.approx(0.002 * 16 / 17)
    assert obj.optimizers["G"].lr == pytest.approx(0.002 * 4 / 5)
    assert obj.optimizers["G"].betas[1] == pytest.approx(0.99 ** 0.8)
    assert [(p.name, p.every) for p in obj.phases] == [("D", 1), ("Dreg", 16), ("G", 1), ("Greg", 4)]


def test_ema_half_life_is_counted_in_images(tmp_path):
    raw = apply_overrides(StyleGAN2.example_config(tmp_path),
                          ["style.ema_kimg=10", "style.ema_rampup=0.05", "train.batch_size=32"])
    obj = StyleGAN2(from_dict(raw), {"num_classes": 0})
    assert obj.ema_beta(0) == 0.0  # nothing to average yet: copy
    beta = obj.ema_beta(100_000)  # 5% of 3.2M images > 10k: the full half-life
    assert beta ** (10_000 / 32) == pytest.approx(0.5)
    assert obj.ema_beta(1000) ** (1600 / 32) == pytest.approx(0.5)  # ramp: 5% of 32k images


# ----------------------------------------------------------------------------- training state


def _state(run):
    return ckpt.load(ckpt.find(run))


def test_resume_is_bit_exact_including_pl_mean_w_avg_and_the_ada_probability(tmp_path):
    raw = apply_overrides(StyleGAN2.example_config(tmp_path / "data"),
                          ["augment.ada=true", "augment.ada_interval=1", "augment.ada_kimg=0.01",
                           "augment.ada_target=0.01", "train.steps=6"])
    api.train(from_dict(raw), tmp_path / "once", progress=False)
    api.train(from_dict(apply_overrides(raw, ["train.steps=3"])), tmp_path / "half", progress=False)
    api.train(api.resume_config(tmp_path / "half", ["train.steps=6"]), tmp_path / "half",
              progress=False, resume=True)
    (wa, sa), (wb, sb) = _state(tmp_path / "once"), _state(tmp_path / "half")
    for key in ("G.mapping.w_avg", "ema.G.mapping.w_avg"):
        assert wa[key].abs().sum() > 0 and torch.equal(wa[key], wb[key])
    oa, ob = sa["objective"], sb["objective"]
    assert oa["pl_mean"] > 0 and torch.equal(oa["pl_mean"], ob["pl_mean"])
    assert 0 < oa["ada"]["p"] == ob["ada"]["p"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ----------------------------------------------------------------------------- loaded runs


def test_sample_truncation_pulls_toward_the_average_image(style_run):
    run = ganforge.load(style_run)
    G = run.ema_nets["G"]
    assert run.sample(4, seed=1, truncation=0.0).shape == (4, 1, 8, 8)
    mean_image = run.objective.synthesize(G.mapping.w_avg.expand(4, G.num_ws, -1), nets=run.ema_nets,
                                          noise="none")
    torch.testing.assert_close(run.sample(4, seed=1, truncation=1.0), run.sample(4, seed=1))
    # psi = 0: every sample has the same styles; only the per-layer noise differs
    no_noise = [run.objective.synthesize(run.objective.latents(4, torch.Generator().manual_seed(s),
                                                                truncation=0.0, nets=run.ema_nets)[0],
                                         nets=run.ema_nets, noise="none") for s in (1, 2)]
    torch.testing.assert_close(no_noise[0], mean_image)
    torch.testing.assert_close(no_noise[1], mean_image)


def test_mix_grid_takes_exactly_the_requested_layers_from_the_columns(style_run):
    run = ganforge.load(style_run)
    obj, nets = run.objective, run.ema_nets
    grid = run.mix([1, 2], [3], "0-1")
    ws = {s: obj.latents(1, torch.Generator().manual_seed(s), nets=nets)[0] for s in (1, 2, 3)}
    expected = ws[2].clone()
    expected[:, :2] = ws[3][:, :2]
    torch.testing.assert_close(grid[5:6], obj.synthesize(expected, nets=nets, noise="const"))
    torch.testing.assert_close(grid[1:2], obj.synthesize(ws[3], nets=nets, noise="const"))


@pytest.mark.parametrize("args, message", [
    (["sample", "{run}", "--truncation", "1.5", "--out", "{tmp}/s.png"], "truncation psi must be in [0, 1]"),
    (["sample", "{run}", "--truncation", "0.5", "--truncation-cutoff", "99", "--out", "{tmp}/s.png"],
     "truncation cutoff must be a layer in 0..4"),
    (["sample", "{run}", "--truncation-cutoff", "2", "--out", "{tmp}/s.png"],  # it had done nothing
     "truncation_cutoff=2 limits a truncation to the layers below it, and no truncation was given"),
    (["mix", "{run}", "--rows", "1,2", "--cols", "3", "--layers", "2-9", "--out", "{tmp}/m.png"],
     "unknown layer range '2-9': this generator has layers 0-3"),
    (["mix", "{run}", "--rows", "1,x", "--cols", "3", "--out", "{tmp}/m.png"], "--rows takes comma-separated"),
    (["interpolate", "{run}", "--seeds", "1", "--out", "{tmp}/w.gif"], "at least 2 seeds"),
    (["interpolate", "{run}", "--seeds", "1,2", "--out", "{tmp}/w.mp4"], "use a .gif or .png"),
    (["edit", "{run}", "--attribute", "Shirt", "--strength", "-3:3:x", "--out", "{tmp}/e.png"],
     "--strength takes FROM:TO:COUNT"),
    (["edit", "{run}", "--attribute", "Shirt", "--strength", "-3:3:7", "--out", "{tmp}/e.png"],
     "edit labels generated images with the dataset's classifier"),
    (["project", "{run}", "{tmp}/missing.png", "--out", "{tmp}/p"], "missing.png does not exist"),
])
def test_bad_inputs_get_one_line_errors_and_exit_code_2(style_run, tmp_path, args, message):
    out = run_cli(*[a.format(run=style_run, tmp=tmp_path) for a in args])
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_mix_and_interpolate_commands_write_their_files(style_run, tmp_path):
    from PIL import Image

    out = run_cli("mix", style_run, "--rows", "1,2,3", "--cols", "4,5", "--layers", "0-1",
                  "--out", tmp_path / "mix.png")
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "mix.png").size == (3 * 9 + 1, 4 * 9 + 1)  # 8 px tiles, padding 1
    out = run_cli("interpolate", style_run, "--seeds", "1,7,3", "--frames", "6", "--space", "z",
                  "--out", tmp_path / "walk.gif")
    assert out.returncode == 0, out.stderr
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 6 and gif.size == (8, 8)
    again = run_cli("mix", style_run, "--rows", "1", "--cols", "4", "--out", tmp_path / "mix.png")
    assert again.returncode == 2 and "already exists" in again.stderr
    # every image says it was generated (the mix, the walk as GIF and as PNG); GIF frame times are
    # whole centiseconds: 30 fps plays at 33.3, and says so
    from ganforge import provenance

    assert provenance.read(tmp_path / "mix.png")["operation"] == "mix"
    walk = provenance.read(tmp_path / "walk.gif")
    assert walk["operation"] == "interpolate" and walk["seeds"] == [1, 7, 3] and walk["frames"] == 6
    out = run_cli("interpolate", style_run, "--seeds", "1,7", "--frames", "4", "--fps", "30",
                  "--out", tmp_path / "fast.gif")
    assert out.returncode == 0 and "33.3333 fps (GIF frame times are whole centiseconds; asked 30)" in out.stdout
    assert Image.open(tmp_path / "fast.gif").info["duration"] == 30
    out = run_cli("interpolate", style_run, "--seeds", "1,7", "--frames", "4", "--fps", "60",
                  "--out", tmp_path / "fps60.gif")  # stored as 10 ms, which browsers play at 100 ms
    assert out.returncode == 2 and "--fps in 0.002..50" in out.stderr
    out = run_cli("interpolate", style_run, "--seeds", "1,7,3", "--frames", "2", "--out", tmp_path / "w2.png")
    assert out.returncode == 2 and "--frames must be in 3..10000" in out.stderr
    run = api.load(style_run)  # 10 frames, 3 seeds: frames 0, 3 and 7 are the seeds (7 and 3 never appeared)
    walk = run.interpolate([1, 7, 3], 10)
    for frame, s in ((0, 1), (3, 7), (7, 3)):
        torch.testing.assert_close(walk[frame], run.interpolate([s, 99], 2)[0])


def test_style_commands_refuse_runs_without_styles(tmp_path):
    from ganforge.objectives.unconditional import UnconditionalGAN

    api.train(from_dict(UnconditionalGAN.example_config(tmp_path / "data")), tmp_path / "dcgan", progress=False)
    out = run_cli("mix", tmp_path / "dcgan", "--rows", "1", "--cols", "2", "--out", tmp_path / "m.png")
    assert out.returncode == 2 and "cannot mix coarse/middle/fine styles" in out.stderr
    assert out.stderr.count("\n") == 1


def test_config_errors_name_the_key(tmp_path):
    raw = StyleGAN2.example_config(tmp_path)
    with pytest.raises(ConfigError, match="set model.name=stylegan2"):
        StyleGAN2(from_dict(apply_overrides(raw, ["model.name=dcgan"])), {})
    with pytest.raises(ConfigError, match="power of two >= 8"):
        StyleGAN2(from_dict(apply_overrides(raw, ["data.resolution=28"])), {})
    with pytest.raises(ConfigError, match="style.mapping_layers must be > 0"):
        StyleGAN2(from_dict(apply_overrides(raw, ["style.mapping_layers=0"])), {})


# ----------------------------------------------------------------------------- PPL, bench truncation


def test_perceptual_path_length_against_a_known_linear_path():
    from ganforge.metrics import ModuleExtractor
    from ganforge.metrics.ppl import perceptual_path_length

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)

    ext = ModuleExtractor(Flat(), channels=1)
    norms = torch.arange(1, 201, dtype=torch.float64)  # ||v||^2 of pair i is i + 1

    def pairs(n, *, space, eps, seed):
        idx = torch.arange(seed * 50, seed * 50 + n)
        a = torch.zeros(n, 1, 2, 2)
        v = torch.zeros(n, 1, 2, 2, dtype=torch.float64)
        v[:, 0, 0, 0] = norms[idx].sqrt()
        return a, (a.double() + 1e-2 * v).float()

    value, info = perceptual_path_length(pairs, ext, n=200, space="w", eps=1e-2, batch=50)
    d = norms.numpy()
    kept = d[(d >= np.percentile(d, 1, method="lower")) & (d <= np.percentile(d, 99, method="higher"))]
    assert value == pytest.approx(kept.mean(), rel=1e-4) and info["kept"] == len(kept) < 200


def test_ppl_pairs_step_eps_along_the_latent_path(style_run):
    run = ganforge.load(style_run)
    a, b = run.path_pairs(3, space="w", eps=1e-4, seed=0)
    a2, b2 = run.path_pairs(3, space="w", eps=0.0, seed=0)
    assert torch.equal(a, a2) and torch.equal(a2, b2)  # eps 0: the same image
    assert 0 < (a - b).abs().max() < 1e-2


def test_bench_truncation_scores_match_a_direct_evaluation(style_run, tmp_path):
    from ganforge.bench import truncation as bench
    from ganforge.metrics import ModuleExtractor, evaluate, to_uint8

    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x, 2).flatten(1)

    run = ganforge.load(style_run)
    ext = ModuleExtractor(Pool(), channels=1)
    ref = f"folder:{style_run.parent / 'data' / 'images'}"
    result = bench.run_benchmark(run, [0.0, 1.0], ref=ref, n=8, extractor=ext, split="train")
    direct = evaluate(to_uint8(run.sample(8, seed=0)), ref=ref, split="train", n_ref=8, extractor=ext,
                      metrics=["fid", "precision", "recall"], cache=False)
    row = result["results"][1]
    assert row["truncation"] == 1.0 and row["fid"] == pytest.approx(direct.values["fid"])
    assert result["results"][0]["fid"] != row["fid"]
    assert bench.plot(result, tmp_path / "t.png").stat().st_size > 0


def test_bench_truncation_refuses_bad_values_and_runs_without_truncation(style_run, tmp_path):
    out = run_cli("bench", "truncation", style_run, "--psi", "0.5,1.2", "--json", tmp_path / "t.json")
    assert out.returncode == 2 and "truncation psi must be in [0, 1]" in out.stderr
    assert out.stderr.count("\n") == 1 and not any(tmp_path.iterdir())
    out = run_cli("bench", "truncation", style_run, "--values", "a", "--json", tmp_path / "t.json")
    assert out.returncode == 2 and "--values takes comma-separated numbers" in out.stderr
    # output paths are checked before any scoring (the plot had overwritten --json out/x.png, and a
    # .txt plot failed after the whole sweep)
    (tmp_path / "folder").mkdir()
    for args, message in ((["--json", tmp_path / "x.png"], "--json and --plot are the same file"),
                          (["--json", tmp_path / "r.json", "--plot", tmp_path / "r.txt"], "give a .png, .pdf or .svg"),
                          (["--json", tmp_path / "folder", "--plot", tmp_path / "p.png"], "is a folder")):
        out = run_cli("bench", "truncation", style_run, "--values", "0.5", "--n", "10", *args)
        assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


# ----------------------------------------------------------------------------- projection


def test_projection_of_a_generated_image_recovers_it(style_run):
    from ganforge.metrics.paired import psnr

    run = ganforge.load(style_run)
    G, obj = run.ema_nets["G"], run.objective
    ws, _ = obj.latents(1, torch.Generator().manual_seed(5), nets=run.ema_nets)
    target = api.to_uint8_hwc(obj.synthesize(ws, nets=run.ema_nets, noise="const"))[0]
    start = obj.synthesize(G.mapping.w_avg.expand(1, G.num_ws, -1), nets=run.ema_nets, noise="const")
    for space in ("w", "w+"):
        torch.manual_seed(3)
        out = run.project(target, space=space, steps=300)
        after = torch.randn(2)
        torch.manual_seed(3)
        assert torch.equal(after, torch.randn(2))  # the caller's random stream is left alone
        baseline = float(psnr(start, out["target"])[0])
        assert out["ws"].shape == (G.num_ws, G.w_dim) and out["notes"] == []
        assert out["psnr"] > baseline + 5, (space, out["psnr"], baseline)
        assert out["ssim"] is None and "pixel MSE only" in out["perceptual"]  # 8 px: no SSIM, no classifier
        if space == "w":
            assert torch.equal(out["ws"][0], out["ws"][-1])  # one w for every layer


def test_project_command_resizes_with_a_note_and_refuses_bad_files(style_run, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "big.png")
    out = run_cli("project", style_run, tmp_path / "big.png", "--steps", "5", "--out", tmp_path / "proj")
    assert out.returncode == 0, out.stderr
    assert "converted RGB to L" in out.stdout and "resized 30x20 to 8x8" in out.stdout
    assert {p.name for p in (tmp_path / "proj").iterdir()} == {"latent.npy", "reconstruction.png",
                                                               "progress.png", "result.json", "noise.npz"}
    assert np.load(tmp_path / "proj" / "latent.npy").shape[0] == 4
    from ganforge import provenance

    assert provenance.read(tmp_path / "proj" / "reconstruction.png")["operation"] == "project"
    again = run_cli("project", style_run, tmp_path / "big.png", "--out", tmp_path / "proj")
    assert again.returncode == 2 and "already exists" in again.stderr
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = run_cli("project", style_run, tmp_path / "bad.png", "--out", tmp_path / "p2")
    assert bad.returncode == 2 and "cannot read image" in bad.stderr and bad.stderr.count("\n") == 1
    assert not (tmp_path / "p2").exists()
    folder = run_cli("project", style_run, tmp_path / "proj", "--out", tmp_path / "p3")
    assert folder.returncode == 2 and "is a folder; pass one image file" in folder.stderr


def test_project_reads_a_16_bit_image_as_the_data_loader_does(tmp_path):
    """PIL's convert('RGB') clips 16-bit samples above 255: a 16-bit grey PNG had become a
    two-level target (half of it white), announced as 'converted RGB to L'."""
    from PIL import Image

    from ganforge.commands.style import _read_image

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # 0 .. 63000
    Image.fromarray(ramp).save(tmp_path / "i16.png")
    got = _read_image(tmp_path / "i16.png")
    assert got.ndim == 2 and got.dtype == np.uint8 and len(np.unique(got)) > 32  # not two levels


# ----------------------------------------------------------------------------- editing


def _brightness(x):
    """A two-class stand-in for the dataset classifier: brighter than the batch's median or not."""
    d = (x.flatten(1).mean(1) - x.flatten(1).mean(1).median()) * 100
    return torch.stack([-d, d], 1)


def test_edit_direction_moves_images_toward_the_attribute(style_run):
    run = ganforge.load(style_run)
    out = run.edit("bright", [-3, 0, 3], seed=2, n_train=500, classify=_brightness, class_names=["dark", "bright"])
    mean = out["images"].flatten(1).mean(1)
    assert out["val_balanced_accuracy"] > 0.8  # brightness is close to linear in w
    assert mean[0] < mean[1] < mean[2]
    torch.testing.assert_close(out["images"][1:2], run.objective.synthesize(
        run.objective.latents(1, torch.Generator().manual_seed(2), nets=run.ema_nets)[0],
        nets=run.ema_nets, noise="const"))  # strength 0: the seed's own image
    with pytest.raises(ConfigError, match="unknown class 'Shirt'; valid classes"):
        run.edit("Shirt", [1], classify=_brightness, class_names=["dark", "bright"], n_train=50)
    with pytest.raises(ConfigError, match="has none"):
        run.edit("Shirt", [1])  # the folder dataset has no classifier
    with pytest.raises(ConfigError, match="pass the latent.npy of ganforge project on this run"):
        run.edit("bright", [1], latent=np.zeros((2, 3), np.float32), classify=_brightness,
                 class_names=["dark", "bright"], n_train=50)


def test_project_edit_and_mix_check_their_arguments(style_run):
    """They had raised raw TypeErrors (steps=2.5, layers=2, strengths=2), accepted a seed the
    command refuses (-1), NaN strengths, or an empty image (projected as black)."""
    run = ganforge.load(style_run)
    img = np.zeros((8, 8), np.uint8)
    for call, message in ((lambda: run.project(img, steps=2.5), "steps must be an integer >= 1"),
                          (lambda: run.project(img, steps=2, seed=-1), "seed must be an integer >= 0"),
                          (lambda: run.project(np.zeros((0, 0), np.uint8), steps=2), r"H, W >= 1, got \[0, 0\]"),
                          (lambda: run.edit(0, 2), "strengths must be a non-empty list"),
                          (lambda: run.edit(0, []), "strengths must be a non-empty list"),
                          (lambda: run.edit(0, [float("nan")]), "strengths must be finite numbers")):
        with pytest.raises(ganforge.errors.GanforgeError, match=message):
            call()
    assert torch.equal(run.mix([1], [2], 2), run.mix([1], [2], "2"))  # one layer index


def test_mix_grid_too_large_for_memory_is_refused_before_drawing(style_run, monkeypatch):
    run = ganforge.load(style_run)
    monkeypatch.setattr(inference, "SMALL_SAMPLE_BYTES", 0)
    monkeypatch.setattr("ganforge.config.available_memory", lambda: 1000)  # bytes
    monkeypatch.setattr(run.objective, "mix", lambda *a, **k: pytest.fail("drew before the check"))
    with pytest.raises(ganforge.GanforgeError, match="a mix grid of 2 x 3 seeds needs about"):
        run.mix([1, 2], [3, 4, 5])
