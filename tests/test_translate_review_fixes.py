"""Review fixes of image-to-image translation: translate-eval of cyclegan runs with one held-out
image (or --n 1), KID of fewer than 2 samples, side-by-side AB folders of ordinary photos,
--tile checked before any output is written, the EMA flag of runs without EMA weights, and
the hints of a moved paired folder and of upscale --device."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import api, provenance
from ganforge.config import apply_overrides, from_dict
from ganforge.data import pairs
from ganforge.errors import ConfigError, DataError
from ganforge.metrics import EvalError, Extractor, kid
from ganforge.metrics.paired import format_translation


def save_noise(folder, n, size=(16, 16), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def tiny(objective, data_name, **overrides):
    raw = {"objective": objective, "data": {"name": data_name, "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4},
           "translate": {"d_layers": 1},
           "train": {"steps": 1, "batch_size": 2, "log_every": 1, "sample_every": 1,
                     "checkpoint_every": 1, "n_sample_grid": 2, "device": "cpu", "seed": 0}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


class MeanColour(Extractor):
    """Features a test can afford: each image's per-channel mean and spread; counts its calls."""

    name, calls = "mean-colour", 0

    def _forward(self, images):
        MeanColour.calls += 1
        x = images.float().expand(-1, 3, -1, -1).flatten(2)
        return torch.cat([x.mean(2), x.std(2)], 1), None


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    """A cyclegan run without EMA (as cyclegan-folder trains) on 4 + 4 images and no test
    folders: one image of each domain held out."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cyc")
    for side in "AB":
        save_noise(root / "data" / f"train{side}", 4, seed=ord(side))
    cfg = tiny("cyclegan", f"folder:{root / 'data'}", **{"translate.task": "unpaired", "translate.n_blocks": 1,
                                                         "loss.name": "lsgan", "train.ema_decay": 0.0})
    api.train(cfg, root / "run", progress=False)
    return root / "run"


def cli_main(capsys, *argv) -> tuple[int, str, str]:
    from ganforge import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- 1: one held-out image


def test_translate_eval_of_one_held_out_image_is_refused_before_any_feature(cyclegan_run, capsys):
    MeanColour.calls = 0
    run = api.load(cyclegan_run)
    with pytest.raises(EvalError, match=r"held-out A domain has 1 image \(held out of .*trainA/, with no "
                                        r"images in testA/\); .* add images to .*testA/$"):
        run.translate_eval(extractor=MeanColour())
    assert MeanColour.calls == 0  # refused before the translations and the features
    code, _, err = cli_main(capsys, "translate-eval", cyclegan_run, "--extractor", "fashion-mnist-cnn")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err


def test_translate_eval_n_1_is_refused_and_n_2_works(cyclegan_run):
    data = cyclegan_run.parent / "data"
    try:
        for side in "AB":
            save_noise(data / f"test{side}", 3, seed=ord(side) + 1)
        run = api.load(cyclegan_run)
        MeanColour.calls = 0
        with pytest.raises(EvalError, match=r"--n 1 gives 1; pass --n 2 or more"):
            run.translate_eval(limit=1, extractor=MeanColour())
        assert MeanColour.calls == 0
        result = run.translate_eval(limit=2, extractor=MeanColour())
        assert result["AtoB"]["n"] == [2, 2] and np.isfinite(result["BtoA"]["kid"])
    finally:  # the module's other tests see one held-out image per domain again
        for side in "AB":
            shutil.rmtree(data / f"test{side}", ignore_errors=True)


def test_kid_refuses_fewer_than_two_samples():
    one, many = np.ones((1, 4)), np.random.default_rng(0).normal(size=(5, 4))
    for a, b in ((one, many), (many, one)):
        with pytest.raises(EvalError, match=r"KID needs at least 2 images in each set, got [15] and [15]"):
            kid(a, b)
    assert np.isfinite(kid(many[:2], many[2:4])[0])


# ----------------------------------------------------------------------------- 2: AB layout


def test_square_photos_are_not_split_as_side_by_side_pairs(tmp_path):
    save_noise(tmp_path / "photos", 6, size=(64, 64))
    cfg = tiny("pix2pix", f"folder:{tmp_path / 'photos'}", **{"translate.task": "paired"})
    with pytest.raises(ConfigError, match=r"photos/0.png is 64x64, not a side-by-side AB image \(those are "
                                          r"twice as wide as high.*put pairs in .*photos/A/ and .*photos/B/"):
        pairs.load_pairs(cfg)
    save_noise(tmp_path / "wide", 6, size=(114, 64))  # 16:9, the widest common photo shape
    with pytest.raises(ConfigError, match=r"114x64, not a side-by-side AB image"):
        pairs.load_pairs(tiny("pix2pix", f"folder:{tmp_path / 'wide'}", **{"translate.task": "paired"}))
    save_noise(tmp_path / "ab", 6, size=(33, 16))  # an odd pixel is still an AB image
    assert len(pairs.load_pairs(tiny("pix2pix", f"folder:{tmp_path / 'ab'}", **{"translate.task": "paired"})).a) == 5


# ----------------------------------------------------------------------------- 3 and 4: a pix2pix run


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    """A denoiser without EMA weights (as pix2pix-folder trains)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("p2p")
    cfg = tiny("pix2pix", f"folder:{save_noise(root / 'photos', 8)}",
               **{"translate.task": "denoise", "translate.holdout": 0.25, "train.ema_decay": 0.0})
    api.train(cfg, root / "run", progress=False)
    return root / "run"


def test_a_bad_tile_is_refused_before_any_output_is_written(pix2pix_run, tmp_path, capsys):
    run = api.load(pix2pix_run)
    stride = run.objective.stride
    bad = stride + 1 if stride > 1 else 0
    if not bad:
        pytest.skip("a stride of 1 takes every tile")
    src = tmp_path / "in"
    save_noise(src, 1, size=(8, 8))  # no larger than the tile: translated whole
    Image.fromarray(np.zeros((4 * stride, 4 * stride, 3), np.uint8)).save(src / "z_big.png")
    code, _, err = cli_main(capsys, "translate", pix2pix_run, src, "--out", tmp_path / "out", "--tile", bad)
    assert code == 2 and f"--tile {bad} (tile= in Python) must be a multiple of the network's stride {stride}" \
        in err, err
    assert not (tmp_path / "out").exists()  # the rerun with a good tile needs no --force
    with pytest.raises(ConfigError, match="must be a multiple"):  # one small image too
        run.translate(torch.zeros(1, 3, 8, 8), tile=bad)
    code, _, err = cli_main(capsys, "translate", pix2pix_run, src, "--out", tmp_path / "out", "--tile", stride)
    assert code == 0, err
    # the record says which weights made the image: the run's own, as it keeps no EMA copy
    assert provenance.read(tmp_path / "out" / "z_big.png")["ema"] is False


def test_translate_eval_reports_the_weights_it_used(pix2pix_run, cyclegan_run, tmp_path):
    result = api.load(pix2pix_run).translate_eval()  # ema=True asked, none kept
    assert result["ema"] is False and "raw weights (no EMA)" in format_translation(result)
    data = pairs.load_pairs(api.load(cyclegan_run).config)
    from ganforge.metrics.paired import evaluate_unpaired

    data.test_a, data.test_b = data.a[:2], data.b[:2]  # 2 held-out images per domain
    result = evaluate_unpaired(api.load(cyclegan_run), data, extractor=MeanColour())
    assert result["ema"] is False and "raw weights (no EMA)" in format_translation(result)


# ----------------------------------------------------------------------------- 5: hints


def test_a_moved_paired_folder_says_what_translate_eval_takes(tmp_path):
    cfg = tiny("pix2pix", f"folder:{tmp_path / 'gone'}", **{"translate.task": "paired"})
    with pytest.raises(DataError, match=r"for translate-eval, move the data back to .*gone$"):
        pairs.load_pairs(cfg)


def test_upscale_help_lists_device_auto(capsys):
    from ganforge import cli

    for command in ("upscale", "eval-sr"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "auto (a GPU where there is one)" in " ".join(capsys.readouterr().out.split())
