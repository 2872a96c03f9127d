"""LAPGAN: the pyramid module against scipy and its exact round trip, one optimizer pair per level
(and only that level's weights move), the sampling chain's shapes and arithmetic, sample
--pyramid, and the one-line errors of a level count that does not fit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from ganforge import api, cli
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.latents import normal
from ganforge.models.pyramid import (blur, downsample, gaussian_pyramid, laplacian_pyramid,
                                     reconstruct, upsample)
from ganforge.objectives.lapgan import LAPGAN, ConditionalLAPGAN, level_sizes
from ganforge.training import display
from ganforge.training.trainer import Trainer


def test_blur_matches_scipy_with_mirror_borders():
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    taps = np.array([1, 4, 6, 4, 1]) / 16
    ref = ndimage.correlate1d(ndimage.correlate1d(x.numpy(), taps, axis=2, mode="mirror"),
                              taps, axis=3, mode="mirror")
    np.testing.assert_allclose(blur(x).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(downsample(x).numpy(), ref[..., ::2, ::2], atol=1e-12)


def test_upsample_keeps_constants_and_interpolates_between_pixels():
    assert torch.allclose(upsample(torch.full((1, 1, 4, 4), 0.3)), torch.full((1, 1, 8, 8), 0.3))
    ramp = torch.arange(8.0).repeat(8, 1).reshape(1, 1, 8, 8)  # value = column
    up = upsample(ramp)
    # away from the borders a linear ramp is upsampled to the linear ramp at half steps
    assert torch.allclose(up[0, 0, 6, 4:12], torch.arange(2.0, 6.0, 0.5))


def test_pyramid_round_trip_is_exact():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pyr = laplacian_pyramid(x, 3)
    assert [tuple(p.shape[-2:]) for p in pyr] == [(8, 8), (16, 16), (32, 32)]
    assert (reconstruct(pyr) - x).abs().max().item() < 1e-5
    gauss = gaussian_pyramid(x, 3)
    assert torch.equal(gauss[-1], x) and torch.equal(gauss[0], pyr[0])
    assert torch.allclose(gauss[1], downsample(x))


def test_level_sizes_and_their_errors():
    assert level_sizes(32, 3) == [8, 16, 32]
    assert level_sizes(64, 4) == [8, 16, 32, 64]
    for res, levels in [(32, 5), (32, 1), (28, 3)]:
        with pytest.raises(Exception, match=f"lapgan.levels={levels} does not fit") as info:
            level_sizes(res, levels)
        assert "\n" not in str(info.value)


def _built(tmp_path, cls=LAPGAN, *overrides):
    raw = apply_overrides(cls.example_config(tmp_path / "data"), list(overrides))
    objective, dataset = api.build(from_dict(raw))
    return objective, dataset, raw


def test_one_optimizer_pair_per_level_and_a_phase_moves_only_its_own_level(tmp_path):
    obj, dataset, raw = _built(tmp_path)
    assert set(obj.optimizers) == {"G0", "D0", "G1", "D1", "G2", "D2"}
    assert [p.name for p in obj.phases] == ["D0", "G0", "D1", "G1", "D2", "G2"]
    assert [p.fresh_batch for p in obj.phases] == [True] + [False] * 5  # one batch, its pyramid
    cfg = from_dict(raw)
    cpu = torch.device("cpu")
    trainer = Trainer(cfg, obj, obj.make_batches(dataset, cfg, cpu), run_dir=None, device=cpu,
                      progress=False)
    batch = next(trainer.batches)

    def params():  # parameters only: G's batch-norm statistics also move in D's phases
        return {f"{n}.{k}": p.detach().clone() for n, net in obj.nets.items()
                for k, p in net.named_parameters()}

    for phase in obj.phases:
        before = params()
        trainer._run_phase(phase, [batch])  # one micro-batch (train.accumulate=1)
        after = params()
        changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
        assert changed == {phase.name}, (phase.name, changed)
        assert trainer.optimizers[phase.name].state  # its own optimizer took a step


def test_the_chain_runs_coarse_to_fine_with_each_level_adding_its_residual(tmp_path):
    obj, _, _ = _built(tmp_path)
    obj.bind(device=torch.device("cpu"), rng=torch.Generator())
    for net in obj.nets.values():
        net.eval()
    levels = obj.sample(5, generator=torch.Generator().manual_seed(3), return_levels=True)
    assert [tuple(x.shape) for x in levels] == [(5, 1, 4, 4), (5, 1, 8, 8), (5, 1, 16, 16)]
    # replay the chain by hand from the same generator
    gen = torch.Generator().manual_seed(3)
    x = obj.nets["G0"](normal((5, 4), gen))  # z: drawn as every latent is (ganforge.latents.normal)
    assert torch.equal(levels[0], x.clamp(-1, 1))
    for k, r in ((1, 8), (2, 16)):
        up = upsample(x)
        x = up + obj.nets[f"G{k}"](up, torch.randn(5, 1, r, r, generator=gen))
        assert torch.allclose(levels[k], x.clamp(-1, 1), atol=1e-6)
    assert torch.equal(obj.sample(5, generator=torch.Generator().manual_seed(3)), levels[-1])


def test_sample_pyramid_writes_one_row_of_levels_per_sample(tmp_path, capsys):
    _, _, raw = _built(tmp_path, ConditionalLAPGAN)
    run = tmp_path / "run"
    api.train(from_dict(raw), run, progress=False)
    assert api.load(run).sample(2, labels=["b", "a"]).shape == (2, 1, 16, 16)
    out = tmp_path / "p.png"
    assert cli.main(["sample", str(run), "--pyramid", "--n", "3", "--out", str(out)]) == 0
    assert "3 pyramids of 2 classes (4 -> 8 -> 16 px)" in capsys.readouterr().out
    # one class asked for: the line names it, as the pyramid has no caption (it had said nothing)
    out_b = str(tmp_path / "b.png")
    assert cli.main(["sample", str(run), "--pyramid", "--n", "2", "--class", "b", "--out", out_b]) == 0
    assert "2 pyramids of class b (4 -> 8 -> 16 px)" in capsys.readouterr().out
    width, height = Image.open(out).size  # 3 levels x 3 samples, right of the rows' class names
    assert height == 3 * 16 + 4 * 2 and width > 3 * 16 + 4 * 2
    assert Image.open(out_b).size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)  # one class: no names
    from ganforge import provenance

    assert provenance.read(out)["operation"] == "sample --pyramid"  # it carried no record
    assert cli.main(["sample", str(run), "--pyramid", "--out", str(tmp_path / "p.npz")]) == 2
    assert "--pyramid draws an image" in capsys.readouterr().err


def test_pyramid_on_a_run_without_levels_and_bad_level_counts_exit_2(tmp_path, capsys):
    dcgan = Path(__file__).parent / "fixtures" / "legacy-runs" / "dcgan"
    rc = cli.main(["sample", str(dcgan), "--pyramid", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot show each level" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()

    raw = LAPGAN.example_config(tmp_path / "data")
    (tmp_path / "l.yaml").write_text(json.dumps(raw))
    rc = cli.main(["train", str(tmp_path / "l.yaml"), "lapgan.levels=4", "--out",
                   str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "lapgan.levels=4 does not fit data.resolution=16" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_the_progress_bar_shows_each_levels_losses():
    """LAPGAN logs d_loss_0, g_loss_1, ...: the bar had shown img/s alone."""

    record = {"d_loss_0": 0.5, "d_loss_1": 0.25, "g_loss_0": 1.0, "g_loss_1": 2.0, "d_real_0": 0.5,
              "d_real_1": 0.625, "d_fake_0": 0.125, "d_fake_1": 0.375, "img_per_s": 456.2}
    assert display.postfix(record) == ("D=0.500/0.250 G=1.000/2.000 D(x)=0.500/0.625 D(G(z))=0.125/0.375 "
                                        "img/s=456")
    assert display.postfix({"d_loss": 0.5, "g_loss": 1.0}) == "D=0.500 G=1.000"


def test_the_progress_line_says_lapgans_d_outputs_are_raw_scores(tmp_path, capsys):
    """LAPGAN logs the means of D's raw outputs at any loss; the line had shown D(x)=0.033 as if
    it were a probability (README's run-directory table: probabilities for the logistic losses).
    A DCGAN with the logistic loss logs probabilities, and its line has no such note."""
    raw = apply_overrides(LAPGAN.example_config(tmp_path), ["train.steps=2", "train.log_every=1",
                                                            "loss.name=nonsaturating"])
    api.train(from_dict(raw), tmp_path / "lap", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "D(G(z))=" in line]
    assert lines and all("D(G(z))=" in line and line.split("D(G(z))=")[1].split(" ", 1)[1].startswith(
        "(raw scores)") for line in lines), lines
    assert display.postfix({"d_real": 0.5, "d_fake": -0.25, "img_per_s": 3.0}, raw=True) == \
        "D(x)=0.500 D(G(z))=-0.250 (raw scores) img/s=3"
    from conftest import tiny_config

    api.train(tiny_config(**{"train.steps": 2, "train.log_every": 1}), tmp_path / "dc", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "D(x)=" in line]
    assert lines and not any("raw scores" in line for line in lines), lines


@pytest.mark.parametrize("override", ["model.pac=2", "model.d_spectral_norm=true", "model.mbstd_group=4",
                                      "model.name=mlp"])
def test_model_settings_lapgan_never_reads_are_refused(tmp_path, override):
    """They trained to the same weights as without them (and the monitor advised two of them)."""
    raw = apply_overrides(LAPGAN.example_config(tmp_path), [override])
    with pytest.raises(ConfigError, match=rf"{override.split('=')[0]} is not used by objective=lapgan \(its "
                                          r"networks take model.d_width, model.g_width, model.z_dim only\)"):
        api.train(from_dict(raw), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    api.build(from_dict(raw))  # a run trained with it before the check still loads and resumes


def test_the_monitors_advice_leaves_out_what_the_family_refuses():
    from ganforge.training.monitor import Monitor

    monitor = Monitor()
    advice = "let D see batch statistics: model.mbstd_group=4; add R1: reg.r1=0.02; halve optim.g_lr to 1e-4"
    assert monitor._advice(advice) == advice
    monitor.unsupported = LAPGAN.unsupported_advice
    assert monitor._advice(advice) == "halve optim.g_lr to 1e-4"


def test_the_progress_line_shows_adas_probability():
    """An ADA run's augmentation probability was in metrics.jsonl and the report, not on the bar
    a user watches while it adapts (review of StyleGAN2-ADA on a small folder)."""
    assert display.postfix({"d_loss": 0.5, "ada_p": 0.125, "img_per_s": 40.0}) == "D=0.500 ADA p=0.125 img/s=40"
