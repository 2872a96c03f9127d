"""The command line as a whole (a review of it): a mistyped command or choice names the closest
one, a path argument starting with ~ means the home folder even where the shell left it, and a
terminal that reports 0 columns gets the plain progress lines."""
from __future__ import annotations

import fcntl
import os
import struct
import termios
from pathlib import Path

import pytest

from ganforge import cli
from ganforge.training.display import is_terminal


@pytest.mark.parametrize("argv, says", [
    (["trian", "dcgan-fashion-mnist"], "invalid choice: 'trian'; did you mean 'train'?"),
    (["data", "fecth", "fashion-mnist"], "invalid choice: 'fecth'; did you mean 'fetch'?"),
    (["export", "run", "--format", "onxx"], "invalid choice: 'onxx'; did you mean 'onnx'?"),
])
def test_a_mistyped_choice_names_the_closest_one(argv, says, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert says in err and "choose from" not in err, err  # not the list of all 24 commands


def test_a_choice_with_nothing_close_keeps_the_list(capsys):
    with pytest.raises(SystemExit):
        cli.main(["zzzz"])
    err = capsys.readouterr().err
    assert "choose from 'presets', 'train'" in err and "did you mean" not in err


def test_a_path_starting_with_tilde_is_the_home_folder():
    """--out=~/g.png, which bash leaves as it is, had written ./~/g.png."""
    home = Path(os.path.expanduser("~"))
    args = cli.parse_args(["sample", "~/runs/a", "--out=~/g.png"])
    assert args.out == str(home / "g.png") and args.run_dir == str(home / "runs/a")
    args = cli.parse_args(["train", "toy-ring8", "--out", "~", "model.z_dim=4"])
    assert args.out == str(home) and args.overrides == ["model.z_dim=4"]
    assert cli.parse_args(["sample", "r", "--out", "a~/x.png"]).out == "a~/x.png"  # only a leading ~


def test_a_terminal_of_zero_columns_gets_the_plain_lines():
    """tqdm draws nothing at width 0 (docker run -t, CI ptys): no progress had been shown."""
    leader, follower = os.openpty()
    try:
        stream = os.fdopen(follower, "w")
        for cols, drawn in ((0, False), (80, True)):
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
            assert is_terminal(stream) is drawn
        stream.close()
        assert is_terminal(stream) is False  # closed
    finally:
        os.close(leader)


def test_quiet_training_reads_a_folder_without_progress_lines(tmp_path, capsys):
    """train --quiet (api.train(progress=False)) had printed "read 53 of 523 images (10%)" ten
    times: reading the folder is progress too."""
    import numpy as np
    from PIL import Image

    from conftest import tiny_config
    from ganforge import api
    from ganforge.data import folder

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(folder.PROGRESS_FILES):
        Image.fromarray(np.full((16, 16), i, np.uint8)).save(images / f"{i:03d}.png")
    cfg = tiny_config(**{"data.name": f"folder:{images}", "train.steps": 1})
    api.train(cfg, tmp_path / "quiet", progress=False)
    assert "images" not in capsys.readouterr().err
    api.train(cfg, tmp_path / "shown", progress=True)
    assert f"reading {folder.PROGRESS_FILES} images from {images}" in capsys.readouterr().err
