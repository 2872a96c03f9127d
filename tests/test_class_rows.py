"""A conditional run's grids name their rows: the training previews (one class per row, which the
report shows) and ``ganforge sample``'s default grid had been unlabeled tiles, while only
``--per-class`` wrote the class names beside the rows."""
import numpy as np
import pytest
from PIL import Image

from conftest import family_run, random_dataset, tiny_config

from ganforge import api, cli, provenance


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rows") / "run"
    cfg = tiny_config(objective="conditional", **{"train.steps": 3, "train.n_sample_grid": 4})
    api.train(cfg, out, progress=False, dataset=random_dataset(n=32, labels=True))
    return out


def margin(path, tile=16, per_row=2):
    """The pixels left of the tiles (a plain grid: none) and whether any of them is drawn on."""
    im = np.asarray(Image.open(path).convert("L"))
    extra = im.shape[1] - (per_row * (tile + 2) + 2)
    return extra, bool(extra > 0 and im[:, :extra].max() > 128)


def test_training_preview_names_its_class_rows(run_dir):
    extra, drawn = margin(run_dir / "samples" / "step_0000003.png")
    assert extra > 20 and drawn


def test_sample_grid_names_its_class_rows_unless_one_class_is_asked_for(run_dir, tmp_path):
    assert cli.main(["sample", str(run_dir), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    extra, drawn = margin(tmp_path / "g.png")
    assert extra > 20 and drawn
    assert cli.main(["sample", str(run_dir), "--n", "4", "--class", "b", "--out", str(tmp_path / "b.png")]) == 0
    assert margin(tmp_path / "b.png") == (0, False)  # one class: the command's line names it


@pytest.fixture(scope="module")
def lapgan_run(tmp_path_factory):
    return family_run(tmp_path_factory.mktemp("lapc"), "lapgan-conditional", "train.steps=2")


def test_pyramid_rows_cycle_through_the_classes_and_are_named(lapgan_run, tmp_path):
    # one row per sample: the square-grid layout had given rows 0,0,1,1 (and 0,0,0,1,1,1,2,... of 10)
    out = tmp_path / "p.png"
    assert cli.main(["sample", str(lapgan_run), "--pyramid", "--n", "4", "--out", str(out)]) == 0
    assert provenance.read(out)["classes"] == ["a", "b"]
    im = np.asarray(Image.open(out).convert("L"))
    tile = 16 + 2
    extra = im.shape[1] - (3 * tile + 2)  # three levels side by side
    assert im.shape[0] == 4 * tile + 2 and extra > 10 and im[:, :extra].max() > 128
    assert cli.main(["sample", str(lapgan_run), "--pyramid", "--per-class", "2", "--out",
                     str(tmp_path / "pc.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "pc.png")).shape[0] == 4 * tile + 2  # 2 classes x 2


def test_pyramid_labels_alternate(lapgan_run, monkeypatch, tmp_path):
    from ganforge.api import LoadedRun

    seen = []
    sample = LoadedRun.sample

    def spy(self, n, **kw):
        seen.append(kw["labels"].tolist())
        return sample(self, n, **kw)

    monkeypatch.setattr(LoadedRun, "sample", spy)
    assert cli.main(["sample", str(lapgan_run), "--pyramid", "--n", "4", "--out", str(tmp_path / "p.png")]) == 0
    assert seen == [[0, 1, 0, 1]]


@pytest.mark.parametrize("preset, overrides", [
    ("lapgan-fashion-mnist", ["objective=lapgan-conditional"]),  # the README's way to condition it
    ("cgan-fashion-mnist", []), ("acgan-fashion-mnist", []), ("projgan-fashion-mnist", []),
    ("biggan-fashion-mnist", []),
])
def test_conditional_fashion_mnist_previews_show_every_class(preset, overrides):
    # rows cycle through the classes: the LAPGAN preset's 64-image grid had shown 8 of 10
    import math

    import ganforge
    from ganforge.labels import grid_columns

    _, cfg = ganforge.load_config(preset, overrides)
    n = cfg.train.n_sample_grid
    assert math.ceil(n / grid_columns(n)) >= 10
