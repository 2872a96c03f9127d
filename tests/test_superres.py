"""Super-resolution (issue 8): networks, degradation vs PIL, Y-PSNR/SSIM vs hand computation,
tiled inference, two-stage initialisation, network interpolation, exact resume, the commands."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli


def sr_config(tmp_path, **overrides):
    from ganforge.config import apply_overrides, from_dict

    folder = tmp_path / "hr"
    if not folder.exists():
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(3):  # smooth-ish images so a few steps of L1 make visible progress
            base = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
            img = Image.fromarray(base).resize((44 + 4 * i, 40), Image.BICUBIC)
            img.save(folder / f"{i}.png")
    raw = {"objective": "superres",
           "data": {"name": f"folder:{folder}", "channels": 3},
           "sr": {"scale": 2, "arch": "srresnet", "width": 8, "blocks": 1, "crop": 16},
           "model": {"d_width": 4},
           "train": {"steps": 4, "batch_size": 4, "log_every": 2, "sample_every": 2,
                     "checkpoint_every": 2, "n_sample_grid": 2, "device": "cpu", "seed": 0}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("arch", ["srresnet", "rrdb"])
@pytest.mark.parametrize("scale", [2, 4])
def test_generator_shapes(arch, scale):
    from ganforge.models.srresnet import build_sr_generator

    G = build_sr_generator(arch, scale=scale, width=8, blocks=1, growth=4)
    out = G(torch.randn(2, 3, 7, 9))
    assert out.shape == (2, 3, 7 * scale, 9 * scale)


def test_bicubic_skip_starts_at_bicubic():
    from ganforge.models.srresnet import bicubic_up, build_sr_generator

    G = build_sr_generator("srresnet", scale=4, width=8, blocks=1, bicubic_skip=True)
    lr = torch.rand(1, 3, 6, 5) * 2 - 1
    assert torch.allclose(G(lr), bicubic_up(lr, 4), atol=1e-6)


@pytest.mark.parametrize("name,shape", [("vgg", (3,)), ("unet", (3, 32 * 48))])
def test_discriminator_shapes(name, shape):
    from ganforge.models.sr_discriminators import build_sr_discriminator

    D = build_sr_discriminator(name, width=4)
    assert D(torch.randn(3, 3, 32, 48)).shape == shape


def test_unet_discriminator_is_spectrally_normalized():
    from ganforge.models.sr_discriminators import build_sr_discriminator

    D = build_sr_discriminator("unet", width=4)
    names = [n for n, _ in D.named_parameters() if "original" in n]
    assert len(names) == 8  # 3 down + 3 up + 2 extra convs (not the first and last)


def test_unknown_scale_is_a_config_error():
    from ganforge.errors import ConfigError
    from ganforge.models.srresnet import build_sr_generator

    with pytest.raises(ConfigError, match="sr.scale"):
        build_sr_generator("srresnet", scale=3, width=8, blocks=1)


# ----------------------------------------------------------------------------- degradation


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_degradation_matches_pil(scale):
    from ganforge.data.superres import degrade, downsample_bicubic

    rng = np.random.default_rng(1)
    # A natural-looking image: smooth colour field plus texture.
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
                      .resize((70, 60), Image.BICUBIC)).astype(np.int16)
    img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
    size = (70 // scale, 60 // scale)
    ref = np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC, reducing_gap=None))
    hr = torch.from_numpy(img).permute(2, 0, 1)[None]
    ours = degrade(hr, scale)[0].permute(1, 2, 0).numpy()
    diff = np.abs(ours.astype(int) - ref.astype(int))
    # PIL's uint8 path rounds in fixed point between its two 1-D passes: at most 1 level off.
    assert diff.max() <= 1 and (diff > 0).mean() < 0.2
    # In float ('F' mode, one channel) PIL does no intermediate rounding: equal to 1e-3.
    ref_f = np.asarray(Image.fromarray(img[..., 0].astype(np.float32), mode="F")
                       .resize(size, Image.BICUBIC, reducing_gap=None))
    ours_f = downsample_bicubic(hr[:, :1].float(), scale)[0, 0].numpy()
    np.testing.assert_allclose(ours_f, ref_f, atol=1e-3)


def test_degradation_options_change_the_lr_image_reproducibly():
    from ganforge.data.superres import degrade

    hr = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    clean = degrade(hr, 4)
    kw = dict(blur=2.0, noise=10.0, jpeg=30)
    a = degrade(hr, 4, generator=torch.Generator().manual_seed(3), **kw)
    b = degrade(hr, 4, generator=torch.Generator().manual_seed(3), **kw)
    assert a.dtype == torch.uint8 and a.shape == (2, 3, 8, 8)
    assert torch.equal(a, b)
    assert (a.float() - clean.float()).abs().mean() > 1.0


# ----------------------------------------------------------------------------- metrics


def test_rgb_to_y_matches_bt601_by_hand():
    from ganforge.metrics.superres import rgb_to_y

    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    expected = [16 + 65.481, 16 + 128.553, 16 + 24.966, 16 + 65.481 + 128.553 + 24.966, 16]
    np.testing.assert_allclose(rgb_to_y(px)[0], expected, atol=1e-9)
    assert abs(expected[3] - 235.0) < 1e-9  # white is Y = 235 in studio range


def test_psnr_y_by_hand():
    from ganforge.metrics.paired import PSNR_MAX
    from ganforge.metrics.superres import psnr_y

    hr = np.full((12, 12, 3), 100, np.uint8)
    sr = hr.copy()
    sr[..., 1] += 10  # Y moves by 10 * 128.553 / 255 everywhere
    dy = 10 * 128.553 / 255
    assert psnr_y(sr, hr) == pytest.approx(10 * math.log10(255 ** 2 / dy ** 2), abs=1e-9)
    # The border crop drops the outer ring: an error only there leaves the images identical,
    # which scores the cap (not inf: one such image would make a mean over images infinite).
    sr2 = hr.copy()
    sr2[:2] = 0
    assert psnr_y(sr2, hr, border=2) == PSNR_MAX == 100.0
    assert psnr_y(sr2, hr, border=1) < 20


def test_ssim_y_against_a_numpy_reference():
    from scipy.ndimage import gaussian_filter

    from ganforge.metrics.superres import rgb_to_y, ssim_y

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-30, 31, hr.shape), 0, 255).astype(np.uint8)
    assert ssim_y(hr, hr, border=4) == pytest.approx(1.0, abs=1e-12)

    # Wang et al. 2004 written out: Gaussian window sigma 1.5 truncated at 11x11, valid region.
    x, y = rgb_to_y(hr)[4:-4, 4:-4], rgb_to_y(sr)[4:-4, 4:-4]
    f = lambda a: gaussian_filter(a, 1.5, truncate=3.5)  # noqa: E731  radius 5: 11 taps
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    expected = smap[5:-5, 5:-5].mean()
    assert ssim_y(sr, hr, border=4) == pytest.approx(expected, abs=1e-6)
    assert 0.3 < expected < 0.99


def test_evaluate_sr_bicubic_row_and_perfect_method():
    from ganforge.metrics.superres import evaluate_sr

    rng = np.random.default_rng(0)
    hr = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
                    .resize((50, 42), Image.BICUBIC))  # not a multiple of 4: mod-cropped
    table = evaluate_sr([hr], 4, {"oracle": lambda lr: hr[:40, :48]})
    assert list(table) == ["bicubic", "oracle"]
    assert table["oracle"]["psnr_y"] == 100.0 and table["oracle"]["ssim_y"] == 1.0
    assert 15 < table["bicubic"]["psnr_y"] < 60 and table["bicubic"]["ssim_y"] < 1


# ----------------------------------------------------------------------------- tiled inference


@pytest.mark.parametrize("arch", ["srresnet", "rrdb"])
def test_tiled_equals_whole_image(arch):
    from ganforge.models.srresnet import build_sr_generator
    from ganforge.objectives.superres import receptive_radius, upscale_tensor

    torch.manual_seed(0)
    G = build_sr_generator(arch, scale=2, width=8, blocks=1, growth=4, bicubic_skip=True).eval()
    with torch.no_grad():  # a non-zero residual branch, so the network part matters
        for p in G.parameters():
            p.add_(0.05 * torch.randn_like(p))
    lr = torch.rand(1, 3, 37, 29) * 2 - 1
    whole = upscale_tensor(G, lr, 2, tile=0)
    r = receptive_radius(G)
    tiled = upscale_tensor(G, lr, 2, tile=10, overlap=r)
    assert tiled.shape == whole.shape == (1, 3, 74, 58)
    assert (tiled - whole).abs().max() < 1e-5
    # Too little context is visibly different: the test can fail.
    assert (upscale_tensor(G, lr, 2, tile=10, overlap=0) - whole).abs().max() > 1e-3


# ----------------------------------------------------------------------------- training


def test_psnr_stage_trains_resumes_exactly_and_samples_strips(tmp_path):
    from ganforge import api

    cfg = sr_config(tmp_path)
    run = tmp_path / "psnr"
    api.train(cfg, run, progress=False)
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["pixel"]) for r in lines if "pixel" in r)
    assert not any(r.get("event") not in (None, "end") for r in lines)  # the monitor runs and stays quiet
    assert not any("diversity" in r for r in lines)  # no probe: no diversity ratio
    strip = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    assert strip.size[0] > strip.size[1]  # bicubic | SR | HR side by side

    # Exact resume: 2 steps + resume for 2 more equals 4 steps in one go.
    short = tmp_path / "short"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), short, progress=False)
    api.train(sr_config(tmp_path), short, resume=True, progress=False)
    a, b = api.load(run), api.load(short)
    for k, v in a.objective.nets["G"].state_dict().items():
        assert torch.equal(v, b.objective.nets["G"].state_dict()[k]), k


def test_gan_stage_initialises_from_the_psnr_run_and_interpolates(tmp_path, monkeypatch):
    from ganforge import api
    from ganforge.objectives import superres

    psnr_run = tmp_path / "psnr"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), psnr_run, progress=False)
    psnr = api.load(psnr_run)
    psnr_g = psnr.ema_nets["G"].state_dict()

    # Random-weight VGG19 (no weights may be downloaded in tests).
    load = superres.load_vgg19_features
    monkeypatch.setattr(superres, "load_vgg19_features",
                        lambda layer, pretrained=True: load(layer, pretrained=False))
    monkeypatch.chdir(psnr_run.parent)  # init_from relative to where training starts
    cfg = sr_config(tmp_path, **{"sr.adv_weight": 0.005, "sr.perceptual_weight": 1.0,
                                 "sr.perceptual_layer": "conv2_2", "sr.init_from": psnr_run.name,
                                 "loss.name": "ragan", "train.steps": 2})
    objective, dataset = api.build(cfg)
    for k, v in objective.nets["G"].state_dict().items():
        assert torch.equal(v, psnr_g[k]), f"{k} not initialised from the PSNR run"
    assert set(objective.nets) == {"G", "D"}

    gan_run = tmp_path / "gan"
    api.train(cfg, gan_run, progress=False)
    lines = [json.loads(s) for s in (gan_run / "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in lines for k in r}
    assert {"d_loss", "g_loss", "adv", "perceptual", "pixel", "d_real", "d_fake"} <= logged

    monkeypatch.chdir(tmp_path / "data" if (tmp_path / "data").is_dir() else "/")  # loaded from elsewhere
    gan = api.load(gan_run)
    assert gan.config.sr.init_from == str(psnr_run.resolve())  # saved absolute: --interp works anywhere
    gan_g = gan.ema_nets["G"].state_dict()
    mixed = superres.interpolated_generator(gan, 0.25).state_dict()
    key = "head.0.weight"
    assert not torch.equal(gan_g[key], psnr_g[key])
    torch.testing.assert_close(mixed[key], 0.75 * psnr_g[key] + 0.25 * gan_g[key])
    torch.testing.assert_close(superres.interpolated_generator(gan, 0.0).state_dict()[key],
                               psnr_g[key])

    image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    out = gan.upscale(image, tile=4)
    assert out.shape == (18, 26, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, gan.upscale(image, tile=0))


def test_perceptual_loss_without_weights_is_a_one_line_error(tmp_path, monkeypatch):
    from ganforge import api
    from ganforge.errors import ConfigError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    cfg = sr_config(tmp_path, **{"sr.perceptual_weight": 1.0})
    with pytest.raises(ConfigError, match=r"VGG19 weights .* sr.perceptual_weight=0") as info:
        api.build(cfg)
    assert "\n" not in str(info.value)
    cfg0 = sr_config(tmp_path, **{"sr.perceptual_weight": 0.0})
    api.build(cfg0)  # weight 0: no VGG needed


def test_init_from_a_mismatched_run_names_the_key(tmp_path):
    from ganforge import api
    from ganforge.errors import ConfigError

    psnr_run = tmp_path / "psnr"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), psnr_run, progress=False)
    cfg = sr_config(tmp_path, **{"sr.width": 4, "sr.init_from": str(psnr_run)})
    with pytest.raises(ConfigError, match="sr.width"):
        api.build(cfg)


def test_init_from_a_translation_run_is_a_one_line_error(tmp_path):
    # a pix2pix run has no sr section to compare, so its generator reached load_state_dict and
    # its 'Missing key(s) in state_dict' traceback
    from ganforge import api
    from ganforge.config import from_dict
    from ganforge.errors import ConfigError
    from ganforge.objectives import OBJECTIVES

    p2p_run = tmp_path / "p2p"
    raw = OBJECTIVES["pix2pix"].example_config(tmp_path / "p2p-data")
    api.train(from_dict({**raw, "train": {**raw["train"], "steps": 1}}), p2p_run, progress=False)
    cfg = sr_config(tmp_path, **{"sr.adv_weight": 0.01, "sr.init_from": str(p2p_run)})
    with pytest.raises(ConfigError, match=r"^sr.init_from=\S+p2p is a pix2pix run, not a super-resolution "
                                          r"PSNR-stage run \(train one with preset srresnet-x4\)$"):
        api.build(cfg)


def test_presets_load():
    from ganforge import load_config  # through api: the families' sections registered (alone, it had failed)

    for name in ("srresnet-x4", "srgan-x4", "esrgan-x4"):
        _, cfg = load_config(name)
        assert cfg.objective == "superres" and cfg.sr.scale == 4
    assert load_config("esrgan-x4")[1].loss.name == "ragan"


# ----------------------------------------------------------------------------- commands


def test_upscale_and_eval_sr_commands(tmp_path):
    from ganforge import api

    run = tmp_path / "psnr"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), run, progress=False)
    src = tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "big.png"
    r = run_cli("upscale", run, src, "--out", out, "--tile", "8")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (60, 42)
    r = run_cli("upscale", run, src, "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr

    report = tmp_path / "sr.json"
    r = run_cli("eval-sr", run, "--data", tmp_path / "hr", "--scale", "2", "--json", report)
    assert r.returncode == 0, r.stderr
    assert "bicubic" in r.stdout and "psnr_y" in r.stdout
    results = json.loads(report.read_text())["results"]
    assert set(results) == {"bicubic", "psnr"} and results["bicubic"]["psnr_y"] > 10
    r = run_cli("eval-sr", run, "--data", tmp_path / "hr", "--scale", "4")
    assert r.returncode == 2 and "sr.scale=2" in r.stderr and r.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def psnr_run(tmp_path_factory):
    """A x2 PSNR-stage run trained for 2 steps."""
    from ganforge import api

    root = tmp_path_factory.mktemp("sr")
    api.train(sr_config(root, **{"train.steps": 2}), root / "run", progress=False)
    return root / "run"


def cli_main(capsys, *argv) -> tuple[int, str]:
    """``ganforge ARGV`` in this process (no interpreter start): (exit code, stderr)."""
    from ganforge import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def noise_images(folder, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        arr = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def test_eval_sr_names_an_image_too_small_to_measure(psnr_run, tmp_path, capsys):
    # SSIM's 11x11 window must fit inside the scale-pixel border: 12x12 at x4 crashed in SSIM,
    # a 1x1 image in the degradation (an LR image of size 0)
    from ganforge.errors import DataError
    from ganforge.metrics import superres

    calls = []
    method = {"m": lambda lr: calls.append(lr) or np.repeat(np.repeat(lr, 4, 0), 4, 1)}
    fine, small = np.zeros((20, 23, 3), np.uint8), np.zeros((12, 40, 3), np.uint8)
    assert superres.evaluate_sr([fine], 4, method)["m"]["ssim_y"] == 1.0
    calls.clear()
    with pytest.raises(DataError, match=r"^image 0 is 40x12 pixels, too small"):
        superres.evaluate_sr([small], 4, method)
    for tiny in (small, np.zeros((1, 1, 3), np.uint8)):
        with pytest.raises(DataError, match=r"^b.png is \d+x\d+ pixels, too small to evaluate at x4 .* at least 20x20"):
            superres.evaluate_sr([fine, tiny], 4, method, names=["a.png", "b.png"])
    assert calls == []  # refused before any image was upscaled
    assert [superres.min_hr_size(s) for s in (2, 3, 4)] == [16, 18, 20]
    folder = noise_images(tmp_path / "hr", [(16, 16), (20, 15)])
    code, err = cli_main(capsys, "eval-sr", psnr_run, "--data", folder)
    assert code == 2 and err.count("\n") == 1 and "1.png is 20x15 pixels" in err, err
    (folder / "1.png").unlink()
    assert cli_main(capsys, "eval-sr", psnr_run, "--data", folder)[0] == 0


def test_upscale_refuses_an_out_that_is_or_holds_the_input_folder(psnr_run, tmp_path, capsys):
    # every input lies under such an --out: all were dropped and upscale reported success
    src = noise_images(tmp_path / "in", [(8, 8)])
    for out in (src, tmp_path):
        code, err = cli_main(capsys, "upscale", psnr_run, src, "--out", out, "--force")
        assert code == 2 and err.count("\n") == 1 and "is the input folder" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["0.png", "in"]
    code, err = cli_main(capsys, "upscale", psnr_run, src, "--out", tmp_path / "up.v2")
    assert code == 0 and (tmp_path / "up.v2" / "0.png").is_file(), err


def test_upscale_opens_every_input_before_writing_any(psnr_run, tmp_path, capsys):
    src = noise_images(tmp_path / "in", [(8, 8), (6, 5)])
    (src / "9.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code, err = cli_main(capsys, "upscale", psnr_run, src, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "cannot read image" in err and "9.jpg" in err, err
    assert not (tmp_path / "out").exists()  # the rerun without 9.jpg is not refused
    (src / "9.jpg").unlink()
    code, err = cli_main(capsys, "upscale", psnr_run, src, "--out", tmp_path / "out")
    assert code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png"], err


def test_upscale_reads_a_pil_image_as_the_command_reads_a_file(psnr_run, tmp_path):
    # a palette image gave a gray image of its indices, and an RGBA one the colours hidden under
    # its transparency, where the command (ganforge.imageio) sees colours on white
    from ganforge import api
    from ganforge.data.superres import read_image

    run = api.load(psnr_run)
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).quantize(8)
    rgba = np.dstack([rgb, np.where(np.arange(7) < 3, 0, 255).astype(np.uint8)[None].repeat(6, 0)])
    for i, img in enumerate((palette, Image.fromarray(rgba, "RGBA"))):
        img.save(tmp_path / f"{i}.png")
        expected = run.upscale(read_image(tmp_path / f"{i}.png"))  # what the upscale command sees
        assert np.array_equal(run.upscale(img), expected)
    assert np.array_equal(run.upscale(rgba), expected)  # an RGBA array, as the docstring offers
    white = rgba.copy()
    white[:, :3, :3] = 255
    assert np.array_equal(expected, run.upscale(white[..., :3]))


def test_esrgan_configuration_trains_rrdb_with_unet_discriminator(tmp_path):
    from ganforge import api

    cfg = sr_config(tmp_path, **{"sr.arch": "rrdb", "sr.blocks": 1, "sr.growth": 4,
                                 "sr.disc": "unet", "sr.adv_weight": 0.005, "loss.name": "ragan",
                                 "train.steps": 2})
    api.train(cfg, tmp_path / "esrgan", progress=False)
    lines = [json.loads(s) for s in (tmp_path / "esrgan" / "metrics.jsonl").read_text().splitlines()]
    record = [r for r in lines if "d_loss" in r][-1]
    # ragan D loss at chance is 2 log 2; a 2-step D stays near it and finite.
    assert math.isfinite(record["d_loss"]) and 0.5 < record["d_loss"] < 3.0
    assert 0 <= record["d_real"] <= 1 and 0 <= record["d_fake"] <= 1


def test_sr_runs_refuse_fid_evaluation_and_random_samples(tmp_path):
    from ganforge import api
    from ganforge.errors import ConfigError, GanforgeError

    with pytest.raises(ConfigError, match="eval-sr"):
        api.build(sr_config(tmp_path, **{"eval.every": 10}))
    run = tmp_path / "psnr"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), run, progress=False)
    with pytest.raises(GanforgeError, match="ganforge upscale"):
        api.load(run).sample(4)


def test_training_folders_skip_unreadable_files_as_image_folders_do(tmp_path):
    """An unreadable file had refused the whole super-resolution run; image folders skip such
    files with one warning (README), and now so do SR folders. eval-sr still refuses it: its mean
    is over the folder the user gave."""
    from ganforge.data.superres import load_images
    from ganforge.errors import DataError

    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_text("junk")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file in .* \(bad.png\); delete or fix them"):
        images, names = load_images(f"folder:{tmp_path}", skip_unreadable=True)
    assert names == ["0.png", "1.png"] and len(images) == 2
    with pytest.raises(DataError, match="bad.png"):
        load_images(f"folder:{tmp_path}")


def test_upscale_and_eval_sr_name_their_own_inputs_when_a_folder_is_wrong(psnr_run, tmp_path, capsys):
    """upscale's empty INPUT folder had been told to hold high-resolution images, and eval-sr's
    --data naming a file had been told of data.name=folder:PATH, a training option."""
    (tmp_path / "empty").mkdir()
    code, err = cli_main(capsys, "upscale", psnr_run, tmp_path / "empty", "--out", tmp_path / "out")
    assert code == 2 and err.rstrip().endswith("point at a folder of images to upscale"), err
    (tmp_path / "a.png").write_bytes(b"not an image")
    code, err = cli_main(capsys, "eval-sr", psnr_run, "--data", tmp_path / "a.png")
    assert code == 2 and err.rstrip().endswith("pass a folder of high-resolution images (--data PATH)"), err
    assert "data.name" not in err


def test_upscale_keeps_a_grayscale_image_grayscale(psnr_run, tmp_path, capsys):
    """A grayscale PNG had come back RGB, its channels up to a level apart."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 10), dtype=np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    for name in ("g", "c"):
        code, err = cli_main(capsys, "upscale", psnr_run, tmp_path / f"{name}.png", "--out", tmp_path / f"{name}2.png")
        assert code == 0, err
    gray, colour = Image.open(tmp_path / "g2.png"), Image.open(tmp_path / "c2.png")
    assert gray.mode == "L" and gray.size == (20, 24) and colour.mode == "RGB" and colour.size == (20, 24)


def test_a_result_larger_than_pillow_opens_is_warned_and_a_large_write_said(psnr_run, tmp_path, capsys, monkeypatch):
    """A 6000x6000 photo at x2 or x4 gives a result of 144-576 megapixels: Pillow refuses to open
    it, and writing its PNG went on for minutes without a line after the last tile."""
    from PIL import Image as PILImage

    from ganforge.commands import upscale

    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "a.png")
    code, err = cli_main(capsys, "upscale", psnr_run, tmp_path / "a.png", "--out", tmp_path / "small.png")
    assert code == 0 and "megapixels" not in err  # 20x24: nothing to say
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 200)  # Pillow refuses past 400 pixels
    monkeypatch.setattr(upscale, "WRITE_NOTE_PIXELS", 400)
    from ganforge import cli

    capsys.readouterr()
    code = cli.main(["upscale", str(psnr_run), str(tmp_path / "a.png"), "--out", str(tmp_path / "big.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ganforge: warning: a.png upscales to 20x24 (" in err and ("Pillow opens: it will be written, but "
            "Pillow-based tools (ganforge's own readers too) will refuse to read big.png") in err, err
    assert "  a.png: 20x24 (" in out and "writing big.png after the tiles takes a while" in out, out
    assert (tmp_path / "big.png").is_file()
