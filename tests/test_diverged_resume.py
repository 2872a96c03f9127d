"""After "training diverged", a resume continues from the last good checkpoint: checkpoints/latest
is pointed back at it (it had stayed on the newest one, saved while the run was already broken,
so a resume trained on from a dead generator), the error and the report name the resume command,
and a checkpoint saved while the records were unhealthy is not taken as a good one after a resume.
Rollbacks point latest back too, and TensorBoard drops the steps a rollback redoes."""
import json
from html import escape

import pytest

from ganforge import api
from ganforge.errors import TrainingDiverged
from ganforge.objectives import OBJECTIVES
from ganforge.report.page import build_html as render
from ganforge.report.run import load_run
from ganforge.training import checkpoint as ckpt
from ganforge.training.trainer import Trainer

from conftest import random_dataset
from test_rollback import POISON_STEPS, NanAtSteps
from test_rollback import _cfg as rollback_cfg

UNHEALTHY_FROM = [10**9]  # the step from which the logged d_loss reads as a broken D's


if "unhealthy-then-nan" not in OBJECTIVES:
    @OBJECTIVES.register("unhealthy-then-nan")
    class UnhealthyThenNan(NanAtSteps):
        """NanAtSteps whose logged d_loss is 500 from step UNHEALTHY_FROM on: above the monitor's
        d_loss_healthy (10), below its divergence threshold (1,000). Training itself is unchanged."""

        def loss(self, phase, batch):
            out = super().loss(phase, batch)
            if phase == "D" and NanAtSteps.calls >= UNHEALTHY_FROM[0]:
                out["d_loss"] = out["d_loss"] * 0 + 500.0
            return out


def _setup(poison, unhealthy_from=10**9):
    NanAtSteps.calls = 0
    POISON_STEPS.clear()
    POISON_STEPS.update(poison)
    UNHEALTHY_FROM[0] = unhealthy_from


def _cfg(**kw):
    return rollback_cfg("unhealthy-then-nan", **kw)


def _end(run):
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_a_diverged_run_resumes_from_its_last_good_checkpoint(tmp_path):
    """Records unhealthy from step 5 on, the step-8 checkpoint saved among them, NaN at step 9:
    the run stops; latest named step_0000008, and the resume started there."""
    _setup(range(9, 1000), unhealthy_from=5)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as err:
        api.train(_cfg(**{"train.on_divergence": "stop"}), run, progress=False, dataset=random_dataset())
    assert ckpt.is_saved(run / "checkpoints" / "step_0000008", 8)  # the broken one is kept on disk
    assert ckpt.find(run).name == "step_0000004"
    end = _end(run)
    assert end["how"] == "diverged" and end["checkpoint"] == "step_0000004"
    rates = end["resume_with"]
    # resumed from Python, as the run was given dataset= (the CLI's resume refuses it): the error and the report
    command = (f"continue from it with lower learning rates: ganforge.train(cfg, {str(run)!r}, resume=True, "
               f"dataset=...) with {rates} set in cfg")
    assert "the last good checkpoint is" in str(err.value) and command in str(err.value)
    assert "optim.g_lr=" in rates and "optim.d_lr=" in rates
    assert escape(command) in render(load_run(run))
    _setup(())
    result = api.train(api.resume_config(run, rates.split()), run, resume=True, progress=False,
                       dataset=random_dataset())
    assert (result.start, result.step) == (4, 12)


def test_a_checkpoint_saved_while_unhealthy_is_no_rollback_target_after_a_resume(tmp_path):
    """A run that ends (or is killed) with its newest checkpoint saved among unhealthy records:
    the resume had marked it healthy, and its first divergence rolled back to it."""
    _setup((), unhealthy_from=5)
    run = tmp_path / "run"
    api.train(_cfg(**{"train.steps": 8}), run, progress=False, dataset=random_dataset())
    _setup({1})  # the resume's first step diverges
    result = api.train(api.resume_config(run, ["train.steps=12"]), run, resume=True, progress=False,
                       dataset=random_dataset())
    assert (result.start, result.step) == (8, 12)
    rollbacks = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                 if r.get("event") == "rollback"]
    assert [r["evidence"]["checkpoint"] for r in rollbacks] == ["step_0000004"]


def test_a_rollback_points_latest_at_the_checkpoint_it_restored(tmp_path, monkeypatch):
    """A process killed after a rollback, before its next save, had resumed from the abandoned
    newer checkpoint."""
    _setup({7})  # judged at step 8 (before its save): back to step 4, the last healthy record's
    seen = []
    real = Trainer.rollback

    def rollback(self, path):
        real(self, path)
        seen.append(ckpt.find(self.run_dir).name)

    monkeypatch.setattr(Trainer, "rollback", rollback)
    run = tmp_path / "run"
    api.train(_cfg(**{"train.log_every": 4, "train.checkpoint_every": 2}), run, progress=False,
              dataset=random_dataset())
    assert seen == ["step_0000004"]


def test_tensorboard_drops_the_steps_a_rollback_redoes(tmp_path):
    """The replayed steps had been logged again at the same steps: a vertical zigzag."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _setup({6})  # judged at step 6: rolled back to step 4, steps 5 and 6 are redone
    run = tmp_path / "run"
    api.train(_cfg(), run, progress=False, dataset=random_dataset())
    events = accumulator.EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("img_per_s")]  # finite in the NaN record too
    assert steps == [2, 4, 6, 8, 10, 12]
