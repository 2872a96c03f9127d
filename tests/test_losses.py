import math

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge import losses
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
    assert set(ALL) <= set(LOSSES)
    assert all(isinstance(pair, LossPair) for pair in LOSSES.values())
    d, g = get_loss("nonsaturating")  # unpacks as a pair
    assert callable(d) and callable(g)
    with pytest.raises(ConfigError, match=r"unknown loss 'nonsaturatin'.*did you mean 'nonsaturating'.*"
                                          r"valid: hinge, lsgan, minimax, nonsaturating, ragan, rahinge, wasserstein"):
        get_loss("nonsaturatin")
    # no close name: perhaps a plugin's loss (a run trained with one, loaded without the plugin)
    with pytest.raises(ConfigError, match=r"unknown loss 'myloss'; valid: .*wasserstein; a loss registered "
                                          r"outside ganforge needs the module that registers it imported first "
                                          r"\(in Python: import it; for the CLI: GANFORGE_PLUGINS=module\)$"):
        get_loss("myloss")


# ----------------------------------------------------------------------------- the wider zoo

ALL = ["minimax", "nonsaturating", "wasserstein", "hinge", "lsgan", "ragan", "rahinge"]
RELATIVISTIC = ["ragan", "rahinge"]
M_R, M_F = mean(REAL), mean(FAKE)  # 1/3 and -1/2


def relu(x):
    return max(0.0, x)


# Hand computations on REAL = [0, 2, -1], FAKE = [1, -3, 0.5], term by term.
EXPECTED = {
    # mean d_fake - mean d_real = -1/2 - 1/3 ; G: -mean d_fake = 1/2
    "wasserstein": (-0.5 - 1 / 3, 0.5),
    # mean relu(1 - r) = (1 + 0 + 2) / 3 = 1 ; mean relu(1 + f) = (2 + 0 + 1.5) / 3 ; G: 1/2
    "hinge": (1.0 + 3.5 / 3, 0.5),
    # 1/2 mean (r - 1)^2 = (1 + 1 + 4) / 6 = 1 ; 1/2 mean f^2 = (1 + 9 + 0.25) / 6
    # G: 1/2 mean (f - 1)^2 = (0 + 16 + 0.25) / 6
    "lsgan": (1.0 + 10.25 / 6, 16.25 / 6),
    "ragan": (mean([softplus(-(r - M_F)) for r in REAL]) + mean([softplus(f - M_R) for f in FAKE]),
              mean([softplus(-(f - M_R)) for f in FAKE]) + mean([softplus(r - M_F) for r in REAL])),
    "rahinge": (mean([relu(1 - (r - M_F)) for r in REAL]) + mean([relu(1 + (f - M_R)) for f in FAKE]),
                mean([relu(1 - (f - M_R)) for f in FAKE]) + mean([relu(1 + (r - M_F)) for r in REAL])),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_zoo_against_hand_computation(name):
    d_expected, g_expected = EXPECTED[name]
    pair = get_loss(name)
    d = pair.d(real=t(REAL), fake=t(FAKE))
    g = pair.g(fake=t(FAKE), real=t(REAL))
    assert d.shape == () and g.shape == ()
    assert d.item() == pytest.approx(d_expected, rel=1e-6)
    assert g.item() == pytest.approx(g_expected, rel=1e-6)


def test_zoo_literal_values():
    # A few values written out, independent of the helpers above.
    assert get_loss("wasserstein").d(real=t([2.0, 4.0]), fake=t([1.0, -1.0])).item() == pytest.approx(-3.0)
    assert get_loss("hinge").d(real=t([0.5, 3.0]), fake=t([-2.0, 0.0])).item() == pytest.approx(0.25 + 0.5)
    assert get_loss("lsgan").g(fake=t([0.0, 2.0])).item() == pytest.approx(0.5)
    # ragan at equal scores: every relativistic score is 0, so each term is log 2
    assert get_loss("ragan").d(real=t([1.0, 1.0]), fake=t([1.0, 1.0])).item() == pytest.approx(2 * math.log(2))
    assert get_loss("rahinge").g(fake=t([1.0]), real=t([1.0])).item() == pytest.approx(2.0)


@pytest.mark.parametrize("name", ALL)
def test_zoo_sign_convention(name):
    """Higher scores mean "more real": D gains by raising real and lowering fake scores, G by
    raising its fakes' scores. Checked around the loss's decision threshold (0; 0.5 for lsgan,
    whose fake target 0 makes scores below it cost D again), where every loss is active."""
    pair = get_loss(name)
    c = losses.decision_threshold(pair)
    z = t([c, c])
    real = t([c, c]) if name in RELATIVISTIC else None
    base = pair.d(real=z, fake=z)
    assert pair.d(real=t([c + 0.4, c + 0.4]), fake=z) < base
    assert pair.d(real=z, fake=t([c - 0.4, c - 0.4])) < base
    up, mid, down = (pair.g(fake=t([c + v, c + v]), real=real) for v in (0.4, 0.0, -0.4))
    assert up < mid < down


@pytest.mark.parametrize("name", ALL)
def test_zoo_gradients_push_fakes_up_and_stay_finite(name):
    pair = get_loss(name)
    fake = t([0.3, -0.2], grad=True)
    real = t([0.1, 0.4], grad=True)
    pair.g(fake=fake, real=real.detach()).backward()
    assert (fake.grad < 0).all()  # minimizing L_G raises the fakes' scores
    extreme = t([100.0, -100.0], grad=True)
    loss = pair.d(real=extreme, fake=extreme) + pair.g(fake=extreme, real=extreme)
    (grad,) = torch.autograd.grad(loss, extreme)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", RELATIVISTIC)
def test_relativistic_g_needs_real(name):
    pair = get_loss(name)
    assert losses.g_needs_real(pair)
    with pytest.raises(ValueError, match="real"):
        pair.g(fake=t(FAKE))
    assert not losses.g_needs_real(get_loss("hinge"))


def test_label_smoothing_is_one_sided():
    """real_target 0.9: -0.9 log D(x) - 0.1 log(1 - D(x)) - log(1 - D(G(z)))."""
    pair = get_loss("nonsaturating")
    s = 0.9
    expected = (mean([s * softplus(-r) + (1 - s) * softplus(r) for r in REAL])
                + mean([softplus(f) for f in FAKE]))
    assert pair.d(real=t(REAL), fake=t(FAKE), real_target=s).item() == pytest.approx(expected, rel=1e-6)
    # fakes keep their target 0: the fake term is unchanged
    no_real = pair.d(real=t([50.0]), fake=t(FAKE), real_target=1.0).item()
    assert no_real == pytest.approx(mean([softplus(f) for f in FAKE]), rel=1e-6)
    lsgan = get_loss("lsgan").d(real=t([0.9]), fake=t([0.0]), real_target=0.9)
    assert lsgan.item() == pytest.approx(0.0, abs=1e-7)
    assert [n for n in ALL if losses.supports_label_smoothing(get_loss(n))] == \
        ["minimax", "nonsaturating", "lsgan"]


def test_logged_score_kind():
    assert [n for n in ALL if losses.is_probabilistic(get_loss(n))] == ["minimax", "nonsaturating"]
    assert losses.decision_threshold(get_loss("lsgan")) == 0.5
    assert losses.decision_threshold(get_loss("hinge")) == 0.0
