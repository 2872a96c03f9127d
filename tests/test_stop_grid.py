"""A run stopped by Ctrl-C or SIGTERM draws a grid of the step it stopped at, after its checkpoint:
a run stopped before train.sample_every had no grid at all (its report showed "No sample
grids"). Drawing it changes nothing a resume reads (the resumed run ends with the weights of
an uninterrupted one)."""
import pytest
import torch
from safetensors.torch import load_file

from conftest import random_dataset, tiny_config

from ganforge import api
from ganforge.errors import TrainingInterrupted
from ganforge.training.trainer import Trainer


def stop_at(monkeypatch, at: int):
    step = Trainer.train_step

    def train_step(self):
        step(self)
        if self.step == at:
            self._stop_signal = "SIGINT"

    monkeypatch.setattr(Trainer, "train_step", train_step)


def cfg(**kw):
    return tiny_config(**{"train.steps": 6, "train.sample_every": 4, "train.checkpoint_every": 4, **kw})


def weights(run):
    path = next((run / "checkpoints" / "step_0000006").glob("*.safetensors"))
    return load_file(path)


@pytest.mark.parametrize("at, grids", [(2, ["step_0000002.png"]), (4, ["step_0000004.png"])])
def test_a_stopped_run_has_a_grid_of_its_last_step(tmp_path, monkeypatch, at, grids):
    stop_at(monkeypatch, at)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        api.train(cfg(), run, progress=False, dataset=random_dataset())
    assert sorted(p.name for p in (run / "samples").iterdir()) == grids  # at 4: the regular grid, once


def test_the_stop_grid_leaves_a_resume_exact(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    api.train(cfg(), whole, progress=False, dataset=random_dataset())
    run = tmp_path / "run"
    stop_at(monkeypatch, 2)
    with pytest.raises(TrainingInterrupted):
        api.train(cfg(), run, progress=False, dataset=random_dataset())
    monkeypatch.undo()
    api.train(api.resume_config(run, []), run, progress=False, dataset=random_dataset(), resume=True)
    a, b = weights(whole), weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
