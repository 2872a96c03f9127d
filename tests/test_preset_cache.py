"""Presets are parsed once per process: a refusal that names the presets able to do something
(``run.sample`` of a translation run) loads every preset, and each load had parsed every preset
file again to list the names, about 1,500 YAML parses (3 s, then per refused call). An edited
preset file is read again."""
import shutil

import yaml

from ganforge import api, config


def test_naming_the_presets_that_can_parses_each_preset_once(monkeypatch):
    parses = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parses.append(1) or real(text))
    config._PRESETS.clear()
    first = api.presets_that_can("translate")
    assert "pix2pix-fashion-mnist" in first or any(n.startswith("pix2pix") for n in first)
    n_presets = len(config.list_presets())
    # each preset file once, and each loaded config once more (apply_overrides' copy); it had been
    # every preset file for each preset loaded
    assert len(parses) == 2 * n_presets, (len(parses), n_presets)
    parses.clear()
    assert api.presets_that_can("translate") == first and len(parses) == n_presets  # no file parsed again


def test_an_edited_preset_is_read_again_and_a_loaded_one_is_a_copy(tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    shutil.copytree(config.preset_dir(), folder)
    monkeypatch.setattr(config, "preset_dir", lambda: folder)
    config._PRESETS.clear()
    _, raw = config.load_raw("dcgan-fashion-mnist")
    raw["train"]["steps"] = -1  # the caller's copy: the cache keeps the file's value
    assert config.load_raw("dcgan-fashion-mnist")[1]["train"]["steps"] != -1
    path = folder / "dcgan-fashion-mnist.yaml"
    data = yaml.safe_load(path.read_text())
    data["description"] = "edited since"
    path.write_text(yaml.safe_dump(data))
    assert config.list_presets()["dcgan-fashion-mnist"] == "edited since"
    assert config.load_config("dcgan-fashion-mnist")[1].description == "edited since"
