"""Review 5 of the losses and regularizers: lazy R1/R2 with n_critic, D's accuracy for the
shift-invariant losses, warnings for combinations the docs call wrong, ADA's step with PacGAN."""

import itertools
import warnings
from types import SimpleNamespace

import pytest
import torch

from ganforge import api
from ganforge import losses
from ganforge.augment import ADA
from ganforge.config import apply_overrides, from_dict, list_presets, load_config
from ganforge.objectives.base import OBJECTIVES
from ganforge.objectives.pix2pix import Pix2Pix
from ganforge.objectives.superres import _scores as sr_scores
from ganforge.training.batches import InMemoryBatches
from ganforge.training.monitor import Monitor, d_accuracy

from conftest import random_dataset, tiny_config
from test_monitor import feed, healthy, with_

# ----------------------------------------------------------------------------- 1. lazy R1 x n_critic


def _objective(**over):
    cfg = tiny_config(**{"train.ema_decay": 0.0, **over})
    objective, dataset = api.build(cfg, random_dataset())
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    batch = next(InMemoryBatches(dataset.images, None, 8, 0, torch.device("cpu")))
    return objective, {"real": batch["real"], "labels": None}


@pytest.mark.parametrize("n_critic", [1, 3])
def test_lazy_r1_is_scaled_by_the_d_steps_between_passes(n_critic):
    """Dreg runs every r_interval generator steps = r_interval * n_critic D steps; StyleGAN2 scales
    the lazy penalty by the minibatches it stands for, so that its total equals R1 in every D step.
    With n_critic 3 it had been scaled by r_interval only: 3 times weaker."""
    objective, batch = _objective(**{"reg.r1": 2.0, "reg.r_interval": 4, "train.n_critic": n_critic})
    assert [(p.name, p.repeat, p.every) for p in objective.phases] == [
        ("D", n_critic, 1), ("Dreg", 1, 4), ("G", 1, 1)]
    out = objective.loss("Dreg", batch)
    # loss = (4 * n_critic) * gamma / 2 * R1, gamma / 2 = 1
    assert out["loss"].item() == pytest.approx(4 * n_critic * out["r1"].item(), rel=1e-6)
    assert objective.d_reg_interval == 4 * n_critic


def test_no_preset_changes_with_the_lazy_r1_fix():
    """Every preset with lazy R1/R2 trains with n_critic 1, so its penalty keeps its weight: the
    count of D steps per Dreg pass is its r_interval."""
    lazy = []
    for name in list_presets():
        _, cfg = load_config(name)
        r = cfg.reg
        if r.r_interval > 1 and (r.r1 > 0 or r.r2 > 0):
            lazy.append(name)
            objective, _ = _objective(**{"reg.r1": r.r1, "reg.r2": r.r2, "reg.r_interval": r.r_interval,
                                         "train.n_critic": cfg.train.n_critic})
            assert objective.d_reg_interval == r.r_interval, name
    assert "dcgan-fashion-mnist" in lazy and "stylegan2-fashion-mnist" in lazy


# ----------------------------------------------------------------------------- 2. D's accuracy


def test_relativistic_accuracy_for_shift_invariant_losses():
    real = torch.tensor([3.0, 4.0, 5.0, 2.0]) + 100.0  # every score far above 0
    fake = torch.tensor([1.0, 2.0, 6.0, 0.0, 3.0]) + 100.0
    for name in ("wasserstein", "ragan", "rahinge"):
        pair = losses.LOSSES.get(name)
        assert losses.is_shift_invariant(pair)
        acc_real, acc_fake = losses.d_accuracy(pair, real=real, fake=fake)
        # mean fake 102.4: 3 of 4 reals above; mean real 103.5: 4 of 5 fakes below
        assert (acc_real.item(), acc_fake.item()) == (0.75, pytest.approx(0.8))
        shifted = losses.d_accuracy(pair, real=real - 1000, fake=fake - 1000)
        assert [a.item() for a in shifted] == [a.item() for a in (acc_real, acc_fake)]
    # the threshold losses are unchanged: above / below 0 (0.5 for lsgan)
    for name, t in (("nonsaturating", 0.0), ("minimax", 0.0), ("hinge", 0.0), ("lsgan", 0.5)):
        pair = losses.LOSSES.get(name)
        assert not losses.is_shift_invariant(pair)
        r, f = torch.randn(50), torch.randn(70)
        acc_real, acc_fake = losses.d_accuracy(pair, real=r, fake=f)
        assert torch.equal(acc_real, (r > t).float().mean()) and torch.equal(acc_fake, (f < t).float().mean())
    # the monitor's d_accuracy is the same function
    assert [a.item() for a in d_accuracy(real, fake, "ragan")] == [0.75, pytest.approx(0.8)]


@pytest.mark.parametrize("loss", ["ragan", "rahinge", "wasserstein"])
def test_every_family_logs_the_relativistic_accuracy(loss):
    real, fake = torch.tensor([5.0, 6.0, 7.0, 1.5]), torch.tensor([4.0, 2.0, 1.0, 0.5])
    want = (0.75, 1.0)  # mean fake 1.875: 1.5 is below it; mean real 4.875: every fake below
    # unconditional (and every family built on it)
    objective, _ = _objective(**{"loss.name": loss, **({"reg.clip": 0.01} if loss == "wasserstein" else {})})
    out = objective._scores(real, fake)
    assert (out["d_acc_real"].item(), out["d_acc_fake"].item()) == want
    # super-resolution and pix2pix (patch scores [N, 1, H, W] judged against the patches' mean)
    adv = losses.get_loss(loss)
    out = sr_scores(adv, real, fake)
    assert (out["d_acc_real"].item(), out["d_acc_fake"].item()) == want
    out = Pix2Pix._scores(SimpleNamespace(adv=adv), real.reshape(2, 1, 1, 2), fake.reshape(2, 1, 1, 2))
    assert (out["d_acc_real"].item(), out["d_acc_fake"].item()) == want


class _Shifted(torch.nn.Module):
    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return x.mean((1, 2, 3)) + self.shift  # [N]


def test_cyclegan_judges_each_discriminator_on_its_own_scores(tmp_path):
    """D_A's scores sit near +10 and D_B's near -10; each separates its reals and fakes. Pooled
    and thresholded at 0 that had logged 50% / 50%."""
    raw = apply_overrides(OBJECTIVES.get("cyclegan").example_config(tmp_path),
                          ["loss.name=rahinge", "translate.pool_size=0"])
    cfg = from_dict(raw)
    objective = OBJECTIVES.get("cyclegan")(cfg, {})
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    objective.nets["D_A"], objective.nets["D_B"] = _Shifted(10.0), _Shifted(-10.0)
    a, b = torch.ones(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    objective._fakes = (torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8))
    out = objective.loss("D", {"a": a, "b": b})
    assert (out["d_acc_real"].item(), out["d_acc_fake"].item()) == (1.0, 1.0)


def _ragan_wins(records, g_grad):
    # raw relativistic scores: both well above 0.95 (a shifted D): no probability, no threshold
    return with_(records, d_real=12.0, d_fake=7.0, d_acc_real=1.0, d_acc_fake=0.99,
                 d_loss=1e-3, g_loss=9.0, g_grad_norm=g_grad)


@pytest.mark.parametrize("loss", ["ragan", "rahinge"])
def test_monitor_judges_relativistic_losses_on_their_accuracy(loss):
    cfg = tiny_config(**{"loss.name": loss})
    events = feed(Monitor(cfg), itertools.chain(healthy(5), _ragan_wins(healthy(20, start=5), 0.002)))
    assert [e["event"] for e in events] == ["vanishing_gradients"]
    assert "ranks 100% of reals above the mean fake score and 99% of fakes" in events[0]["message"]
    # a relativistic D that does not win (accuracy 0.8) is no event, whatever its raw scores
    calm = with_(healthy(25), d_real=12.0, d_fake=-7.0, d_acc_real=0.8, d_acc_fake=0.8, g_grad_norm=0.002)
    assert [e["event"] for e in feed(Monitor(cfg), calm) if e["event"] == "vanishing_gradients"] == []
    # wasserstein stays unjudged
    cfg = tiny_config(**{"loss.name": "wasserstein", "reg.clip": 0.01})
    assert feed(Monitor(cfg), itertools.chain(healthy(5), _ragan_wins(healthy(20, start=5), 0.002))) == []


# ----------------------------------------------------------------------------- 3. warnings


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("over, says, fix", [
    ({"loss.name": "wasserstein"}, "loss.name=wasserstein with no Lipschitz constraint", {"reg.clip": 0.01}),
    ({"loss.name": "wasserstein"}, "loss.name=wasserstein with no Lipschitz constraint",
     {"model.d_spectral_norm": True}),
    ({"loss.name": "wasserstein"}, "loss.name=wasserstein with no Lipschitz constraint", {"reg.dragan": 10.0}),
    ({"loss.name": "wasserstein", "reg.gp": 10.0, "model.d_norm": "batch"}, "reg.gp with model.d_norm=batch",
     {"model.d_norm": "layer"}),
    ({"reg.gp": 10.0, "model.d_norm": "batch"}, "reg.gp with model.d_norm=batch", {"model.d_norm": "none"}),
])
def test_combinations_the_docs_call_wrong_warn(over, says, fix):
    said = _warnings_of(lambda: tiny_config(**over))
    assert len([m for m in said if says in m]) == 1, said
    assert _warnings_of(lambda: tiny_config(**{**over, **fix})) == []  # the fix it names silences it


def test_gp_on_dcgans_default_batch_norm_warns_when_built():
    """model.d_norm left unset is dcgan's BatchNorm: the built D is inspected."""
    said = _warnings_of(lambda: _objective(**{"loss.name": "wasserstein", "reg.gp": 10.0}))
    assert len([m for m in said if "reg.gp with a batch-normalized D" in m]) == 1, said
    assert _warnings_of(lambda: _objective(**{"loss.name": "wasserstein", "reg.gp": 10.0,
                                              "model.d_norm": "layer"})) == []


def test_no_preset_warns(tmp_path):
    """Every preset, and the families that build their own D (no BatchNorm there) with a
    gradient penalty: no warning of these checks."""
    ours = ("Lipschitz", "model.d_norm=batch", "batch-normalized D", "does nothing without reg.r1")
    live = _warnings_of(lambda: load_config("toy-ring8", ["loss.name=wasserstein", "reg.r1=0"]))
    assert len([m for m in live if any(k in m for k in ours)]) == 1, live  # the checks are on

    for name in list_presets():
        said = _warnings_of(lambda name=name: load_config(name))
        assert not [m for m in said if any(k in m for k in ours)], (name, said)
    for family in ("progressive", "stylegan2", "biggan"):
        raw = apply_overrides(OBJECTIVES.get(family).example_config(tmp_path / family),
                              ["loss.name=wasserstein", "reg.gp=10"])

        def build(family=family, raw=raw):
            OBJECTIVES.get(family)(from_dict(raw), {"images": 0, "num_classes": 2})

        said = _warnings_of(build)
        assert not [m for m in said if any(k in m for k in ours)], (family, said)


# ----------------------------------------------------------------------------- 4. ADA with PacGAN


@pytest.mark.parametrize("pac", [2, 4])
def test_ada_p_moves_by_images_with_pacgan(pac):
    """One D step on 64 real images with ada_kimg=1 moves p by 64 / 1000 whatever model.pac
    (stability.md); it had counted one image per packed score: 32 / 1000 with pac 2."""
    cfg = tiny_config(**{"model.pac": pac, "augment.ada": True, "augment.ada_kimg": 1, "augment.ada_interval": 1,
                         "augment.ada_p": 0.5, "train.batch_size": 64})
    objective = OBJECTIVES.get("unconditional")(cfg, {})
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    objective.loss("D", {"real": torch.rand(64, 1, 16, 16) * 2 - 1})
    assert abs(objective.augment.p - 0.5) == pytest.approx(0.064)


def test_ada_observe_counts_images_and_resumes_old_state():
    ada = ADA(target=0.6, interval=2, kimg=1.0, p=0.5)
    ada.observe(torch.ones(8), images=32)  # r_t 1 > target: p up by 32 images
    assert ada.state_dict()["images"] == 32 and ada.state_dict()["count"] == 8
    ada.observe(-torch.ones(8), images=32)  # r_t = 0 over 16 scores: down by 64 images
    assert ada.p == pytest.approx(0.5 - 0.064) and ada.last_rt == 0.0
    old = ADA(interval=4)
    old.load_state_dict({"p": 0.1, "sign_sum": 3.0, "count": 5, "steps": 1})  # saved before images
    assert old.state_dict()["images"] == 5


def test_a_presets_interval_left_by_turning_r1_off_is_not_warned_about():
    """dcgan-fashion-mnist made WGAN-GP with reg.r1=0 keeps the preset's reg.r_interval=16, which
    then does nothing: the user cannot remove it, and the modes matrix had printed it dozens of times."""
    said = _warnings_of(lambda: load_config("dcgan-fashion-mnist", ["reg.r1=0", "loss.name=wasserstein",
                                                                   "reg.gp=10", "model.d_norm=layer"]))
    assert not [m for m in said if "r_interval" in m], said
