"""Pix2Pix: U-Net and PatchGAN shapes, the loss against hand computation, translate at any size
in eval mode, PSNR/SSIM against independent references, and a short run that learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import run_cli
from ganforge import api
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.metrics import paired
from ganforge.models.patchgan import PatchDiscriminator, receptive_field
from ganforge.models.unet import UNetGenerator, build_unet
from ganforge.objectives import build_objective


def smooth_folder(root, n=40, size=16, seed=0):
    """Smooth random colour images (blurred noise): a task a tiny denoiser can learn."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        low = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC).save(root / f"{i:03d}.png")
    return root


def p2p_config(folder, **overrides):
    raw = {"objective": "pix2pix",
           "data": {"name": f"folder:{folder}", "resolution": 16, "channels": 3},
           "model": {"g_width": 8, "d_width": 8},
           "translate": {"task": "denoise", "noise_level": 0.2, "d_layers": 1, "holdout": 0.25},
           "train": {"steps": 6, "batch_size": 4, "log_every": 2, "sample_every": 3,
                     "checkpoint_every": 3, "n_sample_grid": 4, "device": "cpu",
                     "keep_checkpoints": 10}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("resolution,depth,cin,cout", [(16, 4, 1, 3), (32, 5, 3, 3), (64, 3, 3, 1)])
def test_unet_shapes(resolution, depth, cin, cout):
    G = build_unet(in_channels=cin, out_channels=cout, resolution=resolution, width=4,
                   depth=None if resolution == 32 else depth)
    assert G.depth == depth and G.stride == 2 ** depth
    y = G(torch.randn(2, cin, resolution, resolution))
    assert y.shape == (2, cout, resolution, resolution)
    assert y.abs().max() <= 1  # tanh
    wide = G(torch.randn(1, cin, resolution, 2 * resolution))  # fully convolutional
    assert wide.shape == (1, cout, resolution, 2 * resolution)
    with pytest.raises(ValueError, match="divisible"):
        G(torch.randn(1, cin, resolution + 2, resolution))


def test_unet_config_errors_and_dropout():
    with pytest.raises(ConfigError, match="translate.depth"):
        build_unet(in_channels=1, out_channels=1, resolution=24, width=4, depth=4)
    G = UNetGenerator(in_channels=1, out_channels=1, width=4, depth=5, dropout=0.5)
    assert sum(isinstance(m, torch.nn.Dropout) for m in G.modules()) == 3  # the paper's three
    x = torch.randn(2, 1, 32, 32)
    G.train()
    assert not torch.equal(G(x), G(x))  # dropout is the generator's noise while training
    G.eval()
    assert torch.equal(G(x), G(x))


def test_unet_decoder_sees_the_skip_connections():
    """Decoder level i takes its own upsampled features concatenated with encoder level i's
    (the same number of channels), so its input has twice the channels."""
    G = UNetGenerator(in_channels=1, out_channels=2, width=4, depth=5)
    enc = [next(m for m in layer if isinstance(m, torch.nn.Conv2d)).out_channels for layer in G.down]
    assert enc == [4, 8, 16, 32, 32]  # width x 1, 2, 4, 8, capped at 8
    dec_in = [next(m for m in layer if isinstance(m, torch.nn.ConvTranspose2d)).in_channels
              for layer in G.up]
    assert dec_in == [8, 16, 32, 64, 32]  # 2 x encoder channels; the innermost has no skip

@pytest.mark.parametrize("n_layers,size,expected_rf", [(1, 32, 16), (2, 64, 34), (3, 128, 70)])
def test_patchgan_shape_and_receptive_field(n_layers, size, expected_rf):
    D = PatchDiscriminator(channels=4, width=4, n_layers=n_layers, norm="none")
    assert receptive_field(n_layers) == expected_rf == D.receptive_field
    x = torch.randn(1, 4, size, size, requires_grad=True)
    y = D(x)
    out = size // 2 ** n_layers - 2
    assert y.shape == (1, 1, out, out)
    y[0, 0, out // 2, out // 2].backward()  # an inner patch: its window lies inside the image
    rows = torch.nonzero(x.grad[0].abs().sum((0, 2)))
    cols = torch.nonzero(x.grad[0].abs().sum((0, 1)))
    assert int(rows[-1] - rows[0]) + 1 == expected_rf
    assert int(cols[-1] - cols[0]) + 1 == expected_rf


# ----------------------------------------------------------------------------- objective


def test_pix2pix_losses_by_hand(tmp_path):
    cfg = p2p_config(tmp_path, **{"translate.dropout": 0.0, "translate.lambda_l1": 7.0})
    obj = build_objective(cfg, {"name": "x"})
    obj.bind(device=torch.device("cpu"), rng=torch.Generator())
    assert obj.in_channels == 3 and {k: v.nets for k, v in obj.optimizers.items()} == {"G": ["G"], "D": ["D"]}
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    for net in obj.nets.values():
        net.eval()  # batch norm on running statistics: the hand computation sees the same nets
    out = obj.loss("G", {"a": a, "b": b})
    fake = obj.nets["G"](a)
    d_fake = obj.nets["D"](torch.cat([a, fake], 1))
    want_adv = F.softplus(-d_fake).mean()  # non-saturating: -log sigmoid(D(a, G(a)))
    want_l1 = (fake - b).abs().mean()
    assert out["g_adv"].item() == pytest.approx(want_adv.item(), rel=1e-5)
    assert out["l1"].item() == pytest.approx(want_l1.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((want_adv + 7.0 * want_l1).item(), rel=1e-5)
    out = obj.loss("D", {"a": a, "b": b})  # uses G's output of the G phase
    d_real = obj.nets["D"](torch.cat([a, b], 1))
    want_d = 0.5 * (F.softplus(-d_real).mean() + F.softplus(d_fake).mean())
    assert out["loss"].item() == pytest.approx(want_d.item(), rel=1e-5)


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny denoiser trained for 120 steps, with its step-0 checkpoint kept."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("p2p")
    folder = smooth_folder(root / "images", n=48)
    cfg = p2p_config(folder, **{"train.steps": 120, "train.log_every": 20, "train.sample_every": 60,
                                "train.checkpoint_every": 60, "train.ema_decay": 0.0,
                                "optim.g_lr": 1e-3})
    api.train(cfg, root / "run", progress=False)
    return root / "run"


def heldout_l1(run):
    from ganforge.data.pairs import load_test_pairs

    a, b = load_test_pairs(run.config)
    out = run.translate(a.float() / 127.5 - 1)
    return (out - (b.float() / 127.5 - 1)).abs().mean().item()


def test_short_training_lowers_heldout_l1(trained_run):
    before = heldout_l1(api.load(trained_run, checkpoint="step_0000000"))
    after = heldout_l1(api.load(trained_run))
    assert after < 0.6 * before, (before, after)
    samples = sorted((trained_run / "samples").glob("*.png"))
    assert samples  # strips input | output | target: 4 strips, 2x2, each 3 x 16 px wide
    w, h = Image.open(samples[-1]).size
    assert (w, h) == (2 * 3 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # make_grid's 2 px padding


def test_translate_keeps_odd_sizes_in_eval_mode(trained_run):
    run = api.load(trained_run)
    x = torch.rand(2, 3, 37, 23) * 2 - 1
    y = run.translate(x)
    assert y.shape == (2, 3, 37, 23) and y.abs().max() <= 1
    assert torch.equal(y, run.translate(x))  # no dropout: deterministic
    assert run.translate(x, tile=16).shape == (2, 3, 37, 23)  # in training-size windows
    G = run.ema_nets.get("G", run.objective.nets["G"])
    # The padded prediction equals the network's own output on the top-left crop.
    pad = F.pad(x, (0, 9, 0, 11), mode="reflect")
    assert torch.allclose(y, G.eval()(pad)[..., :37, :23], atol=1e-6)
    with pytest.raises(ConfigError, match="3 channel"):
        run.translate(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ConfigError, match="translates AtoB only"):
        run.translate(x, direction="BtoA")
    with pytest.raises(ConfigError, match="translate"):
        run.sample(4)  # a translation run has no samples from noise


def test_monitor_on_translation_runs(trained_run):
    import json

    records = [json.loads(l) for l in (trained_run / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in records if "event" in r and r["event"] != "end"]  # end: how it ended
    assert events == []  # no detector misfires on a healthy translation run
    logged = [r for r in records if "step" in r and "event" not in r]
    assert all("diversity" not in r for r in logged)  # the z-diversity probe does not apply
    assert {"l1", "g_adv", "d_loss", "d_real", "d_fake", "g_grad_norm"} <= set(logged[-1])


def test_translate_cli_file_and_folder(trained_run, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((21, 35, 3), np.uint8)).save(src / "odd.png")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(src / "gray.jpg")  # converted to RGB
    r = run_cli("translate", trained_run, src, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "odd.png").size == (35, 21)
    assert Image.open(tmp_path / "out" / "gray.png").size == (16, 16)
    r = run_cli("translate", trained_run, src, "--out", tmp_path / "out")
    assert r.returncode == 2 and "--force" in r.stderr
    r = run_cli("translate", trained_run, src / "odd.png", "--out", tmp_path / "one.png")
    assert r.returncode == 0 and Image.open(tmp_path / "one.png").size == (35, 21)
    r = run_cli("translate", trained_run, src, "--out", tmp_path / "o2", "--direction", "BtoA")
    assert r.returncode == 2 and "translates AtoB only" in r.stderr
    # subfolders are translated too, into the same layout; two inputs that would both become
    # x.png are refused before anything is written (the second replaced the first)
    (src / "sub").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "sub" / "deep.png")
    r = run_cli("translate", trained_run, src, "--out", tmp_path / "o3")
    assert r.returncode == 0 and (tmp_path / "o3" / "sub" / "deep.png").is_file() and "3 image(s)" in r.stdout
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "odd.jpg")
    r = run_cli("translate", trained_run, src, "--out", tmp_path / "o4")
    assert r.returncode == 2 and "would both be written to" in r.stderr and "odd.png" in r.stderr
    assert not (tmp_path / "o4").exists()
    (src / "odd.jpg").unlink()
    # an --out inside the input folder: its own earlier outputs are not inputs the next time
    for _ in range(2):
        r = run_cli("translate", trained_run, src, "--out", src / "done", "--force")
        assert r.returncode == 0 and "3 image(s)" in r.stdout, r.stdout + r.stderr
    assert not (src / "done" / "done").exists()
    r = run_cli("translate-eval", trained_run, "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    assert "baseline" in r.stdout and (tmp_path / "e.json").is_file()


def cli_main(capsys, *argv) -> tuple[int, str]:
    """``ganforge ARGV`` in this process (no interpreter start): (exit code, stderr)."""
    from ganforge import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def noise_images(folder, n=2, size=16):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i}.png")
    return folder


def test_translate_refuses_an_out_that_is_or_holds_the_input_folder(trained_run, tmp_path, capsys,
                                                                     monkeypatch):
    # every input lies under such an --out, so all were dropped as earlier outputs and the
    # command reported success having translated nothing
    src = noise_images(tmp_path / "in")
    monkeypatch.chdir(src)
    for inp, out in ((src, src), (".", "."), (src, tmp_path)):
        code, err = cli_main(capsys, "translate", trained_run, inp, "--out", out, "--force")
        assert code == 2 and err.count("\n") == 1, err
        assert "is the input folder" in err and "choose another folder" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["0.png", "1.png", "in"]
    (src / "done").mkdir()  # an --out inside the input folder that holds all of its images
    (src / "0.png").rename(src / "done" / "0.png")
    (src / "1.png").rename(src / "done" / "1.png")
    code, err = cli_main(capsys, "translate", trained_run, src, "--out", src / "done", "--force")
    assert code == 2 and "every input image lies under --out" in err, err


def test_translate_opens_every_input_before_writing_any(trained_run, tmp_path, capsys):
    # the readable files were translated, then the bad one failed; once it was deleted, the rerun
    # was refused because of those partial outputs
    src = noise_images(tmp_path / "in", n=3)
    (src / "9.png").write_bytes(b"not a png")
    code, err = cli_main(capsys, "translate", trained_run, src, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "cannot read image" in err and "9.png" in err, err
    assert not (tmp_path / "out").exists()
    (src / "9.png").unlink()
    code, err = cli_main(capsys, "translate", trained_run, src, "--out", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]


def test_translate_out_folder_may_have_a_dot_in_its_name(trained_run, tmp_path, capsys):
    # as upscale does: --out is a folder unless it is an existing file or has an image suffix
    src = noise_images(tmp_path / "in")
    code, err = cli_main(capsys, "translate", trained_run, src, "--out", tmp_path / "out.v2")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out.v2").iterdir()) == ["0.png", "1.png"]
    for out in (tmp_path / "x.png", src / "0.png"):
        code, err = cli_main(capsys, "translate", trained_run, src, "--out", out)
        assert code == 2 and "--out must be a folder" in err, err
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- metrics


def test_psnr_by_hand():
    x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    y = x.clone()
    y[0] += 0.2  # 0.1 on the [0, 1] scale: MSE 0.01 -> 20 dB
    y[1, :, :4] += 0.4  # 0.2 on half the pixels: MSE 0.02 -> 16.99 dB
    assert paired.psnr(y, x).tolist() == pytest.approx([20.0, 10 * np.log10(50)], abs=1e-9)


def numpy_ssim(x, y):
    """Independent reference: scipy's Gaussian filter, population statistics, valid region."""
    from scipy.ndimage import gaussian_filter

    def f(t):
        return gaussian_filter(t, 1.5, truncate=3.5)

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s[5:-5, 5:-5].mean()


def test_ssim_against_references():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 24, 20, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    ours = paired.ssim(x, y)
    xs, ys = ((x.double() + 1) / 2).numpy(), ((y.double() + 1) / 2).numpy()
    ref = [np.mean([numpy_ssim(xs[i, c], ys[i, c]) for c in range(3)]) for i in range(3)]
    assert ours.tolist() == pytest.approx(ref, abs=1e-10)
    assert paired.ssim(x, x).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    metrics = pytest.importorskip("skimage.metrics")
    for i in range(3):
        sk = metrics.structural_similarity(xs[i].transpose(1, 2, 0), ys[i].transpose(1, 2, 0),
                                           data_range=1.0, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, channel_axis=-1)
        assert ours[i].item() == pytest.approx(sk, abs=1e-10)
        assert paired.psnr(x[i:i + 1], y[i:i + 1]).item() == pytest.approx(
            metrics.peak_signal_noise_ratio(xs[i], ys[i], data_range=1.0), abs=1e-9)


def test_luma_chroma_colorizer_keeps_the_luma():
    from ganforge.objectives.pix2pix import LumaChroma

    class Fixed(torch.nn.Module):  # predicts the chroma of one known colour everywhere
        def __init__(self, cb, cr):
            super().__init__()
            self.c = torch.tensor([cb, cr]).view(1, 2, 1, 1)

        def forward(self, y):
            return self.c.expand(y.shape[0], 2, *y.shape[2:])

    r, g, b = 200.0, 100.0, 50.0
    luma = 0.299 * r + 0.587 * g + 0.114 * b  # 124.2
    cb, cr = (b - luma) / 1.772, (r - luma) / 1.402  # JPEG's YCbCr on the 0-255 scale
    y = torch.full((1, 1, 4, 4), luma / 127.5 - 1)
    out = LumaChroma(Fixed(cb / 127.5, cr / 127.5))(y)
    want = torch.tensor([r, g, b]).view(1, 3, 1, 1) / 127.5 - 1
    assert torch.allclose(out, want.expand_as(out), atol=1e-4)
    gray = LumaChroma(Fixed(0.0, 0.0))(y)  # zero chroma: the trivial baseline
    assert torch.allclose(gray, y.expand(1, 3, 4, 4), atol=1e-7)


def test_colorize_objective_predicts_chroma(tmp_path):
    cfg = p2p_config(tmp_path, **{"translate.task": "colorize"})
    obj = build_objective(cfg, {"name": "x"})
    assert obj.in_channels == 1 and obj.nets["G"].inner.out_channels == 2
    assert obj.nets["G"](torch.zeros(2, 1, 16, 16)).shape == (2, 3, 16, 16)
    plain = build_objective(p2p_config(tmp_path, **{"translate.task": "colorize",
                                                     "translate.chroma": False}), {"name": "x"})
    assert plain.nets["G"].out_channels == 3


def test_translation_presets(tmp_path):
    import ganforge

    for name in ("pix2pix-colorize", "pix2pix-denoise", "pix2pix-sketch", "pix2pix-folder",
                 "cyclegan-folder"):
        _, cfg = ganforge.load_config(name)
        assert cfg.objective in ("pix2pix", "cyclegan")
    _, cfg = ganforge.load_config("cyclegan-folder")
    assert (cfg.loss.name, cfg.optim.lr_decay, cfg.translate.pool_size) == ("lsgan", "linear", 50)
    _, cfg = ganforge.load_config("pix2pix-folder")
    assert (cfg.translate.load_size, cfg.data.resolution, cfg.translate.d_layers) == (286, 256, 3)
    r = run_cli("train", "pix2pix-folder", "--out", tmp_path / "run")
    assert r.returncode == 2 and "data.name=folder:PATH" in r.stderr


def test_tiled_translation_blends_windows_exactly():
    from ganforge.objectives.pix2pix import run_padded, run_tiled

    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(3, 2, 1)  # no spatial context: tiles must reproduce it exactly
    x = torch.randn(2, 3, 45, 37)
    whole = run_padded(pointwise, x, stride=1)
    for tile in (8, 16, 40):
        tiled = run_tiled(pointwise, x, stride=8, tile=tile)
        assert tiled.shape == (2, 2, 45, 37)
        assert torch.allclose(tiled, whole, atol=1e-5), tile
    thin = torch.randn(1, 3, 5, 70)  # thinner than a tile: padded, then tiled along the width
    assert torch.allclose(run_tiled(pointwise, thin, stride=8, tile=16), pointwise(thin), atol=1e-5)
    G = UNetGenerator(in_channels=3, out_channels=3, width=4, depth=3, dropout=0)
    small = torch.randn(1, 3, 16, 16)
    assert torch.equal(run_tiled(G, small, stride=8, tile=16), run_padded(G, small, stride=8))
    with pytest.raises(ConfigError, match="multiple of the network's stride 8"):
        run_tiled(G, x, stride=8, tile=12)


def test_pix2pix_exact_resume(tmp_path):
    from ganforge.training import checkpoint as ckpt

    torch.set_num_threads(1)
    folder = smooth_folder(tmp_path / "images", n=24)
    kw = {"translate.load_size": 20, "train.checkpoint_every": 2}  # random crops and flips too
    api.train(p2p_config(folder, **kw), tmp_path / "straight", progress=False)
    api.train(p2p_config(folder, **{**kw, "train.steps": 3}), tmp_path / "resumed", progress=False)
    api.train(p2p_config(folder, **kw), tmp_path / "resumed", resume=True, progress=False)
    w1, _ = ckpt.load(ckpt.find(tmp_path / "straight"))
    w2, _ = ckpt.load(ckpt.find(tmp_path / "resumed"))
    assert w1.keys() == w2.keys() and any(k.startswith("ema.G.") for k in w1)
    for k in w1:  # weights, EMA weights and batch-norm statistics, bit for bit
        assert torch.equal(w1[k], w2[k]), k
