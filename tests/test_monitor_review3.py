"""Monitor fixes of the third user review: G's loss as a divergence signal, a young generator's
class count, the collapse advice on a G rate already far too low, out-of-range settings."""
import pytest

from ganforge.config import load_config
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.training.monitor import Monitor
from conftest import tiny_config
from test_monitor import feed, healthy, with_


def cfg(**sections):
    return {"loss": {"name": "nonsaturating"}, "optim": {"g_lr": 2e-4, "d_lr": 2e-4}, **sections}


# ----------------------------------------------------------------------------- G's loss in the thousands


def test_a_winning_d_with_logits_in_the_thousands_is_a_divergence():
    """dcgan-fashion-mnist at lr 0.5: g_loss 1434 at the first record (D's logit on fakes about
    -1400) with d_loss 49; it had trained on to the end with only a vanishing-gradients warning."""
    events = feed(Monitor(cfg()), with_(healthy(3), d_loss=49.3, g_loss=1433.6))
    assert [(e["event"], e["step"]) for e in events] == [("divergence", 50)]
    assert events[0]["evidence"] == {"g_loss": 1434.0, "limit": 1000.0}
    assert "g_loss is 1434" in events[0]["message"]


def vocoder_monitor():
    """The monitor as the Trainer sets it up for a vocoder run: G's adversarial loss is g_adv."""
    monitor = Monitor(cfg(objective="vocoder"))
    monitor.g_adversarial = OBJECTIVES["vocoder"].g_adversarial_key
    return monitor


def test_composite_g_losses_name_their_adversarial_part():
    # every family whose g_loss adds reconstruction terms (a healthy vocoder's reaches 300)
    for name in ("pix2pix", "cyclegan", "cyclegan-vc", "vocoder"):
        assert OBJECTIVES[name].g_adversarial_key == "g_adv"
    assert OBJECTIVES["superres"].g_adversarial_key == "adv"
    assert OBJECTIVES["unconditional"].g_adversarial_key == OBJECTIVES["stylegan2"].g_adversarial_key == "g_loss"


def test_g_loss_limits_spare_critics_and_reconstruction_terms():
    """A critic's scores are unbounded by design; a vocoder's g_loss adds 45 x mel L1 (up to 300
    on healthy runs), so only its adversarial part counts, when logged."""
    big = dict(d_loss=0.5, g_loss=5000.0)
    assert feed(Monitor(cfg(loss={"name": "wasserstein"})), with_(healthy(20), **big)) == []
    assert feed(vocoder_monitor(), with_(healthy(20), **big)) == []  # its mel-only warm-up
    events = feed(vocoder_monitor(), with_(healthy(3), **big, g_adv=2000.0))
    assert [e["event"] for e in events] == ["divergence"] and "g_adv" in events[0]["evidence"]
    events = feed(Monitor(cfg(loss={"name": "hinge"})), with_(healthy(3), **big))
    assert [e["event"] for e in events] == ["divergence"]


def test_a_record_with_a_huge_g_loss_is_no_rollback_target():
    """Healthy runs reach a G loss of 19 (StyleGAN2, ESRGAN); one of 500 is D's logits in the
    hundreds, no state to roll back to."""
    monitor = Monitor(cfg())
    feed(monitor, with_(healthy(1), g_loss=19.0))
    assert monitor.healthy
    feed(monitor, with_(healthy(1, start=1), g_loss=500.0))
    assert not monitor.healthy and monitor.troubled == ["g_loss"]


# ----------------------------------------------------------------------------- class coverage


def test_one_record_that_touches_min_classes_does_not_arm_coverage():
    """vanilla-fashion-mnist seed 0, healthy, logged every 10 steps: the probe counted ...3, 3, 4,
    3, 2, 2, 2 classes and a drop from that single 4 had been a mode_collapse at step 210."""
    counts = [2, 2, 3, 2, 2, 3, 3, 2, 3, 3, 4, 3, 2, 2, 2, 2, 3, 2]
    stream = with_(healthy(len(counts)), probe_classes=lambda i: counts[i], probe_classes_real=9)
    assert feed(Monitor(tiny_config(), warmup_steps=1000), stream) == []
    # a count that held at 4 or more for `patience` records and then fell is still a collapse
    held = [2, 3, 4, 5, 4, 2, 2, 2, 2]
    stream = with_(healthy(len(held)), probe_classes=lambda i: held[i], probe_classes_real=9)
    events = feed(Monitor(tiny_config(), warmup_steps=1000), stream)
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 400)]


def test_coverage_arming_survives_a_resume():
    """A resume keeps both the count of records at min_classes and whether coverage is armed."""
    def resumed(before, after):
        monitor = Monitor(tiny_config(), warmup_steps=1000)
        feed(monitor, with_(healthy(len(before)), probe_classes=lambda i: before[i], probe_classes_real=9))
        monitor2 = Monitor(tiny_config(), warmup_steps=1000)
        monitor2.load_state_dict(monitor.state_dict())
        return [e["event"] for e in feed(monitor2, with_(healthy(len(after), start=len(before)),
                                                         probe_classes=lambda i: after[i],
                                                         probe_classes_real=9))]

    assert resumed([2, 3, 4], [3, 2, 2, 2]) == []  # one touch of 4, then the wobble goes on
    assert resumed([2, 4, 5], [4, 2, 2, 2]) == ["mode_collapse"]  # held 4, 5, 4 across the resume
    assert resumed([4, 5, 4], [2, 2, 2]) == ["mode_collapse"]


# ----------------------------------------------------------------------------- collapse advice


def collapse_advice(g_lr, d_lr):
    monitor = Monitor(cfg(optim={"g_lr": g_lr, "d_lr": d_lr}), warmup_steps=0)
    events = feed(monitor, with_(healthy(5), diversity=1.0))
    assert [e["event"] for e in events] == ["mode_collapse"]
    return events[0]["suggestion"].split("; ")[-1]


def test_collapse_advice_names_d_rate_when_g_rate_is_far_below_it():
    """d_lr 1e-2 against g_lr 1e-6 had been advised 'lower optim.g_lr to 5e-07'."""
    assert collapse_advice(1e-6, 1e-2) == (
        "optim.d_lr 0.01 is 10,000x optim.g_lr 1e-06 (the presets keep D's rate within 4x G's), so D "
        "outlearns G: bring both to a preset's rate, e.g. optim.g_lr=0.0002 optim.d_lr=0.0002")
    assert collapse_advice(2e-4, 1e-2).endswith("so D outlearns G: lower optim.d_lr to 0.0002")
    assert collapse_advice(2e-6, 2e-6) == (
        "optim.g_lr 2e-06 is far below the presets' 1e-4 to 0.003: raise it, e.g. to 0.0002")
    # a TTUR within the presets' range keeps the usual advice
    assert collapse_advice(1e-4, 4e-4) == "lower optim.g_lr to 5e-05"


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize("override, message", [
    ("monitor.collapse_ratio=-1", "monitor.collapse_ratio must be from 0 to 1, got -1.0"),
    ("monitor.coverage_ratio=1.5", "monitor.coverage_ratio must be from 0 to 1, got 1.5"),
    ("monitor.warmup_steps=-5", "monitor.warmup_steps must be >= 0, got -5"),
    ("train.max_rollbacks=-1", "train.max_rollbacks must be >= 0 (0: stop at the first divergence), got -1"),
])
def test_out_of_range_monitor_settings_are_refused(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("dcgan-fashion-mnist", [override])
    assert str(err.value) == message
    load_config("dcgan-fashion-mnist", ["monitor.collapse_ratio=0", "train.max_rollbacks=0"])


def test_the_trainer_gives_the_monitor_its_familys_adversarial_key(tmp_path, monkeypatch):
    from conftest import family_run

    made = []
    create = Monitor.from_config.__func__

    def spy(cls, cfg):
        made.append(create(cls, cfg))
        return made[-1]

    monkeypatch.setattr(Monitor, "from_config", classmethod(spy))
    family_run(tmp_path, "pix2pix", "train.steps=1")
    assert made and made[-1].g_adversarial == "g_adv"
