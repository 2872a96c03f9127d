"""CycleGAN: cycle and identity losses, the history pool, two generators under one optimizer,
translation both ways, exact resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganforge import api
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.models.resnet import ResnetGenerator
from ganforge.objectives import build_objective
from ganforge.objectives.cyclegan import ImagePool
from ganforge.training import checkpoint as ckpt


def unpaired_folder(root, n=12, size=16, seed=0):
    """Domain A: reddish smooth images; domain B: bluish ones."""
    rng = np.random.default_rng(seed)
    for side, channel in (("A", 0), ("B", 2)):
        (root / f"train{side}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.uniform(0, 90, (4, 4, 3))
            img[..., channel] += 150
            Image.fromarray(img.astype(np.uint8)).resize((size, size)).save(
                root / f"train{side}" / f"{i}.png")
    return root


def cg_config(folder, **overrides):
    raw = {"objective": "cyclegan", "loss": {"name": "lsgan"},
           "data": {"name": f"folder:{folder}", "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4},
           "optim": {"lr_decay": "linear"},
           "translate": {"task": "unpaired", "n_blocks": 1, "d_layers": 1, "pool_size": 4,
                         "load_size": 20, "holdout": 0.25},
           "train": {"steps": 4, "batch_size": 2, "log_every": 2, "sample_every": 2,
                     "checkpoint_every": 2, "n_sample_grid": 2, "device": "cpu",
                     "keep_checkpoints": 10, "ema_decay": 0.0}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


def test_resnet_generator_shapes():
    for cin, cout, size in ((3, 3, 16), (1, 3, 24), (3, 1, 32)):
        G = ResnetGenerator(in_channels=cin, out_channels=cout, width=4, n_blocks=2)
        y = G(torch.randn(2, cin, size, size + 4))
        assert y.shape == (2, cout, size, size + 4) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible by 4"):
        G(torch.randn(1, 3, 18, 16))


def test_cycle_and_identity_losses_vanish_for_identity_generators(tmp_path):
    cfg = cg_config(tmp_path)
    obj = build_objective(cfg, {"name": "x"})
    obj.bind(device=torch.device("cpu"), rng=torch.Generator())
    obj.nets["G_AB"], obj.nets["G_BA"] = nn.Identity(), nn.Identity()
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1, torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    out = obj.loss("G", {"a": a, "b": b})
    assert out["cycle"].item() == 0.0 and out["identity"].item() == 0.0
    # What is left is the adversarial term: lsgan 1/2 mean (D(x) - 1)^2 on both Ds.
    want = (0.5 * (obj.nets["D_B"](a) - 1).square().mean()
            + 0.5 * (obj.nets["D_A"](b) - 1).square().mean())
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    # A generator that is off by a constant pays lambda_cycle x the L1 of both cycles.
    obj.nets["G_AB"] = Shift(0.1)
    out = obj.loss("G", {"a": a * 0.5, "b": b * 0.5})  # no clipping at +-1
    assert out["cycle"].item() == pytest.approx(0.2, abs=1e-6)  # 0.1 on each cycle
    assert out["identity"].item() == pytest.approx(0.1, abs=1e-6)  # G_AB(b) - b only


class Shift(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x + self.c


def test_identity_loss_needs_matching_channels(tmp_path):
    with pytest.raises(ConfigError, match="lambda_identity=0"):
        build_objective(cg_config(tmp_path, **{"translate.a_channels": 1}), {"name": "x"})
    obj = build_objective(cg_config(tmp_path, **{"translate.a_channels": 1,
                                                 "translate.lambda_identity": 0}), {"name": "x"})
    assert obj.nets["G_AB"].in_channels == 1 and obj.nets["G_BA"].out_channels == 1
    assert {k: v.nets for k, v in obj.optimizers.items()} == {"G": ["G_AB", "G_BA"], "D": ["D_A", "D_B"]}


def test_history_pool_mixes_current_and_past_images():
    pool, g = ImagePool(50), torch.Generator().manual_seed(0)
    first = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first, g), first)  # filling: returned as is
    current = past = 0
    for start in range(50, 50 + 4000, 40):
        batch = torch.arange(start, start + 40, dtype=torch.float32).view(40, 1, 1, 1)
        out = pool.query(batch, g).flatten().long().tolist()
        for new, got in zip(range(start, start + 40), out):
            if got == new:
                current += 1
            else:
                assert 0 <= got < new  # an image generated earlier (this batch's included)
                past += 1
    assert current + past == 4000
    # Documented probability 1/2: 4000 draws, standard deviation 0.0079.
    assert current / 4000 == pytest.approx(0.5, abs=0.03)
    assert len(pool.images) == 50
    assert torch.equal(ImagePool(0).query(first, g), first)  # size 0: off


def test_training_two_generators_one_optimizer_and_exact_resume(tmp_path):
    torch.set_num_threads(1)
    folder = unpaired_folder(tmp_path / "data")
    cfg = cg_config(folder)
    straight = api.train(cfg, tmp_path / "straight", progress=False)
    assert straight.step == 4
    api.train(cg_config(folder, **{"train.steps": 2}), tmp_path / "resumed", progress=False)
    api.train(cg_config(folder), tmp_path / "resumed", resume=True, progress=False)
    w1, s1 = ckpt.load(ckpt.find(tmp_path / "straight"))
    w2, s2 = ckpt.load(ckpt.find(tmp_path / "resumed"))
    assert w1.keys() == w2.keys()
    assert {k.split(".")[0] for k in w1} == {"G_AB", "G_BA", "D_A", "D_B"}
    for k in w1:
        assert torch.equal(w1[k], w2[k]), k
    assert torch.equal(s1["objective"]["pool_a"]["images"], s2["objective"]["pool_a"]["images"])
    # One Adam for both generators: its state covers the parameters of G_AB and G_BA.
    run = api.load(tmp_path / "straight")
    n_g = sum(1 for n in ("G_AB", "G_BA") for _ in run.objective.nets[n].parameters())
    assert len(s1["optimizers"]["G"]["state"]) == n_g
    # linear decay from half-way: the lr of the last step (3 of 4) is 2e-4 x (1 - (3 - 2) / 2)
    assert s1["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    x = torch.rand(1, 3, 13, 19) * 2 - 1
    assert run.translate(x).shape == (1, 3, 13, 19)
    assert run.translate(x, direction="BtoA").shape == (1, 3, 13, 19)
    assert not torch.equal(run.translate(x), run.translate(x, direction="BtoA"))
    strips = sorted((tmp_path / "straight" / "samples").glob("*.png"))
    # two strips a | G_AB(a) | b | G_BA(b), one per row (nrow = int(sqrt(2)) = 1), 2 px padding
    assert Image.open(strips[-1]).size == (4 * 16 + 2 * 2, 2 * 16 + 3 * 2)
    # Held-out FID/KID of the translations, next to the untranslated images.
    from ganforge.data.pairs import load_pairs
    from ganforge.metrics import fid, get_extractor, to_uint8

    r = run.translate_eval(extractor="fashion-mnist-cnn")
    data = load_pairs(run.config)
    ext = get_extractor("fashion-mnist-cnn")
    fake_b = run.translate(data.test_a.float() / 127.5 - 1)
    want = fid(ext(to_uint8(fake_b)).features, ext(data.test_b).features)
    assert r["AtoB"]["fid"] == pytest.approx(want, rel=1e-6)
    assert r["AtoB"]["n"] == [3, 3] and r["BtoA"]["n"] == [3, 3]
    # untranslated A against B is B against A: FID is symmetric
    assert r["AtoB"]["baseline_fid"] == pytest.approx(r["BtoA"]["baseline_fid"], rel=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 9)])
def test_tiny_images_translate(tmp_path, size):
    """Padded only to the stride (4), a 1x1 or 3x5 image broke the ResNet generator's 7x7
    reflection padding or its bottleneck's instance norm: a traceback, and a 500 from the server."""
    obj = build_objective(cg_config(tmp_path), {"name": "x"})
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    x = torch.rand(2, 3, *size) * 2 - 1
    for direction in ("AtoB", "BtoA"):
        y = obj.translate(x, direction=direction)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_a_bad_direction_from_python_is_said_in_the_apis_terms(tmp_path):
    """translate(direction="ab") had answered with the CLI's flag: '--direction must be ...'."""
    obj = build_objective(cg_config(tmp_path), {"name": "x"})
    obj.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match=r"^translate: direction='ab' is not a direction; pass direction='AtoB'"):
        obj.translate(torch.zeros(1, 3, 8, 8), direction="ab")
