"""`ganforge detect train`'s closing "try: ganforge detect eval ..." had offered a .npz or folder
whose every image trained the detector (a folder of at most --n images, as augment's 5,000 at
detect's default --n of 5,000), a command eval then refuses: such a source is left out and said."""
from __future__ import annotations

import shlex

import torch
from PIL import Image

from ganforge.cli import main

SMALL = ["--steps", "1", "--width", "2", "--depth", "1", "--batch-size", "4"]


def _folder(root, n, seed):
    root.mkdir()
    images = torch.randint(0, 256, (n, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    for i, img in enumerate(images):
        Image.fromarray(img.numpy()).save(root / f"{i}.png")
    return str(root)


def _suggestion(capsys, *argv):
    assert main([str(a) for a in argv]) == 0
    out, err = capsys.readouterr()
    return [line for line in (out + err).splitlines() if line.startswith("ganforge: detector in")][-1]


def test_a_source_the_detector_used_whole_is_left_out_of_the_eval_command(tmp_path, capsys):
    real, spent, big = (_folder(tmp_path / name, n, seed) for name, n, seed in (("real", 40, 0), ("spent", 10, 1),
                                                                              ("big", 40, 2)))
    det = tmp_path / "det"
    line = _suggestion(capsys, "detect", "train", "--real", f"folder:{real}", "--fake", spent, big, "--n", "10",
                       "--out", det, *SMALL)
    assert line.endswith(f"--fake {big} (all 10 images of --fake {spent} were drawn by its training)"), line
    command = line.split("try: ", 1)[1].split(" (all", 1)[0]
    assert main(shlex.split(command)[1:]) == 0  # what it offers runs
    capsys.readouterr()
    assert main(["detect", "eval", str(det), "--real", f"folder:{real}", "--fake", spent]) == 2  # what it left out

    line = _suggestion(capsys, "detect", "train", "--real", f"folder:{real}", "--fake", spent, "--n", "10",
                       "--out", tmp_path / "det2", *SMALL)
    said = (f"all 10 images of --fake {spent} were drawn by its training: evaluate it with generated images it "
            f"has not seen, e.g. ganforge detect eval {tmp_path / 'det2'} --real folder:{real} --fake RUN")
    assert said in line, line
