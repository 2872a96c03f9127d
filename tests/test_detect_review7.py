"""Review of detect and provenance (a user's session): score refuses images under 8x8 as train and
eval do and notes what it changed (a far larger image, colour read as gray); eval says 'unknown',
not 'no', of a source without provenance records; a colour folder read for a detector is not
given training's data.channels advice; the small-sample note says '1 point'."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ganforge.commands.detect import _small_sample_note
from test_detect_review_fixes3 import SMALL, _augment_outputs, _cli, _real_folder


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    import contextlib
    import io

    from ganforge.cli import main

    root = tmp_path_factory.mktemp("det")
    real = _real_folder(root / "real")
    folder, _ = _augment_outputs(root)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([str(a) for a in ("detect", "train", "--real", real, "--fake", folder, "--out", root / "det",
                                      "--n", 12, *SMALL)]) == 0
    return root


def test_score_refuses_tiny_images_and_notes_large_and_colour_ones(detector, tmp_path, capsys):
    det = detector / "det"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "tiny.png")
    code, _, err = _cli(capsys, "detect", "score", det, tmp_path / "tiny.png")
    assert code == 2 and err.strip() == (f"ganforge: error: {tmp_path / 'tiny.png'} is 2x2 pixels, under 8x8; the "
                                         f"detector scores images of at least that size"), err
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / "a_tiny.png")
    Image.fromarray(np.full((200, 200), 90, np.uint8)).save(folder / "b_big.png")
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(folder / "c_colour.png")
    Image.fromarray(np.full((16, 16), 40, np.uint8)).save(folder / "d_gray.png")
    code, out, err = _cli(capsys, "detect", "score", det, folder)
    assert code == 0 and f"skipping {folder / 'a_tiny.png'}: 2x2 pixels, under 8x8" in err, err
    lines = {line.split()[-1].rstrip(")"): line for line in out.splitlines()[1:]}
    assert "a_tiny.png" not in out
    assert "(resized from 200x200, 12x the 16x16 the detector was trained on: its score means little here)" in out
    assert "c_colour.png  (colour read as gray)" in out and "d_gray.png" in out and "gray" not in out.split(
        "d_gray.png")[1], out
    assert len(lines) == 3


def test_eval_says_unknown_of_a_source_without_provenance(detector, tmp_path, capsys):
    """Re-saved training samples (no records) had been called 'no': another generator."""
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for i, path in enumerate(sorted((detector / "aug").rglob("*.png"))):
        Image.open(path).save(stripped / f"{i}.png")  # PIL writes no ganforge record
    code, out, err = _cli(capsys, "detect", "eval", detector / "det", "--real", detector / "real", "--fake", stripped,
                          "--n", 20, "--json", tmp_path / "e.json")
    assert code == 0, err
    row = json.loads((tmp_path / "e.json").read_text())["detectors"][0]["results"][str(stripped)]
    assert row["seen_as"] == "unknown" and row["seen_in_training"] is None
    assert any(line.split()[:2] == [str(stripped), "unknown"] for line in out.splitlines()), out
    assert "unknown = no provenance records to tell" in out


def test_a_colour_folder_read_for_a_detector_gets_no_training_advice(detector, tmp_path, capsys):
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    for i in range(12):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(rgb / f"{i}.png")
    code, out, err = _cli(capsys, "detect", "eval", detector / "det", "--real", detector / "real", "--fake", rgb,
                          "--n", 12)
    assert code == 0, err
    assert "holds colour images; they are read as grayscale here" in err and "data.channels" not in err, err


def test_the_small_sample_note_counts_points():
    assert "up to 1 point and" in _small_sample_note("AP", 1000, 200, "x")
    assert "up to 11 points and" in _small_sample_note("AP", 10, 10, "x")


def test_a_fake_source_that_does_not_exist_is_said_so(detector, tmp_path, capsys):
    code, _, err = _cli(capsys, "detect", "eval", detector / "det", "--real", detector / "real", "--fake",
                        tmp_path / "nosuch", "--n", 12)
    assert code == 2 and f"--fake {tmp_path / 'nosuch'} does not exist; pass a run directory" in err, err
