"""On the toy mixtures the monitor's probe counts the modes its samples cover (the mode benchmark's
definition: within 3 sigma of the nearest centre) and the coverage check judges it: a run stuck on
3 of the ring's 8 modes, with pixel diversity well above the collapse threshold, had got no
mode_collapse event."""
from __future__ import annotations

import torch

from ganforge.config import load_config
from ganforge.data.toy import mode_metrics, ring_modes, sample, toy_mixture
from ganforge.training.monitor import Monitor
from ganforge.training.probe import DiversityProbe


def probe_for(data: str, **monitor) -> DiversityProbe:
    cfg = load_config("toy-ring8", [f"data.name={data}", "train.device=cpu",
                                    *(f"monitor.{k}={v}" for k, v in monitor.items())])[1]
    return DiversityProbe(cfg, torch.device("cpu"), warn=print)


class MixtureBatches:
    """batches.probe of a training run: a fixed real batch drawn from the mixture."""

    def __init__(self, data: str):
        toy = toy_mixture(data)
        self.points = sample(toy.modes, toy.sigma, 5000, seed=1)

    def probe(self, n: int) -> torch.Tensor:
        return self.points[:n]


class Sampler:
    """An objective whose generator emits the mixture restricted to ``modes`` (all by default);
    ``young``: 9 of 10 samples 20 sigma wide, as a young generator's (about 10% high quality)."""

    capabilities = ()

    def __init__(self, data: str, modes=None, young: bool = False):
        toy = toy_mixture(data)
        self.modes = toy.modes if modes is None else toy.modes[modes]
        self.sigma, self.young = toy.sigma, young

    def sample(self, n, *, generator, nets=None):
        which = torch.randint(len(self.modes), (n,), generator=generator)
        wide = torch.rand(n, 1, generator=generator) < (0.9 if self.young else 0.0)
        return self.modes[which] + self.sigma * torch.randn(n, 2, generator=generator) * (1 + 19 * wide)


def test_probe_counts_the_ring_modes_a_batch_captures():
    probe = probe_for("toy:ring8")
    ring = ring_modes(8, 1.0)
    three = ring[torch.arange(64) % 3] + 0.01 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    assert probe.stats(three)["classes"] == 3.0
    spread = ring[torch.arange(64) % 8]
    assert probe.stats(spread)["classes"] == 8.0
    # a sample off every mode (beyond 3 sigma of its nearest centre) captures none, as in the benchmark
    off = ring[torch.arange(64) % 8] * 1.05
    assert probe.stats(off)["classes"] == mode_metrics(off, ring, 0.01)["modes"] == 0.0
    # image data keeps its behaviour: no class count without the dataset's classifier
    assert "classes" not in probe_for("mnist").stats(torch.zeros(4, 1, 8, 8))


def test_grid_coverage_is_counted_on_enough_points_for_25_modes():
    """64 points of a perfect generator cover about 23 of 25 modes: modes are counted on the
    benchmark's 2,500 samples."""
    probe = probe_for("toy:grid25")
    assert probe.coverage_size(64) == 2500
    assert probe_for("toy:ring8").coverage_size(64) == 2500
    record = probe(MixtureBatches("toy:grid25"), Sampler("toy:grid25"), {})
    assert (record["probe_classes"], record["probe_classes_real"]) == (25.0, 25.0)
    few = mode_metrics(MixtureBatches("toy:grid25").probe(64), toy_mixture("toy:grid25").modes, 0.05)
    assert few["modes"] < 25  # what the probe's own 64 points would have said of the real data


def run(data: str, modes=None, records: int = 8, young: bool = False) -> tuple[list[dict], list[dict]]:
    """The probe's records of a generator stuck on ``modes`` for ``records`` intervals of 100
    steps, with healthy losses, fed to the monitor; (records, events)."""
    probe = probe_for(data)
    batches, objective = MixtureBatches(data), Sampler(data, modes, young)
    monitor = Monitor(probe.cfg)
    seen, events = [], []
    for i in range(records):
        r = {"step": 1000 + 100 * i, "d_loss": 1.3, "g_loss": 0.7, "g_grad_norm": 0.5,
             "d_grad_norm": 0.5, **probe(batches, objective, {})}
        seen.append(r)
        events += monitor.update(r)
    return seen, events


def test_a_partial_collapse_on_the_ring_is_a_mode_collapse():
    seen, events = run("toy:ring8", modes=[0, 3, 5])
    assert {(r["probe_classes"], r["probe_classes_real"]) for r in seen} == {(3.0, 8.0)}
    assert min(r["diversity"] / r["diversity_real"] for r in seen) > 0.3  # pixels do not show it
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 1200)]
    assert events[0]["evidence"]["probe_classes"] == 3.0
    assert events[0]["message"].startswith("samples cover 3 modes against real data's 8"), events[0]["message"]


def test_a_grid_collapse_fires_and_a_full_generator_does_not():
    seen, events = run("toy:grid25", modes=[0, 12])
    assert {r["probe_classes"] for r in seen} == {2.0}
    assert [e["event"] for e in events] == ["mode_collapse"]
    for data in ("toy:ring8", "toy:grid25"):
        seen, events = run(data)
        assert {r["probe_classes"] for r in seen} == {float(len(toy_mixture(data).modes))}
        assert events == []


def test_a_young_generator_on_every_grid_mode_is_no_collapse():
    """A healthy toy-grid25 run had 5-13% of its samples within 3 sigma at steps 800-1400: its 64
    probe samples captured few modes (called a collapse against the real 25), its 2,500 do not."""
    seen, events = run("toy:grid25", young=True)
    assert {r["probe_classes"] for r in seen} == {25.0}
    assert events == []


def test_the_report_names_a_toy_runs_coverage_in_modes(tmp_path):
    """The chart of probe_classes said "Classes the dataset classifier finds" for a mixture."""
    import json

    import yaml

    from ganforge.report import plots
    from ganforge.report.run import load_run

    for data, title in (("toy:ring8", plots.TOY_COVERAGE_TITLE),
                        ("fashion-mnist", "Classes the dataset classifier finds in the probe batch")):
        run_dir = tmp_path / data.replace(":", "-")
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"objective": "unconditional", "data": {"name": data}}))
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(
            {"step": s, "d_loss": 1.0, "probe_classes": 3.0, "probe_classes_real": 8.0}) + "\n" for s in (1, 2)))
        titles = {gid: t for gid, t, _ in plots.curve_figures(load_run(run_dir))}
        assert titles["probe-classes"] == title
