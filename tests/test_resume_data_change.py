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
    assert f"ganforge: resuming {run} from step 2 up to step 3 (8 images)\n" in capsys.readouterr().out


def test_a_checkpoint_without_a_data_record_and_unchanged_counts_are_not_a_change():
    files = (1).to_bytes(8, "little")
    assert api._data_change(None, {"images": 8, "files": files}, 4) is None  # from before it was kept
    assert api._data_change({"images": 8}, {"images": 8}, 4) is None
    assert api._data_change({"images": 8, "files": files}, {"images": 8, "files": files}, 4) is None
    assert api._data_change({"images": 60000}, {"images": 50000}, 4) == \
        "the data now has 50000 images, the run trained on 60000 up to step 4"


def _pairs_config(folder, steps, **extra):
    from ganforge.config import apply_overrides, from_dict

    raw = {"objective": extra.pop("objective", "pix2pix"),
           "data": {"name": f"folder:{folder}", "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4}, "translate": {"d_layers": 1, **extra},
           "train": {"steps": steps, "batch_size": 2, "log_every": 1, "sample_every": 100,
                     "checkpoint_every": 1, "n_sample_grid": 2, "device": "cpu", "seed": 0}}
    return from_dict(apply_overrides(raw, []))


def _save(path, seed, size=16):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def test_a_resume_on_a_paired_folder_with_pairs_added_says_its_held_out_pairs_moved(tmp_path):
    """A pix2pix folder without test/ holds out every 10th pair: pairs added before a resume had
    trained on without a word, and moved the held-out set onto pairs the run had trained on,
    which translate-eval then scored as held out (review of pix2pix-folder on a user's folder)."""
    folder = tmp_path / "pairs"
    for i in range(20):
        _save(folder / "A" / f"{i:03d}.png", i)
        _save(folder / "B" / f"{i:03d}.png", 100 + i)
    run = tmp_path / "run"
    ganforge.train(_pairs_config(folder, 1), run, progress=False)
    data = ckpt.load(ckpt.find(run))[1]["objective"]["data"]
    assert data["pairs"] == 18 and len(data["held_out"]) == 2 * 8  # 2 of 20 held out, 8 bytes each
    with warnings.catch_warnings(record=True) as record:  # the same files: nothing to say
        warnings.simplefilter("always")
        ganforge.train(_pairs_config(folder, 2), run, resume=True, progress=False)
    assert _data_warnings(record) == []
    for i in range(20, 25):
        _save(folder / "A" / f"{i:03d}.png", i)
        _save(folder / "B" / f"{i:03d}.png", 100 + i)
    for side in "AB":  # one pair fewer at the front: the 10th and 20th pairs are now 010 and 020
        (folder / side / "001.png").unlink()
    with pytest.warns(UserWarning, match=r"on other data: the folder now holds 22 pairs, the run trained on 18 up to "
                                         r"step 2 \(\+6/-2\); its held-out pairs changed, and 1 of the 2 now held out "
                                         r"were trained on, so translate-eval's scores of them are not held-out scores "
                                         r"\(a test/ folder keeps them fixed\): the resume trains on the new set"):
        ganforge.train(_pairs_config(folder, 3), run, resume=True, progress=False)


def test_a_resume_on_an_unpaired_folder_with_images_removed_says_so(tmp_path):
    folder = tmp_path / "domains"
    for side in "AB":
        for i in range(6):
            _save(folder / f"train{side}" / f"{i}.png", ord(side) * 10 + i)
        _save(folder / f"test{side}" / "t.png", ord(side))
    run = tmp_path / "run"
    config = lambda steps: _pairs_config(folder, steps, objective="cyclegan", task="unpaired", n_blocks=1)  # noqa: E731
    ganforge.train(config(1), run, progress=False)
    (folder / "trainB" / "5.png").unlink()
    with pytest.warns(UserWarning, match=r"on other data: the folder now holds 11 images, the run trained on 12 up to "
                                         r"step 1 \(\+0/-1\): the resume"):
        ganforge.train(config(2), run, resume=True, progress=False)
    (folder / "testA" / "u.png").write_bytes((folder / "testA" / "t.png").read_bytes())  # the same files for training
    with pytest.warns(UserWarning, match=r"with other held-out images: training goes on as before, but the sample "
                                         r"grids and translate-eval now show other images than up to step 2$"):
        ganforge.train(config(3), run, resume=True, progress=False)
