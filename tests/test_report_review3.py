"""The report of a LAPGAN run (per-level losses), of an audio run (its throughput unit, the
settings it does not use, its players) and of a progressive run (the stage it reached) (review 3)."""
import json
import re

import numpy as np
import pytest
from PIL import Image

import ganforge.objectives  # noqa: F401  (registers the families' config sections)
from conftest import tiny_config
from ganforge.config import from_dict
from ganforge.report import build_html, load_run, plots, write_report
from test_report import CHROMIUM, _chromium, parse_probe


def _run(root, config, records, sounds=(), name="run"):
    """A run folder: config.yaml from a Config, metrics.jsonl from dicts, a grid and WAVs at the
    last record's step."""
    run = root / name
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text(config.to_yaml())
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    step = records[-1]["step"]
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(run / "samples" / f"step_{step:07d}.png")
    if sounds:
        import soundfile as sf

        for sound in sounds:
            sf.write(run / "samples" / f"step_{step:07d}_{sound}.wav", np.zeros(400, np.float32), 8000)
    return run


def _cards(html: str) -> dict[str, str]:
    """Summary card label -> value (HTML)."""
    found = re.findall(r'<div class="label">(.*?)</div><div class="value">(.*?)</div></div>', html)
    return {re.sub(r"<[^>]+>", "", label): value for label, value in found}


def _vocoder():
    return from_dict({"objective": "vocoder", "data": {"name": "audio:speech"}, "vocoder": {"d_width": 4}})


# ----------------------------------------------------------------------------- 1. LAPGAN


def test_a_lapgan_run_shows_its_last_losses_per_level(tmp_path):
    """LAPGAN logs d_loss_0, g_loss_0, d_real_0, ... per level: no "Last losses" card was shown."""
    values = {f"{k}_{level}": 0.5 + level / 10 + i / 100 for level in range(3)
              for i, k in enumerate(("d_loss", "g_loss", "d_real", "d_fake"))}
    run = _run(tmp_path, from_dict({"objective": "lapgan"}),
               [{"step": s, "time": s / 10, "img_per_s": 500.0, **values} for s in (10, 20)])
    cards = _cards(build_html(load_run(run)))
    assert cards["Last losses D · G"] == ("0.5 · 0.51 <small>level 0</small><br>0.6 · 0.61 <small>level 1"
                                          "</small><br>0.7 · 0.71 <small>level 2</small>")
    # the means of D's raw outputs per level (LAPGAN.logs_d_probabilities), named as such
    assert cards["Last D logits (raw) D(x) · D(G(z))"].startswith("0.52 · 0.53 <small>level 0</small><br>")
    # a plain run's card is as it was
    plain = _run(tmp_path, tiny_config(), [{"step": 10, "time": 1.0, "d_loss": 0.25, "g_loss": 2.0}],
                 name="plain")
    assert _cards(build_html(load_run(plain)))["Last losses D · G"] == "0.25 · 2"


# ----------------------------------------------------------------------------- 2. audio settings


def test_an_audio_runs_throughput_chart_counts_clips(tmp_path, monkeypatch):
    """Its summary card said clips/s, the chart's legend and y axis "images / s"."""
    drawn = []
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or b"")
    records = [{"step": s, "time": s, "g_loss": 1.0, "img_per_s": 0.5} for s in (10, 20)]
    for name, config, unit in (("voc", _vocoder(), "clips / s"), ("img", tiny_config(), "images / s")):
        drawn.clear()
        run = load_run(_run(tmp_path, config, records, name=name))
        ids = [fig_id for fig_id, _, _ in plots.curve_figures(run)]
        fig = drawn[ids.index("throughput")]
        assert fig.axes[0].get_ylabel() == unit
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [unit]


def test_an_audio_runs_config_keeps_the_image_settings_it_does_not_use_apart(tmp_path):
    """A vocoder run's table listed model: dcgan, z_dim 100, data: resolution 28, loss:
    nonsaturating, eval: best fid as its settings; they are defaults it never reads."""
    records = [{"step": 10, "time": 1.0, "g_loss": 1.0}]
    html = build_html(load_run(_run(tmp_path, _vocoder(), records, sounds=["0"])))
    section = html[html.index('<section id="config">'):]
    used, _, unused = section.partition('<details class="unused">')
    assert unused, "the unused settings are shown apart"
    for caption in ("model", "reg", "augment", "eval", "loss"):
        assert f"<caption>{caption}</caption>" not in used and f"<caption>{caption}</caption>" in unused
    assert "<td>resolution</td>" in unused and "<td>resolution</td>" not in used
    assert "<td>split</td>" in used and "<caption>vocoder</caption>" in used
    assert "Not used by objective=vocoder: data.resolution, data.channels, model.*, loss.*" in unused
    # the family's own section is compared with its defaults too (d_width 4 had not been bold)
    assert '<td>d_width</td><td class=changed title="default: 32">4</td>' in used

    # an image run, a LAPGAN one (whose unsupported_advice names "model.") included, shows all
    for name, config in (("dcgan", tiny_config()), ("lapgan", from_dict({"objective": "lapgan"}))):
        html = build_html(load_run(_run(tmp_path, config, records, name=name)))
        assert '<details class="unused">' not in html
        assert "<caption>model</caption>" in html and "<td>z_dim</td>" in html


def test_a_translation_run_keeps_its_unused_eval_settings_apart(tmp_path):
    """pix2pix is measured after training (translate-eval) and refuses eval.every."""
    html = build_html(load_run(_run(tmp_path, from_dict({"objective": "pix2pix"}),
                                    [{"step": 10, "time": 1.0, "g_loss": 1.0}])))
    used, _, unused = html[html.index('<section id="config">'):].partition('<details class="unused">')
    assert "<caption>eval</caption>" in unused and "<caption>eval</caption>" not in used
    assert "<caption>model</caption>" in used


# ----------------------------------------------------------------------------- 3. audio players


@pytest.mark.parametrize("objective, sounds, labels", [
    ("vocoder", ["0", "1", "2", "3"],
     ["Top left tile", "Top right tile", "Bottom left tile", "Bottom right tile"]),
    ("cyclegan-vc", ["BtoA_1", "AtoB_0", "BtoA_0", "AtoB_1"],
     ["Top left tile, A → B", "Top right tile, A → B", "Bottom left tile, B → A", "Bottom right tile, B → A"]),
    ("vocoder", ["0", "1"], ["Top tile", "Bottom tile"]),
])
def test_each_player_names_the_tile_it_plays(tmp_path, objective, sounds, labels):
    """The players were captioned "0", "1", ... (and "AtoB_0"), which named no tile of the grid
    (tiled grid_columns(n) to a row, a WAV per tile in the preview's order)."""
    config = from_dict({"objective": objective, "data": {"name": "audio:speech"}})
    html = build_html(load_run(_run(tmp_path, config, [{"step": 10, "time": 1.0, "g_loss": 1.0}], sounds)))
    players = html[html.index('<div class="players">'):]
    assert re.findall(r"<figure><figcaption>(.*?)</figcaption><audio", players) == labels


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_four_players_all_show_at_1200_px(tmp_path):
    """At 1200 px the 4th player sat cut off in a horizontal scroller."""
    run = _run(tmp_path, _vocoder(), [{"step": 10, "time": 1.0, "g_loss": 1.0}], sounds=["0", "1", "2", "3"])
    probed = tmp_path / "probed.html"
    probed.write_text(write_report(run).read_text().replace("</body>", """<script>
window.addEventListener("load", () => {
  const box = document.querySelector("#final").getBoundingClientRect();
  const out = [...document.querySelectorAll("#final audio")].map(a => {
    const r = a.getBoundingClientRect();
    return r.width > 100 && r.left >= box.left && r.right <= box.right;
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({inside: out});
  document.body.appendChild(pre);
});
</script></body>"""))
    proc = _chromium(tmp_path, "--window-size=1200,2000", "--virtual-time-budget=5000", "--dump-dom",
                     probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert parse_probe(proc.stdout)["inside"] == [True] * 4


# ----------------------------------------------------------------------------- 4. progressive stage


def _stage(step, stage, resolution, phase):
    return {"event": "stage", "step": step, "message": f"stage {stage + 1}/4: {resolution}x{resolution}",
            "evidence": {"phase": phase, "resolution": resolution, "stage": stage, "alpha": 0.0}}


@pytest.mark.parametrize("events, card", [
    ([], "1/4 <small>4x4, stable</small>"),
    ([_stage(10, 1, 8, "fade_in")], "2/4 <small>8x8, fading in</small>"),
    ([_stage(10, 1, 8, "fade_in"), _stage(20, 1, 8, "stable")], "2/4 <small>8x8, stable</small>"),
    # a stage a rollback to step 20 discarded is not reached
    ([_stage(10, 1, 8, "fade_in"), _stage(20, 1, 8, "stable"), _stage(30, 2, 16, "fade_in"),
      {"event": "rollback", "step": 30, "evidence": {"to_step": 20}}], "2/4 <small>8x8, stable</small>"),
])
def test_a_progressive_run_says_the_stage_it_reached(tmp_path, events, card):
    """metrics.jsonl holds its stage events; the summary did not say how far it had grown."""
    config = from_dict({"objective": "progressive", "data": {"name": "fashion-mnist", "resolution": 32}})
    records = [{"step": s, "time": s / 10, "d_loss": 0.1, "g_loss": -0.3, "alpha": 1.0} for s in (10, 20, 30)]
    cards = _cards(build_html(load_run(_run(tmp_path, config, records + events))))
    assert cards["Stage reached"] == card
    assert "Stage reached" not in _cards(build_html(load_run(_run(tmp_path, tiny_config(), records,
                                                                   name="plain"))))
