"""Review 4 fixes of export and translate-eval: model folders and ONNX files publish no absolute
path of the exporting machine (description, sr.init_from, the GAN stage's start record, the
ONNX config), translate-eval labels a model folder's weights as it labels its run's, the
unpaired table's n column lines up and small held-out sets are warned about, and the ONNX
export line names the translation direction."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import api
from ganforge.config import apply_overrides, from_dict, load_config
from ganforge.data import pairs
from ganforge.metrics import Extractor
from ganforge.metrics.paired import evaluate_unpaired, format_translation
from ganforge.serve import export

TINY = ["train.batch_size=2", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2",
        "train.n_sample_grid=2", "train.device=cpu", "train.seed=0"]


def save_noise(folder, n, size=20, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


class MeanColour(Extractor):
    """Features a test can afford: each image's per-channel mean and spread on [0, 1] (6-D)."""

    name = "mean-colour"

    def _forward(self, images):
        x = images.float().expand(-1, 3, -1, -1).flatten(2) / 255
        return torch.cat([x.mean(2), x.std(2)], 1), None


def cli_main(capsys, *argv) -> tuple[int, str, str]:
    from ganforge import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- 1: no machine paths


@pytest.fixture(scope="module")
def sr_gan_run(tmp_path_factory):
    """A PSNR-stage run and a GAN-stage run started from it, both from presets with overrides
    that name absolute paths (as `ganforge train PRESET data.name=folder:$PWD/photos ...` does:
    the description repeats them)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("machine")
    photos = save_noise(root / "my photos", 3)  # a space: the text scan alone would cut it short
    sizes = ["sr.scale=2", "sr.width=2", "sr.blocks=1", "sr.crop=16", "model.d_width=4", "train.steps=2"]
    _, cfg = load_config("srresnet-x4", [f"data.name=folder:{photos}", *sizes, *TINY])
    api.train(cfg, root / "runs" / "psnr", progress=False)
    _, cfg = load_config("srgan-x4", [f"sr.init_from={root / 'runs' / 'psnr'}", f"data.name=folder:{photos}",
                                      "sr.perceptual_weight=0", *sizes, *TINY])
    api.train(cfg, root / "runs" / "gan", progress=False)
    return root


def test_model_folder_and_onnx_publish_no_path_of_this_machine(sr_gan_run, tmp_path):
    run_dir = sr_gan_run / "runs" / "gan"
    here = {str(sr_gan_run), os.path.realpath(sr_gan_run)}
    run = ganforge.load(run_dir)
    assert str(sr_gan_run) in run.config.description and run.config.sr.init_from.startswith(str(sr_gan_run))
    folder = export.export_folder(run, tmp_path / "model")
    onnx_path = tmp_path / "g.onnx"
    export.export_onnx(run, onnx_path)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    published = {f.name: f.read_bytes() for f in folder.iterdir()}
    published["onnx metadata"] = json.dumps(meta).encode()
    leaks = sorted({name for name, data in published.items() for path in here if path.encode() in data})
    assert leaks == []
    # what replaced them: the folders' names, as data.name already was
    config = json.loads((folder / "config.json").read_text())
    assert config["config"]["data"]["name"] == "folder:my photos"
    assert config["config"]["sr"]["init_from"] == "psnr"
    assert config["objective_state"]["sr_start"]["run"] == "psnr"
    assert "data.name=folder:my photos" in config["config"]["description"]
    assert "sr.init_from=psnr" in config["config"]["description"]
    assert "init_from: psnr" in meta["ganforge_config"]
    # the folder still loads and upscales as the run does, --interp included (its start weights)
    model = ganforge.load(folder)
    image = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert np.array_equal(model.upscale(image), run.upscale(image))
    assert model.upscale(image, interp=0.5).shape == (20, 24, 3)


def test_shareable_value_cuts_every_form_of_an_absolute_path():
    value = {"description": "x with data.name=folder:/srv/u/cats a=/srv/u/runs/p; b=C:\\Users\\me\\dogs "
                            "c=~/data/z (1e-4 / 4e-4, see https://example.org/a/b, A/ and B/)",
             "init": "/srv/u/runs/psnr/", "list": ["folder:D:\\pics\\owls", "T-shirt/top"], "n": 3}
    assert export.shareable_value(value) == {
        "description": "x with data.name=folder:cats a=p; b=dogs c=z (1e-4 / 4e-4, see "
                       "https://example.org/a/b, A/ and B/)",
        "init": "psnr", "list": ["folder:owls", "T-shirt/top"], "n": 3}


# ----------------------------------------------------------------------------- 2: EMA label


def tiny(objective, data_name, *overrides):
    raw = {"objective": objective, "data": {"name": data_name, "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4}, "translate": {"d_layers": 1},
           "train": {"steps": 1, "batch_size": 2, "log_every": 1, "sample_every": 1,
                     "checkpoint_every": 1, "n_sample_grid": 2, "device": "cpu", "seed": 0}}
    return from_dict(apply_overrides(raw, list(overrides)))


@pytest.mark.parametrize("decay", [0.0, 0.9])
def test_translate_eval_labels_a_model_folders_weights_as_its_runs(decay, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    for side in "AB":
        save_noise(tmp_path / "pairs" / side, 4, size=16, seed=ord(side))
    cfg = tiny("pix2pix", f"folder:{tmp_path / 'pairs'}", "translate.task=paired", f"train.ema_decay={decay}")
    api.train(cfg, tmp_path / "run", progress=False)
    folder = export.export_folder(ganforge.load(tmp_path / "run"), tmp_path / "model")
    monkeypatch.chdir(tmp_path)  # the folder names its data folder without its path
    of_run, of_folder = api.load(tmp_path / "run").translate_eval(), api.load(folder).translate_eval()
    assert of_run["ema"] is of_folder["ema"] is (decay > 0)
    label = "EMA weights" if decay > 0 else "raw weights (no EMA)"
    assert label in format_translation(of_run) and label in format_translation(of_folder)
    assert json.loads((folder / "config.json").read_text())["ema"] is (decay > 0)
    # a folder exported before config.json said so: from the config (train.ema_decay)
    meta = json.loads((folder / "config.json").read_text())
    del meta["ema"]
    (folder / "config.json").write_text(json.dumps(meta))
    assert api.load(folder).translate_eval()["ema"] is (decay > 0)


# ----------------------------------------------------------------------------- 3, 4: cyclegan


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cyc")
    for side in ("trainA", "trainB", "testA", "testB"):
        save_noise(root / "data" / side, 3, size=16, seed=len(side))
    cfg = tiny("cyclegan", f"folder:{root / 'data'}", "translate.task=unpaired", "translate.n_blocks=1",
               "loss.name=lsgan", "train.ema_decay=0.0")
    api.train(cfg, root / "run", progress=False)
    return root / "run"


def unpaired_table(run_dir) -> tuple[dict, list[str]]:
    run = api.load(run_dir)
    result = evaluate_unpaired(run, pairs.load_pairs(run.config, evaluating=True), extractor=MeanColour())
    return result, format_translation(result).splitlines()


def test_unpaired_table_lines_up_its_n_column(cyclegan_run):
    _, lines = unpaired_table(cyclegan_run)
    header, rows = lines[1], lines[2:4]
    for row in rows:  # "3/3" ends where "n" does, and each number under its column's name
        assert row.index("3/3") + len("3/3") == header.index("n") + 1
        assert len(row) == len(header)


def test_unpaired_table_warns_on_small_held_out_sets(cyclegan_run):
    # 3 against 3 images of 6-D features: FID's covariance is singular, KID's subsets tiny
    result, lines = unpaired_table(cyclegan_run)
    warnings = [w for w in lines if w.startswith("warning: ")]
    for direction in ("AtoB", "BtoA"):
        assert any(w.startswith(f"warning: {direction}: fid from 3 samples of 6-dimensional") for w in warnings)
        assert any(w.startswith(f"warning: {direction}: kid from subsets of ") for w in warnings)
    # the --n note only where --n was given (it had been added to every small table)
    assert not any("--n only lowers n" in w for w in warnings)
    assert result["warnings"] == [w.removeprefix("warning: ") for w in warnings]


def test_onnx_export_line_names_the_direction(cyclegan_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    printed = {}
    for direction in ("AtoB", "BtoA"):
        code, out, err = cli_main(capsys, "export", cyclegan_run, "--format", "onnx", "--out",
                                  tmp_path / f"{direction}.onnx", "--direction", direction)
        assert code == 0, err
        printed[direction] = out
    assert "(translate AtoB; inputs" in printed["AtoB"] and "(translate BtoA; inputs" in printed["BtoA"]
