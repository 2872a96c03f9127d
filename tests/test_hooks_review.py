"""Evaluation hooks from Python (review): a hook that cannot take (trainer, step) is refused
before training; a hook that raises keeps the step's training and says how to continue; a hook
draws samples of the current weights with trainer.sample."""
from __future__ import annotations

import pytest
import torch
from conftest import random_dataset, tiny_config

import ganforge
from ganforge import api
from ganforge.errors import ConfigError


def _train(run_dir, hooks, *, resume=False, **overrides):
    cfg = tiny_config(**{"eval.every": 2, "eval.best": "acc:higher", **overrides})
    return api.train(cfg, run_dir, hooks=hooks, resume=resume, dataset=random_dataset(), progress=False)


# 1. a hook's signature, checked before training
def _forgot_step(trainer):
    raise AssertionError("never called")


@pytest.mark.parametrize("hooks, match", [
    (_forgot_step, r"^hook _forgot_step\(trainer\) cannot be called with \(trainer, step\); "
                   r"a hook is a function hook\(trainer, step\) -> \{name: number\}$"),
    ([1], r"^hooks: 1 is not callable; a hook is a function hook\(trainer, step\) -> \{name: number\}$"),
])
def test_a_hook_that_cannot_take_trainer_and_step_is_refused_before_training(tmp_path, hooks, match):
    with pytest.raises(ConfigError, match=match):
        _train(tmp_path / "r", hooks)
    assert not (tmp_path / "r").exists()  # refused before anything was written (had trained to step 2)


# 2. a hook that raises
def test_a_hook_that_raises_keeps_the_steps_training_and_says_how_to_continue(tmp_path):
    run = tmp_path / "r"

    def acc(trainer, step):
        if step == 2:
            raise RuntimeError("bug in my scoring code")
        return {"acc": step / 10}

    # the first evaluation, before any regular checkpoint past step 0 (checkpoint_every=6)
    with pytest.raises(RuntimeError, match="bug in my scoring code") as err:
        _train(run, acc, **{"train.checkpoint_every": 6})
    assert ganforge.load(run).step == 2  # had been step 0: the interval was lost
    note = "\n".join(getattr(err.value, "__notes__", []))
    assert f"hook acc raised at step 2; step 2's training is saved in {run / 'checkpoints' / 'step_0000002'}" in note
    assert f"api.train(cfg, {str(run)!r}, resume=True, hooks=..., dataset=...)" in note

    result = _train(run, lambda trainer, step: {"acc": step / 10}, resume=True, **{"train.checkpoint_every": 6})
    assert (result.start, result.step) == (2, 6)


# 3. samples of the current weights inside a hook
def test_trainer_sample_in_a_hook_draws_the_current_ema_weights(tmp_path):
    run, seen = tmp_path / "r", {}

    def hook(trainer, step):
        loaded = ganforge.load(trainer.run_dir)
        seen[step] = (trainer.sample(4, seed=0), loaded.step, loaded.sample(4, seed=0))
        return {"acc": float(seen[step][0].mean())}

    _train(run, hook, **{"eval.every": 3, "train.ema_decay": 0.9})
    images, loaded_step, loaded_images = seen[3]
    assert (images.shape, images.dtype, images.device.type) == ((4, 1, 16, 16), torch.float32, "cpu")
    assert images.min() >= -1 and images.max() <= 1
    assert loaded_step == 0  # ganforge.load inside the hook: the previous checkpoint
    # the step's own checkpoint, written after the hook, samples the same EMA images
    at_3 = ganforge.load(run, checkpoint="step_0000003").sample(4, seed=0)
    assert torch.equal(images, at_3)
    assert not torch.equal(images, loaded_images)
