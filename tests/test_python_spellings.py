"""Errors that Python callers meet name the Python spelling too: `checkpoint=` next to
--checkpoint (a checkpoint folder passed as checkpoint= is pointed to its own use), `tile=`
next to --tile."""
import pytest

from ganforge.errors import CheckpointError, ConfigError
from ganforge.objectives.pix2pix import check_tile
from ganforge.training import checkpoint as ckpt


def test_a_checkpoint_folder_passed_as_checkpoint_is_pointed_to_its_use(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    folder = tmp_path / "other" / "checkpoints" / "step_0000006"
    folder.mkdir(parents=True)
    with pytest.raises(CheckpointError) as info:
        ckpt.find(tmp_path / "run", str(folder))
    msg = str(info.value)
    assert "(checkpoint= in Python)" in msg and "a checkpoint folder stands for its run" in msg, msg
    with pytest.raises(CheckpointError) as info:
        ckpt.find(tmp_path / "run", "nonsense")
    assert "stands for its run" not in str(info.value)


def test_the_tile_error_names_the_python_keyword():
    with pytest.raises(ConfigError, match=r"--tile 30 \(tile= in Python\) must be a multiple"):
        check_tile(30, 32)
