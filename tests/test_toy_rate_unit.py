"""A toy mixture's run samples 2-D points: its progress bar, the report's throughput card and the
chart's axis say points/s (they had said img/s and "images / s"), as an audio run's say clips/s."""
import json

from conftest import tiny_config
from ganforge.config import from_dict
from ganforge.objectives import OBJECTIVES
from ganforge.report import build_html, load_run, plots


def _run(root, name, cfg):
    run = root / name
    run.mkdir()
    (run / "config.yaml").write_text(cfg.to_yaml())
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "time": s / 10, "d_loss": 1.3, "g_loss": 0.7, "img_per_s": 39162.0}) + "\n"
        for s in (10, 20)))
    return load_run(run)


def test_a_toy_run_counts_points_per_second(tmp_path):
    toy = from_dict({"data": {"name": "toy:ring8"}, "model": {"name": "mlp"}})
    run = _run(tmp_path, "toy", toy)
    assert (plots.rate_unit(run), plots.throughput_label(run)) == ("points/s", "points / s")
    assert "39,162 <small>points/s</small>" in build_html(run)
    images = _run(tmp_path, "dcgan", tiny_config())
    assert (plots.rate_unit(images), plots.throughput_label(images)) == ("img/s", "images / s")
    assert "39,162 <small>img/s</small>" in build_html(images)
    # the progress bar's unit comes from the family, which knows it trains on points
    family = OBJECTIVES["unconditional"]
    objective = family(toy, {"name": "toy:ring8", "point_dim": 2, "num_classes": 0, "has_labels": False})
    assert objective.rate_unit == "points/s"
