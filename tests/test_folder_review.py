"""A review of training on one's own image folders: translation crops too small for the
networks, very large photos, translation folders' tiny files and subfolders, progress while a
folder is read, and messages that named the wrong dataset or command."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import apply_overrides, from_dict
from ganforge.data import fetch, load_dataset, pairs
from ganforge.data import folder as folder_mod
from ganforge.errors import ConfigError, DataError
from ganforge.objectives import family


def save(path: Path, size=(12, 12), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def translation(objective: str, data_name: str, **overrides):
    raw = {"objective": objective, "data": {"name": data_name, "resolution": 16, "channels": 3},
           "model": {"g_width": 2, "d_width": 2},
           "translate": {"task": "unpaired" if objective == "cyclegan" else "paired", "holdout": 0.5},
           "train": {"steps": 1, "batch_size": 2, "device": "cpu"}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


# ----------------------------------------------------------------------------- 1: crop sizes


@pytest.mark.parametrize("objective", ["cyclegan", "pix2pix"])
def test_a_crop_too_small_for_the_patchgan_is_refused_before_training(objective, tmp_path):
    cfg = translation(objective, f"folder:{tmp_path}", **{"data.resolution": 16, "translate.d_layers": 3})
    with pytest.raises(ConfigError, match=r"^data.resolution=16 is too small for translate.d_layers=3 \(the "
                                          r"PatchGAN needs >= 24\): raise data.resolution to 24 or set "
                                          r"translate.d_layers=2$"):
        family(cfg).check_run(cfg, 1, new=True)
    family(cfg).check_run(translation(objective, f"folder:{tmp_path}", **{"data.resolution": 24,
                                                                         "translate.d_layers": 3}), 1, new=True)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_the_patchgan_minimum_is_exact(n_layers):
    from ganforge.models.patchgan import PatchDiscriminator, min_input

    D = PatchDiscriminator(channels=3, width=2, n_layers=n_layers, norm="instance")
    least = min_input(n_layers)
    assert D(torch.zeros(1, 3, least, least)).shape[-2:] == (1, 1)
    with pytest.raises((ValueError, RuntimeError)):
        D(torch.zeros(1, 3, least - 1, least - 1))


def test_a_crop_the_residual_generator_cannot_take_is_refused(tmp_path):
    cfg = translation("cyclegan", f"folder:{tmp_path}", **{"data.resolution": 10, "translate.d_layers": 1})
    with pytest.raises(ConfigError, match=r"residual generator, which needs a multiple of 4 of at least 8: "
                                          r"use data.resolution=8 or 12$"):
        family(cfg).check_run(cfg, 1, new=True)


# ----------------------------------------------------------------------------- 2: large photos


@pytest.fixture
def small_bomb_limit(monkeypatch):
    """PIL warns past 1,000 pixels and refuses past 2,000: a 40x40 image is a '96 MP photo', a
    50x50 one a '200 MP panorama'."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)


def test_a_folder_reads_a_large_photo_quietly_and_skips_one_over_the_limit(tmp_path, small_bomb_limit):
    for i in range(2):
        save(tmp_path / f"{i}.png", color=(i * 90, 0, 0))
    save(tmp_path / "big.png", size=(40, 40))
    save(tmp_path / "pano.png", size=(50, 50))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        line = fetch(f"folder:{tmp_path}")
        ds = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert line.endswith(": 3 images at " + str(tmp_path.resolve()) + "; skipped 1 unusable image file: pano.png "
                         "(2500 px, over Pillow's safety limit of 2000 px; resize it)")
    assert len(ds) == 3
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert [str(w.message) for w in seen] == [f"skipped 1 unusable image file in {tmp_path}: pano.png (2500 "
                                              f"px, over Pillow's safety limit of 2000 px; resize it)"]


def test_a_translation_folder_skips_an_image_over_the_limit_with_the_fix(tmp_path, small_bomb_limit):
    for side in ("trainA", "trainB"):
        for i in range(3):
            save(tmp_path / side / f"{i}.png")
    save(tmp_path / "trainB" / "pano.png", size=(50, 50))
    with pytest.warns(UserWarning, match=r"trainB/pano.png \(2500 px, over Pillow's safety limit of 2000 "
                                         r"px; resize it\)"):
        data = pairs.load_pairs(translation("cyclegan", f"folder:{tmp_path}", **{"translate.d_layers": 1}))
    assert len(data.b) + len(data.test_b) == 3


# ----------------------------------------------------------------------------- 3: translation folders


def test_an_unpaired_folder_skips_tiny_images_and_names_the_subfolders_it_does_not_read(tmp_path):
    for side in ("trainA", "trainB"):
        for i in range(4):
            save(tmp_path / side / f"{i}.png", color=(i * 50, 0, 0))
    save(tmp_path / "trainB" / "tiny.png", size=(1, 1))
    for i in range(5):
        save(tmp_path / "trainB" / "more" / f"m{i}.png")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        data = pairs.load_pairs(translation("cyclegan", f"folder:{tmp_path}", **{"translate.d_layers": 1}))
    assert len(data.b) + len(data.test_b) == 4  # neither tiny.png nor more/
    assert [str(w.message) for w in seen] == [
        f"{tmp_path}/trainB has 1 subfolder (more/) that is not read: a translation folder's images lie "
        f"directly in it; move them up to use them",
        f"skipped 1 unusable image file in {tmp_path}: trainB/tiny.png (1x1 pixels, under 8x8); delete or fix it"]


def test_a_paired_folder_skips_a_pair_with_a_tiny_file(tmp_path):
    for i in range(4):
        save(tmp_path / "A" / f"{i}.png")
        save(tmp_path / "B" / f"{i}.png")
    save(tmp_path / "A" / "4.png")
    save(tmp_path / "B" / "4.png", size=(4, 4))
    with pytest.warns(UserWarning, match=r"skipped 1 pair with an unusable file in .*: B/4.png \(4x4 pixels, "
                                         r"under 8x8\)"):
        data = pairs.load_pairs(translation("pix2pix", f"folder:{tmp_path}", **{"translate.d_layers": 1}))
    assert len(data.a) + len(data.test_a) == 4


def test_a_side_by_side_image_with_tiny_halves_is_skipped(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.png", size=(24, 12))
    save(tmp_path / "small.png", size=(10, 5))
    with pytest.warns(UserWarning, match=r"skipped 1 unusable AB image in .*: small.png \(5x5 pixels, under 8x8\)"):
        data = pairs.load_pairs(translation("pix2pix", f"folder:{tmp_path}", **{"translate.d_layers": 1}))
    assert len(data.a) + len(data.test_a) == 3


# ----------------------------------------------------------------------------- 4: progress


def test_reading_a_large_folder_says_how_far_it_has_got(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(folder_mod, "PROGRESS_FILES", 5)
    monkeypatch.setattr(folder_mod, "PROGRESS_TENTHS", 5)
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    load_dataset(f"folder:{tmp_path}", resolution=8)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"ganforge: reading 10 images from {tmp_path} ..."
    assert err[1] == "ganforge: read 1 of 10 images (10%)" and err[-1] == "ganforge: read 10 of 10 images (100%)"
    monkeypatch.setattr(folder_mod, "PROGRESS_FILES", 11)  # a small folder reads in silence
    load_dataset(f"folder:{tmp_path}", resolution=8)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- 5: messages


def test_stylegan2_resolution_advice_names_no_other_dataset(tmp_path):
    from ganforge.objectives.stylegan2 import StyleGAN2

    raw = {"objective": "stylegan2", "data": {"name": f"folder:{tmp_path}", "resolution": 20, "channels": 3},
           "model": {"name": "stylegan2"}}
    with pytest.raises(ConfigError) as caught:
        StyleGAN2(from_dict(raw), {})
    assert str(caught.value).endswith("got 20; use 16 or 32")
    raw["data"].update(name="fashion-mnist", resolution=28, channels=1)
    with pytest.raises(ConfigError, match=r"got 28; use 16 or 32 \(Fashion-MNIST's 28x28 images are resized"):
        StyleGAN2(from_dict(raw), {})


def test_a_preset_placeholder_folder_asks_for_data_name_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = translation("cyclegan", "folder:REPLACE_WITH_PATH")
    with pytest.raises(DataError) as caught:
        pairs.load_pairs(cfg)
    assert str(caught.value) == ("no unpaired data folder was given; set data.name=folder:PATH to your unpaired "
                                 "data (e.g. ganforge train cyclegan-folder data.name=folder:/path/to/data)")
    gone = translation("cyclegan", f"folder:{tmp_path / 'gone'}")
    with pytest.raises(DataError, match=r"^folder .*gone, which this run was trained on, does not exist; move "
                                        r"the data back to .*gone to evaluate it$"):
        pairs.load_pairs(gone, evaluating=True)

