"""On a toy mixture the probe also logs the mode benchmark's high-quality share (points within
3 sigma of a centre), and the report draws it: a generator that spreads its points over the whole
plane captures every mode, so the mode count alone had called it healthy."""
from __future__ import annotations

import json

import torch
from test_toy_coverage_probe import MixtureBatches, Sampler, probe_for

from ganforge.data.toy import toy_mixture
from ganforge.report import load_run, plots


class Everywhere:
    """A blurry generator: points around every centre of the grid, 10 sigma wide (about 4% of
    them within 3 sigma of one)."""

    capabilities = ()

    def __init__(self):
        toy = toy_mixture("toy:grid25")
        self.modes, self.sigma = toy.modes, toy.sigma

    def sample(self, n, *, generator, nets=None):
        which = torch.randint(len(self.modes), (n,), generator=generator)
        return self.modes[which] + 10 * self.sigma * torch.randn(n, 2, generator=generator)


def test_points_everywhere_capture_every_mode_but_few_are_high_quality():
    probe, batches = probe_for("toy:grid25"), MixtureBatches("toy:grid25")
    spread = probe(batches, Everywhere(), {})
    assert spread["probe_classes"] == spread["probe_classes_real"] == 25.0  # the count cannot tell
    assert spread["probe_hq"] < 0.06 and spread["probe_hq_real"] > 0.98  # 2-D: 1 - exp(-4.5) = 0.989
    healthy = probe_for("toy:grid25")(batches, Sampler("toy:grid25"), {})
    assert healthy["probe_hq"] > 0.98


def test_report_draws_the_high_quality_share(tmp_path, monkeypatch):
    run = tmp_path / "toy"
    run.mkdir()
    from ganforge.config import load_config

    (run / "config.yaml").write_text(load_config("toy-grid25")[1].to_yaml())
    records = [{"step": s, "time": s / 10, "d_loss": 1.0, "g_loss": 1.0, "probe_classes": 25.0,
                "probe_classes_real": 25.0, "probe_hq": 0.03, "probe_hq_real": 0.997} for s in (100, 200)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    drawn = {section: title for section, title, _ in plots.curve_figures(load_run(run))}
    assert drawn.get("probe-hq") == "Share of the probe points within 3 sigma of a mode centre (high quality)"
