import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.models import (ARCHITECTURES, build_discriminator, build_generator, count_parameters)

ARCHS = ["mlp", "dcgan"]
RESOLUTIONS = [28, 32, 48, 64]
N, Z = 3, 8


def make(name, resolution=32, channels=3, width=4):
    torch.manual_seed(0)
    G = build_generator(name, resolution=resolution, channels=channels, z_dim=Z, width=width)
    D = build_discriminator(name, resolution=resolution, channels=channels, width=width)
    return G, D


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_range(name, resolution, channels):
    G, D = make(name, resolution, channels)
    assert (G.z_dim, G.resolution, G.channels) == (Z, resolution, channels)
    fake = G(torch.randn(N, Z))
    assert fake.shape == (N, channels, resolution, resolution)
    assert fake.dtype == torch.float32
    assert fake.min() >= -1.0 and fake.max() <= 1.0
    logits = D(fake)
    assert logits.shape == (N,)
    assert torch.isfinite(logits).all()


def test_dcgan_layout_follows_paper():
    # 64x64: project to 8*width at 4x4, then 4 upsamplings; D mirrors with BN after the first conv.
    G, D = make("dcgan", resolution=64, channels=3, width=8)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(Z, 64), (64, 32), (32, 16), (16, 8), (8, 3)]
    assert convs[0].kernel_size == (4, 4) and all(m.stride == (2, 2) for m in convs[1:])
    d_layers = list(D.net)
    assert isinstance(d_layers[0], torch.nn.Conv2d) and isinstance(d_layers[1], torch.nn.LeakyReLU)
    bns = [m for m in D.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.num_features for m in bns] == [16, 32, 64]
    # 28x28 starts at 7x7 with two upsamplings
    G28, _ = make("dcgan", resolution=28, channels=1, width=8)
    convs28 = [m for m in G28.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs28] == [(Z, 16), (16, 8), (8, 1)]
    assert convs28[0].kernel_size == (7, 7)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G = build_generator("dcgan", resolution=64, channels=3, z_dim=100, width=64)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert w.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.01)
    assert bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_mlp_default_is_paper_size():
    G = build_generator("mlp", resolution=28, channels=1, z_dim=100, width=256)
    D = build_discriminator("mlp", resolution=28, channels=1, width=256)
    assert count_parameters(G) == (100 * 256 + 256) + (256 * 784 + 784)
    assert count_parameters(D) == (784 * 256 + 256) + (256 + 1)


@pytest.mark.parametrize("name", ARCHS)
def test_one_training_step_changes_both_nets(name):
    G, D = make(name, resolution=28, channels=1, width=8)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    real = torch.rand(4, 1, 28, 28) * 2 - 1
    z = torch.randn(4, Z)

    before_d = [p.detach().clone() for p in D.parameters()]
    d_loss = torch.nn.functional.softplus(-D(real)).mean() + torch.nn.functional.softplus(D(G(z).detach())).mean()
    opt_d.zero_grad()
    d_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())  # the detach kept G out of D's step
    opt_d.step()
    assert all(not torch.equal(a, b) for a, b in zip(before_d, D.parameters()))

    before_g = [p.detach().clone() for p in G.parameters()]
    g_loss = torch.nn.functional.softplus(-D(G(z))).mean()
    opt_g.zero_grad()
    g_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    opt_g.step()
    assert all(not torch.equal(a, b) for a, b in zip(before_g, G.parameters()))


@pytest.mark.parametrize("resolution", [6, 7, 18, 36, 100, 0, -32, 32.0])
def test_dcgan_rejects_unsupported_resolution(resolution):
    with pytest.raises(ConfigError, match=r"dcgan.*resolution.*28, 32, 40, 48, 56, 64"):
        build_generator("dcgan", resolution=resolution, channels=3, z_dim=Z, width=4)
    with pytest.raises(ConfigError, match="resolution"):
        build_discriminator("dcgan", resolution=resolution, channels=3, width=4)


@pytest.mark.parametrize("name", ARCHS)
def test_bad_sizes_are_config_errors(name):
    with pytest.raises(ConfigError, match="width"):
        build_generator(name, resolution=32, channels=3, z_dim=Z, width=0)
    with pytest.raises(ConfigError, match="channels"):
        build_discriminator(name, resolution=32, channels=-1, width=4)


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown architecture 'dcgna'.*did you mean 'dcgan'.*dcgan, mlp"):
        build_generator("dcgna", resolution=32, channels=3, z_dim=Z, width=4)
    with pytest.raises(ConfigError, match=r"valid: dcgan, mlp"):
        build_discriminator("nope", resolution=32, channels=3, width=4)
    assert {"mlp", "dcgan"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", ARCHS)
def test_bf16_autocast_on_cpu(name):
    G, D = make(name, resolution=32, channels=3, width=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(torch.randn(N, Z))
        logits = D(fake)
    assert fake.shape == (N, 3, 32, 32) and logits.shape == (N,)
    assert fake.dtype in (torch.bfloat16, torch.float32) and logits.dtype in (torch.bfloat16, torch.float32)
    assert torch.isfinite(fake).all() and torch.isfinite(logits).all()
    assert all(p.dtype == torch.float32 for p in [*G.parameters(), *D.parameters()])  # models stay fp32
    logits.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters())


@pytest.mark.parametrize("name", ARCHS)
def test_channels_last_input_gives_same_logits(name):
    _, D = make(name, resolution=32, channels=3, width=8)
    D.eval()
    x = torch.rand(N, 3, 32, 32) * 2 - 1
    expected = D(x)
    got = D(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == (N,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_compiles_without_graph_breaks():
    # aot_eager traces the full graph (what breaks torch.compile) without a C++ toolchain.
    G, D = make("dcgan", resolution=16, channels=1, width=4)
    z = torch.randn(N, Z)
    G.eval(), D.eval()
    expected = D(G(z))
    compiled_g = torch.compile(G, backend="aot_eager", fullgraph=True)
    got = torch.compile(D, backend="aot_eager", fullgraph=True)(compiled_g(z))
    torch.testing.assert_close(got, expected)


def test_count_parameters_counts_shared_once():
    lin = torch.nn.Linear(3, 2)
    assert count_parameters(lin) == 8
    assert count_parameters(torch.nn.Sequential(lin, lin)) == 8


# ----------------------------------------------------------------------------- stability options


def test_minibatch_std_appends_the_group_std():
    from ganforge.models import MinibatchStd

    x = torch.randn(8, 3, 2, 2)
    y = MinibatchStd(group=4)(x)
    assert y.shape == (8, 4, 2, 2) and torch.equal(y[:, :3], x)
    # groups are strided: sample i is in group i % 2 (8 samples, groups of 4)
    for m in range(2):
        members = x[m::2]  # [4, 3, 2, 2]
        expected = members.std(dim=0, unbiased=False).mean()
        assert torch.allclose(y[m::2, 3], expected.expand(4, 2, 2), atol=1e-5)
    points = MinibatchStd(group=4)(torch.randn(6, 5))  # 6 not divisible by 4: groups of 3
    assert points.shape == (6, 6)


@pytest.mark.parametrize("name", ARCHS)
def test_mbstd_option_builds_and_sees_the_batch(name):
    D = build_discriminator(name, resolution=28, channels=1, width=8, mbstd=4)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    same = x[:1].expand(4, 1, 28, 28)
    assert D(x).shape == (4,)
    # identical samples (a collapsed batch) score differently from varied ones with the same first
    assert D(same)[0] != D(torch.cat([x[:1], x[1:]]))[0]


def test_packing_reshapes_consecutive_samples_into_channels():
    from ganforge.models import Packed

    seen = []

    class Inner(torch.nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.flatten(1).sum(1)

    x = torch.arange(6 * 1 * 2 * 2, dtype=torch.float32).reshape(6, 1, 2, 2)
    out = Packed(Inner(), 3)(x)
    assert out.shape == (2,) and seen[0].shape == (2, 3, 2, 2)
    assert torch.equal(seen[0][0], x[0:3, 0]) and torch.equal(seen[0][1], x[3:6, 0])
    pts = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    Packed(Inner(), 2)(pts)
    assert torch.equal(seen[1], torch.tensor([[0., 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]))
    with pytest.raises(ValueError, match="not divisible by pac=4"):
        Packed(Inner(), 4)(x)


def test_pac_in_config_and_objective():
    from ganforge import api
    from ganforge.config import apply_overrides, from_dict

    raw = {"data": {"name": "fashion-mnist", "resolution": 16},
           "model": {"name": "dcgan", "z_dim": 8, "g_width": 4, "d_width": 4, "pac": 4},
           "train": {"batch_size": 10}}
    with pytest.raises(ConfigError, match="batch_size=10 is not divisible by model.pac=4"):
        from_dict(raw)
    cfg = from_dict(apply_overrides(raw, ["train.batch_size=8"]))
    from conftest import random_dataset

    objective, _ = api.build(cfg, random_dataset())
    D = objective.nets["D"]
    assert D.pac == 4 and D.inner.channels == 4  # built for pac x 1 channels
    assert D(torch.zeros(8, 1, 16, 16)).shape == (2,)


def test_mlp_for_points():
    G = build_generator("mlp", resolution=28, channels=1, z_dim=2, width=16, depth=3, point_dim=2)
    D = build_discriminator("mlp", resolution=28, channels=1, width=16, depth=2, point_dim=2)
    out = G(torch.randn(5, 2))
    assert out.shape == (5, 2) and not isinstance(G.net[-1], torch.nn.Tanh)  # coordinates unbounded
    assert D(out).shape == (5,)
    assert sum(isinstance(m, torch.nn.Linear) for m in G.modules()) == 4
    with pytest.raises(ConfigError, match="architecture 'dcgan' does not support 2-D point data.*mlp"):
        build_generator("dcgan", resolution=28, channels=1, z_dim=2, width=4, point_dim=2)
    with pytest.raises(ConfigError, match="dcgan' does not support model.g_depth"):
        build_generator("dcgan", resolution=28, channels=1, z_dim=2, width=4, depth=2)


def test_toy_dataset_trains_and_samples_points(tmp_path):
    from ganforge import api
    from ganforge.config import from_dict

    raw = {"data": {"name": "toy:ring8"},
           "model": {"name": "mlp", "z_dim": 2, "g_width": 8, "d_width": 8, "g_depth": 2,
                     "d_depth": 2, "pac": 2},
           "train": {"steps": 3, "batch_size": 8, "device": "cpu", "log_every": 1,
                     "checkpoint_every": 3, "sample_every": 1}}
    result = api.train(from_dict(raw), tmp_path / "run", progress=False)
    assert result.step == 3
    # no image grids for points: a scatter plot of them at each train.sample_every
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "step_0000001.png", "step_0000002.png", "step_0000003.png"]
    run = api.load(tmp_path / "run")  # rebuilt from the run directory alone
    samples = run.sample(10, seed=0)
    assert samples.shape == (10, 2) and samples.dtype == torch.float32
    raw["model"]["name"] = "dcgan"
    with pytest.raises(ConfigError, match="2-D point data"):
        api.build(from_dict(raw))


@pytest.mark.parametrize("resolution", [28, 32])
def test_dcgan_conv_head_keeps_a_full_resolution_stage(resolution):
    G = build_generator("dcgan", resolution=resolution, channels=1, z_dim=8, width=4, head="conv")
    assert G(torch.randn(3, 8)).shape == (3, 1, resolution, resolution)
    last = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert type(last) is torch.nn.Conv2d and last.kernel_size == (3, 3) and last.in_channels == 4
    with pytest.raises(ConfigError, match="model.g_head must be one of convt, conv"):
        build_generator("dcgan", resolution=28, channels=1, z_dim=8, width=4, head="deconv")
    with pytest.raises(ConfigError, match="does not support model.g_head"):
        build_generator("mlp", resolution=28, channels=1, z_dim=8, width=4, head="conv")


def test_dcgan_deep_d_head_adds_a_stride_2_stage_and_a_linear_map():
    D = build_discriminator("dcgan", resolution=28, channels=1, width=4, head="deep", mbstd=2)
    assert D(torch.rand(4, 1, 28, 28)).shape == (4,)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 1]
    assert convs[2].kernel_size == (3, 3) and convs[2].stride == (2, 2)
    assert convs[3].kernel_size == (4, 4) and convs[3].in_channels == 17  # 7x7 -> 4x4, + mbstd channel
    with pytest.raises(ConfigError, match="model.d_head must be one of conv, deep"):
        build_discriminator("dcgan", resolution=28, channels=1, width=4, head="wide")


def test_dcgan_init_option_keeps_pytorch_defaults_or_applies_the_papers():
    torch.manual_seed(0)
    paper = build_generator("dcgan", resolution=28, channels=1, z_dim=8, width=8, head="conv")
    default = build_generator("dcgan", resolution=28, channels=1, z_dim=8, width=8, head="conv", init="torch")
    w_paper, w_default = paper.net[-2].weight, default.net[-2].weight  # the 3x3 output conv, 72 inputs
    assert abs(w_paper.std().item() - 0.02) < 0.01  # N(0, 0.02)
    assert w_default.std().item() > 0.05  # PyTorch's default: uniform within 1/sqrt(72), std 0.068
    with pytest.raises(ConfigError, match="model.init must be one of dcgan, torch"):
        build_discriminator("dcgan", resolution=28, channels=1, width=4, init="xavier")


@pytest.mark.parametrize("family", ["stylegan2", "biggan", "pix2pix"])
def test_a_family_named_as_architecture_points_to_the_family(family):
    """`ganforge train dcgan-fashion-mnist model.name=stylegan2` had been told "unknown
    architecture 'stylegan2' ... registered outside ganforge needs the module that registers it
    imported first": the plugin route, for a family ganforge has."""
    from ganforge.config import load_config
    from ganforge.objectives import build_objective

    _, cfg = load_config("dcgan-fashion-mnist", [f"model.name={family}"])
    with pytest.raises(ConfigError, match=rf"model.name={family} is a family of its own, not an architecture of "
                                          rf"objective=unconditional \(dcgan, mlp\).*presets.*set objective={family}"
                       ) as err:
        build_objective(cfg, {"num_classes": 10})
    assert "outside ganforge" not in str(err.value)
