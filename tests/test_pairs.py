"""Translation data: pair makers, paired/unpaired folders, identical crop/flip, exact resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge.objectives  # noqa: F401  (registers the families' config sections: this file runs alone too)
from ganforge.config import apply_overrides, from_dict
from ganforge.data import pairs
from ganforge.errors import ConfigError, DataError


def cfg_for(**overrides):
    raw = {"objective": "pix2pix", "data": {"name": "photos", "resolution": 16, "channels": 3},
           "train": {"batch_size": 4, "device": "cpu"}}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


def images(n=6, c=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


# ----------------------------------------------------------------------------- pair makers


def test_pair_makers_are_deterministic_for_a_seed():
    b = images()
    for task in ("colorize", "sketch", "denoise"):
        assert torch.equal(pairs.make_pairs(b, task, seed=3), pairs.make_pairs(b, task, seed=3))
    assert not torch.equal(pairs.make_pairs(b, "denoise", seed=3), pairs.make_pairs(b, "denoise", seed=4))
    sp = dict(noise="saltpepper", noise_level=0.3)
    assert torch.equal(pairs.make_pairs(b, "denoise", seed=1, **sp), pairs.make_pairs(b, "denoise", seed=1, **sp))


def test_colorize_is_bt601_luma():
    b = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    b[0, :, 0, 0] = torch.tensor([200, 100, 50])  # 0.299*200 + 0.587*100 + 0.114*50 = 124.2
    b[0, :, 1, 1] = torch.tensor([255, 255, 255])
    a = pairs.make_pairs(b, "colorize")
    assert a.shape == (1, 1, 2, 2) and a.dtype == torch.uint8
    assert a[0, 0].tolist() == [[124, 0], [0, 255]]


def test_sketch_draws_dark_lines_on_edges_only():
    flat = torch.full((1, 3, 12, 12), 90, dtype=torch.uint8)
    assert (pairs.make_pairs(flat, "sketch") == 255).all()  # no gradient: white paper
    step = torch.zeros(1, 1, 12, 12, dtype=torch.uint8)
    step[..., 6:] = 255  # a vertical edge between columns 5 and 6
    s = pairs.make_pairs(step, "sketch")[0, 0]
    assert (s[:, 5:7] == 0).all()  # black line on both sides of the edge
    assert (s[:, :4] == 255).all() and (s[:, 8:] == 255).all()


def test_denoise_noise_levels():
    b = torch.full((20, 3, 32, 32), 128, dtype=torch.uint8)
    a = pairs.make_pairs(b, "denoise", noise="gaussian", noise_level=0.1, seed=0)
    std = (a.float() - 128).std().item()
    assert std == pytest.approx(25.5, rel=0.03)  # 0.1 x 255, hardly clipped at 128 +- 5 std
    a = pairs.make_pairs(b, "denoise", noise="saltpepper", noise_level=0.2, seed=0)
    hit = (a != 128).float()
    assert hit.mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(hit[:, 0], hit[:, 1])  # a hit pixel is hit in every channel
    assert set(a.unique().tolist()) == {0, 128, 255}


# ----------------------------------------------------------------------------- folders


def save(path, color, size=(20, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), color, dtype=np.uint8)).save(path)


def test_paired_folder_matches_by_name(tmp_path):
    root = tmp_path / "pairs"
    for i in range(10):
        save(root / "A" / f"{i:02d}.png", (i * 20, 0, 0))
        save(root / "B" / f"{i:02d}.jpg" if i % 2 else root / "B" / f"{i:02d}.png", (0, i * 20, 0))
    save(root / "A" / "lonely.png", (1, 2, 3))  # no partner: ignored, and named
    cfg = cfg_for(**{"data.name": f"folder:{root}", "translate.task": "paired", "translate.holdout": 0.2})
    with pytest.warns(UserWarning, match="1 file in .* has no partner .* is not used .*A/lonely.png"):
        data = pairs.load_pairs(cfg)
    assert data.paired and len(data.a) == 8 and len(data.test_a) == 2  # every 5th held out
    for a, b in ((data.a, data.b), (data.test_a, data.test_b)):
        red, green = a[:, 0].float().mean((1, 2)), b[:, 1].float().mean((1, 2))
        assert torch.allclose(red, green, atol=3)  # a[i] and b[i] have the same index i
    assert data.test_a[:, 0, 0, 0].tolist() == [80, 180]  # files 04 and 09


def test_side_by_side_ab_images_and_direction(tmp_path):
    root = tmp_path / "facades"
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            arr = np.zeros((16, 32, 3), dtype=np.uint8)
            arr[:, :16] = (200, 10, 10)  # A: left half red
            arr[:, 16:] = (10, 10, 200)  # B: right half blue
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / split / f"{i}.png")
    cfg = cfg_for(**{"data.name": f"folder:{root}", "translate.task": "paired"})
    data = pairs.load_pairs(cfg)
    assert data.a.shape == (4, 3, 16, 16) and data.test_a.shape == (2, 3, 16, 16)
    assert data.a[:, 0].float().mean() > 190 and data.b[:, 2].float().mean() > 190
    flipped = pairs.load_pairs(cfg_for(**{"data.name": f"folder:{root}", "translate.task": "paired",
                                          "translate.direction": "BtoA"}))
    assert torch.equal(flipped.a, data.b) and torch.equal(flipped.b, data.a)


def test_unpaired_folders(tmp_path):
    root = tmp_path / "h2z"
    for i in range(5):
        save(root / "trainA" / f"{i}.png", (255, 0, 0))
    for i in range(7):
        save(root / "trainB" / f"{i}.png", (0, 0, 255))
    save(root / "testA" / "x.png", (255, 0, 0))
    cfg = cfg_for(**{"data.name": f"folder:{root}", "translate.task": "unpaired",
                     "translate.holdout": 0.5})
    data = pairs.load_pairs(cfg)
    assert not data.paired
    assert (len(data.a), len(data.test_a)) == (5, 1)  # testA/ exists
    assert (len(data.b), len(data.test_b)) == (4, 3)  # no testB/: every 2nd held out
    with pytest.raises(DataError, match="trainB"):
        (root / "trainB" / "0.png").rename(root / "elsewhere.png")
        for p in (root / "trainB").iterdir():
            p.unlink()
        (root / "trainB").rmdir()
        pairs.load_pairs(cfg)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.channels=3"):
        pairs.check_config(cfg_for(**{"translate.task": "colorize", "data.channels": 1}))
    with pytest.raises(ConfigError, match="folder:PATH"):
        pairs.check_config(cfg_for(**{"translate.task": "paired"}))
    with pytest.raises(ConfigError, match="translate.task"):
        pairs.check_config(cfg_for(**{"translate.task": "recolor"}))
    with pytest.raises(ConfigError, match="translate-eval"):
        pairs.check_config(cfg_for(**{"translate.task": "denoise", "eval.every": 100}))
    with pytest.raises(DataError, match="does not exist"):
        pairs.load_pairs(cfg_for(**{"translate.task": "paired", "data.name": f"folder:{tmp_path}/no"}))
    with pytest.raises(DataError, match="neither"):
        pairs.load_pairs(cfg_for(**{"translate.task": "paired", "data.name": f"folder:{tmp_path}"}))


# ----------------------------------------------------------------------------- batches


def test_same_crop_and_flip_on_both_sides():
    base = images(n=12, size=24, seed=1)
    batches = pairs.PairBatches(base, base.clone(), batch_size=4, seed=0, device=torch.device("cpu"),
                                crop=16, flip=True)
    seen_offsets, flips = set(), 0
    for _ in range(6):
        batch = next(batches)
        assert batch["a"].shape == (4, 3, 16, 16)
        assert torch.equal(batch["a"], batch["b"])  # identical content -> identical crops
        for x in batch["a"]:
            # find the window of the 24x24 source this crop came from (possibly mirrored)
            u8 = ((x + 1) * 127.5).round().to(torch.uint8)
            found = [(i, t, l, f) for i in range(12) for t in range(9) for l in range(9)
                     for f in (False, True)
                     if torch.equal(u8, (base[i, :, t:t + 16, l:l + 16].flip(-1) if f
                                         else base[i, :, t:t + 16, l:l + 16]))]
            assert len(found) == 1
            seen_offsets.add(found[0][1:3])
            flips += found[0][3]
    assert len(seen_offsets) > 5 and 0 < flips < 24  # crops and flips really vary


def test_unpaired_sides_are_augmented_independently():
    base = images(n=8, size=20, seed=2)
    batches = pairs.PairBatches(base, base.clone(), batch_size=8, seed=0, device=torch.device("cpu"),
                                crop=16, flip=True, paired=False)
    batch = next(batches)
    assert not torch.equal(batch["a"], batch["b"])


def test_exact_resume_of_batch_order_and_augmentation():
    a, b = images(n=10, size=20, seed=3), images(n=7, size=20, seed=4)
    kw = dict(batch_size=3, seed=5, device=torch.device("cpu"), crop=16, flip=True, paired=False)
    first = pairs.PairBatches(a, b, **kw)
    for _ in range(5):  # crosses an epoch of B (2 batches) and of A (3 batches)
        next(first)
    state = first.state_dict()
    assert set(state) == {"epoch", "pos", "b_epoch", "b_pos"}
    expected = [next(first) for _ in range(4)]
    second = pairs.PairBatches(a, b, **kw)
    second.load_state_dict(state)
    for want in expected:
        got = next(second)
        assert torch.equal(got["a"], want["a"]) and torch.equal(got["b"], want["b"])
    paired = pairs.PairBatches(a, a, **{**kw, "paired": True})
    assert set(paired.state_dict()) == {"epoch", "pos"}  # InMemoryBatches' contract


def test_holdout_split_every_kth():
    train, test = pairs.holdout_split(10, 0.25)
    assert test == [3, 7] and train == [0, 1, 2, 4, 5, 6, 8, 9]


def test_fewer_images_than_one_holdout_interval_still_hold_one_out(tmp_path):
    # 7 images at the default translate.holdout=0.1 held out none: training crashed at step 0
    # (no preview pairs) and translate-eval had nothing to evaluate. A user with a handful of
    # images expects a run, so the last one is held out, as unpaired folders do; a single image
    # cannot be split and gets the same one-line refusal in all three layouts.
    assert pairs.holdout_split(7, 0.1) == ([0, 1, 2, 3, 4, 5], [6])
    assert pairs.holdout_split(1, 0.1) == ([0], [])
    paired, made, unpaired = tmp_path / "paired", tmp_path / "photos", tmp_path / "unpaired"
    for i in range(7):
        save(paired / "A" / f"{i}.png", (i * 30, 0, 0))
        save(paired / "B" / f"{i}.png", (0, i * 30, 0))
        save(made / f"{i}.png", (0, 0, i * 30))
        for side in "AB":
            save(unpaired / f"train{side}" / f"{i}.png", (i * 30, 0, 0))
    for root, task in ((paired, "paired"), (made, "denoise"), (unpaired, "unpaired")):
        data = pairs.load_pairs(cfg_for(**{"data.name": f"folder:{root}", "translate.task": task}))
        assert (len(data.a), len(data.test_a), len(data.test_b)) == (6, 1, 1), task
        assert data.preview()[0].shape[0] == 1
    assert data.test_a[0, 0, 0, 0] == 180  # the last file, 6.png
    for root in (paired / "A", paired / "B", made, unpaired / "trainA"):
        for f in sorted(root.iterdir())[1:]:
            f.unlink()
    for root, task, what in ((paired, "paired", "pairs"), (made, "denoise", "images"),
                             (unpaired, "unpaired", "images")):
        with pytest.raises(DataError, match=f"has too few {what} to hold some out.*add"):
            pairs.load_pairs(cfg_for(**{"data.name": f"folder:{root}", "translate.task": task}))


def test_paired_files_of_one_name_are_named_and_not_used(tmp_path):
    # A/00.png and A/00.jpg: one of them was dropped silently, maybe the one the user meant
    root = tmp_path / "pairs"
    for i in range(4):
        save(root / "A" / f"{i:02d}.png", (i * 60, 0, 0))
        save(root / "B" / f"{i:02d}.png", (0, i * 60, 0))
    save(root / "A" / "00.jpg", (1, 2, 3))
    cfg = cfg_for(**{"data.name": f"folder:{root}", "translate.task": "paired", "translate.holdout": 0.5})
    with pytest.warns(UserWarning, match=r"2 files in .* share a name .* not used \(A/00.jpg, A/00.png\)") as rec:
        data = pairs.load_pairs(cfg)
    assert len(rec) == 1  # B/00.png is not also reported as having no partner
    assert len(data.a) + len(data.test_a) == 3
    assert 0 not in torch.cat([data.a, data.test_a])[:, 0, 0, 0].tolist()


def test_photo_pairs_hold_out_other_photos():
    pytest.importorskip("skimage")
    cfg = cfg_for(**{"translate.task": "denoise", "data.resolution": 32, "translate.patch_stride": 64})
    data = pairs.load_pairs(cfg)
    assert data.a.shape[1:] == (3, 32, 32) and data.test_a.shape[1:] == (3, 32, 32)
    a, b = pairs.load_test_pairs(cfg)
    assert torch.equal(a, data.test_a) and torch.equal(b, data.test_b)  # same held-out noise
    assert not torch.equal(data.a[: len(a)], a)


def test_a_held_out_domain_of_one_image_is_told_at_training_not_after_it(tmp_path):
    # testA/ with 1 image trained without a word, and translate-eval refused the run only after
    # its training: FID / KID need 2 images per domain. Training says so up front; translate-eval
    # (evaluating=True) raises its own error and gets no warning first.
    from ganforge.errors import GanforgeWarning

    root = tmp_path / "h2z"
    for i in range(6):
        save(root / "trainA" / f"{i}.png", (255, 0, 0))
        save(root / "trainB" / f"{i}.png", (0, 0, 255))
    save(root / "testA" / "x.png", (255, 0, 0))
    for i in range(3):
        save(root / "testB" / f"{i}.png", (0, 0, 255))
    cfg = cfg_for(**{"data.name": f"folder:{root}", "translate.task": "unpaired"})
    with pytest.warns(GanforgeWarning, match=r"held-out A domain has 1 image \(.*testA/\).*translate-eval "
                                             r"needs at least 2.*add images to .*testA/") as seen:
        pairs.load_pairs(cfg)
    assert not any("held-out B" in str(w.message) for w in seen)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", GanforgeWarning)
        pairs.load_pairs(cfg, evaluating=True)
        save(root / "testA" / "y.png", (255, 0, 0))
        pairs.load_pairs(cfg)  # 2 held out: nothing to say
