"""Python API review: numpy and pathlib values in a config, ``require`` on a model folder,
train()'s run_dir checks, numpy images in an ImageDataset, translate's directions, a folder
that is no run, and load_config's docstring."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ganforge
from conftest import random_dataset, tiny_config
from ganforge import api, cli, config, inference
from ganforge.data import ImageDataset
from ganforge.errors import CheckpointError, ConfigError
from ganforge.serve.export import export_folder
from test_export import train_family


@pytest.fixture(scope="module")
def dcgan_model_folder(tmp_path_factory):
    """A tiny DCGAN run exported as a model folder (it cannot translate)."""
    root = tmp_path_factory.mktemp("pyapi")
    api.train(tiny_config(**{"train.steps": 2}), root / "run", dataset=random_dataset(), progress=False)
    return export_folder(ganforge.load(root / "run"), root / "model")


# 1. numpy scalars and paths in a config edited in Python
def test_numpy_scalars_become_plain_python_values(tmp_path):
    cfg = tiny_config(**{"train.steps": 2})
    cfg.optim.g_lr = np.linspace(1e-4, 4e-4, 4)[1]  # a sweep value: np.float64, a float subclass
    cfg.train.steps = np.int64(2)  # had been refused: "must be int, got np.int64(2)"
    cfg.train.compile = np.bool_(False)
    checked = config.checked(cfg)
    assert type(checked.optim.g_lr) is float and checked.optim.g_lr == pytest.approx(2e-4)
    assert type(checked.train.steps) is int and checked.train.steps == 2
    assert checked.train.compile is False
    # config.yaml is written by yaml.safe_dump, which had raised RepresenterError on np.float64
    api.train(cfg, tmp_path / "run", dataset=random_dataset(), progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["g_lr"] == pytest.approx(2e-4) and saved["train"]["steps"] == 2


def test_a_path_is_taken_for_path_keys_only(tmp_path):
    cfg = tiny_config()
    cfg.data.data_dir = tmp_path  # had been "data.data_dir must be str, got PosixPath"
    assert config.checked(cfg).data.data_dir == str(tmp_path)
    assert config._coerce(Path("runs/psnr"), str, "sr.init_from") == "runs/psnr"
    cfg = tiny_config()
    cfg.model.name = Path("dcgan")  # a name, not a path: still refused
    with pytest.raises(ConfigError, match="model.name must be str, got PosixPath"):
        config.checked(cfg)


# 2. require= on a model folder
@pytest.fixture
def quick_refusal(monkeypatch):
    """The refusal's "train a preset that can" without reading every preset (seconds on 2 cores)."""
    for module in (api, inference):  # the commands name api's, LoadedRun its own module's
        monkeypatch.setattr(module, "presets_that_can", lambda capability: ["pix2pix-colorize"])


def test_require_is_applied_to_a_model_folder(dcgan_model_folder, quick_refusal):
    with pytest.raises(ConfigError, match=r"\(objective=unconditional\) cannot map an input image to an output image"):
        ganforge.load(dcgan_model_folder, require="translate")
    assert ganforge.load(dcgan_model_folder, require="sample").step == 2


def test_cli_vocode_refuses_a_model_folder_that_cannot_vocode(dcgan_model_folder, quick_refusal, tmp_path,
                                                                capsys):
    # it had read the DCGAN's config.audio: a bare AttributeError
    wav, out = tmp_path / "in.wav", tmp_path / "out.wav"
    wav.write_bytes(b"")
    assert cli.main(["vocode", str(dcgan_model_folder), str(wav), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "(objective=unconditional) cannot turn mel-spectrograms into speech" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


# 3. train()'s run_dir
def test_resume_without_run_dir_says_it_needs_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"resume=True needs run_dir, the run directory to continue"):
        api.train(tiny_config(), resume=True, progress=False)
    assert list(tmp_path.iterdir()) == []  # no runs/run-TIMESTAMP made up


def test_a_run_dir_of_the_wrong_type_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"run_dir must be a path \(str or pathlib.Path\).*got 5 \(int\)"):
        api.train(tiny_config(), 5, progress=False)


# 4. numpy images in an ImageDataset
def test_image_dataset_takes_numpy_arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 1, 16, 16), dtype=np.uint8)
    ds = ImageDataset(images=images, labels=np.arange(8)[::-1] % 2, class_names=None, source="memory", name="mine")
    assert isinstance(ds.images, torch.Tensor) and torch.equal(ds.images, torch.from_numpy(images))
    assert ds.labels.tolist() == [1, 0] * 4
    given = api._given_dataset(tiny_config(), ds)  # had been "must be a uint8 tensor ..., got uint8"
    assert given.images.dtype == torch.uint8 and given.class_names == ["0", "1"]


# 5. translate's directions; a folder that is no run
def test_translate_names_an_unknown_direction(tmp_path):
    run = ganforge.load(train_family("pix2pix", tmp_path))
    x = torch.zeros(1, run.objective.in_channels, 16, 16)
    with pytest.raises(ConfigError, match=r"unknown direction='x'; valid: 'AtoB' and 'BtoA'"):
        run.translate(x, direction="x")
    with pytest.raises(ConfigError, match="translates AtoB only"):  # a real direction it lacks
        run.translate(x, direction="BtoA")


@pytest.mark.parametrize("what", ["here", "empty", "images"])
def test_loading_a_folder_that_is_no_run_says_so(tmp_path, monkeypatch, image_folder, what):
    monkeypatch.chdir(tmp_path)
    folder = {"here": ".", "empty": "empty", "images": str(image_folder / "cats")}[what]
    Path("empty").mkdir()
    with pytest.raises(CheckpointError, match=rf"^'{folder}' is not a run directory or a model folder: "
                                              rf"a run directory holds config.yaml and checkpoints/"):
        ganforge.load(folder)


# 6. load_config's docstring
def test_load_config_is_documented():
    doc = ganforge.load_config.__doc__ or ""
    assert "(name, cfg)" in doc and "key=value" in doc and "overrides" in doc
