"""Progressive growing: the fade-in of G and D, the stage schedule, the real images' blend, exact
resume in the middle of a fade, per-stage learning rates, stage events, the monitor's knowledge of
stages, and the one-line errors of a bad schedule."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganforge import api, cli
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.models.progan import ProGANDiscriminator, ProGANGenerator, stage_resolutions
from ganforge.objectives.progan import ProgressiveConfig, ProgressiveGAN, Stage, plan, position
from ganforge.training import checkpoint as ckpt
from ganforge.training.monitor import Monitor


def _nets(seed=0):
    torch.manual_seed(seed)
    G = ProGANGenerator(resolution=16, channels=2, z_dim=6, width=4, max_width=8)
    D = ProGANDiscriminator(resolution=16, channels=2, width=4, max_width=8, mbstd=2)
    # move the biases off zero so that every path contributes
    for p in [*G.parameters(), *D.parameters()]:
        if p.dim() == 1:
            p.data.normal_(0, 0.1)
    return G.eval(), D.eval()


def test_stage_resolutions_and_channels():
    assert stage_resolutions(32) == [4, 8, 16, 32]
    G, D = _nets()
    assert [m.weight.shape[1] for m in G.to_rgb] == [8, 8, 4]  # 4 at 16x16, doubling, cap 8
    z = torch.randn(3, 6)
    assert [tuple(G(z, s).shape) for s in range(3)] == [(3, 2, 4, 4), (3, 2, 8, 8), (3, 2, 16, 16)]


@pytest.mark.parametrize("stage", [1, 2])
def test_generator_fade_alpha_0_is_the_previous_stage_upsampled_and_1_is_the_new_block(stage):
    G, _ = _nets()
    z = torch.randn(5, 6)
    with torch.no_grad():
        old = G(z, stage - 1)
        new_alone = G.to_rgb[stage](G.blocks[stage](F.interpolate(G.features(z, stage - 1),
                                                                  scale_factor=2)))
        assert torch.equal(G(z, stage, 0.0), F.interpolate(old, scale_factor=2, mode="nearest"))
        assert torch.equal(G(z, stage, 1.0), new_alone)
        assert torch.equal(G(z, stage), new_alone)
        mid = G(z, stage, 0.3)
        expected = 0.7 * F.interpolate(old, scale_factor=2) + 0.3 * new_alone
        assert torch.allclose(mid, expected, atol=1e-5)
        assert not torch.allclose(mid, new_alone, atol=1e-3)


@pytest.mark.parametrize("stage", [1, 2])
def test_discriminator_fade_alpha_0_is_the_old_d_on_the_downsampled_input(stage):
    _, D = _nets()
    r = 4 * 2 ** stage
    x = torch.randn(4, 2, r, r)
    with torch.no_grad():
        old = D(F.avg_pool2d(x, 2))  # the previous stage's D (it reads the stage from the size)
        assert torch.equal(D(x, alpha=0.0), old)
        h = D.blocks[stage](D.from_rgb[stage](x))
        for i in range(stage - 1, 0, -1):
            h = D.blocks[i](h)
        alone = D.head(h).reshape(-1)
        assert torch.equal(D(x, alpha=1.0), alone)
        assert not torch.allclose(D(x, alpha=0.5), alone)


def test_schedule_position_against_hand_computation():
    stages = [Stage(4, 0, 100, 8, 1.0), Stage(8, 50, 100, 8, 1.0), Stage(16, 40, 10, 4, 0.5)]
    # stage 0 stable for 100; 8x8 fades over 100..150, stable 150..250; 16x16 fades 250..290.
    assert position(0, stages) == (0, 1.0)
    assert position(99, stages) == (0, 1.0)
    assert position(100, stages) == (1, 0.0)
    assert position(120, stages) == (1, 0.4)
    assert position(149, stages) == (1, 0.98)
    assert position(150, stages) == (1, 1.0)
    assert position(249, stages) == (1, 1.0)
    assert position(260, stages) == (2, 0.25)
    assert position(290, stages) == (2, 1.0)
    assert position(10 ** 9, stages) == (2, 1.0)  # the last stage trains on


def test_plan_broadcasts_lists_and_rejects_bad_schedules():
    p = ProgressiveConfig(fade_images=[10], stable_images=[5, 6, 7], batch_sizes=[8, 8, 4],
                          lr_mult=[1.0])
    assert plan(p, 16, 8) == [Stage(4, 0, 5, 8, 1.0), Stage(8, 10, 6, 8, 1.0), Stage(16, 10, 7, 4, 1.0)]
    assert [s.resolution for s in plan(ProgressiveConfig(resolutions=[8, 16, 32]), 32, 8)] == [8, 16, 32]
    bad = {
        "does not reach data.resolution=32": (ProgressiveConfig(resolutions=[4, 8, 16]), 32),
        "must double": (ProgressiveConfig(resolutions=[4, 16, 32]), 32),
        "4 times a power of two": (ProgressiveConfig(), 28),
        "fade_images has 2 values for 3 fades": (ProgressiveConfig(fade_images=[1, 2]), 32),
        "batch_sizes": (ProgressiveConfig(batch_sizes=[16]), 32),
    }
    for message, (p, res) in bad.items():
        with pytest.raises(ConfigError, match=message) as info:
            plan(p, res, 8)
        assert "\n" not in str(info.value)


def _objective(tmp_path, *overrides):
    raw = apply_overrides(ProgressiveGAN.example_config(tmp_path), list(overrides))
    cfg = from_dict(raw)
    objective, _ = api.build(cfg)
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    return objective, raw


def test_real_images_are_downsampled_and_blended_during_a_fade(tmp_path):
    obj, _ = _objective(tmp_path)  # 8x8 data, stages 4 and 8
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8) / 64
    obj.set_images(0)  # stage 4x4: 2x2 means
    four = obj.stage_real(x)
    assert four.shape == (1, 1, 4, 4)
    assert four[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 8 + 9) / 4 / 64)
    obj.set_images(8)  # 8x8 fading in: (8 - 6) / 8 = 0.25
    assert (obj.stage, obj.alpha) == (1, 0.25)
    blend = obj.stage_real(x)
    # pixel (0, 1): 0.75 x the mean of its 2x2 cell (4.5 / 64) + 0.25 x itself (1 / 64)
    assert blend[0, 0, 0, 1].item() == pytest.approx((0.75 * 4.5 + 0.25 * 1) / 64)
    assert blend[0, 0, 3, 2].item() == pytest.approx((0.75 * ((18 + 19 + 26 + 27) / 4) + 0.25 * 26) / 64)
    obj.set_images(14)
    assert obj.alpha == 1.0 and torch.equal(obj.stage_real(x), x)


def test_sample_is_drawn_at_the_stage_and_upsampled_to_the_final_resolution(tmp_path):
    obj, _ = _objective(tmp_path)
    x = obj.sample(3, generator=torch.Generator().manual_seed(1))
    assert x.shape == (3, 1, 8, 8)
    assert torch.equal(x[..., ::2, ::2], x[..., 1::2, 1::2])  # 4x4 blocks of 2x2 pixels
    assert "stage 1/2: 4x4 (stable)" in obj.preview_caption()


def test_a_run_stopped_before_its_last_stage_exports_and_serves_what_it_samples(tmp_path):
    """At 4x4 of 8x8 a run samples 8x8 images; the graph that ONNX export writes and the server
    batches is the same (it was G's 4x4 call, which export refused as a mismatch)."""
    import numpy as np

    import ganforge
    from ganforge.serve import export
    from ganforge.serve.graph import build_graph, record_sample, verify

    raw = apply_overrides(ProgressiveGAN.example_config(tmp_path), ["progressive.stable_images=[1000]"])
    api.train(from_dict(raw), tmp_path / "run", progress=False)
    run = ganforge.load(tmp_path / "run")
    assert run.objective.current.resolution == 4
    graph, _ = build_graph(run, "sample", "AtoB")
    assert verify(run, graph, "sample") == 0.0
    result = export.export_onnx(run, tmp_path / "g.onnx")
    assert result["max_abs_diff"] <= 1e-4
    call = record_sample(run, 5, seed=7)
    got = export.ort_session(tmp_path / "g.onnx").run(None, {"z": call.arguments["z"].numpy()})[0]
    ref = run.sample(5, seed=7).numpy()
    assert got.shape == ref.shape == (5, 1, 8, 8) and np.abs(got - ref).max() <= 1e-4


def test_resume_in_the_middle_of_a_fade_is_bit_exact_and_learning_rates_follow_the_stage(tmp_path):
    _, raw = _objective(tmp_path / "data", "train.steps=5", "train.checkpoint_every=10")
    once, half = tmp_path / "once", tmp_path / "half"
    api.train(from_dict(raw), once, progress=False)
    api.train(from_dict(apply_overrides(raw, ["train.steps=3"])), half, progress=False)
    _, state = ckpt.load(ckpt.find(half))
    assert state["objective"]["stage"] == 1 and 0 < state["objective"]["alpha"] < 1  # mid-fade
    assert state["objective"]["images"] == 12
    # the optimizers carry stage 2's learning rate (lr_mult 0.5)
    assert state["optimizers"]["G"]["param_groups"][0]["lr"] == pytest.approx(0.5 * 2e-4)
    api.train(api.resume_config(half, ["train.steps=5"]), half, progress=False, resume=True)
    a, b = (ckpt.load(ckpt.find(r)) for r in (once, half))
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1]["objective"] == b[1]["objective"]

    events = [json.loads(line) for line in (once / "metrics.jsonl").read_text().splitlines()]
    stages = [(e["step"], e["evidence"]["phase"]) for e in events if e.get("event") == "stage"]
    assert stages == [(2, "fade_in"), (4, "stable")]  # 8 images after 2 steps, 8 + 8 after 4
    assert not [e for e in events if e.get("event") not in (None, "stage", "end")]  # end: how it ended
    grid = Image.open(sorted((once / "samples").glob("*.png"))[-1])
    assert grid.height > 2 * (8 + 2)  # the caption strip under the 2x2 grid of 8x8 images
    run = api.load(once)
    assert (run.objective.stage, run.objective.alpha) == (1, 1.0)  # ganforge.load knows the stage


# ----------------------------------------------------------------------------- monitor


def _record(step, d_loss, d_grad, g_loss=0.4, g_grad=0.5):
    return {"step": step, "d_loss": d_loss, "g_loss": g_loss, "d_grad_norm": d_grad,
            "g_grad_norm": g_grad}


FADE = {"event": "stage", "step": 0, "message": "fade-in",
        "evidence": {"phase": "fade_in", "resolution": 16}}


def _fade_run(monitor: Monitor, *, tell: bool) -> list[dict]:
    """40 stable records, a fade-in whose first intervals spike D's loss (-1 -> -14) and D's
    gradient norm (1 -> 250, as WGAN-GP's critic meets a new block), then settling at a new level."""
    events, step = [], 0
    for i in range(40):
        step += 50
        events += monitor.update(_record(step, -1.0 + 0.03 * math.sin(i), 1.0 + 0.05 * math.cos(i)))
    if tell:
        monitor.note({**FADE, "step": step})
    spike = [(-14, 250), (-9, 140), (-5, 60), (-3, 25), (-2.2, 9), (-1.8, 5), (-1.6, 4), (-1.5, 3.5)]
    settled = [(-1.5 + 0.03 * math.sin(j), 3.0) for j in range(20)]
    for d_loss, d_grad in spike + settled:
        step += 50
        events += monitor.update(_record(step, d_loss, d_grad))
    return events


def test_a_fade_in_loss_jump_is_not_taken_for_a_divergence_when_the_monitor_knows_the_stage():
    blind = _fade_run(Monitor(), tell=False)
    assert [e["event"] for e in blind] == ["divergence"]  # what the jump looks like unannounced
    monitor = Monitor()
    assert _fade_run(monitor, tell=True) == []
    assert monitor.stage_changes == 1
    assert Monitor().load_state_dict(monitor.state_dict()) is None


def test_a_real_divergence_after_a_fade_still_fires():
    monitor = Monitor()
    assert _fade_run(monitor, tell=True) == []
    events = monitor.update(_record(99_000, float("nan"), 3.0))
    assert [e["event"] for e in events] == ["divergence"]
    monitor.update(_record(99_050, -1.5, 3.0))  # re-armed
    exploding = monitor.update(_record(99_100, -1.5, 900.0))  # 300x the new stage's median
    assert [e["event"] for e in exploding] == ["divergence"]
    assert exploding[0]["evidence"]["median"] == pytest.approx(3.0)


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize("override, message", [
    ("progressive.resolutions=[4]", "does not reach data.resolution=8"),
    ("data.resolution=12", "4 times a power of two"),
    # a longer list uses its first values (tests/test_family_checks.py); a shorter one is refused
    ("data.resolution=16 progressive.stable_images=[1,2]", "stable_images has 2 values for 3 stages"),
])
def test_bad_schedules_are_one_line_errors_with_exit_code_2(tmp_path, capsys, override, message):
    raw = ProgressiveGAN.example_config(tmp_path / "data")
    (tmp_path / "p.yaml").write_text(json.dumps(raw))
    out = tmp_path / "run"
    rc = cli.main(["train", str(tmp_path / "p.yaml"), *override.split(), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("world_size, accumulate", [(1, 1), (2, 1), (1, 2)])
def test_stage_batches_are_global_under_torchrun_and_count_every_micro_batch(tmp_path, monkeypatch, world_size,
                                                                             accumulate):
    """progressive.batch_sizes=[4, 2] of train.batch_size 8: one process uses the first 2 images of
    stage 1's batch; each of 2 ranks (holding 4 rows of every global batch) uses 1, so the step
    still sees 2 images, the number the schedule counts; with train.accumulate=2 each micro-batch is
    a global batch of its own and the schedule counts both."""
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setenv("RANK", "0")
    obj, _ = _objective(tmp_path, "train.batch_size=8", "progressive.batch_sizes=[4,2]",
                        f"train.accumulate={accumulate}")
    seen = []
    real_view = obj.stage_real
    monkeypatch.setattr(obj, "stage_real", lambda real: seen.append(len(real)) or real_view(real))
    obj.set_images(8)  # stage 2 (8x8) fading in: batch 2
    assert obj.current.batch == 2
    share = torch.zeros(8 // world_size, 1, 8, 8)
    obj.loss("D", {"real": share, "labels": None})
    assert seen == [2 // world_size]
    obj.after_step("D")
    assert obj.images == 8 + 2 * accumulate


def test_stage_batches_that_do_not_divide_among_the_ranks_are_one_line(tmp_path, capsys):
    """Checked for training (also on resume, also by --nproc before torchrun starts), not when a
    run is loaded or its saved config is compared on resume."""
    _, raw = _objective(tmp_path, "train.batch_size=8", "progressive.batch_sizes=[4,3]")
    cfg = from_dict(raw)
    for new in (True, False):
        with pytest.raises(ConfigError, match=r"progressive.batch_sizes \[4, 3\] .* do not all divide among 2 "
                                              r"processes; use multiples of 2"):
            ProgressiveGAN.check_run(cfg, 2, new=new)
    ProgressiveGAN.check_run(cfg, 1, new=True)
    code = cli.main(["train", "progan-fashion-mnist", "progressive.batch_sizes=[32,31,32,32]", "--nproc", "2",
                     "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err
    assert code == 2 and "do not all divide among 2 processes" in err and not (tmp_path / "never").exists()


def test_a_schedule_changed_on_resume_may_move_the_run_forward_not_back(tmp_path):
    """The stage follows from the images seen and the schedule: a resume that changes the schedule
    had moved a run from 32x32 back to an 8x8 fade with no word; back is refused now, forward is
    said and logged as a stage event."""
    _, raw = _objective(tmp_path / "data", "train.steps=3", "train.checkpoint_every=10")
    run = tmp_path / "run"
    api.train(from_dict(raw), run, progress=False)  # 12 images: 8x8 fading in, alpha 0.75
    _, state = ckpt.load(ckpt.find(run))
    assert (state["objective"]["resolution"], state["objective"]["alpha"]) == (8, 0.75)
    with pytest.raises(ConfigError, match=r"this progressive schedule puts the run back from 8x8 \(fade-in alpha "
                                          r"0.75\) to 4x4 \(stable\) after 12 images; on resume a schedule may "
                                          r"only keep the run where it is or move it forward"):
        api.train(api.resume_config(run, ["train.steps=5", "progressive.stable_images=[100]"]), run,
                  resume=True, progress=False)
    api.train(api.resume_config(run, ["train.steps=4", "progressive.fade_images=[4]"]), run, resume=True,
              progress=False)  # 6 stable + 4 fading: 8x8 stable at 12 images
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"event"' in line]
    moved = [e for e in events if e["event"] == "stage" and "changed schedule" in e["message"]]
    assert [e["message"] for e in moved] == ["the changed schedule moves the run from 8x8 (fade-in alpha 0.75) "
                                             "to 8x8 (stable) after 12 images"]
    assert moved[0]["evidence"]["phase"] == "stable"


def test_model_settings_progressive_growing_never_reads_are_refused_for_new_runs(tmp_path):
    _, raw = _objective(tmp_path, "model.d_norm=layer")  # builds: a run trained with it still loads
    with pytest.raises(ConfigError, match=r"model.d_norm is not used by objective=progressive \(its networks take "
                                          r"model.d_width, model.g_width, model.mbstd_group, model.z_dim only\)"):
        api.train(from_dict(raw), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    ProgressiveGAN.check_run(from_dict(raw), 1, new=False)  # a resume of such a run is not refused
