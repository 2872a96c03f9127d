"""The report's D outputs follow the run's loss: a loss that is not probabilistic (wasserstein,
hinge, lsgan, ragan, rahinge) logs raw scores, which get the "critic score (raw)" axis and card
even where they lie inside [0, 1] (a weight-clipped WGAN's 0.005-0.09 had been drawn on the fixed
[0, 1] axis as D(x), beside the accuracies); the value range decides only where the loss is unknown."""
import json
import re

import ganforge.objectives  # noqa: F401  (registers the families' config sections)
from conftest import tiny_config
from ganforge.config import from_dict
from ganforge.report import build_html, load_run, plots

# a weight-clipped WGAN's critic scores after a few steps: inside [0, 1], yet no probabilities
SCORES = {"d_real": 0.0707, "d_fake": 0.0154}
RAW_CARD = "Last critic scores (raw) D(x) · D(G(z))"
RAW_NAMES = ("critic score (raw)", "D logit (raw)", "D score (raw)")
PROBABILITY_CARD = "Last D(x) · D(G(z))"
WGAN = {"loss.name": "wasserstein", "reg.clip": 0.01}  # wgan-fashion-mnist's weight clipping


def _run(root, name, config, scores=SCORES, accuracy=True):
    run = root / name
    run.mkdir()
    (run / "config.yaml").write_text(config.to_yaml())
    accuracies = {"d_acc_real": 0.96, "d_acc_fake": 0.97} if accuracy else {}  # LAPGAN, CycleGAN-VC log none
    records = [{"step": s, "time": s / 10, "d_loss": -0.02, "g_loss": -0.005, **scores, **accuracies}
               for s in (5, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return load_run(run)


def _d_outputs(run, monkeypatch, titles=None):
    """The D-outputs chart's matplotlib figure (``titles``: a dict given its title)."""
    drawn = []
    png = plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or png(fig))
    figures = plots.curve_figures(run)
    ids = [fig_id for fig_id, _, _ in figures]
    if titles is not None:
        titles["d-outputs"] = figures[ids.index("d-outputs")][1]
    return drawn[ids.index("d-outputs")]


def _axis(fig) -> str:
    """"raw": scores on their own auto-scaled axis, accuracies on a second one in [-0.03, 1.03];
    "probability": everything on the one fixed axis; anything else is reported as it is."""
    if len(fig.axes) == 1 and tuple(fig.axes[0].get_ylim()) == (-0.03, 1.03) and not fig.axes[0].get_ylabel():
        return "probability"
    if len(fig.axes) == 1 and fig.axes[0].get_ylabel() in RAW_NAMES and fig.axes[0].get_ylim()[1] < 0.2:
        return "raw, no accuracy"  # a family that logs no accuracies: no empty second axis
    scores, accuracy = fig.axes
    if scores.get_ylabel() in RAW_NAMES and (accuracy.get_ylabel(), tuple(accuracy.get_ylim())) == \
            ("accuracy", (-0.03, 1.03)) and scores.get_ylim()[1] < 0.2:
        return "raw"
    return f"{len(fig.axes)} axes {[(a.get_ylabel(), a.get_ylim()) for a in fig.axes]}"


def _cards(run) -> dict[str, str]:
    found = re.findall(r'<div class="label">(.*?)</div><div class="value">(.*?)</div></div>', build_html(run))
    return {re.sub(r"<[^>]+>", "", label): value for label, value in found}


def test_the_d_outputs_axis_follows_the_loss_not_the_values(tmp_path, monkeypatch):
    configs = {name: tiny_config(**{"loss.name": name}) for name in
               ("minimax", "nonsaturating", "hinge", "lsgan", "ragan", "rahinge")}
    configs["wasserstein"] = tiny_config(**WGAN)
    # super-resolution logs ragan's outputs as sigmoid(d_real - mean d_fake), a probability
    configs["superres-ragan"] = from_dict({"objective": "superres", "loss": {"name": "ragan"}})
    # a plugin's loss not imported here: unknown, so the values decide (these are inside [0, 1])
    configs["plugin"] = tiny_config(**{"loss.name": "gf_plugin_loss_not_imported"})
    axes = {name: _axis(_d_outputs(_run(tmp_path, name, cfg), monkeypatch)) for name, cfg in configs.items()}
    assert axes == {"minimax": "probability", "nonsaturating": "probability", "wasserstein": "raw",
                    "hinge": "raw", "lsgan": "raw", "ragan": "raw", "rahinge": "raw",
                    "superres-ragan": "probability", "plugin": "probability"}
    # the fallback for an unknown loss still moves scores off [0, 1] onto the raw axis
    out_of_range = _run(tmp_path, "plugin-wide", configs["plugin"], {"d_real": 5.0, "d_fake": -7.0})
    assert _axis(_d_outputs(out_of_range, monkeypatch)).startswith("2 axes [('D score (raw)'")


def test_the_summary_card_names_raw_scores(tmp_path):
    wgan = _cards(_run(tmp_path, "wgan", tiny_config(**WGAN)))
    assert wgan.get(RAW_CARD) == "0.0707 · 0.0154" and PROBABILITY_CARD not in wgan
    dcgan = _cards(_run(tmp_path, "dcgan", tiny_config(**{"loss.name": "nonsaturating"})))
    assert dcgan.get(PROBABILITY_CARD) == "0.0707 · 0.0154" and RAW_CARD not in dcgan


def test_families_that_log_raw_outputs_whatever_the_loss_say_so(tmp_path, monkeypatch):
    """LAPGAN and CycleGAN-VC log the means of D's raw outputs even under a logistic loss, and the
    vocoder its least-squares scores: each family declares it (Objective.logs_d_probabilities), so
    logits that happen to lie inside [0, 1] are not drawn as probabilities (the value range alone
    had decided for them)."""
    lapgan = from_dict({"objective": "lapgan", "loss": {"name": "nonsaturating"}})
    # LAPGAN logs one value per level (d_real_0, ...), as the Trainer writes them
    levels = {f"{k}_{i}": v for k, v in SCORES.items() for i in range(2)}
    titles = {}
    assert _axis(_d_outputs(_run(tmp_path, "lapgan", lapgan, levels, accuracy=False), monkeypatch, titles)) \
        == "raw, no accuracy"  # and no empty accuracy axis beside them, nor in the title
    assert titles["d-outputs"] == "Discriminator outputs: mean D(x), D(G(z))"
    for objective in ("cyclegan-vc", "vocoder"):
        cfg = from_dict({"objective": objective, "loss": {"name": "nonsaturating"}})
        assert _axis(_d_outputs(_run(tmp_path, objective, cfg), monkeypatch)) == "raw", objective
    # the translation families log sigmoid(d) for a logistic loss, as the base declares
    for objective, expected in (("pix2pix", "probability"), ("cyclegan", "probability")):
        cfg = from_dict({"objective": objective, "loss": {"name": "nonsaturating"}})
        assert _axis(_d_outputs(_run(tmp_path, objective, cfg), monkeypatch)) == expected, objective


def test_raw_outputs_are_named_by_the_loss_critic_only_for_wasserstein(tmp_path):
    """"critic" is the Wasserstein loss's word: LAPGAN's raw outputs under a logistic loss are
    logits, and hinge / least squares scores, or a family's own loss (the vocoder's), D's scores;
    all of them had been called critic scores, on the axis and the card."""
    names = {name: plots.raw_score_name(_run(tmp_path, name, cfg)) for name, cfg in {
        "wasserstein": tiny_config(**WGAN), "hinge": tiny_config(**{"loss.name": "hinge"}),
        "lsgan": tiny_config(**{"loss.name": "lsgan"}),
        "lapgan": from_dict({"objective": "lapgan", "loss": {"name": "nonsaturating"}}),
        "vocoder": from_dict({"objective": "vocoder", "loss": {"name": "nonsaturating"}})}.items()}
    assert names == {"wasserstein": "critic score (raw)", "hinge": "D score (raw)", "lsgan": "D score (raw)",
                     "lapgan": "D logit (raw)", "vocoder": "D score (raw)"}
    hinge = _cards(_run(tmp_path, "hinge-card", tiny_config(**{"loss.name": "hinge"})))
    assert hinge.get("Last D scores (raw) D(x) · D(G(z))") == "0.0707 · 0.0154" and RAW_CARD not in hinge
