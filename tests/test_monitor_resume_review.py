"""Review fixes: what a resume tells the monitor and the rollback scale, and when mode collapse
is judged (see each test's docstring)."""
import json

import pytest

from ganforge import api
from ganforge.training import checkpoint as ckpt
from ganforge.training.monitor import Monitor
from ganforge.training.trainer import Trainer

from conftest import random_dataset, tiny_config


def _feed(monitor, records):
    return [e for r in records for e in monitor.update(r)]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- 1. a new regime on resume


def _vanished(steps):
    return [{"step": s, "g_grad_norm": 0.0076, "d_grad_norm": 0.02} for s in steps]


def test_a_resume_that_changes_the_loss_clears_the_grad_norm_windows():
    """A switch from minimax to nonsaturating (the vanishing-gradients advice) had judged G's
    recovered norm of 230 against the vanished median of 0.0076 and called it a divergence."""
    monitor = Monitor(tiny_config())
    assert _feed(monitor, _vanished(range(10, 80, 10))) == []
    monitor.note({"event": "config_change", "step": 70,
                  "evidence": {"loss.name": ["minimax", "nonsaturating"]}})
    assert _feed(monitor, [{"step": 80, "g_grad_norm": 230.7, "d_grad_norm": 0.5}]) == []
    # a change of no gradient setting keeps them
    monitor = Monitor(tiny_config())
    _feed(monitor, _vanished(range(10, 80, 10)))
    monitor.note({"event": "config_change", "step": 70, "evidence": {"train.log_every": [10, 20]}})
    events = _feed(monitor, [{"step": 80, "g_grad_norm": 230.7, "d_grad_norm": 0.5}])
    assert [e["event"] for e in events] == ["divergence"]


def test_g_recovering_from_vanished_gradients_is_no_divergence():
    """While a vanishing_gradients episode is active, G's norm growing back is no explosion,
    then or in the records after it."""
    monitor = Monitor(tiny_config())
    won = {"d_real": 0.99, "d_fake": 0.01, "d_acc_real": 1.0, "d_acc_fake": 1.0}
    vanished = [{**r, **won} for r in _vanished(range(10, 70, 10))]
    assert [e["event"] for e in _feed(monitor, vanished)] == ["vanishing_gradients"]
    recovered = [{"step": s, "g_grad_norm": 200.0 + s, "d_grad_norm": 0.5, "d_real": 0.7,
                  "d_fake": 0.3, "d_acc_real": 0.7, "d_acc_fake": 0.7} for s in range(70, 150, 10)]
    assert _feed(monitor, recovered) == []
    # and G's window is that of the recovered run: an explosion against it still fires
    assert [e["event"] for e in _feed(monitor, [{"step": 150, "g_grad_norm": 1e5}])] == ["divergence"]


def test_a_resume_with_a_changed_loss_starts_the_monitor_windows_over(tmp_path):
    """api.train tells the resumed run's monitor of the change: its saved grad-norm window then
    holds only the records logged after the resume."""
    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset())
    api.train(api.resume_config(run, ["train.steps=10", "loss.name=hinge"]), run, resume=True,
              progress=False, dataset=random_dataset())
    lines = _metrics(run)
    change = next(i for i, r in enumerate(lines) if r.get("event") == "config_change")
    after = [r for r in lines[change:] if "g_grad_norm" in r]
    _, state = ckpt.load(ckpt.find(run))
    assert len(after) == 2 and len(state["monitor"]["history"]["g_grad_norm"]) == len(after)


# ----------------------------------------------------------------------------- 2. the rollback scale on resume


@pytest.fixture
def rolled_back(tmp_path, monkeypatch):
    """A finished tiny run whose checkpoints say one rollback scaled its rates to 0.5x."""
    real = Trainer.state

    def state(self):
        return {**real(self), "lr_scale": 0.5, "rollbacks": 1}

    monkeypatch.setattr(Trainer, "state", state)
    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset())
    monkeypatch.setattr(Trainer, "state", real)
    return run


def _lrs(run):
    _, state = ckpt.load(ckpt.find(run))
    return (state["lr_scale"], state["rollbacks"],
            state["optimizers"]["G"]["param_groups"][0]["lr"], state["optimizers"]["D"]["param_groups"][0]["lr"])


def test_a_learning_rate_set_on_resume_is_not_scaled_by_earlier_rollbacks(rolled_back, capsys):
    api.train(api.resume_config(rolled_back, ["train.steps=8", "optim.g_lr=0.0001", "optim.d_lr=0.0001"]),
              rolled_back, resume=True, progress=False, dataset=random_dataset())
    assert _lrs(rolled_back) == (1.0, 0, pytest.approx(1e-4), pytest.approx(1e-4))
    assert "scale" not in capsys.readouterr().out


def test_a_resume_that_keeps_the_rates_keeps_the_rollback_scale_and_says_so(rolled_back, capsys):
    api.train(api.resume_config(rolled_back, ["train.steps=8"]), rolled_back, resume=True,
              progress=False, dataset=random_dataset())
    assert _lrs(rolled_back) == (0.5, 1, pytest.approx(1e-4), pytest.approx(1e-4))
    notes = [line for line in capsys.readouterr().out.splitlines() if "0.5x" in line]
    assert len(notes) == 1 and "set them on this resume" in notes[0]


# ----------------------------------------------------------------------------- 3. mode-collapse timing


def _diversity(ratios, start=10):
    return [{"step": start + 10 * i, "diversity": r, "diversity_real": 1.0} for i, r in enumerate(ratios)]


def test_identical_samples_are_a_collapse_before_the_warm_up():
    """A toy run at diversity 0.000 from step 20 on had waited for step 1000 (warmup_steps)."""
    events = _feed(Monitor(tiny_config()), _diversity([0.2, 0.0, 0.0, 0.0, 0.0]))
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 40)]


def test_one_record_at_the_threshold_does_not_arm_the_collapse_test():
    """A toy run whose first record was 0.30 had been called collapsed at step 90, though its
    ratio spread to 1.0 by step 250; once the ratio held for `patience` records, a drop fires."""
    monitor = Monitor(tiny_config())
    assert _feed(monitor, _diversity([0.30, 0.19, 0.36, 0.12, 0.33, 0.13, 0.09, 0.15])) == []
    events = _feed(monitor, _diversity([0.5, 0.6, 0.7, 0.1, 0.1, 0.1], start=90))
    assert [(e["event"], e["step"]) for e in events] == [("mode_collapse", 140)]


# ----------------------------------------------------------------------------- 4. collapse advice


def test_collapse_advice_names_a_preset_sized_rate_for_an_absurd_one():
    cfg = tiny_config(**{"optim.g_lr": 10, "optim.d_lr": 10})
    events = _feed(Monitor(cfg), _diversity([0.1, 0.1, 0.1], start=1000))
    suggestion = events[0]["suggestion"]
    assert "optim.g_lr 10 is far above" in suggestion and "to 0.0002" in suggestion
    assert "to 5" not in suggestion
