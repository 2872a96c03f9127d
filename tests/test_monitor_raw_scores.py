"""The vanishing-gradients check on a family that logs raw scores (CycleGAN-VC): "D wins
outright" is judged on D's accuracy unless the raw scores are least squares' [0, 1] targets.
At loss.name=nonsaturating, CycleGAN-VC's D(G(z)) of 0.04 (a logit: probability 0.51) and D(x)
of 1.0 (0.73) had read as a D that wins outright."""
import itertools
import json

from ganforge import api
from ganforge.config import from_dict
from ganforge.objectives import OBJECTIVES
from ganforge.training.monitor import Monitor
from conftest import tiny_config
from test_monitor import feed, healthy, with_


def _stalled(records, **scores):
    """G's gradient norm falls from 8 to 1e-3 (under vanish_abs) with these D scores."""
    return with_(records, g_grad_norm=1e-3, **scores)


def _raw_monitor(loss):
    monitor = Monitor(tiny_config(**{"loss.name": loss}))
    monitor.d_raw = True
    return monitor


def _events(monitor, **scores):
    plain = [{k: v for k, v in r.items() if k not in ("d_acc_real", "d_acc_fake")} for r in healthy(25)]
    stream = itertools.chain(plain[:5], _stalled(plain[5:], **scores))
    return [e for e in feed(monitor, stream) if e["event"] == "vanishing_gradients"]


def test_raw_logits_near_zero_are_no_win():
    assert _events(_raw_monitor("nonsaturating"), d_real=1.0, d_fake=0.04) == []
    # the same numbers as probabilities (an image family's) are a win
    monitor = Monitor(tiny_config(**{"loss.name": "nonsaturating"}))
    assert len(_events(monitor, d_real=1.0, d_fake=0.04)) == 1


def test_raw_scores_judged_on_accuracy():
    events = _events(_raw_monitor("hinge"), d_real=0.3, d_fake=-0.2, d_acc_real=0.99, d_acc_fake=0.97)
    assert len(events) == 1
    assert "D wins outright (it scores 99% of reals real and 97% of fakes fake)" in events[0]["message"]
    assert _events(_raw_monitor("hinge"), d_real=0.3, d_fake=-0.2, d_acc_real=0.99, d_acc_fake=0.6) == []


def test_least_squares_raw_scores_keep_the_score_thresholds():
    """Least squares' raw scores aim at 1 and 0: the thresholds read them as before."""
    assert len(_events(_raw_monitor("lsgan"), d_real=0.98, d_fake=0.02)) == 1
    assert _events(_raw_monitor("lsgan"), d_real=0.7, d_fake=0.3) == []


def test_cyclegan_vc_logs_d_accuracy_and_the_trainer_marks_its_scores_raw(tmp_path, monkeypatch):
    seen, update = [], Monitor.update
    monkeypatch.setattr(Monitor, "update", lambda self, r: seen.append(self.d_raw) or update(self, r))
    raw = OBJECTIVES["cyclegan-vc"].example_config(tmp_path / "data")
    run = tmp_path / "vc"
    api.train(from_dict(raw), run, progress=False)
    assert seen and all(d_raw is True for d_raw in seen)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "d_acc_real" in r]
    assert scored and all(0 <= r["d_acc_real"] <= 1 and 0 <= r["d_acc_fake"] <= 1 for r in scored)
