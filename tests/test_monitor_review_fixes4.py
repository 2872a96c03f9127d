"""Review fixes of the monitor's advice (a user review of deliberately broken runs): no spectral
norm on 2-D toy data, a tiny generator named as the cause of its collapse, both rates named when
both are far too high, the CLI's "it explains it" for one warning, and the report's discarded
divergence line no longer hidden under its rollback's."""
from __future__ import annotations

import pytest

from ganforge.commands import train as train_command
from ganforge import cli
from ganforge.config import load_config
from ganforge.training.monitor import (Monitor, _suggest_collapse, _suggest_divergence, _suggest_oscillation,
                                       non_finite_advice)


def _collapse_suggestion(cfg) -> str:
    """The mode_collapse event a Monitor on ``cfg`` raises for samples at 10% of real diversity."""
    monitor = Monitor(cfg)
    events = []
    for i in range(3):
        events += monitor.update({"step": 1000 + 10 * i, "diversity": 0.1, "diversity_real": 1.0})
    assert [e["event"] for e in events] == ["mode_collapse"]
    return events[0]["suggestion"]


# ----------------------------------------------------------------------------- 3. toy data: no spectral norm


def test_toy_divergence_advice_leaves_out_spectral_norm_and_keeps_the_rates():
    """toy-grid25 at lr 1: spectral norm stopped the divergence but left 0 of 25 modes (README:
    0-5 of 25 on low-dimensional data); both rates lowered to 2e-4 covered 17-19 at step 600."""
    _, cfg = load_config("toy-grid25", ["optim.g_lr=1.0", "optim.d_lr=1.0"])
    for advice in (_suggest_divergence(cfg, {}), non_finite_advice(cfg, 0.5)):
        assert "spectral_norm" not in advice and "Lipschitz" not in advice, advice
        assert "optim.g_lr 1" in advice and "optim.d_lr 1" in advice and "e.g. to 0.0002" in advice
        assert "raise reg.r1 from 0.01 to 0.1" in advice
    monitor = Monitor(cfg)
    events = monitor.update({"step": 50, "d_loss": 1.2e9, "g_loss": 3.0})
    assert [e["event"] for e in events] == ["divergence"]
    assert "spectral_norm" not in events[0]["suggestion"]
    # image discriminators keep it
    _, image = load_config("dcgan-fashion-mnist", ["optim.g_lr=1.0", "optim.d_lr=1.0"])
    assert "bound D's Lipschitz constant: model.d_spectral_norm=true" in _suggest_divergence(image, {})


def test_toy_oscillation_advice_is_what_covered_24_of_25_modes():
    """The review's oscillating run ended on 1 mode with spectral norm; the rates halved to 0.01,
    optim.betas=[0.0,0.99] and reg.r1=0.01 covered 24 of 25."""
    _, cfg = load_config("toy-grid25", ["optim.g_lr=0.02", "optim.d_lr=0.02", "optim.betas=[0.9,0.999]",
                                        "reg.r1=0", "model.mbstd_group=0"])
    advice = _suggest_oscillation(cfg, {})
    assert "spectral_norm" not in advice, advice
    assert advice.startswith("lower optim.d_lr to 0.01; lower optim.g_lr to 0.01; "
                             "lower Adam momentum: optim.betas=[0.0,0.99]; "
                             "add R1 with reg.r1=0.01 (the toy presets' value)"), advice
    _, image = load_config("dcgan-fashion-mnist", ["optim.betas=[0.9,0.999]"])
    assert "model.d_spectral_norm=true" in _suggest_oscillation(image, {})


# ----------------------------------------------------------------------------- 4. a tiny generator


@pytest.mark.parametrize("overrides, first", [
    (["model.g_width=4", "model.g_depth=1"],
     "G is much smaller than D (model.g_width 4 against model.d_width 128), too few units to place "
     "samples on every mode: give it D's size, model.g_width=128 model.g_depth=3; "),
    (["model.g_width=32"], "G is much smaller than D (model.g_width 32 against model.d_width 128)"),
    (["model.z_dim=1"], "model.z_dim 1 is below the points' 2 dimensions, so G maps z onto a curve through "
                        "the plane: restore it, model.z_dim=2 (the toy-grid25 preset's)"),
])
def test_collapse_advice_names_a_tiny_generator_first(overrides, first):
    """g_width 4 / g_depth 1 against d_width 128 covered 10 of 25 modes and z_dim 1 covered 3;
    PacGAN, R1 and a lower rate, all the advice offered, left 11 and 5. The preset's size
    (the override named) covers 21 of 25 at step 1500, as the preset does."""
    _, cfg = load_config("toy-grid25", overrides)
    assert _collapse_suggestion(cfg).startswith(first)


def test_collapse_advice_names_tiny_width_and_latent_together_and_leaves_ordinary_sizes_alone():
    from ganforge.training.monitor import TOY_Z_DIM

    _, cfg = load_config("toy-grid25", ["model.z_dim=1", "model.g_width=4", "model.g_depth=1"])
    parts = _suggest_collapse(cfg, {}).split("; ")
    assert parts[0].endswith("model.g_width=128 model.g_depth=3") and parts[1].endswith(
        "model.z_dim=2 (the toy-grid25 preset's)"), parts
    _, ring = load_config("toy-ring8", ["model.z_dim=1"])
    assert "restore it, model.z_dim=4 (the toy-ring8 preset's)" in _suggest_collapse(ring, {})
    for data, z in TOY_Z_DIM.items():  # the z_dim named is the preset's
        _, preset = load_config("toy-" + data.split(":")[1])
        assert preset.data.name == data and preset.model.z_dim == z
    # the presets (dcgan-fashion-mnist's G is half D's width), a G half D's width, a shallower G
    for name, overrides in [("toy-grid25", []), ("toy-ring8", []), ("dcgan-fashion-mnist", []),
                            ("toy-grid25", ["model.g_width=64"]), ("toy-grid25", ["model.g_depth=1"])]:
        advice = _suggest_collapse(load_config(name, overrides)[1], {})
        assert "G is much smaller" not in advice and "z_dim" not in advice and "g_width" not in advice, advice


# ----------------------------------------------------------------------------- 5b. both rates


def test_collapse_advice_names_both_rates_when_both_are_far_too_high():
    """g_lr = d_lr = 0.4 had named only optim.g_lr, while the divergence advice named both."""
    _, cfg = load_config("toy-grid25", ["optim.g_lr=0.4", "optim.d_lr=0.4"])
    advice = _suggest_collapse(cfg, {})
    assert "optim.g_lr 0.4 is far above the presets' 1e-4 to 0.003: lower it, e.g. to 0.0002" in advice
    assert "optim.d_lr 0.4 is far above the presets' 1e-4 to 0.003: lower it, e.g. to 0.0002" in advice
    # only G's far out of line: D's innocent rate is not named; ordinary rates: G's halved alone
    _, cfg = load_config("toy-grid25", ["optim.g_lr=0.4", "optim.d_lr=0.1"])
    advice = _suggest_collapse(cfg, {})
    assert "optim.g_lr 0.4 is far above" in advice and "optim.d_lr 0.1 is far above" in advice
    _, cfg = load_config("toy-grid25", ["optim.g_lr=0.4", "optim.d_lr=0.003"])
    advice = _suggest_collapse(cfg, {})
    assert "optim.g_lr 0.4 is far above" in advice and "optim.d_lr" not in advice
    _, cfg = load_config("toy-grid25")
    assert _suggest_collapse(cfg, {}).endswith("lower optim.g_lr to 0.0005")


# ----------------------------------------------------------------------------- 5a. one warning


def test_the_end_line_says_it_explains_it_for_one_warning(tmp_path, capsys, monkeypatch):
    """"(1 warning: mode_collapse; it explains them)"; several keep "them"."""
    for n, (warned, end) in enumerate([("1 warning: mode_collapse", "it explains it)"),
                                       ("2 warnings: mode_collapse, rollback", "it explains them)")]):
        monkeypatch.setattr(train_command, "_warnings_since", lambda metrics, start, warned=warned: warned)
        run = tmp_path / f"run{n}"
        assert cli.main(["train", "toy-ring8", "--steps", "4", "--out", str(run), "--quiet"]) == 0
        assert f"  report:     ganforge report {run}  ({warned}; {end}\n" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 5e. the report's marks


def test_a_discarded_divergence_is_drawn_beside_and_over_the_rollback_at_its_step():
    """The loss plot's legend listed "divergence (before rollback)", whose dotted line lay under
    the rollback's dashed one at the same step."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from ganforge.report import plots

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.add_subplot()
    ax.set_xlim(0, 600)
    divergence, rollback = {"event": "divergence", "step": 50}, {"event": "rollback", "step": 50}
    handles = plots._mark_events(ax, [divergence, rollback], {id(divergence)})
    assert [h.get_label() for h in handles] == ["divergence (before rollback)", "rollback"]
    old, new = ax.get_lines()
    x_old = old.get_transform().transform((50, 0))[0]
    x_new = new.get_transform().transform((50, 0))[0]
    assert x_old - x_new == pytest.approx(3 * fig.dpi / 72)  # 3 points to the right
    assert old.get_zorder() > new.get_zorder()  # and on top
