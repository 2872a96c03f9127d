"""`ganforge report RUN1 RUN2 ...` of runs of several families draws one losses chart per family:
on one axis, the largest family's losses (pix2pix's G loss holds 100 x L1) had flattened the
others to a line."""
import json
import re

from conftest import tiny_config
from ganforge.report import write_comparison
from ganforge.report.compare import _charts
from ganforge.report.run import load_run


def _run(path, objective, g_loss):
    path.mkdir(parents=True)
    cfg = tiny_config(**{"train.steps": 100}).to_yaml().replace("objective: unconditional", f"objective: {objective}")
    (path / "config.yaml").write_text(cfg)
    lines = [{"step": s, "d_loss": 1.0, "g_loss": g_loss, "time": s / 10} for s in range(10, 110, 10)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _loss_charts(html):
    losses = html.split("<h3>Losses</h3>", 1)[1]
    return re.findall(r"<h4>([^<]*)</h4>", losses), len(re.findall(r"<img ", losses))


def test_runs_of_two_families_get_a_losses_chart_each(tmp_path):
    runs = [_run(tmp_path / "a", "unconditional", 2.0), _run(tmp_path / "b", "pix2pix", 90.0),
            _run(tmp_path / "c", "unconditional", 3.0)]
    html = _charts([load_run(r) for r in runs], ["a", "b", "c"])
    assert _loss_charts(html) == (["unconditional", "pix2pix"], 2)
    assert "not on one scale" in html


def test_runs_of_one_family_share_one_chart(tmp_path):
    runs = [_run(tmp_path / "a", "unconditional", 2.0), _run(tmp_path / "b", "unconditional", 3.0)]
    html = write_comparison(runs, tmp_path / "compare.html").read_text()
    assert _loss_charts(html) == ([], 1)
    assert "not on one scale" not in html
