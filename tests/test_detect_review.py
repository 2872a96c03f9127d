"""Review fixes of detect and provenance: a run of 2-D points refused in one line, the provenance
of a samples .npz reported by score, a detector's training samples recognised by their
provenance record, a folder of unreadable files an error, and refusals before the first table."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from ganforge import api, detect, provenance
from ganforge.cli import main
from ganforge.config import load_config
from ganforge.errors import DataError

SMALL = ["--steps", 1, "--width", 2, "--depth", 1, "--batch-size", 4]


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _images(n, size=16, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _detector(folder, size=16):
    det = detect.train(_images(8, size), _images(8, size, seed=1), detect.Recipe(steps=1, batch_size=4, width=2,
                                                                                 depth=1))
    detect.save(det, folder)
    return folder


def _real_folder(root, n=40):
    root.mkdir()
    for i, img in enumerate(_images(n, seed=7)):
        Image.fromarray(img[0].numpy()).save(root / f"{i}.png")
    return root


# 1. a run on 2-D points as --fake: one line, not an IndexError or a ValueError
def test_a_run_of_points_is_refused_in_one_line(tmp_path, capsys):
    _, cfg = load_config("toy-grid25", ["train.steps=2", "train.log_every=1", "train.sample_every=2",
                                        "train.checkpoint_every=2", "train.device=cpu"])
    api.train(cfg, tmp_path / "toy", progress=False)
    expected = f"--fake {tmp_path / 'toy'} samples 2-D points (toy:grid25); a detector needs a run that generates"
    code, _, err = _cli(capsys, "detect", "train", "--real", _real_folder(tmp_path / "real"), "--fake",
                        tmp_path / "toy", "--out", tmp_path / "d", "--n", 8, *SMALL)
    assert code == 2 and expected in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
    code, out, err = _cli(capsys, "detect", "eval", _detector(tmp_path / "det"), "--real", tmp_path / "real",
                          "--fake", tmp_path / "toy", "--n", 8)
    assert code == 2 and expected in err and err.count("\n") == 1
    with pytest.raises(DataError, match=r"expected uint8 images \[N, C, H, W\]"):
        detect.load(tmp_path / "det").probabilities(torch.zeros(4, 2, dtype=torch.uint8))


# 2. score: a samples .npz's provenance record, for each of its images
def test_score_reports_the_provenance_of_a_samples_npz(tmp_path, capsys):
    det = _detector(tmp_path / "det")
    hwc = _images(3, seed=2).permute(0, 2, 3, 1).numpy()
    meta = provenance.record(operation="sample", config={"a": 1}, step=6, seed=0)
    np.savez(tmp_path / "tagged.npz", images=hwc, provenance=np.array(json.dumps(meta)))
    np.savez(tmp_path / "plain.npz", images=hwc)
    code, out, err = _cli(capsys, "detect", "score", det, tmp_path / "tagged.npz", tmp_path / "plain.npz", "--json")
    assert code == 0, err
    assert [r["ganforge_metadata"] for r in json.loads(out)] == [True] * 3 + [False] * 3
    code, out, err = _cli(capsys, "detect", "score", det, tmp_path / "tagged.npz")
    assert code == 0, err
    assert out.count("  ganforge  ") == 3


# 3. eval: a run's training samples written to a .npz by ganforge sample, known by their record
def test_eval_refuses_a_npz_of_the_samples_a_detector_trained_on(tmp_path, capsys):
    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False)
    real = _real_folder(tmp_path / "real")
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det",
                        "--n", 8, *SMALL)
    assert code == 0, err
    for seed in (0, 1):
        code, _, err = _cli(capsys, "sample", run, "--n", 8, "--seed", seed, "--out", tmp_path / f"s{seed}.npz")
        assert code == 0, err
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake",
                          tmp_path / "s0.npz", "--n", 8)
    assert code == 2 and err.count("\n") == 1 and "the very samples" in err and "seed 0" in err
    assert "detector" not in out  # refused before any table
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake",
                          tmp_path / "s1.npz", "--n", 8)  # another seed: other samples, scored
    assert code == 0, err
    assert str(tmp_path / "s1.npz") in out


# 4. provenance of a folder none of whose files can be read
def test_provenance_of_only_unreadable_files_is_an_error(tmp_path, capsys):
    (tmp_path / "allbad").mkdir()
    (tmp_path / "allbad" / "a.png").write_text("x")
    for extra in ([], ["--json"]):
        code, out, err = _cli(capsys, "provenance", tmp_path / "allbad", *extra)
        assert code == 2 and out == "" and "none of the 1 file(s)" in err and "could be read" in err


# 5. what to pass to --fake, and detectors of different sizes refused before the first table
def test_fake_folder_hint_and_detectors_of_different_sizes(tmp_path, capsys):
    (tmp_path / "allbad").mkdir()
    (tmp_path / "allbad" / "a.png").write_text("x")
    code, _, err = _cli(capsys, "detect", "train", "--real", "fashion-mnist", "--fake", tmp_path / "allbad",
                        "--out", tmp_path / "d", "--n", 8, *SMALL)
    assert code == 2 and "pass a folder of images to --fake" in err and "data.name" not in err
    np.savez(tmp_path / "x.npz", images=_images(8, seed=3).permute(0, 2, 3, 1).numpy())
    code, out, err = _cli(capsys, "detect", "eval", _detector(tmp_path / "d16"), _detector(tmp_path / "d8", size=8),
                          "--real", _real_folder(tmp_path / "real"), "--fake", tmp_path / "x.npz", "--n", 4,
                          "--json", tmp_path / "e.json")
    assert code == 2 and "detectors work at different sizes" in err and "separate commands" in err
    assert "detector" not in out and not (tmp_path / "e.json").exists()
