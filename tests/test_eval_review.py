"""Review fixes of evaluation: the training hook labels a conditional run's samples (label_accuracy
and intra_fid during training, as ``ganforge eval RUN`` gives them), ``ganforge eval`` refuses
--checkpoint and --seed for samples it does not draw, and an empty --metrics list."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from test_eval_cli import cli_env, gf_inproc, one_line_error  # noqa: F401 (fixtures)
from test_metrics_eval import _RankView, env  # noqa: F401 (fixture)

LABEL_METRICS = ["fid", "label_accuracy", "intra_fid"]


def _conditional(**overrides):
    return tiny_config(**{"objective": "conditional", "eval.extractor": "fashion-mnist-cnn", **overrides})


def test_training_scores_label_metrics_of_a_conditional_run(env, tmp_path):  # noqa: F811
    """eval.metrics=[fid,label_accuracy] trained to the first evaluation, then failed: 'the
    samples have no labels' (the hook drew class i % K but did not pass the labels on)."""
    from ganforge import api

    cfg = _conditional(**{"eval.every": 2, "eval.n": 40, "eval.metrics": f"[{','.join(LABEL_METRICS)}]",
                          "train.steps": 2})
    api.train(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scored = [row for row in rows if "label_accuracy" in row]
    assert scored and 0.0 <= scored[-1]["label_accuracy"] <= 1.0 and np.isfinite(scored[-1]["intra_fid"])


def test_the_shared_hook_labels_the_gathered_blocks(env):  # noqa: F811
    """Under torchrun: each rank's blocks are labelled class i % K in block order, and rank 0
    scores the label metrics of all of them, as one process scores the same block-seeded images."""
    from ganforge import api
    from ganforge.labels import interleaved_labels
    from ganforge.metrics import evaluate, training_hook
    from ganforge.metrics.hook import sample_blocks
    from ganforge.training.trainer import Trainer

    cfg = _conditional()
    objective, dataset = api.build(cfg)
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                      device=torch.device("cpu"), progress=False)
    hook = training_hook(cfg, metrics=LABEL_METRICS, n=250, extractor="fashion-mnist-cnn", seed=5)
    sent: list = []
    assert hook(_RankView(trainer, 1, sent), 0) == {}
    got = hook(_RankView(trainer, 0, sent), 0)
    images = sample_blocks(objective, trainer.sample_nets(), 250, seed=5)
    want = evaluate(images, ref="fashion-mnist", split="train", metrics=LABEL_METRICS, n_ref=250,
                    extractor="fashion-mnist-cnn", labels=interleaved_labels(250, 10).numpy(),
                    class_names=objective.class_names)
    assert set(got) >= {"label_accuracy", "intra_fid"}
    assert got == pytest.approx({k: float(v) for k, v in want.values.items()}, rel=1e-5)


def _npz(tmp_path, n=30):
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", images=images)
    return tmp_path / "s.npz"


@pytest.mark.parametrize("flags", [["--checkpoint", "best"], ["--seed", "7"],
                                   ["--checkpoint", "latest", "--seed", "0"]])
def test_eval_refuses_checkpoint_and_seed_for_samples_it_does_not_draw(tmp_path, gf_inproc, flags):  # noqa: F811
    """An npz or image folder has no checkpoint and no noise: --checkpoint best and --seed 7 had
    been ignored (exit 0, the same numbers), even spelt as their defaults."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(np.load(_npz(tmp_path))["images"]):
        Image.fromarray(image[..., 0]).save(folder / f"{i}.png")
    for target in (_npz(tmp_path), folder):
        proc = gf_inproc("eval", target, "--ref", "fashion-mnist", "--n", 30, "--metrics", "fid",
                         "--extractor", "fashion-mnist-cnn", *flags)
        given = " and ".join(f for f in flags if f.startswith("--"))
        one_line_error(proc, f"{given} appl", f"{target} is neither", f"drop {given}")


def test_eval_of_a_run_keeps_the_checkpoint_and_seed_defaults(tmp_path, gf_inproc):  # noqa: F811
    """The flags now default to None (so that an npz can refuse them); a run still draws from its
    latest checkpoint with seed 0, and --seed still changes the samples."""
    from conftest import random_dataset
    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 3}), run, progress=False, dataset=random_dataset(n=64, resolution=16))
    common = ("eval", run, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid", "--extractor", "fashion-mnist-cnn")
    default = gf_inproc(*common)
    assert default.returncode == 0, default.stderr
    assert f"samples of {run} (step_0000003, step 3): EMA generator, seed 0" in default.stdout.splitlines()
    seeded = gf_inproc(*common, "--seed", 7, "--checkpoint", "step_0000003")
    assert seeded.returncode == 0, seeded.stderr
    assert f"samples of {run} (step_0000003, step 3): EMA generator, seed 7" in seeded.stdout.splitlines()


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_eval_refuses_a_metrics_list_that_names_nothing(tmp_path, gf_inproc, value):  # noqa: F811
    """--metrics "" or --metrics , had computed every metric that applies."""
    proc = gf_inproc("eval", _npz(tmp_path), "--ref", "fashion-mnist", "--n", 30, "--metrics", value,
                     "--extractor", "fashion-mnist-cnn")
    one_line_error(proc, f"--metrics {value!r} names no metric", "leave --metrics out")
