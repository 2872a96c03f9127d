"""The report of a run that is still training, the charts' legends and widths, and the advice
list on a narrow screen (review 2)."""
import itertools
import json
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
