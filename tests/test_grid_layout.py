"""One grid layout everywhere: a conditional run's PNG grids put one class per row of the grid
the image is tiled in (the server had laid labels out int(sqrt(n)) to a row and tiled
round(sqrt(n))), its arrays hold balanced classes, and the server, the CLI and Python draw the
same images for a seed."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ganforge
from conftest import run_cli
from ganforge.labels import grid_columns, grid_labels, interleaved_labels
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from ganforge.serve.server import Settings, create_app, png_bytes  # noqa: E402
from test_export import train_family  # noqa: E402


def test_grid_labels_fill_the_rows_the_grid_is_tiled_in():
    assert [grid_columns(n) for n in (1, 2, 3, 8, 15, 16, 17, 32)] == [1, 1, 2, 3, 4, 4, 4, 6]
    assert grid_labels(8, 10).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert grid_labels(16, 3).tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 4


@pytest.mark.parametrize("n", [3, 8, 16])
def test_server_cli_and_python_draw_the_same_conditional_samples(tmp_path, n):
    """Arrays (a .npz, Python's sample) hold balanced classes, image i of class i % K: the grid's
    rows had given sample(10) of a 10-class run 4 classes. PNG grids keep one class per row."""
    run_dir = train_family("conditional", tmp_path)
    run = ganforge.load(run_dir)
    assert run.sample_labels(n).tolist() == interleaved_labels(n, 2).tolist()
    out = tmp_path / "cli.npz"
    assert run_cli("sample", str(run_dir), "--n", str(n), "--seed", "5", "--out", str(out)).returncode == 0
    cli = np.load(out)
    with TestClient(create_app({"conditional": run}, Settings(max_n=32, batch_wait_ms=0))) as client:
        r = client.post("/api/sample", json={"model": "conditional", "n": n, "seed": 5, "format": "npz"})
        grid = client.post("/api/sample", json={"model": "conditional", "n": n, "seed": 5, "format": "png"})
    assert r.status_code == 200, r.text
    api = np.load(io.BytesIO(r.content))
    assert api["labels"].tolist() == cli["labels"].tolist() == run.sample_labels(n).tolist()
    assert np.array_equal(api["images"], cli["images"])
    assert np.array_equal(cli["images"], run.sample_uint8(n, seed=5))
    # the server's PNG grid: a class per row, the images Python draws with those labels
    rows = grid_labels(n, 2, grid_columns(n))
    want = png_bytes(run.sample(n, seed=5, labels=rows), grid_columns(n))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(grid.content))),
                          np.asarray(Image.open(io.BytesIO(want))))
    if n >= 8:  # the two layouts draw other classes: the grid is not the array's images
        assert not np.array_equal(np.asarray(Image.open(io.BytesIO(grid.content))),
                                  np.asarray(Image.open(io.BytesIO(png_bytes(run.sample(n, seed=5), grid_columns(n))))))


def test_a_very_long_class_is_refused_in_one_short_line():
    from ganforge.labels import ClassError, resolve_class

    for value in ("7" * 5000, "x" * 5000):
        with pytest.raises(ClassError, match=r"(out of range|unknown class).*") as info:
            resolve_class(value, ["a", "b"])
        assert len(str(info.value)) < 200
    assert resolve_class(" 1 ", ["a", "b"]) == 1 and resolve_class("B", ["a", "b"]) == 1
