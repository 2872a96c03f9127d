"""Regularizers against analytic values, and their wiring into the unconditional objective."""

import pytest
import torch

from ganforge import api
from ganforge import regularizers as regs
from ganforge.training.batches import InMemoryBatches
from ganforge.errors import ConfigError

from conftest import random_dataset, tiny_config


class LinearCritic(torch.nn.Module):
    """D(x) = w . flatten(x) + b: grad_x D = w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.w + self.b


class QuadraticCritic(torch.nn.Module):
    """D(x) = sum_i a_i x_i^2: grad_x D = 2 a * x."""

    def __init__(self, a):
        super().__init__()
        self.a = torch.nn.Parameter(a)

    def forward(self, x):
        return (self.a * x.reshape(x.shape[0], -1).square()).sum(1)


def test_gradient_penalty_on_linear_critic_is_analytic():
    torch.manual_seed(0)
    w = torch.tensor([3.0, 0.0, 4.0, 0.0])  # ||w|| = 5
    D = LinearCritic(w)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    gp = regs.gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(1))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-6)  # (||w|| - 1)^2 = 16
    gp.backward()  # the penalty is differentiable in D's weights: d/dw (||w|| - 1)^2
    torch.testing.assert_close(D.w.grad, 2 * (5.0 - 1.0) * w / 5.0)
    D1 = LinearCritic(torch.tensor([0.6, 0.8, 0.0, 0.0]))  # unit norm: no penalty
    assert regs.gradient_penalty(D1, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    dragan = regs.dragan_penalty(D, real, generator=torch.Generator().manual_seed(2))
    assert dragan.item() == pytest.approx(16.0, rel=1e-6)


def test_gradient_penalty_uses_interpolates():
    # D(x) = ||x||^2 / 2 per sample (a = 1/2): grad = x_hat, so GP = mean (||x_hat|| - 1)^2 where
    # x_hat = eps real + (1 - eps) fake with the eps the generator draws.
    D = QuadraticCritic(torch.full((3,), 0.5))
    real, fake = torch.randn(5, 3), torch.randn(5, 3)
    eps = torch.rand(5, 1, generator=torch.Generator().manual_seed(7))
    x_hat = eps * real + (1 - eps) * fake
    expected = (x_hat.norm(dim=1) - 1).square().mean()
    got = regs.gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(7))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_r1_on_quadratic_discriminator_is_analytic():
    a = torch.tensor([0.5, -1.0, 2.0])
    D = QuadraticCritic(a)
    x = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    # ||2 a * x||^2 per sample: [1 + 16 + 4, 0 + 4 + 144] -> mean (21 + 148) / 2
    assert regs.r1_penalty(D, x).item() == pytest.approx((21.0 + 148.0) / 2, rel=1e-6)
    # the same through grad_sq_norm on scores already computed (the objective's non-lazy path)
    xi = x.clone().requires_grad_(True)
    assert regs.grad_sq_norm(D(xi), xi).item() == pytest.approx(84.5, rel=1e-6)
    # differentiable in D's weights: d/da_i mean_n (2 a_i x_ni)^2 = mean_n 8 a_i x_ni^2
    regs.r1_penalty(D, x).backward()
    torch.testing.assert_close(D.a.grad, (8 * a * x.square()).mean(0))


def test_weight_clipping_and_noise_schedule():
    net = torch.nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.mul_(100)
    regs.clip_weights_(net, 0.01)
    assert all(p.abs().max() <= 0.01 for p in net.parameters())
    assert net.weight.abs().max().item() == pytest.approx(0.01)
    assert [regs.instance_noise_std(0.5, 100, s) for s in (0, 50, 100, 200)] == [0.5, 0.25, 0.0, 0.0]
    assert regs.instance_noise_std(0.5, 0, 10_000) == 0.5


# ----------------------------------------------------------------------------- in the objective


def _objective(**over):
    cfg = tiny_config(**{"train.ema_decay": 0.0, **over})
    objective, dataset = api.build(cfg, random_dataset())
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    batch = {"real": InMemoryBatches(dataset.images, None, 8, 0, torch.device("cpu")).__next__()["real"],
             "labels": None}
    return objective, batch


def test_phases_and_lazy_r1_scaling():
    objective, batch = _objective(**{"reg.r1": 2.0, "reg.r_interval": 4})
    assert [(p.name, p.every, p.fresh_batch) for p in objective.phases] == [
        ("D", 1, True), ("Dreg", 4, False), ("G", 1, False)]
    out = objective.loss("Dreg", batch)
    # loss = interval * gamma / 2 * R1 = 4 * 1 * R1
    assert out["loss"].item() == pytest.approx(4 * out["r1"].item(), rel=1e-6)
    assert "r1" not in objective.loss("D", batch)  # lazy: not in D's own step
    eager, batch = _objective(**{"reg.r1": 2.0})
    assert [p.name for p in eager.phases] == ["D", "G"]
    d = eager.loss("D", batch)
    assert d["loss"].item() == pytest.approx(d["d_loss"].item() + d["r1"].item(), rel=1e-5)


@pytest.mark.parametrize("key", ["reg.gp", "reg.dragan", "reg.r2"])
def test_penalties_enter_the_d_loss(key):
    objective, batch = _objective(**{"loss.name": "wasserstein", key: 10.0})
    out = objective.loss("D", batch)
    name = key.split(".")[1]
    weight = 10.0 / 2 if name == "r2" else 10.0
    assert out[name].item() > 0
    assert out["loss"].item() == pytest.approx(out["d_loss"].item() + weight * out[name].item(), rel=1e-5)


def test_clipping_after_each_d_step_in_training(tmp_path):
    cfg = tiny_config(**{"loss.name": "wasserstein", "reg.clip": 0.01, "optim.name": "rmsprop",
                         "train.steps": 2, "model.name": "mlp"})
    api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset())
    D = api.load(tmp_path / "run").objective.nets["D"]
    assert all(p.abs().max() <= 0.01 + 1e-7 for p in D.parameters())
    assert max(p.abs().max().item() for p in D.parameters()) == pytest.approx(0.01)  # clipping was active


def test_instance_noise_is_added_and_annealed():
    objective, batch = _objective(**{"reg.instance_noise": 0.5, "reg.instance_noise_anneal": 4})
    x = batch["real"]
    assert (objective.d_input(x) - x).std().item() == pytest.approx(0.5, rel=0.1)
    objective.g_steps = 2
    assert (objective.d_input(x) - x).std().item() == pytest.approx(0.25, rel=0.1)
    objective.g_steps = 4
    assert torch.equal(objective.d_input(x), x)
    assert objective.extra_state()["g_steps"] == 4


def test_label_smoothing_rejected_for_critics():
    with pytest.raises(ConfigError, match="label_smoothing.*hinge.*minimax, nonsaturating, lsgan"):
        _objective(**{"loss.name": "hinge", "loss.label_smoothing": 0.1})
    objective, batch = _objective(**{"loss.label_smoothing": 0.1})
    assert objective.d_kwargs == {"real_target": 0.9}


def test_spectral_norm_of_wrapped_layer_is_one():
    from ganforge.models import spectral_norm_

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Conv2d(3, 8, 3))
    with torch.no_grad():
        net[0].weight.mul_(7)
    spectral_norm_(net)
    x = torch.randn(4, 20)
    for _ in range(50):  # one power iteration per training-mode forward
        net[0](x)
        net[1](torch.randn(2, 3, 5, 5))
    sigma = torch.linalg.matrix_norm(net[0].weight.detach(), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=1e-3)
    conv_sigma = torch.linalg.matrix_norm(net[1].weight.detach().reshape(8, -1), ord=2)
    assert conv_sigma.item() == pytest.approx(1.0, abs=1e-3)
    # the original weight is untouched (a parametrization, saved in the state dict with u, v)
    keys = set(net.state_dict())
    assert {"0.parametrizations.weight.original", "0.parametrizations.weight.0._u"} <= keys


def test_spectral_norm_option_trains_and_resumes(tmp_path):
    """model.d_spectral_norm / g_spectral_norm: weights normalized, checkpoint round trip exact."""
    over = {"model.d_spectral_norm": True, "model.g_spectral_norm": True, "loss.name": "hinge",
            "model.name": "mlp", "train.checkpoint_every": 100, "train.steps": 4}
    one, two = tmp_path / "one", tmp_path / "two"
    api.train(tiny_config(**over), one, progress=False, dataset=random_dataset())
    api.train(tiny_config(**{**over, "train.steps": 2}), two, progress=False, dataset=random_dataset())
    api.train(api.resume_config(two, ["train.steps=4"]), two, resume=True, progress=False,
              dataset=random_dataset())
    a, b = api.load(one), api.load(two)
    for (ka, va), (kb, vb) in zip(a.objective.nets["D"].state_dict().items(),
                                  b.objective.nets["D"].state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert any("parametrizations" in k for k in a.objective.nets["G"].state_dict())


def test_double_backward_phases_are_declared():
    assert _objective(**{"reg.r1": 2.0})[0].double_backward("D")  # R1 in every D step
    lazy = _objective(**{"reg.r1": 2.0, "reg.r_interval": 4})[0]
    assert not lazy.double_backward("D") and lazy.double_backward("Dreg")
    assert _objective(**{"loss.name": "wasserstein", "reg.gp": 10.0})[0].double_backward("D")
    plain = _objective()[0]
    assert not plain.double_backward("D") and not plain.double_backward("G")


@pytest.mark.parametrize("over", [{"reg.r1": 1.0}, {"reg.r1": 1.0, "reg.r_interval": 2},
                                  {"loss.name": "wasserstein", "reg.gp": 10.0}])
def test_penalties_train_under_compile(tmp_path, monkeypatch, over):
    # torch.compile's autograd has no double backward: the Trainer runs penalty phases eagerly.
    # aot_eager builds the same autograd graph as inductor without a C++ toolchain.
    plain_compile = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda self, **kw: plain_compile(self, backend="aot_eager"))
    torch._dynamo.reset()
    cfg = tiny_config(**{"train.compile": "true", "train.steps": 2, "model.name": "mlp", **over})
    api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset())
    assert api.load(tmp_path / "run").step == 2
