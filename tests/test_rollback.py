"""Divergence handling: non-finite values never reach a checkpoint; rollback restores the last
good one with lower learning rates and training continues; stop/warn behave as documented."""
import json

import pytest
import torch

from ganforge import api
from ganforge.errors import TrainingDiverged
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.unconditional import UnconditionalGAN
from ganforge.training import checkpoint as ckpt

from conftest import random_dataset, tiny_config

POISON_STEPS = set()  # generator steps at which the test objective returns a NaN loss


if "nan-at-steps" not in OBJECTIVES:
    @OBJECTIVES.register("nan-at-steps")
    class NanAtSteps(UnconditionalGAN):
        """The unconditional GAN, with a NaN D loss at chosen steps (counted in D calls)."""

        calls = 0

        def loss(self, phase, batch):
            out = super().loss(phase, batch)
            if phase == "D":
                NanAtSteps.calls += 1
                if NanAtSteps.calls in POISON_STEPS:
                    out["loss"] = out["loss"] * float("nan")
                    out["d_loss"] = out["loss"].detach()
            return out


def _events(run):
    """The events before the trainer's closing {"event": "end"} record (checked in
    test_monitor_review_fixes)."""
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "event" in r and r["event"] != "end"]


def _cfg(objective: str = "nan-at-steps", **kw):
    """A 12-step run of ``objective`` (a test family that turns bad on cue), logged every 2 steps
    and checkpointed every 4."""
    base = {"objective": objective, "train.steps": 12, "train.log_every": 2,
            "train.checkpoint_every": 4, "train.sample_every": 100}
    base.update(kw)
    return tiny_config(**base)


def test_rollback_restores_and_continues(tmp_path):
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({6})  # step 6 diverges once; after the rollback the calls move on
    run = tmp_path / "run"
    result = api.train(_cfg(), run, progress=False, dataset=random_dataset())
    assert result.step == 12
    kinds = [e["event"] for e in _events(run)]
    assert kinds == ["divergence", "rollback"]
    rollback = _events(run)[1]
    assert rollback["evidence"]["to_step"] == 4 and rollback["evidence"]["lr_scale"] == 0.5
    weights, state = ckpt.load(ckpt.find(run))
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    assert state["lr_scale"] == 0.5 and state["rollbacks"] == 1
    assert state["optimizers"]["D"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_nonfinite_weights_never_overwrite_a_checkpoint(tmp_path):
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update(range(3, 1000))  # diverges for good from step 3
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="after 2 rollbacks") as err:
        api.train(_cfg(**{"train.max_rollbacks": 2}), run, progress=False,
                  dataset=random_dataset())
    assert "last good checkpoint" in str(err.value)
    assert [e["event"] for e in _events(run)].count("rollback") == 2
    for path in (run / "checkpoints").glob("step_*"):
        weights, _ = ckpt.load(path)
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_stop_and_warn(tmp_path):
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({5})
    with pytest.raises(TrainingDiverged, match="train.on_divergence=stop"):
        api.train(_cfg(**{"train.on_divergence": "stop"}), tmp_path / "a", progress=False,
                  dataset=random_dataset())
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({3})
    b = tmp_path / "b"
    result = api.train(_cfg(**{"train.on_divergence": "warn", "train.steps": 4}), b,
                       progress=False, dataset=random_dataset())
    assert result.step == 4  # warned, went on; NaN weights were not saved over step 0
    assert [e["event"] for e in _events(b)] == ["divergence", "divergence"]
    assert ckpt.find(b).name == "step_0000000"


def test_rollback_goes_to_a_checkpoint_the_monitor_judged_and_pruning_keeps_one(tmp_path):
    """A checkpoint saved between two log records has not been judged: toy-ring8 logged every
    100 steps and saved every 50 rolled back three times to its step-50 checkpoint, already
    exploding, and called it 'the last good checkpoint'. The rollback now goes to the newest
    checkpoint at or before the last record judged healthy, and keep_checkpoints=1 keeps it."""
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update({3})  # judged bad at step 4; the step-2 checkpoint was never judged
    run = tmp_path / "run"
    result = api.train(_cfg(**{"train.steps": 8, "train.log_every": 4, "train.checkpoint_every": 2,
                               "train.keep_checkpoints": 1}), run, progress=False, dataset=random_dataset())
    assert result.step == 8
    rollback = [e for e in _events(run) if e["event"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["evidence"]["to_step"] == 0
    assert ckpt.newest_at_most(run, 7).name == "step_0000006"
    assert ckpt.newest_at_most(run, -1) is None
