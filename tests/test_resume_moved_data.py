"""A resumed run whose image folder moved is told to resume with the new place."""
import pytest

import ganforge
from ganforge.errors import DataError
from ganforge.objectives.unconditional import write_image_folder


def test_moved_folder_on_resume_advises_resume_with_the_new_place(tmp_path):
    folder = write_image_folder(tmp_path / "images", n=8, size=8, channels=1)
    _, cfg = ganforge.load_config("dcgan-folder", [f"data.name=folder:{folder}", "data.resolution=8",
                                                   "data.channels=1", "model.g_width=4", "model.d_width=4",
                                                   "train.batch_size=4", "train.steps=2", "eval.every=0"])
    ganforge.train(cfg, tmp_path / "run", progress=False)
    folder.rename(tmp_path / "moved")
    cfg.train.steps = 3
    with pytest.raises(DataError) as info:
        ganforge.train(cfg, tmp_path / "run", resume=True, progress=False)
    assert "if it moved, resume with its new place: ganforge train --resume --out" in str(info.value)
    assert "dcgan-folder" not in str(info.value)  # training's advice starts another run
