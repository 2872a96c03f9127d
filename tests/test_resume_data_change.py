"""A resume on a folder whose images were added or removed says so, and every start says how many
images the run trains on (a resume on 190 images of a run started on 40 had gone unmentioned)."""
import shutil
import warnings

import pytest

import ganforge
from ganforge import api, cli
from ganforge.objectives.unconditional import write_image_folder
from ganforge.training import checkpoint as ckpt


def _config(folder, steps):
    _, cfg = ganforge.load_config("dcgan-folder", [f"data.name=folder:{folder}", "data.resolution=8",
                                                   "data.channels=1", "model.g_width=4", "model.d_width=4",
                                                   "train.batch_size=4", f"train.steps={steps}", "eval.every=0"])
    return cfg


def _data_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "on other data" in str(w.message)]


def test_a_resume_on_a_folder_with_added_and_removed_images_warns_with_the_counts(tmp_path):
    folder = write_image_folder(tmp_path / "images", n=8, size=8, channels=1)
    run = tmp_path / "run"
    ganforge.train(_config(folder, 2), run, progress=False)
    assert ckpt.load(ckpt.find(run))[1]["objective"]["data"]["images"] == 8
    with warnings.catch_warnings(record=True) as record:  # the same files: nothing to say
        warnings.simplefilter("always")
        ganforge.train(_config(folder, 3), run, resume=True, progress=False)
    assert _data_warnings(record) == []
    more = write_image_folder(tmp_path / "more", n=5, size=8, channels=1, seed=1)
    for i, path in enumerate(sorted(more.iterdir())):
        shutil.move(path, folder / f"new_{i}.png")
    for name in ("000.png", "001.png"):
        (folder / name).unlink()
    with pytest.warns(UserWarning, match=r"on other data: the folder now holds 11 images, the run trained on 8 "
                                         r"up to step 3 \(\+5/-2\): the resume trains on the new set and is not "
                                         r"bit-exact"):
        ganforge.train(_config(folder, 4), run, resume=True, progress=False)
    assert ckpt.load(ckpt.find(run))[1]["objective"]["data"]["images"] == 11  # the next resume compares with it


def test_the_start_lines_say_how_many_images_the_run_trains_on(tmp_path, capsys):
    folder = write_image_folder(tmp_path / "images", n=8, size=8, channels=1)
    run = tmp_path / "run"
    args = ["--out", str(run), "--quiet", f"data.name=folder:{folder}", "data.resolution=8", "data.channels=1",
            "model.g_width=4", "model.d_width=4", "train.batch_size=4", "eval.every=0"]
    assert cli.main(["train", "dcgan-folder", "--steps", "2", *args]) == 0
    assert f"ganforge: training dcgan-folder for 2 steps -> {run} (8 images)\n" in capsys.readouterr().out
    assert cli.main(["train", "--resume", "--steps", "3", *args[:3]]) == 0
    assert f"ganforge: resuming {run} up to step 3 (8 images)\n" in capsys.readouterr().out


def test_a_checkpoint_without_a_data_record_and_unchanged_counts_are_not_a_change():
    files = (1).to_bytes(8, "little")
    assert api._data_change(None, {"images": 8, "files": files}, 4) is None  # from before it was kept
    assert api._data_change({"images": 8}, {"images": 8}, 4) is None
    assert api._data_change({"images": 8, "files": files}, {"images": 8, "files": files}, 4) is None
    assert api._data_change({"images": 60000}, {"images": 50000}, 4) == \
        "the data now has 50000 images, the run trained on 60000 up to step 4"
