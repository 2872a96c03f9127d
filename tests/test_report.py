"""The HTML training report: built from a fake run directory, parsed, and rendered in headless
Chromium (skipped, with the reason shown, where Chromium is not installed)."""
import base64
import io
import itertools
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from ganforge import cli
from ganforge.errors import CheckpointError, ConfigError
from ganforge.report import load_run, write_report

SECTIONS = ["summary", "events", "curves", "metrics", "samples", "final", "config"]
CURVES = ["timeline", "losses", "d-outputs", "grad-norms", "diversity", "throughput"]
KINDS = ["oscillation", "mode_collapse", "vanishing_gradients", "divergence", "rollback"]


def _record(step, scale=1.0):
    return {"step": step, "d_loss": 0.6 + 0.2 * math.sin(step / 30), "g_loss": 1.8 * scale,
            "d_real": 0.75, "d_fake": 0.25, "d_acc_real": 0.9, "d_acc_fake": 0.85,
            "g_grad_norm": 8.0, "d_grad_norm": 90.0, "diversity": 18.0 - step / 100,
            "diversity_real": 21.9, "nonfinite": 0, "img_per_s": 1400.0, "time": step / 10}


def _grid(path, color):
    """A 4x4 'sample grid' of 16x16 tiles (66 px with padding), one colour per tile row."""
    arr = np.zeros((66, 66, 3), np.uint8)
    for r in range(4):
        for c in range(4):
            arr[2 + 16 * r:16 * (r + 1), 2 + 16 * c:16 * (c + 1)] = [color[0], 40 * r, 60 * c]
    Image.fromarray(arr).save(path)


def make_run(root: Path) -> Path:
    """Records every 10 steps to 300, a divergence and a rollback to step 200, records again
    from 210 to 400, evaluation records, events of every kind and two sample grids."""
    run = root / "run"
    (run / "samples").mkdir(parents=True)
    cfg = tiny_config(**{"loss.name": "minimax", "optim.d_lr": 1e-3})
    (run / "config.yaml").write_text(cfg.to_yaml())
    lines = [_record(s) for s in range(10, 310, 10)]
    lines[-1]["g_loss"] = None  # NaN, as the logger writes it
    lines += [
        {"event": "oscillation", "step": 120, "message": "d_loss swings back and forth",
         "evidence": {"series": "d_loss", "sign_changes": 6}, "suggestion": "lower optim.d_lr to 0.0005"},
        {"event": "mode_collapse", "step": 180, "message": "sample diversity is 0.12 of real",
         "evidence": {"ratio": 0.12}, "suggestion": "add R1 with reg.r1_gamma=0.0049"},
        {"event": "vanishing_gradients", "step": 220, "message": "D wins outright",
         "evidence": {"g_grad_norm": 1e-4}, "suggestion": "loss is minimax (saturating): switch "
                                                          "to loss.name=nonsaturating; lower optim.d_lr to 0.0005"},
        {"event": "divergence", "step": 300, "message": "non-finite values: g_loss",
         "evidence": {"nonfinite": ["g_loss"]}, "suggestion": "lower optim.g_lr to 0.0001"},
        {"event": "rollback", "step": 300, "to_step": 200, "lr_scale": 0.5},
    ]
    lines += [_record(s, scale=2.0) for s in range(210, 410, 10)]
    protocol = {"extractor": "fashion-mnist-cnn", "extractor_sha256": "d08542b7a116f7", "reference": "fashion-mnist",
                "split": "train", "n": 300, "seed": 1}
    lines += [{"step": s, "fid": 300.0 - s / 2, "kid": 0.3 - s / 2000, "kid_std": 0.01, "protocol": protocol}
              for s in (100, 200, 400)]
    with open(run / "metrics.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
        f.write('{"step": 410, "d_lo')  # a partial line, as a killed process leaves
    _grid(run / "samples" / "step_0000200.png", (200, 0, 0))
    _grid(run / "samples" / "step_0000400.png", (0, 200, 0))
    return run


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.articles, self.external = [], [], 0, []
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs)
        if tag == "article":
            self.articles += 1
        if tag in ("script", "link", "iframe") or (attrs.get("src") or "data:").split(":")[0] != "data":
            self.external.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def parse(path):
    page = _Page()
    page.feed(Path(path).read_text())
    page.text = " ".join(" ".join(page.text).split())
    return page


def test_report_has_sections_curves_events_and_embedded_images(tmp_path):
    run = make_run(tmp_path)
    out = write_report(run)
    assert out == run / "report.html"
    page = parse(out)
    assert [i for i in page.ids if i in SECTIONS] == SECTIONS
    assert [i for i in page.ids if i in CURVES] == CURVES
    assert page.external == []  # self-contained: nothing fetched
    # every image is a decodable PNG: 6 curve figures, metrics, 2 timeline grids, final grid
    assert len(page.images) == 10
    sizes = []
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))) as im:
            im.load()
            sizes.append(im.size)
        assert img["alt"]
    assert sizes[-3:] == [(66, 66)] * 3  # sample grids embedded as they are
    assert page.articles == 5  # one per event
    for needle in ("switch to loss.name=nonsaturating", "lower optim.g_lr to 0.0001",
                   "to_step 200", "lr_scale 0.5", "step 300", "1 unreadable line in metrics.jsonl",
                   "fid", "400 of 6", "Final samples", "Step 400 (step_0000400.png)",
                   "Measured during training with the fashion-mnist-cnn extractor (d08542b7a116) on 300 samples "
                   "(noise seed 1) against the train split of fashion-mnist",
                   "only the inception extractor's compare with papers"):
        assert needle in page.text, needle
    # the config summary holds the run's values and marks those changed from the defaults
    html = out.read_text()
    assert '<td class=changed title="default: nonsaturating">minimax</td>' in html


def test_large_grids_are_shrunk_in_the_timeline_only(tmp_path):
    run = make_run(tmp_path)
    Image.new("RGB", (640, 480), (90, 30, 200)).save(run / "samples" / "step_0000400.png")
    page = parse(write_report(run))
    sizes = []
    for img in page.images[-3:]:
        with Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))) as im:
            sizes.append(im.size)
    assert sizes == [(66, 66), (300, 225), (640, 480)]


def test_rolled_back_records_are_replaced(tmp_path):
    run = load_run(make_run(tmp_path))
    steps, g_loss = run.series()["g_loss"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 40
    assert g_loss[steps.index(200)] == 1.8 and g_loss[steps.index(210)] == 3.6  # after rollback
    assert [e["event"] for e in run.events] == KINDS
    assert run.series()["fid"] == ([100, 200, 400], [250.0, 200.0, 100.0])
    assert run.last_step == 400


def test_default_report_is_regenerated_but_other_files_need_force(tmp_path, monkeypatch):
    from ganforge.report import page

    monkeypatch.setattr(page, "build_html", lambda run: f"<html>{run.last_step}</html>")
    run = make_run(tmp_path)
    write_report(run)
    write_report(run)  # the default file is the report's own: regenerating it is fine
    assert (run / "report.html").read_text() == "<html>400</html>"
    other = tmp_path / "elsewhere" / "r.html"
    assert write_report(run, other) == other
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        write_report(run, other)
    assert write_report(run, other, force=True) == other
    assert write_report(run, run / "." / "report.html") == run / "report.html"  # the default
    with pytest.raises(ConfigError, match="use a .html name"):
        write_report(run, tmp_path / "r.png")
    assert sorted(p.name for p in other.parent.iterdir()) == ["r.html"]  # no temp files left


@pytest.mark.parametrize("content", [None, "", '{"step": 3, "d_lo\n',
                                     '{"event": "divergence", "step": 3}\n'])
def test_run_without_metrics_is_one_line_error(tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "metrics.jsonl").write_text(content)
    with pytest.raises(CheckpointError) as info:
        write_report(run)
    message = str(info.value)
    assert "has no metrics" in message and "ganforge train" in message and "\n" not in message
    assert not (run / "report.html").exists()


def test_report_command(tmp_path, monkeypatch, capsys):
    """Through cli.main, as `ganforge report` runs."""
    run = make_run(tmp_path)
    assert cli.main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(run / "report.html"))
    out = tmp_path / "mine.html"
    out.write_text("mine")
    assert cli.main(["report", str(run), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == "mine"
    assert cli.main(["report", str(run), "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Appended to a copy of the page: after load, record what rendered where --dump-dom shows it.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const out = {sections: [...document.querySelectorAll("section[id]")].map(s => s.id),
               images: imgs.length,
               decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
               visible: [...document.querySelectorAll("section")].filter(
                 s => s.getBoundingClientRect().height > 40).length,
               labels: [...document.querySelectorAll(".card .label")].map(l => l.innerText)};
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


def _chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                             "chromium chromium-driver; .ci/run does it as root)")
def test_report_renders_in_headless_chromium(tmp_path):
    report = write_report(make_run(tmp_path))
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE))
    proc = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dumped = parse_probe(proc.stdout)
    assert dumped["sections"] == SECTIONS
    assert dumped["images"] == 10 and dumped["decoded"] == 10
    assert dumped["visible"] == len(SECTIONS)
    # as shown: the CSS uppercases the card labels but not their math ("LAST D(X) · D(G(Z))" had
    # been shown), and kid_std reads like the others ("KID_STD" had)
    assert "LAST D(x) · D(G(z))" in dumped["labels"] and "KID STD" in dumped["labels"]
    assert not [label for label in dumped["labels"] if "_" in label]

    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200  # text, plots and samples
    # the header bar is dark, the page behind the sections light
    assert pixels[:40].mean() < 80 and pixels[:, :20].mean() > 200


def parse_probe(dom: str) -> dict:
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    return json.loads(dom[start:dom.index("</pre>", start)].replace("&quot;", '"'))


def test_training_terms_are_not_metrics_and_critic_scores_stay_on_the_chart(tmp_path):
    """r1 (a regularizer logged with the losses) was a "metric" card; a WGAN critic's raw scores
    (D(x) 5, D(G(z)) -7) were drawn on a fixed [0, 1] axis, off the chart."""
    from ganforge.report import plots

    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(tiny_config().to_yaml())
    with open(run_dir / "metrics.jsonl", "w") as f:
        for s in range(10, 60, 10):
            f.write(json.dumps({**_record(s), "r1": 1.5, "d_real": 5.0 + s / 10, "d_fake": -7.0}) + "\n")
    run = load_run(run_dir)
    assert plots.metric_keys(run) == [] and plots.other_training_keys(run) == ["r1"]
    figures = {fig_id: png for fig_id, _, png in plots.curve_figures(run)}
    assert "other-terms" in figures
    with Image.open(io.BytesIO(figures["d-outputs"])) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    # D(G(z)) at -7 (matplotlib's C1, orange, solid) is drawn inside the axes, near the bottom
    orange = (pixels[..., 0] > 220) & (abs(pixels[..., 1] - 127) < 40) & (pixels[..., 2] < 80)
    assert orange[pixels.shape[0] // 2:].sum() > 200
    out = write_report(run_dir)
    page = out.read_text()
    assert '<div class="label">r1</div>' not in page and "No evaluation metrics were logged" in page


def test_per_level_terms_are_drawn_with_the_losses_and_outputs_in_distinct_colors(tmp_path):
    """LAPGAN logs d_loss_0, g_loss_1, d_real_2, ...: they had all gone to one "other terms"
    chart, where 12 curves on 10 colors drew d_loss_0 and d_fake_2 in the same blue."""
    from ganforge.report import plots

    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(tiny_config().to_yaml())
    terms = [f"{k}_{level}" for level in range(3) for k in ("d_loss", "g_loss", "d_real", "d_fake")]
    with open(run_dir / "metrics.jsonl", "w") as f:
        for s in range(10, 60, 10):
            f.write(json.dumps({"step": s, "time": s / 10, "img_per_s": 100.0,
                                **{k: 0.5 + i / 100 for i, k in enumerate(terms)}}) + "\n")
    run = load_run(run_dir)
    assert plots.other_training_keys(run) == [] and plots.metric_keys(run) == []
    figures = [fig_id for fig_id, _, _ in plots.curve_figures(run)]
    assert figures[:2] == ["losses", "d-outputs"] and "other-terms" not in figures
    colors = plots._colors(terms)
    assert len({str(c) for c in colors.values()}) == len(terms)


def test_an_audio_runs_report_shows_its_slow_rate_and_how_it_is_evaluated(tmp_path):
    """A voice-conversion run trains under one clip per second: its throughput card read '0 img/s',
    and the page advised eval.every for FID, which audio runs refuse."""
    from ganforge.report.page import build_html

    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(tiny_config().to_yaml())
    import soundfile as sf

    sf.write(run_dir / "samples" / "step_0000010_AtoB_0.wav", np.zeros(800, np.float32), 8000)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for s in range(10, 60, 10):
            f.write(json.dumps({"step": s, "time": s, "d_loss": 0.5, "g_loss": 1.0, "img_per_s": 0.37}) + "\n")
    html = build_html(load_run(run_dir))
    assert "0.37 <small>clips/s</small>" in html
    assert "ganforge eval-audio RUN --data DIR" in html and "track FID" not in html


# ----------------------------------------------------------------------------- labels, events, colours


def test_every_logged_key_gets_a_readable_label(tmp_path):
    """The gradient-norm legend showed the raw key dreg_grad_norm (the lazy R1 phase's own step;
    StyleGAN2's path-length phase logs greg_grad_norm, LAPGAN's levels g0_grad_norm, ...), and the
    summary card of kid_std read KID_STD."""
    from ganforge.report import plots
    from ganforge.report.page import build_html

    assert plots.label("dreg_grad_norm") == "|grad D| (R1/R2 step)"
    assert plots.label("greg_grad_norm") == "|grad G| (path-length step)"
    assert (plots.label("g0_grad_norm"), plots.label("d2_grad_norm")) == ("|grad G0|", "|grad D2|")
    assert plots.label("d_loss_2") == "D loss, level 2" and plots.label("d_fake_0") == "D(G(z)), level 0"
    # every phase a family trains logs f"{phase.name.lower()}_grad_norm" (Trainer._run_phase)
    phases = {"G", "D", "Dreg", "Greg"} | {f"{n}{level}" for n in "GD" for level in range(4)}
    for key in [f"{p.lower()}_grad_norm" for p in phases] + list(plots.D_OUTPUTS):
        assert "_" not in plots.label(key), key
    metrics = {"fid": "FID", "kid": "KID", "kid_std": "KID std", "is_std": "IS std", "precision": "Precision",
               "classes_covered": "Classes covered", "class_kl": "Class KL", "label_accuracy": "Label accuracy",
               "intra_fid": "Intra-class FID", "memorization": "Memorization", "ppl_w": "PPL in W"}
    assert {k: plots.metric_label(k) for k in metrics} == metrics

    html = build_html(load_run(make_run(tmp_path)))
    assert '<div class="label">KID std</div>' in html and ">kid_std<" not in html
    # math keeps its case under the labels' uppercasing
    assert ('<div class="label">Last <span class="math">D(x)</span> · <span class="math">D(G(z))</span></div>'
            in html)
    assert ".card .label .math { text-transform: none; }" in html


def _run_with_events(root: Path, events: list[dict]) -> Path:
    run = root / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text(tiny_config().to_yaml())
    with open(run / "metrics.jsonl", "w") as f:
        for line in [_record(s) for s in range(10, 110, 10)] + events:
            f.write(json.dumps(line) + "\n")
    _grid(run / "samples" / "step_0000100.png", (0, 200, 0))
    return run


def test_a_config_change_is_shown_but_is_no_diagnostic(tmp_path):
    """A resume with changed settings writes a config_change event: the report counted it as a
    diagnostic ("Diagnostics (1)", "1 event"), though the README's diagnostics are the
    monitor's detectors."""
    from ganforge.report import plots
    from ganforge.training.monitor import KINDS

    change = {"event": "config_change", "step": 50, "message": "config changed on resume: optim.d_lr 0.05 -> 0.01",
              "evidence": {"optim.d_lr": [0.05, 0.01]}}
    page = parse(write_report(_run_with_events(tmp_path, [change])))
    assert "Diagnostics (0)" in page.text and "Diagnostics (1)" not in page.text
    assert "Diagnostics none" in page.text and "Diagnostics 1 event" not in page.text
    assert "No diagnostic events" in page.text
    # still shown: its own article under other events, a card, and its own marker colour
    assert page.articles == 1 and "Other events 1 config change" in page.text
    assert "Config change step 50 config changed on resume: optim.d_lr 0.05 -> 0.01" in page.text
    assert plots.color("config_change") not in (plots.OTHER_EVENT_COLOR, *(plots.color(k) for k in KINDS))

    # with diagnostics beside it (and a rollback, which is no detector either), only they count
    both = [{"event": "divergence", "step": 30, "message": "non-finite values: g_loss"},
            {"event": "rollback", "step": 30, "to_step": 20, "lr_scale": 0.5}, change]
    page = parse(write_report(_run_with_events(tmp_path / "b", both)))
    assert "Diagnostics (1)" in page.text and "Diagnostics 1 event" in page.text
    assert "Other events 2 rollback, config change" in page.text and page.articles == 3
    assert plots.DIAGNOSTICS == KINDS  # the report's list is the monitor's


def _curve_colors():
    from matplotlib import colormaps

    return ([f"C{i}" for i in range(10)] + [colormaps["tab20"](i) for i in range(20)]
            + ["#2e7d32", "#95a5a6"])  # tab10, tab20 (many curves), the metrics, the sample grids


def test_event_markers_use_colours_no_curve_uses(tmp_path):
    """The vanishing-gradients marker was the orange of the G loss and D(G(z)) curves (#d35400
    against C1 #ff7f0e), oscillation's the blue of C0."""
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    from ganforge.report import plots

    def lab(c):
        return rgb2lab(np.array(to_rgb(c), float)[None, None])[0, 0]

    markers = {**plots.EVENT_COLORS, "other": plots.OTHER_EVENT_COLOR}
    for kind, marker in markers.items():
        for curve in _curve_colors():
            assert deltaE_ciede2000(lab(marker), lab(curve)) >= 20, (kind, marker, curve)
    for (a, ca), (b, cb) in itertools.combinations(markers.items(), 2):
        assert deltaE_ciede2000(lab(ca), lab(cb)) >= 15, (a, b)

    # and the figures draw them: the losses chart of a run with vanishing gradients holds a
    # dashed line of the marker colour (antialiased over 2 px columns on white)
    event = {"event": "vanishing_gradients", "step": 55, "message": "D wins outright"}
    run = load_run(_run_with_events(tmp_path, [event]))
    losses = {fig_id: png for fig_id, _, png in plots.curve_figures(run)}["losses"]
    with Image.open(io.BytesIO(losses)) as im:
        pixels = np.asarray(im.convert("RGB")).astype(float)
    drawn = np.array(to_rgb(plots.color("vanishing_gradients"))) * 255
    assert (np.abs(pixels - drawn).max(axis=2) < 40).sum() > 100
