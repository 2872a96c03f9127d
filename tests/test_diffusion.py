"""The diffusion baseline (diffusers UNet2DModel + DDPM/DDIM schedulers) and ``ganforge bench
gan-vs-diffusion`` on tiny configs: 3 training steps, sampling, the summary's arithmetic and
verdicts, and each bad input's one-line error."""
from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch

from conftest import run_cli

pytest.importorskip("diffusers")

from ganforge.bench import diffusion  # noqa: E402
from ganforge.bench import gan_vs_diffusion as gvd  # noqa: E402

TINY = diffusion.DiffusionConfig(resolution=8, widths=(8, 16), norm_groups=4, batch_size=4)


def test_forward_process_matches_the_ddpm_formula():
    # Ho et al. 2020: betas linear in [1e-4, 0.02] over 1000 steps, abar_t = prod(1 - beta),
    # x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    sched = diffusion.make_scheduler("ddpm")
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    x0, eps = torch.full((3, 1, 2, 2), 0.5), torch.full((3, 1, 2, 2), -1.0)
    t = torch.tensor([0, 499, 999])
    got = sched.add_noise(x0, eps, t)[:, 0, 0, 0].double().numpy()
    want = np.sqrt(abar[[0, 499, 999]]) * 0.5 - np.sqrt(1 - abar[[0, 499, 999]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_baseline_trains_three_steps_and_samples(tmp_path):
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model, stats = diffusion.train(images, TINY, steps=3)
    assert stats["steps"] == 3 and stats["parameters"] == sum(p.numel() for p in model.parameters())
    assert np.isfinite(stats["final_loss"]) and stats["final_loss"] > 0
    for sampler, steps in (("ddpm", 4), ("ddim", 3)):
        x = diffusion.sample(model, 5, sampler=sampler, steps=steps, seed=0, batch_size=2)
        assert x.shape == (5, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    # DDIM with eta = 0 is deterministic given the seed; other seeds give other images
    a = diffusion.sample(model, 2, sampler="ddim", steps=3, seed=1)
    assert torch.equal(a, diffusion.sample(model, 2, sampler="ddim", steps=3, seed=1))
    assert not torch.equal(a, diffusion.sample(model, 2, sampler="ddim", steps=3, seed=2))
    diffusion.save(model, tmp_path / "unet", TINY, stats)
    again = diffusion.load(tmp_path / "unet")
    assert torch.equal(diffusion.sample(again, 2, sampler="ddim", steps=3, seed=1), a)
    assert json.loads((tmp_path / "unet" / "baseline.json").read_text())["stats"]["steps"] == 3
    with pytest.raises(Exception, match="already exists"):
        diffusion.save(model, tmp_path / "unet", TINY, stats)


def _fake_seed(fid, recall, gan_speed, diff_speed):
    metrics = {k: 0.5 for k in gvd.METRICS}
    return {"gan": {"metrics": {**metrics, "fid": fid[0], "recall": recall[0]}, "images_per_s": gan_speed,
                    "train": {"steps": 100}},
            "diffusion": {"metrics": {"ddim50": {**metrics, "fid": fid[1], "recall": recall[1]}},
                          "images_per_s": {"ddim50": diff_speed}, "train": {"steps": 10}}}


def test_summary_means_spreads_and_verdicts():
    s = gvd.Settings(seeds=[0, 1, 2], quality_samplers=["ddim50"], speed_samplers=["ddim50"])
    seeds = [_fake_seed((30, 20), (0.2, 0.6), 1000.0, 2.0), _fake_seed((50, 21), (0.25, 0.62), 900.0, 2.2),
             _fake_seed((40, 22), (0.3, 0.64), 1100.0, 1.8)]
    out = gvd.summarize(seeds, s)
    assert out["rows"]["GAN"]["fid"] == (40.0, statistics.stdev([30, 50, 40]))  # 10.0
    assert out["rows"]["diffusion ddim50"]["fid"] == pytest.approx((21.0, 1.0))
    claims = {c["claim"]: c["verdict"] for c in out["claims"]}
    assert claims["GAN: faster generation (vs diffusion ddim50)"] == "holds"  # 1000 vs 2 images/s
    assert claims["diffusion: better diversity (recall)"] == "holds"  # 0.62 > 0.25 + 0.05 + 0.02
    assert claims["diffusion: better diversity (coverage)"].startswith("not resolved")  # equal
    assert claims["diffusion: more stable (spread of FID over seeds)"] == "holds"  # std 1 < 10
    table = gvd.markdown(out, s)
    assert "| GAN | 100 ± 0 | 40.00 ± 10.00 |" in table and "| diffusion: more stable" in table


def test_bench_gan_vs_diffusion_end_to_end(tmp_path):
    out = tmp_path / "gvd"
    proc = run_cli("bench", "gan-vs-diffusion", "--steps", 3, "--seeds", "0", "--n", 12, "--speed-n", 2,
                   "--speed-batch", 2, "--speed-samplers", "ddpm6,ddim3", "--quality-samplers", "ddim3",
                   "--diffusion-widths", "8,16,16", "--diffusion-batch", 4, "--out", out,
                   "--figure", tmp_path / "fig.png", "train.batch_size=4", "model.g_width=4", "model.d_width=4",
                   "train.sample_every=3", "train.log_every=1", "monitor.enabled=false", "train.device=cpu",
                   timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "gan-vs-diffusion.json").read_text())
    seed = result["per_seed"][0]
    assert seed["gan"]["train"]["steps"] == 3 and seed["diffusion"]["train"]["steps"] == 3
    assert set(gvd.METRICS) <= set(seed["gan"]["metrics"]) & set(seed["diffusion"]["metrics"]["ddim3"])
    assert seed["gan"]["images_per_s"] > 0 and set(seed["diffusion"]["images_per_s"]) == {"ddpm6", "ddim3"}
    # (which sampler is faster is a timing, measured by the benchmark, not asserted here: on a
    # busy machine 2 images per sampler are noise)
    assert all(v > 0 for v in seed["diffusion"]["images_per_s"].values())
    assert (out / "diffusion-seed0" / "config.json").is_file() and (out / "gan-seed0" / "checkpoints").is_dir()
    table = (out / "table.md").read_text()
    assert "| GAN | 3 |" in table and "±" not in table and "nan" not in table  # one seed: no spread, not "± 0"
    assert result["rows"]["GAN"]["fid"][1] is None  # null in JSON
    from ganforge import provenance

    assert provenance.read(tmp_path / "fig.png")["operation"] == "bench gan-vs-diffusion"
    # what follows each training is said as it starts (minutes of silence had read as a hang)
    for line in ("GAN seed 0: drawing and scoring 12 samples, then timing generation",
                 "diffusion seed 0: drawing 12 samples with ddim3 (3 network passes each) and scoring them",
                 "diffusion seed 0: timing ddpm6 on 2 images"):
        assert line in proc.stdout, proc.stdout


def test_the_figure_says_which_seed_and_budget_it_shows(tmp_path):
    import numpy as np
    from PIL import Image

    grids = {"GAN": torch.zeros(4, 1, 8, 8), "diffusion ddim50": torch.zeros(4, 1, 8, 8)}
    gvd.figure(grids, tmp_path / "plain.png", None)
    gvd.figure(grids, tmp_path / "said.png", None, caption="seed 0 (of 0, 1, 2), 10 min of training each")
    plain, said = (np.asarray(Image.open(tmp_path / f"{n}.png").convert("L")) for n in ("plain", "said"))
    assert said.shape[0] == plain.shape[0] + 20 and said.shape[1] > plain.shape[1]  # the line fits
    assert (said[plain.shape[0]:] < 128).any() and np.array_equal(said[:plain.shape[0], :plain.shape[1]], plain)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "must be positive"),
    (["--speed-samplers", "fast"], "write ddpm<steps> or ddim<steps>"),
    (["--preset", "dcgan-cifar10"], "pick a 28x28 grayscale preset"),
    (["--diffusion-widths", "30,60"], "multiples of norm_groups"),
])
def test_bench_bad_inputs(tmp_path, args, message):
    proc = run_cli("bench", "gan-vs-diffusion", "--out", tmp_path / "x", *args)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "x").exists()


def test_bench_refuses_an_out_it_would_write_into(tmp_path):
    """A file as --out gave a traceback; an existing folder is refused (with or without --force),
    and a seed given twice (which retrained into the first one's folder) is refused."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    for args, message in (
            (["--out", tmp_path / "file"], "is a file, not a directory"),
            (["--out", tmp_path / "full", "--force"], "already exists and is not empty; choose another --out"),
            (["--out", tmp_path / "x", "--seeds", "0,0"], "--seeds lists 0 twice")):
        proc = run_cli("bench", "gan-vs-diffusion", "--steps", 1, *args)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"] and not (tmp_path / "x").exists()
