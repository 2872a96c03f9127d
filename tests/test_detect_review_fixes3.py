"""Review fixes of detect and bench gan-vs-diffusion (review 5, third round): another copy of a
detector's training .npz/folder (cp -r, augment's .npz of the same draw, and the reverse) has
the images the detector trained on left out, known by provenance, not path; --fake folders are
resized with a note whatever the order of --fake; the stability claim is "not resolved" within
noise; an empty --data folder is refused before anything trains; and the one-line messages
(eval's small-sample fix, an empty --real, a run folder as DETECTOR, the same folder as --real
and --fake, the training counts, the recipe's wrong flag)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from ganforge import api, detect, provenance
from ganforge.cli import main
from ganforge.errors import ConfigError

SMALL = ["--steps", 1, "--width", 2, "--depth", 1, "--batch-size", 4]
CLASSES = ["a", "b", "c", "d"]


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _real_folder(root, n=60, size=16):
    root.mkdir()
    images = torch.randint(0, 256, (n, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    for i, img in enumerate(images):
        Image.fromarray(img.numpy()).save(root / f"{i}.png")
    return root


def _augment_outputs(tmp_path, per_class=10, seed=0):
    """What ganforge augment writes for one draw, as a folder (a PNG per image with its record,
    class and index) and as a .npz (one record): the same pixels, class-sorted."""
    record = provenance.record(operation="augment", config_hash="0123456789abcdef", checkpoint="step_0000030",
                               step=30, seed=seed, objective="conditional", ema=True)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (len(labels), 16, 16, 1), dtype=np.uint8)
    np.savez(tmp_path / "aug.npz", images=images, labels=labels, class_names=np.array(CLASSES),
             provenance=np.array(json.dumps(record, sort_keys=True)))
    folder = tmp_path / "aug"
    for y, name in enumerate(CLASSES):
        (folder / f"{y}_{name}").mkdir(parents=True)
    for i, (img, y) in enumerate(zip(images, labels)):
        provenance.save(img, folder / f"{y}_{CLASSES[y]}" / f"{y}_{i:06d}.png", {**record, "class": CLASSES[y],
                                                                                 "index": int(i)})
    return folder, tmp_path / "aug.npz"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    api.train(tiny_config(), root / "run", progress=False)
    return root / "run"


# 1. a copy of a training source (by provenance, not path) has the same images left out
def test_eval_leaves_out_training_images_of_any_copy_of_a_source(tmp_path, capsys):
    real = _real_folder(tmp_path / "real")
    folder, npz = _augment_outputs(tmp_path)
    copy = tmp_path / "augcopy"
    shutil.copytree(folder, copy)
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", folder, "--out", tmp_path / "det",
                        "--n", 12, *SMALL)
    assert code == 0, err
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake", folder, npz, copy,
                          "--n", 40, "--json", tmp_path / "e.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "e.json").read_text())["detectors"][0]["results"]
    # 40 images each, 12 of them (3 of each class) trained the detector: 28 left in every copy
    assert [rows[str(p)]["n_fake"] for p in (folder, npz, copy)] == [28, 28, 28]
    assert [rows[str(p)]["seen_as"] for p in (folder, npz, copy)] == ["source", "source", "source"]
    assert rows[str(npz)]["copy_of"] == rows[str(copy)]["copy_of"] == str(folder.resolve())
    assert rows[str(npz)]["ap"] == rows[str(folder)]["ap"] == rows[str(copy)]["ap"]  # the very same images
    assert f"{npz} holds the images of {folder.resolve()}, which trained" in out
    # the reverse: trained on the .npz, its folder is left out the same way
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", npz, "--out", tmp_path / "det2",
                        "--n", 12, *SMALL)
    assert code == 0, err
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det2", "--real", real, "--fake", folder,
                          "--n", 40, "--json", tmp_path / "f.json")
    assert code == 0, err
    row = json.loads((tmp_path / "f.json").read_text())["detectors"][0]["results"][str(folder)]
    assert row["n_fake"] == 28 and row["seen_as"] == "source" and row["copy_of"] == str(npz.resolve())
    # a folder holding only some of that draw's images: which to leave out is unknown, refused
    part = tmp_path / "part"
    shutil.copytree(folder / "0_a", part / "0_a")
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det2", "--real", real, "--fake", part, "--n", 40)
    assert code == 2 and err.count("\n") == 1 and "holds images of the draw" in err and "pass" in err
    assert "detector" not in out.lower()  # before any table
    # another draw (another seed) is not a copy: scored whole
    other = tmp_path / "other"
    other.mkdir()
    _, npz_other = _augment_outputs(other, seed=1)
    code, _, err = _cli(capsys, "detect", "eval", tmp_path / "det2", "--real", real, "--fake", npz_other,
                        "--n", 40, "--json", tmp_path / "g.json")
    assert code == 0, err
    row = json.loads((tmp_path / "g.json").read_text())["detectors"][0]["results"][str(npz_other)]
    assert row["n_fake"] == 40 and row["seen_as"] == "same generator" and "copy_of" not in row


# 2. folders are resized to the runs' size whatever the order of --fake, with a note naming each
def test_folder_resizing_does_not_depend_on_the_order_of_fake(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real")
    big = _real_folder(tmp_path / "big", n=20, size=20)
    for i, order in enumerate(([run, big], [big, run])):
        code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", *order, "--out",
                              tmp_path / f"det{i}", "--n", 8, *SMALL)
        assert code == 0, err
        assert f"ganforge: note: resizing --fake {big} from 20x20x1 to 16x16x1" in out
        assert detect.load(tmp_path / f"det{i}").resolution == 16
    # folders only: the largest of theirs, whatever the order; the smaller one is named in a note
    small = _real_folder(tmp_path / "small", n=20, size=12)
    for i, order in enumerate(([small, big], [big, small])):
        code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", *order, "--out",
                              tmp_path / f"f{i}", "--n", 8, *SMALL)
        assert code == 0, err
        assert f"resizing --fake {small} from 12x12x1 to 20x20x1" in out and f"--fake {big} from" not in out
    # eval says so too
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det0", "--real", real, "--fake", small, "--n", 8)
    assert code == 0, err
    assert f"ganforge: note: resizing --fake {small} from 12x12x1 to 16x16x1" in out


# 3. the stability claim: a difference of spreads within their noise is not resolved
def test_stability_is_not_resolved_within_noise():
    from ganforge.bench import gan_vs_diffusion as gvd

    def seed(fid_gan, fid_diff):
        metrics = {k: 0.5 for k in gvd.METRICS}
        return {"gan": {"metrics": {**metrics, "fid": fid_gan}, "images_per_s": 100.0, "train": {"steps": 10}},
                "diffusion": {"metrics": {"ddim50": {**metrics, "fid": fid_diff}},
                              "images_per_s": {"ddim50": 1.0}, "train": {"steps": 10}}}

    s = gvd.Settings(seeds=[0, 1], quality_samplers=["ddim50"], speed_samplers=["ddim50"])
    # std 7.42 (GAN) vs 7.03 (diffusion) over 2 seeds, as the review measured
    out = gvd.summarize([seed(100.0, 90.0), seed(100.0 + 7.42 * 2 ** 0.5, 90.0 + 7.03 * 2 ** 0.5)], s)
    claims = {c["claim"]: c["verdict"] for c in out["claims"]}
    assert claims["diffusion: more stable (spread of FID over seeds)"].startswith("not resolved")
    # far apart: decided either way
    out = gvd.summarize([seed(100.0, 90.0), seed(140.0, 90.5)], s)
    assert {c["claim"]: c["verdict"] for c in out["claims"]}["diffusion: more stable (spread of FID over seeds)"] \
        == "holds"
    out = gvd.summarize([seed(100.0, 90.0), seed(100.5, 130.0)], s)
    assert {c["claim"]: c["verdict"] for c in out["claims"]}["diffusion: more stable (spread of FID over seeds)"] \
        == "does not hold"


# 4. an empty --data folder: refused in one line before anything trains or is written
def test_gan_vs_diffusion_refuses_an_empty_folder_first(tmp_path, capsys, monkeypatch):
    pytest.importorskip("diffusers")
    from ganforge.bench import gan_vs_diffusion as gvd

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")

    def no_training(*args, **kwargs):
        raise AssertionError("trained on an empty folder")

    monkeypatch.setattr(gvd, "run_benchmark", no_training)
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", "--data", f"folder:{tmp_path / 'empty'}", "--steps", 1,
                        "--seeds", 0, "--n", 10, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "holds no images" in err and "folder of images" in err
    assert not (tmp_path / "out").exists()


# 5.-9. one-line messages that name the right problem and fix
def test_eval_small_sample_fix_names_the_short_source(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real", n=80)
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det",
                        "--n", 8, *SMALL)
    assert code == 0, err
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "few.npz", images=rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8))
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake", tmp_path / "few.npz",
                          "--n", 500)
    assert code == 0, err
    note = next(line for line in out.splitlines() if line.startswith("ganforge: note: AP and accuracy"))
    assert "use --n" not in note and f"--fake {tmp_path / 'few.npz'} holds 20" in note
    assert "add images to" in note and "lower --n to 20" in note


def test_empty_real_folder_says_pass_a_folder_to_real(tmp_path, capsys, run):
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(capsys, "detect", "train", "--real", tmp_path / "empty", "--fake", run, "--out",
                        tmp_path / "det", "--n", 8, *SMALL)
    assert code == 2 and err.count("\n") == 1
    assert "pass a folder of images to --real" in err and "data.name" not in err
    assert not (tmp_path / "det").exists()


def test_a_run_folder_as_detector_is_not_told_to_train_into_it(tmp_path, capsys, run):
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(img)
    code, _, err = _cli(capsys, "detect", "score", run, img)
    assert code == 2 and err.count("\n") == 1 and "is not a detector folder" in err
    assert f"--out {run}" not in err and "pass a detector folder" in err and "new folder" in err
    # a folder that does not exist yet: training into it is the advice
    code, _, err = _cli(capsys, "detect", "score", tmp_path / "nodet", img)
    assert code == 2 and f"--out {tmp_path / 'nodet'}" in err


def test_the_same_folder_as_real_and_fake_is_refused(tmp_path, capsys):
    folder = _real_folder(tmp_path / "x")
    for real in (f"folder:{folder}", str(folder)):
        code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", f"{folder}/", "--out",
                              tmp_path / "det", "--n", 8, *SMALL)
        assert code == 2 and err.count("\n") == 1 and "are the same folder" in err
        assert not (tmp_path / "det").exists() and "training" not in out


def test_training_counts_and_recipe_errors_name_what_they_mean(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real", n=80)
    code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det",
                          "--n", 20, *SMALL)
    assert code == 0, err
    assert "training a detector on 18 real" in out and "and 18 generated images (holding out 2 + 2 for " \
                                                       "validation)" in out
    for field, value, flag in (("steps", 0, "--steps"), ("lr", 0.0, "--lr"), ("width", -1, "--width"),
                               ("depth", 0, "--depth"), ("batch_size", 1, "--batch-size")):
        with pytest.raises(ConfigError) as info:
            detect.Recipe(**{field: value}).check()
        message = str(info.value)
        assert message.startswith(f"{flag} must be") and f"got {value}" in message
        assert [f for f in ("--steps", "--lr", "--width", "--depth", "--batch-size") if f in message] == [flag]
