"""Training diagnostics: each detector fires on a record stream built to fail that way, once per
episode, with a suggestion for the run's config, and stays silent on healthy streams."""
import itertools
import math
import random

import numpy as np
import pytest
import torch

from ganforge.training.monitor import (KINDS, Monitor, MonitorSettings, d_accuracy, format_event,
                                       grad_norm, nonfinite, oscillation_stats,
                                       pairwise_diversity)
from conftest import tiny_config


def healthy(n=60, seed=0, start=0):
    """Averaged log records of a run in balance, with realistic interval-to-interval noise
    (about 10% on the losses, the level seen in DCGAN runs on Fashion-MNIST)."""
    rng = random.Random(seed)
    for i in range(start, start + n):
        yield {"step": (i + 1) * 50, "d_loss": 0.6 * (1 + rng.gauss(0, 0.1)),
               "g_loss": 1.8 * (1 + rng.gauss(0, 0.08)), "d_real": 0.75 + rng.gauss(0, 0.02),
               "d_fake": 0.25 + rng.gauss(0, 0.02), "d_acc_real": 0.9, "d_acc_fake": 0.9,
               "g_grad_norm": 8 * (1 + rng.gauss(0, 0.2)), "d_grad_norm": 100 * (1 + rng.gauss(0, 0.3)),
               "diversity": 20 + rng.gauss(0, 0.5), "diversity_real": 21.9, "nonfinite": 0.0,
               "img_per_s": 1400.0, "time": i * 2.0}


def feed(monitor, records):
    return [e for r in records for e in monitor.update(r)]


def with_(records, **changes):
    """Records with some keys replaced: a value, or a function of the record's index."""
    for i, r in enumerate(records):
        yield {**r, **{k: (v(i) if callable(v) else v) for k, v in changes.items()}}


@pytest.mark.parametrize("seed", range(5))
def test_healthy_stream_fires_nothing(seed):
    assert feed(Monitor(tiny_config()), healthy(200, seed)) == []


def test_trending_losses_are_not_oscillation():
    """Early training: losses fall or drift steadily, with noise; that is progress."""
    rng = random.Random(1)
    decay = with_(healthy(80), d_loss=lambda i: 2.0 * math.exp(-i / 10) + 0.3 + rng.gauss(0, 0.03),
                  g_loss=lambda i: 0.5 + 0.04 * i + rng.gauss(0, 0.05))
    assert feed(Monitor(tiny_config()), decay) == []
    # one excursion (a bump of D's loss that settles) is not a back-and-forth swing
    bump = with_(healthy(60), d_loss=lambda i: 0.6 + (1.5 if 20 <= i < 26 else 0.0))
    assert [e["event"] for e in feed(Monitor(tiny_config()), bump)] == []


# ----------------------------------------------------------------------------- mode collapse


def test_mode_collapse_fires_once_per_episode_and_rearms():
    s = MonitorSettings()
    monitor = Monitor(tiny_config())
    collapsed = lambda rs: with_(rs, diversity=1.1)  # noqa: E731  (0.05 of real)
    stream = itertools.chain(healthy(20), collapsed(healthy(10, start=20)),
                             healthy(s.patience, start=30), collapsed(healthy(10, start=33)))
    events = feed(monitor, stream)
    assert [e["event"] for e in events] == ["mode_collapse", "mode_collapse"]
    # fires on the patience-th collapsed record of each episode
    assert [e["step"] for e in events] == [(20 + s.patience) * 50, (33 + s.patience) * 50]
    ev = events[0]["evidence"]
    assert ev["ratio"] == pytest.approx(1.1 / 21.9, rel=1e-3)
    assert ev["diversity_real"] == pytest.approx(21.9)
    assert events[0]["suggestion"].split("; ") == [
        "let D see batch statistics: model.mbstd_group=4",
        "let D score packed samples (PacGAN): model.pac=2",
        "add R1 with reg.r1=0.0064",  # 0.0002 * 16 * 16 / 8 (tiny_config: 16x16, batch 8)
        "enable DiffAugment with augment.diffaugment=color,translation,cutout",
        "lower optim.g_lr to 0.0001"]


def test_short_collapse_does_not_fire():
    s = MonitorSettings()
    stream = itertools.chain(healthy(20), with_(healthy(s.patience - 1, start=20), diversity=0.0),
                             healthy(20, start=30))
    assert feed(Monitor(tiny_config()), stream) == []


def test_generator_that_never_spreads_is_caught_after_warmup():
    """At initialisation diversity is low (a DCGAN sits near 0.15 of real): no alarm until
    warmup_steps, unless diversity was once healthy."""
    monitor = Monitor(tiny_config(), warmup_steps=1000)
    events = feed(monitor, with_(healthy(40), diversity=3.0))  # 0.14 of real; steps 50..2000
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 1000 + 2 * 50)]


def test_class_coverage_falling_is_mode_collapse():
    covered = lambda i: 10 if i < 25 else 6  # noqa: E731
    events = feed(Monitor(tiny_config()), with_(healthy(40), probe_classes=covered,
                                                classes_total=10))
    assert [e["event"] for e in events] == ["mode_collapse"]
    ev = events[0]["evidence"]
    assert (ev["probe_classes"], ev["best_coverage"], ev["classes_total"]) == (6, 10, 10)


def test_a_young_generators_wobbling_class_count_is_not_collapse():
    """vanilla-fashion-mnist, healthy, logged every 25 steps: its probe counted 2, 3, 2 classes in
    the first few hundred steps, and 2 against a best of 3 had been a mode_collapse warning at
    step 250 (it covers 8 classes by step 1000). Before warmup_steps the best must reach
    min_classes first; a fall from there still counts."""
    counts = [1, 2, 3, 2, 2, 2, 3, 2, 2, 2, 2, 3]  # steps 50..600
    monitor = Monitor(tiny_config(), warmup_steps=1000)
    assert feed(monitor, with_(healthy(12), probe_classes=lambda i: counts[i], probe_classes_real=10)) == []
    fall = [2, 5, 6, 6, 3, 3, 3, 3, 3, 3, 3, 3]
    events = feed(Monitor(tiny_config(), warmup_steps=1000),
                  with_(healthy(12), probe_classes=lambda i: fall[i], probe_classes_real=10))
    assert [e["event"] for e in events] == ["mode_collapse"] and events[0]["step"] < 1000
    assert events[0]["evidence"]["best_coverage"] == 6


def test_coverage_never_reaching_real_data_is_collapse_after_warmup():
    """A generator stuck on 2 classes keeps about half the real diversity (healthy() keeps the
    pixel ratio fine) and never had a better coverage to fall from: the real probe's class
    count is the reference once warmup_steps have passed."""
    monitor = Monitor(tiny_config(), warmup_steps=1000)
    events = feed(monitor, with_(healthy(40), probe_classes=2, probe_classes_real=10))
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 1000 + 2 * 50)]
    ev = events[0]["evidence"]
    assert (ev["probe_classes"], ev["probe_classes_real"]) == (2, 10)
    assert "real data's 10" in events[0]["message"]
    # 8 of 10 classes in a 64-image probe is normal for a healthy generator: no event
    assert feed(Monitor(tiny_config(), warmup_steps=1000),
                with_(healthy(40), probe_classes=8, probe_classes_real=10)) == []


# ----------------------------------------------------------------------------- vanishing gradients


def d_wins(records, g_grad):
    return with_(records, d_real=0.9999, d_fake=4e-5, d_acc_real=1.0, d_acc_fake=1.0,
                 d_loss=1e-4, g_loss=-1e-4, g_grad_norm=g_grad)


def test_vanishing_gradients_with_minimax_suggests_nonsaturating():
    cfg = tiny_config(**{"loss.name": "minimax", "optim.d_lr": 2e-4, "train.n_critic": 3})
    events = feed(Monitor(cfg), itertools.chain(healthy(5), d_wins(healthy(20, start=5), 0.002)))
    assert [e["event"] for e in events] == ["vanishing_gradients"]
    e = events[0]
    assert e["step"] == (5 + MonitorSettings().patience) * 50
    assert e["suggestion"].startswith("loss is minimax (saturating): switch to "
                                      "loss.name=nonsaturating")
    assert "lower optim.d_lr to 0.0001" in e["suggestion"]
    assert "lower train.n_critic from 3 to 1" in e["suggestion"]
    assert e["evidence"]["g_grad_norm"] == pytest.approx(0.002)
    assert e["evidence"]["early_g_grad_norm"] > 5


def test_vanishing_gradients_with_nonsaturating_suggests_weaker_d():
    events = feed(Monitor(tiny_config()), d_wins(healthy(20), lambda i: 8.0 if i < 4 else 1e-5))
    assert [e["event"] for e in events] == ["vanishing_gradients"]
    assert "minimax" not in events[0]["suggestion"]
    assert "lower optim.d_lr to 0.0001" in events[0]["suggestion"]


def test_vanishing_gradient_message_reads_right_at_zero_and_tiny_norms():
    """A dcgan run at optim.g_lr=d_lr=0.05 printed "G's gradient norm 0 is 0 of its early 27.1"
    (the ratio formatted with :.2g); a tiny ratio read "3.7e-07 of its early ...". The share is
    a percentage: 0%, under 0.1%, or its value."""
    def message(g):
        events = feed(Monitor(tiny_config()), itertools.chain(
            with_(healthy(4), g_grad_norm=27.1), d_wins(healthy(20, start=4), g)))
        assert [e["event"] for e in events] == ["vanishing_gradients"]
        return events[0]["message"]

    assert message(0.0).endswith("and G's gradient norm is 0 (0% of its early 27.1)")
    assert message(1e-5).endswith("G's gradient norm is 1e-05 (under 0.1% of its early 27.1)")
    assert message(0.5).endswith("G's gradient norm is 0.5 (1.8% of its early 27.1)")
    assert message(1.2).endswith("G's gradient norm is 1.2 (4.4% of its early 27.1)")


def test_diversity_shares_read_as_percentages():
    """The collapse and dead-gradient messages printed ':.2f' ratios: 'sample diversity is 0.00 of
    real-data diversity (threshold 0.3)' for a collapsed but nonzero diversity."""
    events = feed(Monitor(tiny_config(), warmup_steps=0), with_(healthy(10), diversity=0.01))
    assert [e["event"] for e in events] == ["mode_collapse"]
    assert events[0]["message"] == ("sample diversity is under 0.1% of real-data diversity "
                                    "(threshold 30%)")
    events = feed(Monitor(tiny_config(), warmup_steps=0), with_(healthy(10), diversity=1.1))
    assert events[0]["message"] == "sample diversity is 5% of real-data diversity (threshold 30%)"
    dead = with_(healthy(10), g_grad_norm=0.0, diversity=0.05, d_real=0.7, d_acc_real=0.8)
    events = [e for e in feed(Monitor(tiny_config()), dead) if e["event"] == "vanishing_gradients"]
    assert events[0]["message"] == ("G's gradient norm is 0: the generator gets no learning signal and "
                                    "its samples have 0.23% of real-data diversity")


def test_d_winning_while_g_still_learns_is_not_vanishing():
    """Healthy non-saturating runs often start with D winning outright; G's gradient survives."""
    assert feed(Monitor(tiny_config()), d_wins(healthy(30), 12.0)) == []


def test_an_exploding_start_is_no_reference_for_vanishing_gradients():
    """toy-ring8 at optim.g_lr=9: G's gradient norm was 2.8e16 in the first records (divergence,
    reported) and 1.4e10 later, which had been called vanishing: '5e-07 of its early 2.82e+16'."""
    exploding = with_(healthy(4), d_loss=3e9, g_loss=2e10, g_grad_norm=2.8e16)
    events = feed(Monitor(tiny_config()), itertools.chain(exploding, d_wins(healthy(20, start=4), 1.4e10)))
    assert "vanishing_gradients" not in [e["event"] for e in events]
    assert [e["event"] for e in events][:1] == ["divergence"]


def test_wasserstein_critic_scores_are_not_judged_as_probabilities():
    cfg = {"loss": {"name": "wasserstein"}}
    assert feed(Monitor(cfg), d_wins(healthy(20), lambda i: 8.0 if i < 4 else 1e-5)) == []


# ----------------------------------------------------------------------------- divergence


def test_nonfinite_loss_fires_at_once_once_per_episode():
    nan_at = {10, 11, 12, 20}
    stream = with_(healthy(30), g_loss=lambda i: math.nan if i in nan_at else 1.8)
    events = feed(Monitor(tiny_config()), stream)
    assert [(e["event"], e["step"]) for e in events] == [("divergence", 550), ("divergence", 1050)]
    assert events[0]["evidence"]["nonfinite"] == ["g_loss"]
    assert "lower optim.g_lr to 0.0001" in events[0]["suggestion"]


@pytest.mark.parametrize("change", [{"nonfinite": 1.0}, {"d_loss": None}, {"d_grad_norm": math.inf}])
def test_nonfinite_flag_none_and_inf_are_divergence(change):
    stream = itertools.chain(healthy(5), with_(healthy(1, start=5), **change))
    events = feed(Monitor(tiny_config()), stream)
    assert [(e["event"], e["step"]) for e in events] == [("divergence", 300)]
    assert events[0]["evidence"]["nonfinite"] == sorted(change)


def test_exploding_gradient_norm_is_divergence():
    stream = with_(healthy(20), g_grad_norm=lambda i: 8.0 * (1000 if i == 12 else 1))
    events = feed(Monitor(tiny_config()), stream)
    assert [(e["event"], e["step"]) for e in events] == [("divergence", 650)]
    assert events[0]["evidence"]["factor"] == pytest.approx(1000, rel=0.05)
    assert events[0]["evidence"]["median"] == pytest.approx(8.0)


def test_huge_loss_is_divergence_without_history():
    events = feed(Monitor(tiny_config()), with_(healthy(1), d_loss=1.1e10))
    assert [e["event"] for e in events] == ["divergence"]


def test_fp16_divergence_suggests_another_precision():
    cfg = {"train": {"precision": "fp16"}, "optim": {"g_lr": 1e-3, "d_lr": 4e-3}}  # a plain dict
    events = feed(Monitor(cfg), with_(healthy(3), nonfinite=1.0))
    assert events[0]["suggestion"].startswith("switch train.precision from fp16 to bf16 or fp32")
    assert "lower optim.d_lr to 0.002" in events[0]["suggestion"]


def test_suggestions_skip_what_the_config_already_does():
    cfg = {"reg": {"r1": 1.0}, "augment": {"diffaugment": "color"},
           "model": {"mbstd_group": 4, "pac": 2, "d_spectral_norm": True},
           "optim": {"g_lr": 2e-4, "d_lr": 2e-4, "betas": [0.9, 0.999]}, "train": {"ema_decay": 0.0}}
    collapse = feed(Monitor(cfg), with_(healthy(20), diversity=lambda i: 20.0 if i < 10 else 0.1))
    assert collapse[0]["suggestion"] == "raise reg.r1 from 1 to 10; lower optim.g_lr to 0.0001"
    osc = feed(Monitor(cfg), swinging(healthy(40)))
    assert osc[0]["suggestion"] == ("lower optim.d_lr to 0.0001; lower optim.g_lr to 0.0001; "
                                    "lower Adam momentum: optim.betas=[0.0,0.99]; "
                                    "raise reg.r1 from 1 to 10; average G: train.ema_decay=0.999")
    # each key=value pastes into a shell as one word and parses as an override
    import re

    from ganforge.config import apply_overrides

    words = [w.rstrip(";") for w in re.findall(r"[a-z_]+\.[a-z_0-9]+=\S+", osc[0]["suggestion"])]
    assert len(words) == 2 and apply_overrides(tiny_config().to_dict(), words)["optim"]["betas"] == [0.0, 0.99]


def test_after_rollback_rearms():
    monitor = Monitor(tiny_config())
    assert len(feed(monitor, with_(healthy(3), nonfinite=1.0))) == 1
    monitor.after_rollback()
    assert len(feed(monitor, with_(healthy(1, start=3), nonfinite=1.0))) == 1


# ----------------------------------------------------------------------------- oscillation


def swinging(records, period=6, amplitude=0.8, seed=0):
    rng = random.Random(seed)
    wave = lambda i: math.cos(2 * math.pi * i / period)  # noqa: E731
    return with_(records, d_loss=lambda i: 0.7 + 0.6 * amplitude * wave(i) + rng.gauss(0, 0.03),
                 g_loss=lambda i: 1.8 - 2.0 * amplitude * wave(i) + rng.gauss(0, 0.05))


@pytest.mark.parametrize("period", [2, 5, 8])
def test_periodic_swings_are_oscillation(period):
    s = MonitorSettings()
    events = feed(Monitor(tiny_config()), itertools.chain(healthy(20), swinging(healthy(40, start=20),
                                                                                period)))
    assert [e["event"] for e in events] == ["oscillation"]
    ev = events[0]["evidence"]
    assert ev["series"] in ("d_loss", "g_loss")
    assert ev["sign_changes"] >= s.osc_crossings and ev["relative_std"] >= s.osc_amplitude
    assert "lower optim.d_lr to 0.0001" in events[0]["suggestion"]
    assert "optim.betas=[0.0,0.99]" not in events[0]["suggestion"]  # betas[0] is already 0.5
    # it fires before the swinging part has filled the window twice over
    assert events[0]["step"] <= (20 + 2 * s.window) * 50


def test_small_swings_are_not_oscillation():
    assert feed(Monitor(tiny_config()), swinging(healthy(60), amplitude=0.15)) == []


def test_oscillation_stats_against_numpy():
    values = [1.0, 2.0, 1.0, 0.0] * 4
    stats = oscillation_stats(values, amplitude=0.3, crossings=4)
    t = np.arange(16)
    residual = values - np.polyval(np.polyfit(t, values, 1), t)
    assert stats["swing"] == pytest.approx(np.ptp(residual), rel=1e-3)
    assert stats["relative_std"] == pytest.approx(residual.std() / 1.0, rel=1e-3)
    assert stats["trend_per_record"] == pytest.approx(np.polyfit(t, values, 1)[0], abs=1e-4)
    assert stats["sign_changes"] == int((np.diff(np.sign(residual[residual != 0])) != 0).sum())
    assert oscillation_stats([float(i) for i in range(16)], amplitude=0.3, crossings=4) is None
    assert oscillation_stats([1.0, 1.1] * 8, amplitude=0.3, crossings=4) is None  # small


# ----------------------------------------------------------------------------- state, config


def test_state_round_trip_gives_the_same_events(tmp_path):
    stream = list(itertools.chain(healthy(20), with_(healthy(6, start=20), diversity=0.5),
                                  swinging(healthy(30, start=26)),
                                  d_wins(healthy(10, start=56), 1e-6)))
    whole = feed(Monitor(tiny_config()), stream)
    assert {e["event"] for e in whole} >= {"mode_collapse", "oscillation", "vanishing_gradients"}
    for cut in (3, 22, 40):
        first = Monitor(tiny_config())
        head = feed(first, stream[:cut])
        torch.save(first.state_dict(), tmp_path / "m.pt")
        second = Monitor(tiny_config())
        second.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
        assert head + feed(second, stream[cut:]) == whole


def test_settings_from_config_section():
    cfg = {"monitor": {"window": 8, "patience": 2, "collapse_ratio": 0.5}, "loss": {"name": "minimax"}}
    monitor = Monitor.from_config(cfg)
    assert (monitor.settings.window, monitor.settings.patience) == (8, 2)
    assert monitor.settings.collapse_ratio == 0.5
    assert Monitor.from_config(tiny_config()).settings == MonitorSettings()
    with pytest.raises(ValueError):
        Monitor(window=2)


def test_event_shape_and_console_line():
    events = feed(Monitor(tiny_config()), with_(healthy(2), nonfinite=1.0))
    assert set(events[0]) == {"event", "step", "message", "evidence", "suggestion"}
    assert events[0]["event"] in KINDS
    line = format_event(events[0])
    assert line.startswith("ganforge: warning: step 50: divergence: non-finite values: nonfinite")
    assert "Try: lower optim.g_lr" in line and "\n" not in line


# ----------------------------------------------------------------------------- tensor helpers


def test_pairwise_diversity_against_numpy():
    x = torch.randn(12, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    flat = x.reshape(12, -1).numpy().astype(np.float64)
    dists = [np.linalg.norm(flat[i] - flat[j]) for i in range(12) for j in range(i + 1, 12)]
    assert pairwise_diversity(x).item() == pytest.approx(np.mean(dists), rel=1e-5)
    assert pairwise_diversity(x[:1].expand(8, -1, -1, -1)).item() == 0.0  # a generator ignoring z
    assert pairwise_diversity(x[:1]).item() == 0.0
    two = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert pairwise_diversity(two).item() == pytest.approx(5.0)


def test_d_accuracy_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0, 3.0])  # 3 of 4 scored real
    fake = torch.tensor([-2.0, 0.1, -0.3, -5.0, 1.0])  # 3 of 5 scored fake
    acc_real, acc_fake = d_accuracy(real, fake)
    assert acc_real.item() == 0.75
    assert acc_fake.item() == pytest.approx(0.6)


def test_grad_norm_and_nonfinite():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    assert grad_norm(net.parameters()).item() == 0.0
    net(torch.randn(5, 3)).sum().backward()
    expected = torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters()))
    assert grad_norm(net.parameters()).item() == pytest.approx(expected.item(), rel=1e-6)
    assert nonfinite(torch.ones(3), torch.zeros(2)).item() == 0.0
    assert nonfinite(torch.ones(3), torch.tensor([1.0, math.nan])).item() == 1.0
    assert nonfinite(torch.tensor(math.inf)).item() == 1.0


def test_a_run_broken_by_a_huge_learning_rate_is_reported():
    """optim.g_lr=d_lr=9 on DCGAN: d_loss 3e3-4.6e4 and G's gradient exactly 0 while D(x) is
    only 0.6-0.9; the monitor said nothing (the absolute limit was 1e6, and 'vanishing' needed D
    to win outright)."""
    broken = list(with_(healthy(10), d_loss=lambda i: 3e3 * (i + 1)))
    events = feed(Monitor(tiny_config()), broken)
    assert events[0]["event"] == "divergence" and "d_loss is 3000" in events[0]["message"]
    critic = tiny_config(**{"loss.name": "wasserstein"})  # a critic's loss has no such scale
    assert not [e for e in feed(Monitor(critic), broken) if e["event"] == "divergence"]
    dead = list(with_(healthy(10), g_grad_norm=0.0, diversity=0.0, d_real=0.7, d_acc_real=0.8))
    events = feed(Monitor(tiny_config()), dead)
    assert [e["event"] for e in events] == ["vanishing_gradients"]
    assert "no learning signal and its samples have 0% of real-data diversity" in events[0]["message"]
    # a dead gradient with diverse samples (not stuck) stays quiet
    assert feed(Monitor(tiny_config()), with_(healthy(10), g_grad_norm=0.0, d_real=0.7, d_acc_real=0.8)) == []


def test_suggestions_start_from_the_rates_the_rollbacks_left():
    cfg = tiny_config(**{"optim.g_lr": 0.016, "optim.d_lr": 0.016})  # high, not far out of line
    monitor = Monitor(cfg)
    monitor.lr_scale = 0.125
    events = feed(monitor, with_(healthy(3), d_loss=5e3))
    assert "lower optim.g_lr below the 0.002 the rollbacks reached, e.g. to 0.001" in events[0]["suggestion"]
    assert events[0]["evidence"]["lr_scale"] == 0.125
