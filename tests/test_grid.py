"""ganforge.grid.make_grid lays images out as torchvision's make_grid does, value for value (it
replaces it where only the layout is needed: torchvision's import cost every grid-writing command
about 2 s), and the commands that draw grids import no torchvision."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.utils import make_grid as tv_make_grid

from ganforge.grid import make_grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n,channels,nrow,padding", [(1, 1, 8, 2), (1, 3, 4, 2), (5, 1, 2, 2), (16, 1, 4, 2),
                                                      (10, 3, 4, 1), (7, 3, 8, 0), (3, 1, 8, 2), (64, 3, 8, 2)])
def test_same_layout_and_values_as_torchvision(n, channels, nrow, padding):
    gen = torch.Generator().manual_seed(n * 10 + channels)
    images = torch.randn(n, channels, 6, 5, generator=gen) * 1.5  # beyond [-1, 1]: the clamp matters
    ours = make_grid(images, nrow=nrow, padding=padding, value_range=(-1, 1))
    theirs = tv_make_grid(images, nrow=nrow, padding=padding, normalize=True, value_range=(-1, 1))
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)
    pixels = (torch.rand(n, channels, 6, 5, generator=gen) * 255).to(torch.uint8)  # the server's uint8
    assert torch.equal(make_grid(pixels, nrow=nrow, padding=padding), tv_make_grid(pixels, nrow=nrow, padding=padding))
    assert images.shape == (n, channels, 6, 5)  # the input is left as it was


def test_a_grid_written_by_sample_imports_no_torchvision(tmp_path):
    """`ganforge sample` of an image run (a grid with provenance) and the API's grid image."""
    from conftest import random_dataset, tiny_config

    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(), run, dataset=random_dataset(), progress=False)
    code = ("import sys; from ganforge import cli; "
            f"assert cli.main(['sample', {str(run)!r}, '--n', '8', '--out', {str(tmp_path / 's.png')!r}]) == 0; "
            "print('torchvision' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout
    assert (tmp_path / "s.png").is_file()
