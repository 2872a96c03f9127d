"""Gradient accumulation in the Trainer (train.accumulate=N: N micro-batches per optimizer step),
for every family: the same update as one N times larger batch when the networks hold no batch
statistics, a different one with BatchNorm (each micro-batch is normalized on its own), exact
resume, and the one-line error for a bad value."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import random_dataset, tiny_config
from ganforge import api
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.training import checkpoint as ckpt
from ganforge.training.trainer import Trainer


def _train(cfg, dataset, steps: int) -> dict[str, torch.Tensor]:
    objective, _ = api.build(cfg, dataset)
    device = torch.device("cpu")
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, device), run_dir=None,
                      device=device, progress=False)
    for _ in range(steps):
        trainer.train_step()
    return {f"{n}.{k}": v.detach().clone() for n, net in objective.nets.items()
            for k, v in net.state_dict().items()}


def _config(model: str, batch: int, accumulate: int, **extra):
    return tiny_config(**{"model.name": model, "train.batch_size": batch, "train.accumulate": accumulate,
                          "train.n_critic": 2, "monitor.enabled": False, **extra})


def test_four_micro_batches_of_16_update_like_one_batch_of_64_without_batch_statistics():
    dataset = random_dataset(n=256)  # 4 steps x (2 D + G) never cross an epoch boundary
    big = _train(_config("mlp", 64, 1), dataset, steps=3)
    acc = _train(_config("mlp", 16, 4), dataset, steps=3)
    start = _train(_config("mlp", 64, 1), dataset, steps=0)
    assert big.keys() == acc.keys()
    for key in big:
        assert not torch.equal(big[key], start[key]), f"{key} did not train"
        torch.testing.assert_close(acc[key], big[key], rtol=1e-5, atol=1e-6, msg=key)
    one = _train(_config("mlp", 16, 1), dataset, steps=3)  # the check can fail: 16 is not 64
    assert any(not torch.allclose(one[k], big[k], rtol=1e-5, atol=1e-6) for k in big)


def test_with_batch_norm_micro_batches_are_normalized_on_their_own():
    dataset = random_dataset(n=256)
    big = _train(_config("dcgan", 64, 1), dataset, steps=1)
    acc = _train(_config("dcgan", 16, 4), dataset, steps=1)
    weights = [k for k in big if k.endswith("weight")]
    assert any(not torch.allclose(acc[k], big[k], rtol=1e-4, atol=1e-5) for k in weights)
    mean = next(k for k in big if k.endswith("running_mean"))  # updated once per micro-batch
    assert not torch.allclose(acc[mean], big[mean])


def test_accumulation_resumes_exactly_and_logs_images_per_optimizer_step(tmp_path):
    raw = OBJECTIVES["biggan"].example_config(tmp_path / "data")
    raw = apply_overrides(raw, ["train.accumulate=2", "train.ema_start=2"])
    once, half = tmp_path / "once", tmp_path / "half"
    api.train(from_dict(raw), once, progress=False)
    api.train(from_dict(apply_overrides(raw, ["train.steps=2"])), half, progress=False)
    api.train(api.resume_config(half, ["train.steps=4"]), half, progress=False, resume=True)
    a, _ = ckpt.load(ckpt.find(once))
    b, _ = ckpt.load(ckpt.find(half))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (once / "metrics.jsonl").read_text().splitlines()]
    assert any("img_per_s" in r for r in records)
    # 4 steps x n_critic 2 x accumulate 2 = 16 batches of 4 from the folder's 8 images (2 per
    # epoch): the 16th is the 2nd batch of epoch 7 (without accumulation: of epoch 3)
    _, state = ckpt.load(ckpt.find(once))
    assert state["batches"] == {"epoch": 7, "pos": 2}


@pytest.mark.parametrize("value", [0, -2])
def test_bad_accumulate_is_one_line_error(value):
    with pytest.raises(ConfigError, match=f"train.accumulate must be > 0, got {value}") as info:
        tiny_config(**{"train.accumulate": value})
    assert "\n" not in str(info.value)
