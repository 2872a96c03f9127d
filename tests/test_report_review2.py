"""The report of a run that is still training or was killed, the charts' legends and widths, the
advice list on a narrow screen, evaluation settings changed by a resume and a toy run's advice
(review 2)."""
import itertools
import json
import math
import os

import pytest

from conftest import tiny_config
from ganforge import cli
from ganforge.errors import CheckpointError
from ganforge.report import build_html, load_run
from ganforge.rundir import LOCK_NAME, RunLock
from test_report import CHROMIUM, _chromium, make_run, parse_probe


def test_a_run_still_starting_says_to_wait_not_to_resume(tmp_path, capsys):
    """A live train holds the run's lock and has logged nothing yet: --resume would be refused."""
    run = tmp_path / "early"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_config(**{"train.log_every": 100}).to_yaml())
    lock = RunLock(run).acquire()
    try:
        with pytest.raises(CheckpointError) as info:
            load_run(run)
        message = str(info.value)
        assert f"still training (process {os.getpid()})" in message
        assert "first record comes at step 100" in message and "--resume" not in message
        assert cli.main(["report", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert "still training" in err and "\n" not in err
    finally:
        lock.release()
    # once nothing holds it, the run stopped early: resuming it is the advice again
    with pytest.raises(CheckpointError, match="--resume"):
        load_run(run)


def test_a_live_run_with_records_is_still_training_not_ended(tmp_path):
    """Its last end record is an earlier session's (a resume logs on after it)."""
    run = make_run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("\n" + json.dumps({"event": "end", "step": 400, "how": "interrupted",
                                   "signal": "SIGINT"}) + "\n")
    planned = load_run(run).config["train"]["steps"]
    lock = RunLock(run).acquire()
    try:
        run_state = load_run(run)
        html = build_html(run_state)
    finally:
        lock.release()
    assert f"still training <small>at step 400 of {planned:,}" in html
    assert "Ended" not in html and "stopped by" not in html and run_state.live
    # the probe only reads: the lock file still names its last holder
    assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
    (run / LOCK_NAME).write_text("12345\n")
    after = load_run(run)
    assert not after.live and "stopped by" in build_html(after)
    assert (run / LOCK_NAME).read_text() == "12345\n"


def _rolled_back_run(root):
    """Huge values at step 10, three divergences each rolled back to step 0 and a fourth (the
    legends get 'divergence (before rollback)' and 'rollback (before rollback)'), then a minimax
    G loss just under 0 beside a D loss of 10^15 (a symlog axis down to 10^-5)."""
    run = root / "rb"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_config(**{"train.steps": 60}).to_yaml())
    lines = []
    for n in (1, 2, 3):
        lines += [{"step": 10, "d_loss": 3e9, "g_loss": 1.7e11, "d_grad_norm": 2e9,
                   "dreg_grad_norm": 3.5e10, "g_grad_norm": 1.6e10, "time": 0.4},
                  {"event": "divergence", "step": 10, "message": "d_loss is 3e9"},
                  {"event": "rollback", "step": 10, "evidence": {"to_step": 0, "rollbacks": n}}]
    lines.append({"event": "divergence", "step": 10, "message": "d_loss is 3e9"})
    lines += [{"step": s, "d_loss": 10.0 ** (s / 4), "g_loss": -(10.0 ** (-s / 8)), "d_grad_norm": 1.0,
               "dreg_grad_norm": 2.0, "g_grad_norm": 3.0, "time": s / 10} for s in range(10, 70, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return load_run(run)


def _drawn_figures(run, monkeypatch):
    from ganforge.report import plots

    figures, png = [], plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: figures.append(fig) or png(fig))
    ids = [fid for fid, _, _ in plots.curve_figures(run)]
    for fig in figures:
        fig.canvas.draw()
    return dict(zip(ids, figures))


def _legend(fig):
    return (fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()])[0]


def test_legends_fit_and_every_chart_has_the_same_plot_width(tmp_path, monkeypatch):
    figures = _drawn_figures(_rolled_back_run(tmp_path), monkeypatch)
    assert {"losses", "grad-norms"} <= set(figures)
    widths = set()
    for fid, fig in figures.items():
        box, legend = fig.bbox, _legend(fig).get_window_extent()
        assert box.x0 <= legend.x0 and legend.x1 <= box.x1 and legend.y1 <= box.y1, fid
        texts = [t.get_text() for t in _legend(fig).get_texts()]
        assert "divergence (before rollback)" in texts and "divergence" in texts, fid
        widths.add(round(fig.axes[0].get_window_extent().width))
    assert len(widths) == 1, widths


def test_the_offset_text_and_symlog_labels_do_not_overlap(tmp_path, monkeypatch):
    run = _rolled_back_run(tmp_path)
    figures = _drawn_figures(run, monkeypatch)
    losses = figures["losses"]
    ax = losses.axes[0]
    assert ax.get_yscale() == "symlog"
    labels = [t.get_window_extent() for t in ax.get_yticklabels()
              if t.get_visible() and t.get_text() and ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
    assert len(labels) >= 3
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b), (a, b)
    # a linear axis of huge values gets matplotlib's "1e11" above the plot: not on the legend
    run.records[:] = [{"step": 10, "d_loss": 3e9, "g_loss": 1.7e11, "time": 0.4}]
    figures = _drawn_figures(run, monkeypatch)
    offset = figures["losses"].axes[0].yaxis.get_offset_text()
    assert offset.get_text() == "1e11"
    assert not offset.get_window_extent().overlaps(_legend(figures["losses"]).get_window_extent())


# The page laid out 400 px wide (headless Chromium's --dump-dom keeps a window 500 px wide or
# more) and, after load, the advice and evidence lines whose text runs past their event's card.
PROBE = """<style>body { width: 400px; }</style><script>
window.addEventListener("load", () => {
  const out = [...document.querySelectorAll(".event li, .event p")].filter(e => {
    const text = document.createRange();
    text.selectNodeContents(e);
    return text.getBoundingClientRect().right > e.closest(".event").getBoundingClientRect().right;
  }).map(e => e.innerText);
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({overflowing: out, events: document.querySelectorAll(".event").length});
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                             "chromium chromium-driver; .ci/run does it as root)")
def test_long_advice_wraps_inside_its_card_on_a_phone(tmp_path):
    run = make_run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("\n" + json.dumps({
            "event": "mode_collapse", "step": 390, "message": "sample diversity is 10% of real",
            "evidence": {"probe_classes_reference_name": "fashion-mnist-classifier-sha256-d08542b7"},
            "suggestion": "add differentiable augmentation: augment.diffaugment=color,translation,cutout"}) + "\n")
    probed = tmp_path / "probed.html"
    probed.write_text(build_html(load_run(run)).replace("</body>", PROBE))
    proc = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dumped = parse_probe(proc.stdout)
    assert dumped["events"] == 6 and dumped["overflowing"] == [], dumped


def _hand_run(root, cfg, lines, name="hand"):
    """A run folder written by hand: config.yaml and metrics.jsonl."""
    run = root / name
    run.mkdir()
    (run / "config.yaml").write_text(cfg.to_yaml())
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run


def _train_records(steps):
    return [{"step": s, "d_loss": 0.7, "g_loss": 1.5, "time": s / 10} for s in steps]


def test_metrics_name_every_protocol_and_no_line_joins_two(tmp_path, monkeypatch):
    """A resume with eval.n=1000 after evaluations on 200 samples: the caption had named only
    1000, over a line that joined both (KID jumped only because n changed)."""
    from ganforge.report import plots

    def protocol(n):
        return {"extractor": "fashion-mnist-cnn", "extractor_sha256": "d08542b7a116f7",
                "reference": "fashion-mnist", "split": "test", "n": n, "seed": 0}

    lines = _train_records(range(10, 90, 10)) + [
        {"step": s, "fid": 90.0 - s / 10, "kid": kid, "protocol": protocol(n)}
        for s, kid, n in ((20, 0.20, 200), (40, 0.18, 200), (60, 0.05, 1000), (80, 0.04, 1000))]
    run = load_run(_hand_run(tmp_path, tiny_config(**{"train.steps": 80}), lines))
    html = build_html(run)
    assert "steps 20–40: the fashion-mnist-cnn extractor (d08542b7a116) on 200 samples" in html
    assert "steps 60–80: the fashion-mnist-cnn extractor (d08542b7a116) on 1000 samples" in html
    figures, png = [], plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: figures.append(fig) or png(fig))
    assert plots.metrics_figure(run) is not None
    for ax in figures[0].axes:
        (line,) = ax.get_lines()
        xs, ys = list(line.get_xdata()), list(line.get_ydata())
        at = xs.index(60)
        assert xs[:at] == [20, 40] and math.isnan(ys[at]), (ax.get_title(), xs, ys)  # a break
    # one protocol throughout: one sentence, as before, and no break in the line
    same = [dict(r, protocol=protocol(200)) if "protocol" in r else r for r in lines]
    run = load_run(_hand_run(tmp_path, tiny_config(**{"train.steps": 80}), same, "same"))
    html = build_html(run)
    assert "Measured during training with the fashion-mnist-cnn extractor (d08542b7a116) on 200" in html
    assert "steps 20" not in html and not any(math.isnan(v) for v in run.series()["kid"][1])


def _checkpoint(run, step):
    folder = run / "checkpoints" / f"step_{step:07d}"
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(b"")
    (folder / "state.pt").write_bytes(b"")
    (run / "checkpoints" / "latest").write_text(folder.name + "\n")


def test_a_run_killed_without_an_end_record_says_so_and_how_to_resume(tmp_path):
    """SIGKILL at step 80 of 300 with checkpoints at 0 and 40: the summary had said only
    'Steps 80 of 300', with no status, no ending and no resume command."""
    cfg = tiny_config(**{"train.steps": 300, "train.checkpoint_every": 40})
    run = _hand_run(tmp_path, cfg, _train_records(range(10, 90, 10)), "killed")
    for step in (0, 40):
        _checkpoint(run, step)
    html = build_html(load_run(run))
    assert "Stopped" in html and "without an end record" in html
    assert "(killed or crashed) at step 80; last checkpoint step_0000040 (the steps after it are redone)" in html
    assert f"resume with ganforge train --resume --out {run}" in html
    # no checkpoint at all: a resume starts over
    bare = _hand_run(tmp_path, cfg, _train_records(range(10, 90, 10)), "bare")
    assert "no checkpoint, so a resume starts from step 0" in build_html(load_run(bare))
    # all planned steps logged: nothing to resume, no such card
    done = _hand_run(tmp_path, tiny_config(**{"train.steps": 80}), _train_records(range(10, 90, 10)), "done")
    assert "without an end record" not in build_html(load_run(done))


def test_a_toy_runs_report_points_to_bench_modes_not_eval_every(tmp_path):
    """Training refuses eval.every for 2-D points: the report had advised setting it."""
    import ganforge

    _, cfg = ganforge.load_config("toy-ring8", ["train.steps=40"])
    run = _hand_run(tmp_path, cfg, _train_records(range(10, 50, 10)) + [{"event": "end", "step": 40, "how": "done"}])
    html = build_html(load_run(run))
    assert "<code>ganforge bench modes --data toy:ring8</code>" in html
    assert "eval.every" not in html


def test_a_log_axis_of_two_decades_has_labels_beside_its_curves(tmp_path, monkeypatch):
    """pix2pix's |grad G| of 46-59 beside |grad D| of 1-8: matplotlib labelled the log axis at 10^0
    and 10^1 only, and G's curve sat above the last label with nothing to read it by."""
    run = tmp_path / "grads"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_config(**{"train.steps": 100}).to_yaml())
    lines = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "d_grad_norm": 1.2 + s / 15, "g_grad_norm": 59 - s / 8,
              "time": s / 10} for s in range(10, 110, 10)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ax = _drawn_figures(load_run(run), monkeypatch)["grad-norms"].axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()
             and low <= t.get_position()[1] <= high]
    assert {"2", "5", "10", "20", "50"} <= set(shown), shown  # plain numbers, up to G's curve
