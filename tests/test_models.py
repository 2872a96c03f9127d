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
    got = torch.compile(D, backend="aot_eager", fullgraph=True)(torch.compile(G, backend="aot_eager", fullgraph=True)(z))
    torch.testing.assert_close(got, expected)


def test_count_parameters_counts_shared_once():
    lin = torch.nn.Linear(3, 2)
    assert count_parameters(lin) == 8
    assert count_parameters(torch.nn.Sequential(lin, lin)) == 8
