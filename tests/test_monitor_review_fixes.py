"""Review fixes of the training monitor, rollback and report (see each test's docstring)."""
import json
import os
import signal

import pytest

from ganforge import api
from ganforge.errors import TrainingDiverged, TrainingInterrupted
from ganforge.report.page import build_html as render
from ganforge.report.run import load_run
from ganforge.training import checkpoint as ckpt
from ganforge.training.monitor import Monitor

from conftest import random_dataset, tiny_config


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- 4. how a run ended


def test_a_finished_run_ends_with_an_end_record_and_the_report_says_done(tmp_path):
    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset())
    end = _lines(run)[-1]
    assert end["event"] == "end" and end["how"] == "done" and end["step"] == 6
    assert end["checkpoint"] == "step_0000006"
    r = load_run(run)
    assert r.end["how"] == "done" and all(e["event"] != "end" for e in r.events)
    assert "done <small>at step 6</small>" in render(r)


def test_resuming_a_finished_run_to_train_longer_drops_its_end_record_quietly(tmp_path, capsys):
    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset())
    capsys.readouterr()
    api.train(api.resume_config(run, ["train.steps=9"]), run, resume=True, progress=False, dataset=random_dataset())
    assert "dropped" not in capsys.readouterr().out
    ends = [(r["how"], r["step"]) for r in _lines(run) if r.get("event") == "end"]
    assert ends == [("done", 9)]


def test_a_signal_writes_an_interrupted_end_and_a_resumed_run_that_finishes_says_done(tmp_path, monkeypatch):
    real = ckpt.save

    def save(root, step, *a, **k):
        out = real(root, step, *a, **k)
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(ckpt, "save", save)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stop:
        api.train(tiny_config(**{"train.log_every": 1}), run, progress=False, dataset=random_dataset())
    assert stop.value.result.interrupted == "SIGINT"
    end = _lines(run)[-1]
    assert (end["event"], end["how"], end["signal"], end["step"]) == ("end", "interrupted", "SIGINT", 3)
    html = render(load_run(run))
    # given dataset= from Python: resumed from Python (the CLI's resume refuses such a run)
    assert (f"stopped by SIGINT <small>at step 3; resume with ganforge.train(cfg, &#x27;{run}&#x27;, resume=True, "
            f"dataset=...)") in html
    monkeypatch.setattr(ckpt, "save", real)
    api.train(api.resume_config(run, []), run, resume=True, progress=False, dataset=random_dataset())
    r = load_run(run)
    assert r.end["how"] == "done" and r.end["step"] == 6 and r.last_step == 6
    assert "done <small>at step 6</small>" in render(r)


def test_a_diverged_run_records_its_end_and_the_report_names_rollbacks_and_checkpoint(tmp_path):
    from test_rollback import POISON_STEPS, NanAtSteps

    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
    run = tmp_path / "run"
    cfg = tiny_config(**{"objective": "nan-at-steps", "train.steps": 12, "train.log_every": 2,
                         "train.checkpoint_every": 4, "train.max_rollbacks": 1})
    with pytest.raises(TrainingDiverged):
        api.train(cfg, run, progress=False, dataset=random_dataset())
    POISON_STEPS.clear()
    end = _lines(run)[-1]
    assert end["event"] == "end" and end["how"] == "diverged" and end["rollbacks"] == 1
    assert end["checkpoint"] == "step_0000004"
    html = render(load_run(run))
    assert "diverged</span> <small>at step" in html and "after 1 rollback; last good checkpoint step_0000004" in html


def test_an_end_record_followed_by_more_records_is_ignored(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"step": 2, "d_loss": 1.0, "time": 1}\n{"event": "end", "step": 2, "how": "interrupted", "signal": "SIGINT"}\n'
        '{"step": 4, "d_loss": 1.0, "time": 2}\n')
    assert load_run(run).end is None


# ----------------------------------------------------------------------------- replayed records
# (metrics.jsonl of the reviewer runs, 4 significant digits)
KEYS = ('step', 'd_loss', 'g_loss', 'd_real', 'd_fake', 'd_acc_real', 'd_acc_fake', 'g_grad_norm',
        'd_grad_norm', 'diversity', 'diversity_real')

DC_VAN3 = [
    (50, 0.01097, -0.0004643, 0.9955, 0.00355, 0.9959, 0.9994, 0.03215, 0.1714, 9.725, 22.13),
    (100, 0.000197, -5.162e-05, 0.9999, 6.399e-05, 1.0, 1.0, 0.006099, 0.00531, 9.864, 22.13),
    (150, 9.036e-05, -2.579e-05, 0.9999, 2.86e-05, 1.0, 1.0, 0.003722, 0.002535, 9.962, 22.13),
    (200, 9.306e-05, -2.185e-05, 0.9999, 2.86e-05, 1.0, 1.0, 0.004022, 0.002994, 10.05, 22.13),
    (250, 9.332e-05, -4.5e-05, 0.9999, 2.908e-05, 1.0, 1.0, 0.007977, 0.003596, 10.15, 22.13),
    (300, 4.983e-05, -1.131e-05, 1.0, 1.473e-05, 1.0, 1.0, 0.002489, 0.001682, 10.18, 22.13),
    (350, 2.682e-05, -1.227e-05, 1.0, 9.325e-06, 1.0, 1.0, 0.00362, 0.0008927, 10.23, 22.13),
    (400, 3.997e-05, -5.186e-06, 1.0, 1.304e-05, 1.0, 1.0, 0.001197, 0.001875, 10.31, 22.13),
    (450, 0.107, -0.0001249, 0.9933, 0.005726, 0.9936, 0.9945, 0.1553, 0.4083, 10.22, 22.13),
]
DC_VAN2 = [
    (50, 0.008667, -0.0002777, 0.9966, 0.002981, 0.9962, 0.9994, 0.023, 0.1305, 10.12, 22.34),
    (100, 0.0001024, -3.604e-05, 0.9999, 3.735e-05, 1.0, 1.0, 0.006676, 0.002861, 10.27, 22.34),
    (150, 4.035e-05, -1.434e-05, 1.0, 1.429e-05, 1.0, 1.0, 0.003229, 0.001182, 10.35, 22.34),
    (200, 2.78e-05, -9.292e-06, 1.0, 9.651e-06, 1.0, 1.0, 0.002295, 0.0008551, 10.39, 22.34),
    (250, 2.164e-05, -7.943e-06, 1.0, 7.665e-06, 1.0, 1.0, 0.002215, 0.0006767, 10.46, 22.34),
    (300, 1.733e-05, -5.686e-06, 1.0, 5.877e-06, 1.0, 1.0, 0.001699, 0.0005885, 10.47, 22.34),
]
DC_BF16 = [
    (50, 244.2, 3812.0, 0.896, 0.1079, 0.89, 0.8975, 35.64, 31.42, 0.0, 22.34),
    (100, 574.1, 5961.0, 0.8479, 0.14, 0.8478, 0.86, 0.0, 78.19, 0.0, 22.34),
    (150, 1022.0, 4153.0, 0.7947, 0.2, 0.7947, 0.8, 0.0, 137.8, 0.0, 22.34),
]
DC_HEALTHY = [
    (50, 0.7972, 2.455, 0.7212, 0.2785, 0.8209, 0.8406, 18.82, 12.05, 20.3, 22.34),
    (100, 0.767, 1.907, 0.7159, 0.2824, 0.8538, 0.8572, 8.995, 10.69, 21.92, 22.34),
    (150, 0.7115, 1.771, 0.7225, 0.2649, 0.8741, 0.895, 8.572, 8.846, 19.23, 22.34),
    (200, 0.7916, 1.722, 0.7083, 0.2889, 0.835, 0.8459, 7.908, 10.97, 21.22, 22.34),
    (250, 0.7924, 1.647, 0.7047, 0.2944, 0.8506, 0.8519, 7.532, 9.031, 21.57, 22.34),
    (300, 0.8906, 1.486, 0.6709, 0.3251, 0.8131, 0.8187, 7.274, 8.485, 21.93, 22.34),
]


def _records(rows):
    return [dict(zip(KEYS, row)) for row in rows]


def _feed(monitor, records):
    return [e for r in records for e in monitor.update(r)]


def _minimax_cfg(**kw):
    return tiny_config(**{"loss.name": "minimax", "train.n_critic": 5, "optim.d_lr": 1e-3,
                          "optim.g_lr": 1e-5, **kw})


# ----------------------------------------------------------------------------- 1. recovery is no divergence


def test_a_discriminator_recovering_from_saturation_is_no_divergence():
    """r-dc-van3: d_grad_norm went from a median of 0.0028 back to 0.41 (148x) and the run was
    rolled back to step 0; healthy grad norms of the preset are 7-18. An explosion must now also
    exceed monitor.explode_min (1.0) in absolute terms."""
    events = _feed(Monitor(_minimax_cfg()), _records(DC_VAN3))
    assert not [e for e in events if e["event"] == "divergence"]
    # a real explosion relative to the median still fires
    spike = _records(DC_HEALTHY) + [{**_records(DC_HEALTHY)[-1], "step": 350, "d_grad_norm": 1500.0}]
    events = _feed(Monitor(tiny_config()), spike)
    assert [e["event"] for e in events] == ["divergence"] and "d_grad_norm 1500" in events[0]["message"]


# ----------------------------------------------------------------------------- 2. rollback targets


def test_a_record_flagged_by_a_detector_or_with_a_huge_d_loss_is_no_rollback_target():
    """r-dc-bf16: d_loss 244 at step 50, 574 and no G gradient at 100: each record counted as
    healthy (only divergence was asked), so the rollback restored the broken step 100."""
    monitor = Monitor(tiny_config(**{"train.precision": "bf16", "optim.d_lr": 1, "optim.g_lr": 1}))
    healthy = []
    for r in _records(DC_BF16):
        monitor.update(r)
        healthy.append(monitor.healthy)
    assert healthy == [False, False, False]
    fresh = Monitor(tiny_config())
    for r in _records(DC_HEALTHY):
        fresh.update(r)
        assert fresh.healthy


def test_no_gradient_reaching_g_fires_after_two_records_and_names_a_huge_g_lr():
    """The bf16 run at lr 1: g_grad_norm exactly 0 (samples identical) at steps 100 and 150;
    the vanishing detector needed 3 records and the run ended 'done' without a word. Its advice
    only halved optim.d_lr: a G rate far above every preset's is now named."""
    events = _feed(Monitor(tiny_config(**{"optim.d_lr": 1, "optim.g_lr": 1})), _records(DC_BF16))
    vanishing = [e for e in events if e["event"] == "vanishing_gradients"]
    assert len(vanishing) == 1 and vanishing[0]["step"] == 150
    assert "optim.g_lr 1 is far above the presets'" in vanishing[0]["suggestion"]
    ordinary = _feed(Monitor(tiny_config(**{"optim.g_lr": 2e-4})), _records(DC_BF16))
    assert "far above" not in [e for e in ordinary if e["event"] == "vanishing_gradients"][0]["suggestion"]


def test_rollback_goes_to_the_checkpoint_before_the_trouble_started(tmp_path, monkeypatch):
    """A record that is not divergent but that a detector flags (here: every record from step 4
    on) no longer moves the rollback target: the NaN at step 7 rolls back to step 2, not 6."""
    from test_rollback import POISON_STEPS, NanAtSteps

    real = Monitor.update

    def update(self, record):
        events = real(self, record)
        if record["step"] >= 4:
            self.troubled = ["vanishing_gradients"]
        return events

    monkeypatch.setattr(Monitor, "update", update)
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({7})
    run = tmp_path / "run"
    cfg = tiny_config(**{"objective": "nan-at-steps", "train.steps": 8, "train.log_every": 2,
                         "train.checkpoint_every": 2})
    api.train(cfg, run, progress=False, dataset=random_dataset())
    POISON_STEPS.clear()
    rollback = [e for e in _lines(run) if e.get("event") == "rollback"]
    assert len(rollback) == 1 and rollback[0]["evidence"]["to_step"] == 2


# ----------------------------------------------------------------------------- 3. vanishing from the start


def test_vanishing_gradients_from_the_first_record_are_reported():
    """r-dc-van2: D(G(z)) 3e-3 then 1e-5, D accuracy 1, g_grad_norm 0.023 then 0.0017 (healthy
    7-18): the early reference had already vanished and no event fired. While D wins outright a
    G grad norm at most monitor.vanish_abs (0.1) now counts as vanished."""
    events = _feed(Monitor(_minimax_cfg()), _records(DC_VAN2))
    assert [(e["event"], e["step"]) for e in events] == [("vanishing_gradients", 150)]
    assert "at most monitor.vanish_abs 0.1" in events[0]["message"]
    assert _feed(Monitor(tiny_config()), _records(DC_HEALTHY)) == []


# ----------------------------------------------------------------------------- 5. smaller


def test_every_threshold_a_message_or_the_readme_names_is_a_config_key():
    """monitor.explode_abs (messages say "limit 1e+06") and monitor.coverage_ratio had been
    refused as unknown keys though README says the thresholds live in the monitor section."""
    import dataclasses
    import re
    from pathlib import Path

    from ganforge.config import MonitorConfig
    from ganforge.training.monitor import MonitorSettings

    cfg = tiny_config(**{"monitor.explode_abs": 5e5, "monitor.coverage_ratio": 0.5,
                         "monitor.vanish_abs": 0.05, "monitor.osc_crossings": 6})
    settings = Monitor.from_config(cfg).settings
    assert (settings.explode_abs, settings.coverage_ratio, settings.vanish_abs,
            settings.osc_crossings) == (5e5, 0.5, 0.05, 6)
    config_keys = {f.name for f in dataclasses.fields(MonitorConfig)}
    assert MonitorSettings is MonitorConfig  # the monitor's thresholds are the section's, one set of defaults
    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    listed = re.search(r"- `monitor`: (.*?)\(the thresholds", readme, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", listed)) == config_keys
    assert set(re.findall(r"`monitor\.(\w+)`", readme)) <= config_keys
    with pytest.raises(Exception, match="monitor.explode_min must be >= 0"):
        tiny_config(**{"monitor.explode_min": -1})


def test_r1_advice_on_point_data_is_the_toy_presets_value():
    """toy-ring8 (2-D points): the pixel heuristic had suggested reg.r1=0.00031 from
    data.resolution; the toy presets use 0.01."""
    from ganforge.training.monitor import _r1

    toy = {"data": {"name": "toy:ring8", "resolution": 32}, "train": {"batch_size": 64}, "reg": {"r1": 0}}
    assert _r1(toy) == "add R1 with reg.r1=0.01 (the toy presets' value)"
    image = {"data": {"name": "fashion-mnist", "resolution": 32}, "train": {"batch_size": 64}}
    assert _r1(image) == "add R1 with reg.r1=0.0032"


def test_docs_stability_points_to_the_monitor_section():
    from pathlib import Path

    text = Path(__file__).resolve().parents[1].joinpath("docs", "stability.md").read_text()
    assert "README.md#is-training-working" in text and "monitor" in text


def test_events_a_rollback_discarded_are_drawn_faded(tmp_path):
    """Events of history a rollback threw away had been drawn like current ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.report import plots

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 2, "d_loss": 1.0, "time": 1}, {"event": "vanishing_gradients", "step": 4},
             {"event": "divergence", "step": 6}, {"event": "rollback", "step": 6, "evidence": {"to_step": 2}},
             {"step": 4, "d_loss": 1.0, "time": 2}, {"event": "mode_collapse", "step": 4}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = load_run(run)
    gone = r.discarded()
    assert [e["event"] for e in r.events if id(e) in gone] == ["vanishing_gradients", "divergence"]
    fig, ax = plt.subplots()
    handles = plots._mark_events(ax, r.events, gone)
    assert [line.get_alpha() for line in ax.lines] == [0.35, 0.35, None, None]
    assert "vanishing gradients (before rollback)" in [h.get_label() for h in handles]
    plt.close(fig)
    assert plots.timeline_figure(r)[:4] == b"\x89PNG"
