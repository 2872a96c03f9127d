"""A family written outside ganforge (a plugin Objective) that breaks the contract is one line
naming the family, its module and the broken part, before training where it can be: no loss or
sample, a phase naming an undeclared optimizer, an optimizer naming a missing net, a loss
result that is not {"loss": 0-d tensor, ...}, a sample of the wrong shape. These had been bare
NotImplementedError / KeyError / backward() tracebacks, or (a [n, 64] sample) a run that said
"done" with no sample grid. A correct family trains exactly as it did."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import random_dataset
from torch import nn

from ganforge import api
from ganforge.config import from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.base import Objective, OptimizerSpec, Phase, register_objective
from ganforge.training.trainer import Trainer

RES = 8


class _G(nn.Module):
    def __init__(self, z_dim=4, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, RES * RES))

    def forward(self, z):
        return torch.tanh(self.net(z)).view(-1, 1, RES, RES)


class _D(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(RES * RES, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).view(-1)


class Tiny(Objective):
    """A working MLP GAN family on 1x8x8 images, as a plugin writes one."""

    capabilities = frozenset({"sample"})
    ema = ["G"]

    def __init__(self, cfg, data_info):
        self.nets = {"G": _G(), "D": _D()}
        self.optimizers = {"G": OptimizerSpec(["G"], lr=cfg.optim.g_lr), "D": OptimizerSpec(["D"], lr=cfg.optim.d_lr)}
        self.phases = [Phase("D", optimizer="D"), Phase("G", optimizer="G", fresh_batch=False)]

    def _z(self, n, generator):
        return torch.randn(n, 4, generator=generator, device=generator.device).to(self.device)

    def loss(self, phase, batch):
        real = batch["real"]
        z = self._z(real.shape[0], self.rng)
        if phase == "D":
            with torch.no_grad():
                fake = self.nets["G"](z)
            loss = F.softplus(-self.nets["D"](real)).mean() + F.softplus(self.nets["D"](fake)).mean()
            return {"loss": loss, "d_loss": loss.detach()}
        loss = F.softplus(-self.nets["D"](self.nets["G"](z))).mean()
        return {"loss": loss, "g_loss": loss.detach()}

    @torch.no_grad()
    def sample(self, n, *, generator, nets=None):
        torch.rand(1)  # a draw from torch's global generator, as a careless sample() may make
        g = (nets or {}).get("G", self.nets["G"])
        return g(self._z(n, generator)).clamp(-1, 1)


@pytest.fixture
def family():
    """family(name, **attrs): a subclass of Tiny with ``attrs``, registered as a plugin family is
    (removed again afterwards, so the registry-driven tests never see it)."""
    names = []

    def make(name, **attrs):
        names.append(name)
        return register_objective(name)(type(f"Fam_{name.replace('-', '_')}", (Tiny,), attrs))

    yield make
    for name in names:
        OBJECTIVES.pop(name, None)
        OBJECTIVES.origins.pop(name, None)


def _cfg(name, steps=3):
    return from_dict({"objective": name, "data": {"name": "fashion-mnist", "resolution": RES, "channels": 1},
                      "train": {"steps": steps, "batch_size": 8, "log_every": 1, "sample_every": 2,
                                "checkpoint_every": 2, "n_sample_grid": 4, "device": "cpu", "seed": 0}})


def _head(name):
    return rf"^objective '{name}' \(module {__name__}\): "


def _bad_phase_init(self, cfg, info):
    Tiny.__init__(self, cfg, info)
    self.phases = [Phase("D", optimizer="disc"), Phase("G", optimizer="G")]


def _missing_net_init(self, cfg, info):
    Tiny.__init__(self, cfg, info)
    self.nets = {"G": self.nets["G"]}


def _zero_every_init(self, cfg, info):
    Tiny.__init__(self, cfg, info)
    self.phases = [Phase("D", optimizer="D", every=0), Phase("G", optimizer="G")]


@pytest.mark.parametrize("attrs, said", [
    ({"loss": Objective.loss}, r"it does not define loss\(phase, batch\) \(Objective.loss is abstract\); define it"),
    ({"sample": Objective.sample}, r"it does not define sample\(n, \*, generator, nets=None\), and it declares the "
                                   r"'sample' capability"),
    ({"__init__": _bad_phase_init}, r"phase 'D' steps optimizer 'disc', which self.optimizers does not declare "
                                    r"\(it declares G, D\); name one of those in Phase\(optimizer=...\)"),
    ({"__init__": _missing_net_init}, r"optimizer 'D' names net 'D', which self.nets does not hold \(it holds G\)"),
    ({"__init__": _zero_every_init}, r"phase 'D' has every=0; Phase.every is a whole number >= 1"),
])
def test_a_family_that_declares_a_broken_contract_is_one_line_when_built(family, attrs, said):
    family("gf-contract-bad", **attrs)
    with pytest.raises(ConfigError, match=_head("gf-contract-bad") + said) as info:
        api.build(_cfg("gf-contract-bad"), random_dataset(16, resolution=RES))
    assert "\n" not in str(info.value)


def _loss_without_key(self, phase, batch):
    out = Tiny.loss(self, phase, batch)
    out["total"] = out.pop("loss")
    return out


def _vector_loss(self, phase, batch):
    out = Tiny.loss(self, phase, batch)
    out["loss"] = out["loss"] * torch.ones(4)
    return out


def _float_logged(self, phase, batch):
    out = Tiny.loss(self, phase, batch)
    out["d_loss" if phase == "D" else "g_loss"] = 0.5
    return out


def _detached_loss(self, phase, batch):
    out = Tiny.loss(self, phase, batch)
    out["loss"] = out["loss"].detach()
    return out


def _flat_sample(self, n, *, generator, nets=None):
    return Tiny.sample(self, n, generator=generator, nets=nets).flatten(1)  # [n, 64], not [n, 1, 8, 8]


@pytest.mark.parametrize("attrs, said", [
    ({"loss": _loss_without_key}, r"loss\('D', batch\) returns a dict without 'loss' \(keys: d_loss, total\); "
                                  r"loss\(phase, batch\) returns a dict: \{'loss': a 0-d tensor"),
    ({"loss": _vector_loss}, r"loss\('D', batch\) returns a tensor of shape \[4\] under 'loss'"),
    ({"loss": _float_logged}, r"loss\('D', batch\) returns float under 'd_loss'"),
    ({"loss": _detached_loss}, r"loss\('D', batch\) returns a 'loss' without a gradient"),
    ({"sample": _flat_sample}, r"its sample\(2, generator=...\) returns a float32 tensor of shape \[2, 64\]; this "
                               r"config needs \[2, 1, 8, 8\]: images \[n, data.channels, data.resolution"),
])
def test_a_family_whose_loss_or_sample_breaks_the_contract_is_one_line_and_leaves_no_run(family, tmp_path,
                                                                                         attrs, said):
    family("gf-contract-run", **attrs)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=_head("gf-contract-run") + said) as info:
        api.train(_cfg("gf-contract-run"), run, progress=False, dataset=random_dataset(16, resolution=RES))
    assert "\n" not in str(info.value)
    assert not run.exists()  # nothing of the failed start is left


def test_an_optimizer_spec_naming_a_missing_net_is_one_line():
    with pytest.raises(ConfigError, match=r"OptimizerSpec\(nets=\['G', 'D'\]\) names net 'D', which the family's "
                                          r"nets do not hold \(they are G\)"):
        OptimizerSpec(["G", "D"], lr=1e-3).param_groups({"G": _G()})


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.weights().items()}


def test_a_correct_family_passes_and_trains_exactly_as_without_the_checks(family, monkeypatch):
    family("gf-contract-ok")
    cfg = _cfg("gf-contract-ok", steps=4)
    objective, dataset = api.build(cfg, random_dataset(16, resolution=RES))
    objective.check_contract(training=True)
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(3))

    # check_sample draws from its own generator and puts back every state sample() touches
    objective.nets["G"].train()
    states = torch.get_rng_state(), objective.rng.get_state(), np.random.get_state()[1].copy(), random.getstate()
    objective.check_sample(cfg)
    assert torch.equal(torch.get_rng_state(), states[0]) and torch.equal(objective.rng.get_state(), states[1])
    assert np.array_equal(np.random.get_state()[1], states[2]) and random.getstate() == states[3]
    assert all(m.training for m in objective.nets["G"].modules())

    def train(checks: bool):
        if not checks:
            monkeypatch.setattr(Objective, "check_sample", lambda self, cfg: None)
        obj, data = api.build(cfg, random_dataset(16, resolution=RES))
        trainer = Trainer(cfg, obj, obj.make_batches(data, cfg, torch.device("cpu")), run_dir=None,
                          device=torch.device("cpu"), progress=False)
        for _ in range(4):
            trainer.train_step()
        monkeypatch.undo()
        return _weights(trainer), torch.rand(3)

    checked, unchecked = train(True), train(False)
    assert checked[0].keys() == unchecked[0].keys()
    assert all(torch.equal(checked[0][k], unchecked[0][k]) for k in checked[0])
    assert torch.equal(checked[1], unchecked[1])  # the global stream is where it would be


def test_ganforges_own_families_are_not_checked():
    """Built-in families are tested; their objects skip the plugin checks (no extra forward)."""
    calls = []
    cfg = from_dict({"objective": "unconditional", "data": {"name": "fashion-mnist", "resolution": 16, "channels": 1},
                     "model": {"name": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8}})
    objective, _ = api.build(cfg, random_dataset(16))
    objective.sample = lambda *a, **k: calls.append(1)
    assert objective.check_sample(cfg) is None and objective.check_loss_result("D", {}) is None
    assert calls == []
