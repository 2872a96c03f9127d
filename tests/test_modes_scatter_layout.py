"""bench modes' scatter with more than 5 seeds has a second row of panels: its titles had been
drawn over the bottom edge of the first row's panels."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from ganforge.bench.modes import save_scatter


def test_the_second_rows_titles_stay_below_the_first_rows_panels(tmp_path, monkeypatch):
    per_seed = []
    for seed in range(10):
        (tmp_path / f"seed_{seed}").mkdir()
        torch.save(torch.randn(200, 2, generator=torch.Generator().manual_seed(seed)),
                   tmp_path / f"seed_{seed}" / "bench_samples.pt")
        per_seed.append({"seed": seed, "modes": 21, "hq": 0.93})
    modes = torch.tensor([[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)] for k in range(8)])
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to measure it
    assert save_scatter(tmp_path, "nonsaturating", "toy:ring8", per_seed, modes, 0.02).is_file()
    fig = figures[0]
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 10
    for above, below in zip(panels[:5], panels[5:]):
        assert below.title.get_window_extent(renderer).y1 <= above.get_window_extent(renderer).y0
