import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, LossPair, get_loss


def softplus(x):  # log(1 + e^x), by hand
    return math.log(1.0 + math.exp(x))


def log_sigmoid(x):
    return math.log(1.0 / (1.0 + math.exp(-x)))


REAL = [0.0, 2.0, -1.0]
FAKE = [1.0, -3.0, 0.5]


def t(values, grad=False):
    return torch.tensor(values, dtype=torch.float32, requires_grad=grad)


def mean(xs):
    return sum(xs) / len(xs)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_d_loss_against_hand_computation(name):
    # -log D(x) - log(1 - D(G(z))) with D = sigmoid
    expected = mean([-log_sigmoid(r) for r in REAL]) + mean([-math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE])
    # explicit: -log sigmoid(0) = log 2 = 0.693147...
    assert -log_sigmoid(0.0) == pytest.approx(0.6931471805599453, rel=1e-12)
    got = get_loss(name).d(real=t(REAL), fake=t(FAKE))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_g_minimax_against_hand_computation():
    expected = mean([math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE])  # log(1 - D(G(z)))
    assert get_loss("minimax").g(fake=t(FAKE)).item() == pytest.approx(expected, rel=1e-6)
    # single value: log(1 - sigmoid(0)) = log(0.5)
    assert get_loss("minimax").g(fake=t([0.0])).item() == pytest.approx(math.log(0.5), rel=1e-6)


def test_g_nonsaturating_against_hand_computation():
    expected = mean([-log_sigmoid(f) for f in FAKE])  # -log D(G(z))
    assert get_loss("nonsaturating").g(fake=t(FAKE)).item() == pytest.approx(expected, rel=1e-6)
    assert get_loss("nonsaturating").g(fake=t([2.0])).item() == pytest.approx(softplus(-2.0), rel=1e-6)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_g_accepts_and_ignores_real(name):
    g = get_loss(name).g
    assert g(fake=t(FAKE), real=t(REAL)).item() == g(fake=t(FAKE)).item()


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_sign_convention(name):
    pair = get_loss(name)
    base = pair.d(real=t([0.0, 0.0]), fake=t([0.0, 0.0]))
    assert pair.d(real=t([3.0, 3.0]), fake=t([0.0, 0.0])) < base  # real scored more real: D does better
    assert pair.d(real=t([0.0, 0.0]), fake=t([-3.0, -3.0])) < base  # fake scored less real: D does better
    # G does better when its fakes are scored more real
    assert pair.g(fake=t([3.0, 3.0])) < pair.g(fake=t([0.0, 0.0])) < pair.g(fake=t([-3.0, -3.0]))


def grad_at(g_loss, value):
    fake = t([value], grad=True)
    g_loss(fake=fake).backward()
    return fake.grad.item()


def test_minimax_saturates_nonsaturating_does_not():
    # d/dfake of -softplus(fake) = -sigmoid(fake); of softplus(-fake) = -sigmoid(-fake)
    minimax = grad_at(get_loss("minimax").g, -10.0)
    nonsat = grad_at(get_loss("nonsaturating").g, -10.0)
    assert minimax == pytest.approx(-1 / (1 + math.exp(10.0)), rel=1e-5)  # about -4.5e-5
    assert nonsat == pytest.approx(-1 / (1 + math.exp(-10.0)), rel=1e-5)  # about -1
    assert abs(minimax) < 1e-4 and abs(nonsat) > 0.99
    # both push fakes towards "more real" (negative gradient = increase the score)
    assert minimax < 0 and nonsat < 0


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_stable_at_extreme_logits(name):
    pair = get_loss(name)
    extreme = t([100.0, -100.0], grad=True)
    for loss in (pair.d(real=extreme, fake=extreme), pair.g(fake=extreme)):
        assert torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, extreme)
        assert torch.isfinite(grad).all()
    # values: -log sigmoid(100) ~ 0, -log sigmoid(-100) ~ 100
    d = pair.d(real=t([100.0]), fake=t([-100.0])).item()
    assert d == pytest.approx(2 * math.exp(-100), abs=1e-30)
    assert pair.d(real=t([-100.0]), fake=t([100.0])).item() == pytest.approx(200.0, rel=1e-6)


def test_bf16_logits_give_float32_loss():
    pair = get_loss("nonsaturating")
    loss = pair.d(real=t(REAL).bfloat16(), fake=t(FAKE).bfloat16())
    assert loss.dtype == torch.float32
    expected = pair.d(real=t(REAL).bfloat16().float(), fake=t(FAKE).bfloat16().float())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_registry():
    assert {"minimax", "nonsaturating"} <= set(LOSSES)
    assert all(isinstance(pair, LossPair) for pair in LOSSES.values())
    d, g = get_loss("nonsaturating")  # unpacks as a pair
    assert callable(d) and callable(g)
    with pytest.raises(ConfigError, match=r"unknown loss 'nonsaturatin'.*did you mean 'nonsaturating'.*valid: minimax, nonsaturating"):
        get_loss("nonsaturatin")
