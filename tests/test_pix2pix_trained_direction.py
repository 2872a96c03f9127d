"""A pix2pix run trained with translate.direction=BtoA translates B to A, and says so: it had said
"translated ... AtoB" (and recorded AtoB in the ONNX metadata and provenance), and refused
--direction BtoA, advising the setting it was trained with."""
import json

import onnx
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import api, cli, provenance
from ganforge.errors import ConfigError

from test_pix2pix import p2p_config, smooth_folder


@pytest.fixture(scope="module")
def b2a_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("b2a")
    folder = root / "pairs"
    smooth_folder(folder / "A", n=12)
    smooth_folder(folder / "B", n=12, seed=1)
    cfg = p2p_config(folder, **{"translate.task": "paired", "translate.direction": "BtoA", "train.steps": 2})
    api.train(cfg, root / "run", progress=False)
    return root / "run"


def test_the_run_translates_its_own_way_by_default_and_refuses_the_other(b2a_run):
    run = ganforge.load(b2a_run)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(run.translate(x), run.translate(x, direction="BtoA"))
    with pytest.raises(ConfigError, match=r"translates BtoA only \(it trained with translate.direction=BtoA\)"):
        run.translate(x, direction="AtoB")


def test_the_cli_and_export_name_the_trained_direction(b2a_run, tmp_path, capsys):
    Image.new("RGB", (20, 18), (90, 20, 200)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert cli.main(["translate", str(b2a_run), str(tmp_path / "in.png"), "--out", str(out)]) == 0
    assert "translated 1 image(s) BtoA" in capsys.readouterr().out
    assert provenance.read(out)["direction"] == "BtoA"
    assert cli.main(["translate", str(b2a_run), str(tmp_path / "in.png"), "--out", str(tmp_path / "o2.png"),
                     "--direction", "BtoA"]) == 0
    assert cli.main(["translate", str(b2a_run), str(tmp_path / "in.png"), "--out", str(tmp_path / "o3.png"),
                     "--direction", "AtoB"]) == 2
    assert "translates BtoA only" in capsys.readouterr().err
    assert not (tmp_path / "o3.png").exists()
    assert cli.main(["export", str(b2a_run), "--format", "onnx", "--out", str(tmp_path / "g.onnx")]) == 0
    assert "(translate BtoA;" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "g.onnx")).metadata_props}
    assert json.loads(meta["ganforge"])["direction"] == "BtoA"
