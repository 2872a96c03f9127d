"""Runs on 2-D points (the toy mixtures) outside training: `ganforge sample` writes the points to
a .npz or plots them, and the server answers with the same plot or array; a latent walk, which
draws images, is not offered."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import ganforge
from ganforge import api, cli
from ganforge.config import load_config


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    _, cfg = load_config("toy-grid25", ["train.steps=20", "train.log_every=10", "train.sample_every=20",
                                        "train.checkpoint_every=20", "train.device=cpu"])
    api.train(cfg, out, progress=False)
    return out


def _plot_is_drawn(png: bytes) -> np.ndarray:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 200  # a figure, not the points as pixels
    red = (image[..., 0] > 200) & (image[..., 1] < 80) & (image[..., 2] < 80)
    blue = image[..., 2].astype(int) > image[..., 0].astype(int) + 40
    assert red.sum() > 100 and blue.sum() > 10  # the modes' circles and the samples (none: 0)
    return image


def test_sample_writes_points_to_npz_and_a_scatter_plot_to_png(toy_run, tmp_path, capsys):
    run = ganforge.load(toy_run)
    assert run.point_dim == 2 and "interpolate" not in run.capabilities
    assert cli.main(["sample", str(toy_run), "--n", "300", "--seed", "4", "--out", str(tmp_path / "p.npz")]) == 0
    data = np.load(tmp_path / "p.npz")
    assert data["points"].dtype == np.float32 and data["points"].shape == (300, 2)
    assert np.array_equal(data["points"], run.sample(300, seed=4).numpy())
    with pytest.raises(ganforge.GanforgeError, match="generates 2-D points, not images; use sample()"):
        run.sample_uint8(3)  # failed in torch's permute
    assert "provenance" in data.files and "images" not in data.files
    assert cli.main(["sample", str(toy_run), "--n", "300", "--out", str(tmp_path / "p.png")]) == 0
    _plot_is_drawn((tmp_path / "p.png").read_bytes())
    capsys.readouterr()
    code = cli.main(["interpolate", str(toy_run), "--seeds", "1,2", "--out", str(tmp_path / "w.gif")])
    assert code == 2 and "cannot walk through latent space" in capsys.readouterr().err
    assert not (tmp_path / "w.gif").exists()


def test_server_plots_or_returns_the_points_and_offers_no_walk(toy_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from ganforge.serve.server import Settings, create_app

    run = ganforge.load(toy_run)
    with TestClient(create_app({"toy": run}, Settings(batch_wait_ms=0))) as client:
        info = client.get("/api/models").json()["models"][0]
        assert info["points"] == 2 and info["resolution"] is None and "interpolate" not in info["capabilities"]
        r = client.post("/api/sample", json={"model": "toy", "n": 50, "seed": 4})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        _plot_is_drawn(r.content)
        r = client.post("/api/sample", json={"model": "toy", "n": 50, "seed": 4, "format": "npz"})
        points = np.load(io.BytesIO(r.content))["points"]
        assert np.array_equal(points, run.sample(50, seed=4).numpy())
        r = client.post("/api/interpolate", json={"model": "toy", "seed_a": 1, "seed_b": 2, "steps": 4})
        assert 400 <= r.status_code < 500 and "interpolate" in r.json()["error"]
        assert client.get("/healthz").status_code == 200


def test_a_walk_passes_through_every_seed_whatever_the_frame_count():
    """10 frames through 3 seeds: frames 0, 3 and 7 are the seeds (seeds 7 and 3 never appeared:
    frame j sat at j * 3 / 10)."""
    import torch

    from ganforge.latents import walk_fractions

    a, b, frac = walk_fractions(3, 10)
    starts = [j for j in range(10) if frac[j] == 0]
    assert starts == [0, 3, 7] and a[starts].tolist() == [0, 1, 2] and b[9] == 0
    a12, _, frac12 = walk_fractions(3, 12)  # a multiple: as before, frame j at j * 3 / 12
    t = torch.arange(12, dtype=torch.float64) * 3 / 12
    assert torch.equal(a12, t.floor().long()) and torch.allclose(frac12, t - t.floor())
    with pytest.raises(ValueError, match="at least 3 frames"):
        walk_fractions(3, 2)


def test_a_toy_model_folder_and_onnx_describe_points_and_their_evaluation(toy_run, tmp_path):
    """The card had said 'resolution 28, 1 channel(s)', '# float [16, C, H, W]' and offered
    `ganforge eval NAME --ref DATASET`, which no value makes work for points; the .onnx's
    metadata had called its output images."""
    import json
    import shlex

    import onnx

    folder = tmp_path / "toy"
    assert cli.main(["export", str(toy_run), "--format", "folder", "--out", str(folder)]) == 0
    card = (folder / "README.md").read_text()
    assert "2-D points" in card and "float [16, 2]" in card
    assert "resolution" not in card.split("## Data")[1].split("##")[0] and "--ref DATASET" not in card
    line = next(l for l in card.splitlines() if "`ganforge sample" in l)
    argv = shlex.split(line.split("`ganforge ", 1)[1].split("`")[0])
    argv[argv.index("--out") + 1] = str(tmp_path / "points.png")
    argv[1] = str(folder)  # the card names the folder as its reader will have it
    assert cli.main(argv) == 0 and (tmp_path / "points.png").is_file()
    assert "bench modes --data toy:grid25" in card
    assert cli.main(["export", str(toy_run), "--format", "onnx", "--out", str(tmp_path / "t.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert json.loads(meta["ganforge"])["output"].startswith("image_out: float32 [N, 2], points")
