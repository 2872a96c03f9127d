"""A folder `ganforge project` wrote reads back as ganforge's: its noise.npz carries the record
as a samples .npz does (`ganforge provenance PROJ/` had called it unlabelled and exited 1), and
edit --latent still reads the noise maps next to it. And a one-step run is "1 step"."""
import numpy as np
from PIL import Image

import ganforge
from ganforge import api, cli, provenance
from ganforge.commands import style

from conftest import tiny_config


def test_a_projection_folder_carries_provenance_in_every_file(style_run, tmp_path, capsys):
    run = ganforge.load(style_run)
    Image.fromarray(api.to_uint8_hwc(run.sample(1, seed=9))[0][..., 0]).save(tmp_path / "target.png")
    proj = tmp_path / "proj"
    assert cli.main(["project", str(style_run), str(tmp_path / "target.png"), "--steps", "3", "--quiet",
                     "--out", str(proj)]) == 0
    assert provenance.read(proj / "noise.npz")["operation"] == "project"
    capsys.readouterr()
    assert cli.main(["provenance", str(proj)]) == 0, capsys.readouterr().out
    with np.load(proj / "noise.npz") as z:
        layers = sorted(k for k in z.files if k.startswith("arr_"))
        assert set(z.files) == {*layers, "provenance"} and layers
    maps = style._read_noise(proj / "noise.npz")  # what edit --latent reads: the layers, not the record
    assert len(maps) == len(layers) and all(m.dtype.kind == "f" for m in maps)


def test_a_one_step_run_says_step(tmp_path, capsys):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(tiny_config(**{"train.steps": 1}).to_yaml())
    assert cli.main(["train", str(yaml_file), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert " for 1 step -> " in capsys.readouterr().out
