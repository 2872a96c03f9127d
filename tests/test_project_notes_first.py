"""`ganforge project`'s notes on what it changed in the target image (resized, composited, converted)
come before the optimization's steps: they had come after all of them (34 s at the default 1,000
steps), too late to stop a projection of the wrong image."""
from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import cli_result


def test_the_resize_note_comes_before_the_first_step(style_run, tmp_path, capsys):
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(tmp_path / "t.png")  # not the run's size
    code, out, err = cli_result(capsys, "project", style_run, tmp_path / "t.png", "--steps", "2",
                                "--out", tmp_path / "proj")
    assert code == 0, err
    lines = out.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("ganforge: note:") and "resized" in line]
    steps = [i for i, line in enumerate(lines) if line.lstrip().startswith("step ")]
    assert len(notes) == 1 and steps and notes[0] < steps[0], out
