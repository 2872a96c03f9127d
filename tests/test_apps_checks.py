"""Checks of the application commands found in review: per-class folders scored by classes in
turn (eval, detect, bench augment --test-n), outputs checked before any work (detect train --out,
bench truncation --json), bench gan-vs-diffusion on folder data and with the evaluation's
warnings, and messages that name the option or the run at fault. Tiny data built here."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import cli

HAS_PROC = Path("/proc/self").is_dir()


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of the command line run in this process."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(code, err, *needles):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _class_folder(root: Path, classes: int = 4, per_class: int = 6, size: int = 16) -> Path:
    """One subfolder per class (as ganforge augment writes them); image j of class k is filled
    with the value 10 * k + j, so that a test can tell which images were taken."""
    for k in range(classes):
        (root / f"{k}_c{k}").mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(np.full((size, size), 10 * k + j, np.uint8)).save(root / f"{k}_c{k}" / f"{j}.png")
    return root


def _class_npz(path: Path, classes: int = 4, per_class: int = 6, size: int = 16) -> Path:
    """A class-sorted labelled .npz (as ganforge augment --format npz writes it), image i filled with i."""
    n = classes * per_class
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 1)).copy()
    np.savez(path, images=images, labels=np.repeat(np.arange(classes), per_class).astype(np.int64))
    return path


def _blobs(root: Path, n: int = 24, size: int = 16) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx, r = rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(2, 6)
        img = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        Image.fromarray(img.astype(np.uint8)).save(root / f"{i}.png")
    return root


# ----------------------------------------------------------------------------- 1. classes in turn


def test_eval_n_of_a_per_class_folder_takes_every_class_as_the_npz_does(tmp_path):
    """eval FOLDER --n took the first n images of a per-class folder: labels [6 2 0 0] (classes
    0-1 only) where the same data as an .npz gave 2 per class."""
    from ganforge.metrics.targets import load_target

    folder = _class_folder(tmp_path / "synth")
    images, labels, desc = load_target(folder, n=8)
    assert np.bincount(labels, minlength=4).tolist() == [2, 2, 2, 2]
    # each class's first two images (in file order), as the .npz branch selects them
    assert sorted(images[:, 0, 0, 0].tolist()) == [0, 1, 10, 11, 20, 21, 30, 31]
    assert [int(v) // 10 for v in images[:, 0, 0, 0]] == labels.tolist()
    npz_images, npz_labels, _ = load_target(_class_npz(tmp_path / "s.npz"), n=8)
    assert npz_labels.tolist() == labels.tolist() and len(npz_images) == 8
    images, labels, _ = load_target(folder, n=None)  # all of them: unchanged, in file order
    assert len(images) == 24 and labels.tolist() == np.repeat(np.arange(4), 6).tolist()


def test_detect_draws_classes_in_turn_and_eval_leaves_out_exactly_those(tmp_path, capsys):
    from ganforge.detect import sources as src

    npz = _class_npz(tmp_path / "synth.npz")
    first, _ = src.fake_images(str(npz), n=8, seed=0)
    assert first[:, 0, 0, 0].tolist() == [0, 1, 6, 7, 12, 13, 18, 19]  # 2 of each of the 4 classes
    rest, _ = src.fake_images(str(npz), n=100, seed=1, skip=8)
    assert sorted(rest[:, 0, 0, 0].tolist()) == sorted(set(range(24)) - {0, 1, 6, 7, 12, 13, 18, 19})
    # a detector of before (no "selection" recorded) trained on the first 8: those are left out
    old, _ = src.fake_images(str(npz), n=100, seed=1, skip=8, skip_interleaved=False)
    assert sorted(old[:, 0, 0, 0].tolist()) == list(range(8, 24))
    folder_images, _ = src.fake_images(str(_class_folder(tmp_path / "synth")), n=8, seed=0)
    assert sorted(folder_images[:, 0, 0, 0].tolist()) == [0, 1, 10, 11, 20, 21, 30, 31]

    # the CLI records the selection, and eval scores only what training did not draw
    real = _blobs(tmp_path / "real", n=32)
    code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", npz, "--out", tmp_path / "det",
                          "--n", 8, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4)
    assert code == 0, err
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["sources"]["fake_draw"]["selection"] == "class_interleaved"
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake", npz,
                          "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "leaving out the 8 images the detector trained on (the first of each class in turn)" in out
    row = json.loads((tmp_path / "e.json").read_text())["detectors"][0]["results"][str(npz)]
    assert row["n_fake"] == 16 and row["seen_in_training"] is True


def test_bench_augment_test_n_takes_every_class(tmp_path, monkeypatch):
    """--test-n N tested on x_test[:N]: of a class-sorted held-out set (a folder's), only its
    first classes. Now the first of each class in turn; --test-n 0 (the default) is all of them,
    in the same order as before."""
    from ganforge import api
    from ganforge.bench import augment as bench
    from ganforge.data import ImageDataset
    from ganforge.metrics import classifier

    seen = []
    monkeypatch.setattr(bench, "train_seed", lambda *a, **k: None)
    monkeypatch.setattr(bench, "train_classifier", lambda *a, **k: None)
    monkeypatch.setattr(classifier, "accuracy", lambda model, x, y: seen.append((x, y)) or 0.5)
    fake_run = SimpleNamespace(sample=lambda n, seed, labels: torch.zeros(n, 1, 28, 28))
    monkeypatch.setattr(api, "load", lambda run_dir: fake_run)

    g = torch.Generator().manual_seed(0)
    train = ImageDataset(images=torch.randint(0, 256, (40, 1, 28, 28), generator=g, dtype=torch.uint8),
                         labels=torch.arange(4).repeat(10), class_names=list("abcd"), source="t", name="t")
    test_labels = torch.arange(4).repeat_interleave(10)  # class-sorted, as a folder's held-out images
    test = ImageDataset(images=torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 28, 28).clone(),
                        labels=test_labels, class_names=list("abcd"), source="t", name="t")
    s = bench.Settings(sizes=[2], seeds=[0], synthetic=1, clf_steps=1, test_n=8)
    bench.run_one(2, 0, s, tmp_path / "out", train, test, log=lambda m: None)
    x, y = seen[-1]
    assert torch.bincount(y, minlength=4).tolist() == [2, 2, 2, 2]
    assert x[:, 0, 0, 0].tolist() == [0, 1, 10, 11, 20, 21, 30, 31]  # each class's first, file order
    for test_n in (0, 40, 100):  # all of them: the very test set, unchanged
        s.test_n = test_n
        bench.run_one(2, 0, s, tmp_path / f"out{test_n}", train, test, log=lambda m: None)
        assert torch.equal(seen[-1][0], test.images) and torch.equal(seen[-1][1], test.labels)
    assert bench.pick_test_images(test_labels, 0) is None and bench.pick_test_images(test_labels, 40) is None


# ----------------------------------------------------------------------------- 2. detect train --out


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_detect_train_refuses_an_unwritable_out_before_training(tmp_path, capsys, where):
    if where == "proc" and not HAS_PROC:
        pytest.skip("needs Linux's /proc")
    (tmp_path / "grid.png").write_bytes(b"png")
    out = tmp_path / "grid.png" / "det" if where == "under_a_file" else Path("/proc/det")
    real = _blobs(tmp_path / "real", n=8)
    npz = _class_npz(tmp_path / "synth.npz")
    code, stdout, err = _cli(capsys, "detect", "train", "--real", real, "--fake", npz, "--out", out,
                             "--n", 4, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4)
    _one_line(code, err, f"cannot write {out}", "choose another --out")
    assert "training a detector" not in stdout  # refused before any work
    assert (tmp_path / "grid.png").read_bytes() == b"png"


# ----------------------------------------------------------------------------- 3, 4. gan-vs-diffusion


def test_gan_vs_diffusion_scores_folder_data_against_the_folder(tmp_path, monkeypatch):
    """--data folder:PATH trained the GAN, then failed: "unknown reference dataset 'folder'"."""
    gvd = pytest.importorskip("ganforge.bench.gan_vs_diffusion")
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    folder = _blobs(tmp_path / "real", n=16, size=28)
    s = gvd.Settings(data=f"folder:{folder}", extractor="fashion-mnist-cnn")
    images = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    values, protocol = gvd._score(images, s)
    assert set(values) - {"kid_std"} == set(gvd.METRICS) - {"classes_covered"}  # a folder: no classifier
    assert protocol["extractor"] == "fashion-mnist-cnn"
    assert any("precision and recall from 12 samples" in w for w in protocol["warnings"])


def test_gan_vs_diffusion_refuses_data_it_cannot_score_before_any_work(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "gvd"
    code, stdout, err = _cli(capsys, "bench", "gan-vs-diffusion", "--data", f"folder:{tmp_path / 'nope'}",
                             "--steps", 1, "--seeds", 0, "--n", 10, "--out", out)
    _one_line(code, err, "nope is not a folder")
    assert not out.exists() and "GAN" not in stdout
    with pytest.raises(SystemExit):
        cli.main(["bench", "gan-vs-diffusion", "--help"])
    stdout = " ".join(capsys.readouterr().out.split())
    assert "or folder:PATH, scored against the folder itself" in stdout and "--extractor" in stdout


def test_gan_vs_diffusion_keeps_the_evaluation_warnings_and_extractor(tmp_path, capsys, monkeypatch):
    """precision 1.000 coverage 1.000 at n=20 came with no caveat: the warnings are printed once,
    kept in the JSON and noted under the table, with the extractor."""
    gvd = pytest.importorskip("ganforge.bench.gan_vs_diffusion")
    from ganforge.commands import bench as cmd

    warning = "precision and recall from 20 samples with k=3: coarse"

    def fake_seed(s, seed, out, log):
        metrics = {k: 0.5 for k in gvd.METRICS}
        return {"seed": seed, "gan": {"train": {"steps": 3}, "metrics": dict(metrics), "images_per_s": 100.0},
                "diffusion": {"train": {"steps": 3}, "metrics": {"ddim3": dict(metrics)},
                              "images_per_s": {"ddim3": 1.0}},
                "grids": {"GAN": torch.zeros(4, 1, 8, 8)},
                "protocol": {"extractor": "fashion-mnist-cnn", "warnings": [warning]}}

    monkeypatch.setattr(gvd, "run_seed", fake_seed)
    monkeypatch.setattr(cmd, "_check_scoring", lambda s: None, raising=False)
    out = tmp_path / "gvd"
    code, stdout, err = _cli(capsys, "bench", "gan-vs-diffusion", "--steps", 1, "--seeds", "0,1", "--n", 20,
                             "--quality-samplers", "ddim3", "--speed-samplers", "ddim3", "--out", out)
    assert code == 0, err
    assert stdout.count(warning) == 1
    result = json.loads((out / "gan-vs-diffusion.json").read_text())
    assert result["warnings"] == [warning] and result["extractor"] == "fashion-mnist-cnn"
    table = (out / "table.md").read_text()
    assert f"- {warning}" in table and "with fashion-mnist-cnn features" in table


# ----------------------------------------------------------------------------- 6. bench truncation --json


def test_bench_truncation_checks_its_outputs_before_scoring(tmp_path, capsys):
    run = tmp_path / "no-run"  # the outputs are checked before the run is even loaded
    (tmp_path / "grid.png").write_bytes(b"png")
    cases = [(["--json", tmp_path / "x.txt"], "--json", "use a .json file name"),
             (["--json", tmp_path / "grid.png" / "t.json"], "cannot write", "choose another --json"),
             (["--json", tmp_path / "t.json", "--plot", tmp_path / "grid.png" / "t.png"], "choose another --plot")]
    if HAS_PROC:
        cases.append((["--json", "/proc/t2.json", "--plot", tmp_path / "t.png"], "cannot write /proc/t2.json"))
    for args, *needles in cases:
        code, _, err = _cli(capsys, "bench", "truncation", run, "--values", "0.5", "--n", 10, *args)
        _one_line(code, err, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


# ----------------------------------------------------------------------------- 7. messages


def test_json_output_errors_name_the_json_option(tmp_path, capsys):
    (tmp_path / "grid.png").write_bytes(b"png")
    code, _, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", tmp_path, "--fake", tmp_path,
                        "--json", tmp_path / "grid.png" / "y.json")
    _one_line(code, err, "grid.png is a file, not a directory", "choose another --json")
    assert "--out" not in err


def test_ppl_of_a_run_of_another_family_says_the_run_is_not_style_based(tmp_path):
    from ganforge.metrics import EvalError, ModuleExtractor, evaluate

    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x, 4).flatten(1)

    folder = _blobs(tmp_path / "real", n=16)
    images = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    dc_run = SimpleNamespace(run_dir="runs/dc", config=SimpleNamespace(objective="dcgan"),
                             capabilities=frozenset({"sample"}), path_pairs=lambda *a, **k: None)
    kw = dict(ref=f"folder:{folder}", metrics=["ppl_z"], extractor=ModuleExtractor(Pool(), channels=1), cache=False)
    with pytest.raises(EvalError, match=r"runs/dc is not one \(objective 'dcgan'; path lengths need a "
                                        r"StyleGAN2 run\)"):
        evaluate(images, generator=dc_run, **kw)
    with pytest.raises(EvalError) as info:  # no generator (files, or eval of a run of another family)
        evaluate(images, generator=None, **kw)
    assert "evaluate a StyleGAN2 run directory" in str(info.value)
    assert "(evaluate the run directory)" not in str(info.value)
