"""DiffAugment and ADA: what each op does, that gradients flow, that real and fake get the same
transform family, and that ADA's p follows the overfitting signal and survives resume."""
import pytest
import torch

from ganforge import api
from ganforge import augment
from ganforge.training.batches import InMemoryBatches
from ganforge.errors import ConfigError
from ganforge.training import checkpoint as ckpt

from conftest import random_dataset, tiny_config


def images(n=4, c=3, h=8, w=8, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_translation_is_an_integer_shift_with_zero_fill():
    x = images()
    y = augment.translate(x, torch.Generator().manual_seed(3))
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)
                   if torch.equal(y[i], augment._shift(x[i:i + 1], torch.tensor([[[dy]]]),
                                                       torch.tensor([[[dx]]]))[0])]
        assert matches, f"sample {i} is not a shift of at most 1 pixel (1/8 of 8)"
    shifted = augment._shift(x[:1], torch.tensor([[[1]]]), torch.tensor([[[0]]]))
    assert torch.equal(shifted[0, :, 1:], x[0, :, :-1]) and (shifted[0, :, 0] == 0).all()


def test_cutout_zeroes_one_square_of_half_the_size():
    x = images() + 3  # no zeros in the input
    y = augment.cutout(x, torch.Generator().manual_seed(1))
    for i in range(len(x)):
        hole = (y[i] == 0).all(0)  # [H, W]
        assert torch.equal(y[i][:, ~hole], x[i][:, ~hole])  # the rest is untouched
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4  # a 4x4 square, clipped at the border
        assert hole.sum() == len(rows) * len(cols)  # a rectangle


def test_color_changes_each_image_by_its_own_affine_map():
    x = images()
    y = augment.color(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(y, x)
    # brightness/saturation/contrast are affine per image: flat images stay flat
    flat = torch.full((2, 3, 4, 4), 0.2)
    assert torch.allclose(augment.color(flat).std(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6)


def test_diffaugment_gradients_flow():
    x = images().requires_grad_(True)
    w = torch.randn(3, 8, 8)
    (augment.diff_augment(x, "color,translation,cutout", generator=torch.Generator().manual_seed(0))
     * w).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unknown op 'blur'.*color, translation, cutout"):
        augment.parse_policy("color,blur")


def _objective(**over):
    cfg = tiny_config(**{"train.ema_decay": 0.0, **over})
    objective, dataset = api.build(cfg, random_dataset())
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    real = InMemoryBatches(dataset.images, None, 8, 0, torch.device("cpu")).__next__()["real"]
    return objective, {"real": real, "labels": None}


def test_objective_applies_the_same_policy_to_real_and_fake(monkeypatch):
    objective, batch = _objective(**{"augment.diffaugment": "translation,cutout"})
    seen = []
    original = objective.augment.__call__

    class Spy(augment.DiffAugment):
        def __call__(self, x, generator=None):
            seen.append((tuple(self.policy), "fake" if x.requires_grad or x is not batch["real"] else "real"))
            return original(x, generator)

    objective.augment = Spy("translation,cutout")
    objective.loss("D", batch)
    assert seen == [(("translation", "cutout"), "real"), (("translation", "cutout"), "fake")]
    seen.clear()
    G = objective.nets["G"]
    G.zero_grad()
    objective.loss("G", batch)["loss"].backward()
    assert seen == [(("translation", "cutout"), "fake")]  # G's fakes are augmented too ...
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())  # ... differentiably


def test_augmentation_is_rejected_for_points():
    from ganforge.config import apply_overrides, from_dict
    from ganforge.data import load_dataset

    raw = {"data": {"name": "toy:ring8"}, "model": {"name": "mlp", "z_dim": 2, "g_width": 8,
                                                    "d_width": 8},
           "augment": {"diffaugment": "color"}, "train": {"batch_size": 8, "device": "cpu"}}
    with pytest.raises(ConfigError, match="2-D points"):
        api.build(from_dict(raw), load_dataset("toy:ring8", n_toy=64))
    with pytest.raises(ConfigError, match="alternatives"):
        from_dict(apply_overrides(raw, ["augment.ada=true"]))


# ----------------------------------------------------------------------------- ADA


def test_ada_p_rises_when_d_overfits_and_falls_otherwise():
    ada = augment.ADA(target=0.6, interval=4, kimg=0.1)  # p moves by 1 per 100 images
    overfit = torch.ones(10)  # sign(D(real)) = +1 everywhere: r_t = 1 > 0.6
    for _ in range(3):
        ada.observe(overfit)
    assert ada.p == 0.0  # not yet: p moves every 4 observations
    ada.observe(overfit)
    assert ada.p == pytest.approx(40 / 100) and ada.last_rt == 1.0
    for _ in range(4):
        ada.observe(overfit)
    assert ada.p == pytest.approx(0.8)
    healthy = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])  # r_t = -0.2 < 0.6
    for _ in range(4):
        ada.observe(healthy)
    assert ada.p == pytest.approx(0.8 - 20 / 100) and ada.last_rt == pytest.approx(-0.2)
    for _ in range(40):
        ada.observe(healthy)
    assert ada.p == 0.0  # clamped at 0
    for _ in range(40):
        ada.observe(overfit)
    assert ada.p == 1.0  # and at 1


def test_ada_augment_probability():
    x = images(n=64, c=1, h=4, w=4, seed=1)
    assert torch.equal(augment.ada_augment(x, 0.0), x)
    y = augment.ada_augment(x, 1.0, generator=torch.Generator().manual_seed(0))
    changed = (y != x).flatten(1).any(1).float().mean()
    assert changed == 1.0


@pytest.mark.parametrize("rank", [0, 1])
def test_ada_partial_sums_resume_on_rank_0_only(monkeypatch, rank):
    """Under torchrun only rank 0 writes the checkpoint: its scores since the last update come back
    on rank 0 alone, so the next all-reduce does not count them once per process."""
    saved = augment.ADA(interval=4)
    saved.observe(torch.ones(10))
    state = saved.state_dict()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)
    ada = augment.ADA(interval=4)
    ada.load_state_dict(state)
    assert ada.p == saved.p and ada.state_dict()["steps"] == 1  # every rank updates at the same step
    assert ada.state_dict()["sign_sum"] == (10.0 if rank == 0 else 0.0)
    assert ada.state_dict()["count"] == (10 if rank == 0 else 0)


def test_ada_p_survives_resume(tmp_path):
    """p (and its running sign sum) is checkpointed: N + resume + N steps == 2N steps exactly."""
    over = {"augment.ada": True, "augment.ada_kimg": 0.05, "augment.ada_interval": 2,
            "augment.ada_target": 0.1, "model.name": "mlp", "train.checkpoint_every": 100,
            "train.steps": 6}
    one, two = tmp_path / "one", tmp_path / "two"
    api.train(tiny_config(**over), one, progress=False, dataset=random_dataset())
    api.train(tiny_config(**{**over, "train.steps": 3}), two, progress=False, dataset=random_dataset())
    _, state_mid = ckpt.load(ckpt.find(two))
    p_mid = state_mid["objective"]["ada"]["p"]
    assert p_mid > 0  # D's signs on reals beat the 0.1 target early on: p rose
    api.train(api.resume_config(two, ["train.steps=6"]), two, resume=True, progress=False,
              dataset=random_dataset())
    (w1, s1), (w2, s2) = ckpt.load(ckpt.find(one)), ckpt.load(ckpt.find(two))
    assert s1["objective"]["ada"] == s2["objective"]["ada"]
    assert s2["objective"]["ada"]["p"] != p_mid  # it kept moving after the resume
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
