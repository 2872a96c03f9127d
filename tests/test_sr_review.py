"""Super-resolution review fixes: upscale's memory is bounded by --tile (the result is built as
uint8, tile by tile), eval-sr's row names (a run named "bicubic", `eval-sr .`), JPEG quality."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from test_superres import sr_config


def _generator():
    from ganforge.models.srresnet import build_sr_generator

    torch.manual_seed(0)
    G = build_sr_generator("srresnet", scale=2, width=8, blocks=1, bicubic_skip=True).eval()
    with torch.no_grad():  # a non-zero residual branch, so the network part matters
        for p in G.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return G


class _FloatSizes(TorchDispatchMode):
    """Records the [H, W] of every floating-point tensor any torch op makes."""

    def __init__(self):
        super().__init__()
        self.sizes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() >= 2:
                self.sizes.add(tuple(t.shape[-2:]))
        return out


# ----------------------------------------------------------------------------- 1: memory


def test_upscale_array_is_unchanged_and_makes_no_full_size_float_image():
    from ganforge.data.superres import to_float
    from ganforge.objectives.superres import receptive_radius, to_uint8, upscale_array, upscale_tensor

    G = _generator()
    image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    lr = to_float(torch.from_numpy(image).permute(2, 0, 1)[None])
    r = receptive_radius(G)
    for tile in (0, 10):  # what the float path gave, bit for bit
        want = to_uint8(upscale_tensor(G, lr, 2, tile=tile, overlap=r))[0].permute(1, 2, 0).numpy()
        got = upscale_array(G, image, 2, tile=tile, overlap=r)
        assert got.dtype == np.uint8 and got.shape == (74, 58, 3)
        assert np.array_equal(got, want)
    assert np.array_equal(upscale_array(G, image, 2, tile=10, overlap=r), upscale_array(G, image, 2, tile=0))

    with _FloatSizes() as seen:
        upscale_array(G, image, 2, tile=10, overlap=r)
    assert seen.sizes and (74, 58) not in seen.sizes  # tiles only: the whole image was 4+ floats a value


def test_upscale_array_reports_progress_per_tile():
    from ganforge.objectives.superres import upscale_array

    calls = []
    upscale_array(_generator(), np.zeros((37, 29, 3), np.uint8), 2, tile=10, on_tile=lambda *a: calls.append(a))
    assert calls == [(i, 12) for i in range(1, 13)]  # 4 rows x 3 columns of tiles


# ----------------------------------------------------------------------------- 2: eval-sr names


def test_evaluate_sr_refuses_a_method_named_like_the_baseline():
    from ganforge.errors import ConfigError
    from ganforge.metrics.superres import evaluate_sr

    hr = [np.zeros((32, 32, 3), np.uint8)]
    with pytest.raises(ConfigError, match="'bicubic' would replace the bicubic baseline"):
        evaluate_sr(hr, 2, {"bicubic": lambda lr: np.zeros((32, 32, 3), np.uint8)})


def test_eval_sr_keeps_the_baseline_for_a_run_named_bicubic_and_names_dot(tmp_path, monkeypatch, capsys):
    from ganforge import api, cli

    run = tmp_path / "runs" / "bicubic"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), run, progress=False)
    hr = tmp_path / "hr"
    for i, (where, cwd) in enumerate([(run, tmp_path), (".", run)]):  # "." had been named ""
        monkeypatch.chdir(cwd)
        report = tmp_path / f"r{i}.json"
        assert cli.main(["eval-sr", str(where), "--data", str(hr), "--json", str(report)]) == 0
        result = json.loads(report.read_text())
        rows = result["results"]
        assert list(rows) == ["bicubic", "runs/bicubic"] and result["model"] == "runs/bicubic"
        assert rows["bicubic"]["psnr_y"] != rows["runs/bicubic"]["psnr_y"]  # the model had replaced it
        out = capsys.readouterr().out
        assert "\nbicubic " in out and "\nruns/bicubic " in out


# ----------------------------------------------------------------------------- 3: JPEG quality


@pytest.mark.parametrize("meta", [{"operation": "upscale"}, None])
def test_jpeg_is_saved_at_quality_95_without_chroma_subsampling(tmp_path, meta):
    from PIL import JpegImagePlugin

    from ganforge import provenance

    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    provenance.save(image, tmp_path / "x.jpg", meta)
    Image.fromarray(image).save(tmp_path / "ref.jpg", quality=95, subsampling=0)
    with Image.open(tmp_path / "x.jpg") as got, Image.open(tmp_path / "ref.jpg") as ref:
        assert JpegImagePlugin.get_sampling(got) == 0  # 4:4:4
        assert got.quantization == ref.quantization
    read = provenance.read(tmp_path / "x.jpg")
    assert (read is None) if meta is None else read["operation"] == "upscale"


def test_upscale_of_a_large_image_prints_tile_progress(tmp_path, monkeypatch, capsys):
    """A 1500 px photo had been upscaled for 71 s without a word: an image of many tiles gets a
    line per tenth of them; a small one stays quiet."""
    from PIL import Image

    from ganforge import api, cli
    from ganforge.commands import upscale as cmd

    run = tmp_path / "run"
    api.train(sr_config(tmp_path, **{"train.steps": 2}), run, progress=False)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    monkeypatch.setattr(cmd, "PROGRESS_TILES", 16)
    assert cli.main(["upscale", str(run), str(tmp_path / "big.png"), "--tile", "8", "--out",
                     str(tmp_path / "big_x.png")]) == 0  # 5 x 5 = 25 tiles
    lines = capsys.readouterr().out.splitlines()
    tiles = [line for line in lines if "tiles" in line]
    assert tiles[0] == "  big.png: 3/25 tiles" and tiles[-1] == "  big.png: 25/25 tiles", lines
    assert len(tiles) == 10
    assert cli.main(["upscale", str(run), str(tmp_path / "small.png"), "--tile", "8", "--out",
                     str(tmp_path / "small_x.png")]) == 0  # 1 tile
    assert "tiles" not in capsys.readouterr().out
