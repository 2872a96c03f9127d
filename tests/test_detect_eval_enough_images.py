"""`ganforge detect eval` with at least 300 images a side (its small-sample threshold), as at its
default --n: it had printed the table and then crashed with "min() arg is an empty sequence",
building the fix for a small-sample note that was not needed."""
from __future__ import annotations

import torch
from PIL import Image

from ganforge import detect
from ganforge.cli import main
from ganforge.commands.detect import SMALL_SIDE


def _folder(root, n, seed):
    root.mkdir()
    images = torch.randint(0, 256, (n, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    for i, img in enumerate(images):
        Image.fromarray(img.numpy()).save(root / f"{i}.png")
    return root


def test_enough_images_a_side_scores_without_a_note(tmp_path, capsys):
    real, fake = _folder(tmp_path / "real", SMALL_SIDE, 0), _folder(tmp_path / "fake", SMALL_SIDE, 1)
    small = torch.zeros(8, 1, 16, 16, dtype=torch.uint8)
    detect.save(detect.train(small, small + 255, detect.Recipe(steps=1, batch_size=4, width=2, depth=1)),
                tmp_path / "det")
    code = main(["detect", "eval", str(tmp_path / "det"), "--real", str(real), "--fake", str(fake),
                 "--n", str(SMALL_SIDE)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{SMALL_SIDE:>6}" in out and "note:" not in out  # scored on all, no small-sample note

    code = main(["detect", "eval", str(tmp_path / "det"), "--real", str(real), "--fake", str(fake), "--n", "100"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ganforge: note: AP and accuracy from 100 real and 100 generated images" in out
    assert f"use --n {SMALL_SIDE} or more" in out
