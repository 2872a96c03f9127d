"""The PacGAN mode-collapse benchmark: metrics on samples with known answers, and a tiny run of
the whole command (train through the public path, JSON, scatter plot)."""
import json
import math

import pytest
import torch

from ganforge.bench import modes as bench
from ganforge.data.toy import grid_modes, ring_modes
from ganforge.errors import ConfigError


def test_perfect_samples_capture_every_mode():
    modes = grid_modes(5, 2.0)
    samples = modes.repeat(100, 1)  # 2,500 samples, 100 exactly on each mode
    m = bench.mode_metrics(samples, modes, 0.05)
    assert m == {"modes": 25, "hq": 1.0, "rkl": pytest.approx(0.0, abs=1e-12)}


def test_collapsed_samples():
    modes = ring_modes(8, 1.0)
    samples = modes[3] + 0.005 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))
    m = bench.mode_metrics(samples, modes, 0.01)
    assert m["modes"] == 1 and m["hq"] == pytest.approx(1.0, abs=0.01)  # 0.5 sigma: nearly all HQ
    assert m["rkl"] == pytest.approx(math.log(8))  # KL(delta || uniform over 8)


def test_high_quality_radius_and_histogram():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    # 3 samples near mode 0 (one at exactly 3 sigma, one just beyond), 1 far from both, nearer 1
    samples = torch.tensor([[0.0, 0.5], [1.5, 0.0], [0.0, 1.625], [6.0, 4.0]])
    m = bench.mode_metrics(samples, modes, 0.5)
    assert m["hq"] == 0.5 and m["modes"] == 1
    # nearest-mode histogram q = (3/4, 1/4) against p = (1/2, 1/2)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert m["rkl"] == pytest.approx(expected)
    # a mode whose only samples are low quality is not captured
    far = bench.mode_metrics(torch.tensor([[8.0, 0.0], [0.0, 0.0]]), modes, 0.5)
    assert far["modes"] == 1 and far["hq"] == 0.5


def test_parse_variant():
    v = bench.parse_variant("hinge+sn: loss.name=hinge model.d_spectral_norm=true", "toy-grid25")
    assert (v.label, v.preset, v.overrides) == ("hinge+sn", "toy-grid25",
                                               ["loss.name=hinge", "model.d_spectral_norm=true"])
    v = bench.parse_variant("loss.name=lsgan", "toy-ring8")
    assert (v.label, v.overrides) == ("loss.name=lsgan", ["loss.name=lsgan"])


def _parser():
    from ganforge.cli import _Parser
    from ganforge.commands import bench as bench_cmd

    p = _Parser(prog="ganforge")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    bench_cmd.register(sub, _Parser)
    return p


TINY = ["model.g_width=8", "model.d_width=8", "model.g_depth=1", "model.d_depth=1", "model.z_dim=2",
        "train.batch_size=16", "train.log_every=5", "model.pac=1"]


def test_bench_modes_command_end_to_end(tmp_path, capsys):
    """ganforge bench modes: trains each seed via api.train, prints mean ± std, writes JSON and a
    scatter plot per configuration."""
    args = _parser().parse_args(["bench", "modes", "--data", "toy:ring8", "--seeds", "2",
                                 "--steps", "10", "--out", str(tmp_path / "out"),
                                 "--json", str(tmp_path / "r.json"),
                                 "--variant", "ns: loss.name=nonsaturating",
                                 "--variant", "hinge: loss.name=hinge reg.r1=0.1", *TINY])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ns: modes" in out and "hinge: modes" in out and "±" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["summary"]) >= {"modes_mean", "modes_std", "hq_mean", "rkl_mean"}
    assert [c["label"] for c in result["configs"]] == ["ns", "hinge"]
    for c in result["configs"]:
        assert [s["seed"] for s in c["seeds"]] == [0, 1]
        assert all(0 <= s["modes"] <= 8 and 0 <= s["hq"] <= 1 for s in c["seeds"])
        assert (tmp_path / "out" / c["label"] / "scatter.png").stat().st_size > 1000
        assert (tmp_path / "out" / c["label"] / "seed_1" / "checkpoints" / "latest").is_file()
    assert result["configs"][1]["overrides"][-2:] == ["loss.name=hinge", "reg.r1=0.1"]


def test_bench_modes_rejects_bad_input(tmp_path):
    args = _parser().parse_args(["bench", "modes", "--data", "fashion-mnist", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="toy dataset"):
        args.func(args)
    args = _parser().parse_args(["bench", "modes", "--data", "toy:ring8", "--out", str(tmp_path),
                                 "loss.name=hing"])
    with pytest.raises(ConfigError, match="unknown loss 'hing'"):
        args.func(args)


def test_bench_modes_refuses_an_existing_out_before_deleting_anything(tmp_path):
    """Run again on an existing --out, bench modes deleted the earlier runs and overwrote
    modes.json without --force; with --force, a folder that is not a run is refused before any
    seed trains, and two variants with one label (one folder) are refused."""
    out = tmp_path / "out"
    run = out / "v" / "seed_0"  # an earlier call's run
    run.mkdir(parents=True)
    for name in ("config.yaml", "metrics.jsonl", "keep"):
        (run / name).write_text("x")
    argv = ["bench", "modes", "--data", "toy:ring8", "--seeds", "2", "--steps", "10", "--out", str(out),
            "--variant", "v: loss.name=hinge", *TINY]
    args = _parser().parse_args(argv)
    with pytest.raises(ConfigError, match="already exists; pass --force to replace its runs"):
        args.func(args)
    (out / "v" / "seed_1").mkdir()
    (out / "v" / "seed_1" / "notes.txt").write_text("x")  # not a ganforge run: --force may not delete it
    args = _parser().parse_args([*argv, "--force"])
    with pytest.raises(ConfigError, match=r"--force \(Python: force=True\) refused: .*seed_1 is not a ganforge run"):
        args.func(args)
    assert (run / "keep").is_file() and (out / "v" / "seed_1" / "notes.txt").is_file()
    assert not (out / "modes.json").exists()
    args = _parser().parse_args(["bench", "modes", "--data", "toy:ring8", "--out", str(tmp_path / "new"),
                                 "--variant", "a: loss.name=hinge", "--variant", "a: loss.name=lsgan"])
    with pytest.raises(ConfigError, match="two --variant configurations are labelled 'a'"):
        args.func(args)


@pytest.mark.parametrize("preset", ["toy-ring8", "toy-grid25"])
def test_toy_presets_load(preset):
    from ganforge.config import load_config

    _, cfg = load_config(preset)
    assert cfg.data.name == f"toy:{preset[4:]}" and cfg.model.name == "mlp"


def test_interrupted_seed_ends_the_benchmark_instead_of_being_scored(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM makes the Trainer stop cleanly with a checkpoint; the benchmark must not
    then evaluate that half-trained run as a seed's result and go on to the next seed."""
    from ganforge import api
    from ganforge.errors import TrainingInterrupted
    from ganforge.training.trainer import FitResult

    calls = []

    def stopped_train(cfg, run_dir, **kwargs):
        calls.append(run_dir)
        raise TrainingInterrupted(FitResult(step=83, run_dir=run_dir, checkpoint=None, interrupted="SIGTERM"), "")

    monkeypatch.setattr(api, "train", stopped_train)
    variant = bench.Variant("v", "toy-ring8", ["train.steps=10"])
    with pytest.raises(KeyboardInterrupt, match="stopped by SIGTERM at step 83"):
        bench.run_benchmark([variant], "toy:ring8", [0, 1], tmp_path, log=lambda *_: None)
    assert len(calls) == 1  # seed 1 never started
