"""Small-sample warnings: KID and the k-NN metrics at tiny n (as FID and IS already warned), a
training run whose eval.n is below those sizes, and ``ganforge eval --n`` beyond what an npz or
folder holds. Tiny sizes; the fake Fashion-MNIST of test_metrics_eval."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from conftest import random_dataset, tiny_config
from test_eval_cli import cli_env, gf_inproc  # noqa: F401 (fixtures)
from test_metrics_eval import env  # noqa: F401 (fixture)


def _warned(warnings: list[str], start: str) -> list[str]:
    return [w for w in warnings if w.startswith(start)]


def test_small_sample_warnings_name_kid_and_the_knn_metrics_with_the_size_to_use():
    from ganforge.metrics.evaluation import small_sample_warnings

    values = dict.fromkeys(("kid", "kid_std", "precision", "recall", "density", "coverage"), 0.5)
    small = small_sample_warnings(values, n_fake=100, n_ref=100, dim=128)
    (kid,) = _warned(small, "kid from subsets of 50 samples")
    assert "use --n 2000 or more" in kid
    (pr,) = _warned(small, "precision and recall from 100 samples with k=3")
    assert "use --n 300 or more (100 x k)" in pr
    (dc,) = _warned(small, "density and coverage from 100 samples with k=5")
    assert "use --n 500 or more (100 x k)" in dc
    assert all("\n" not in w for w in small)
    # the smaller side decides, as for FID; only the metrics reported are named
    only_recall = small_sample_warnings({"recall": 0.5}, n_fake=5000, n_ref=299, dim=128)
    assert only_recall and only_recall[0].startswith("recall from 299 samples with k=3")
    # from the sizes named on: no warning
    assert small_sample_warnings(values, n_fake=2000, n_ref=2000, dim=128) == []
    assert small_sample_warnings({"precision": 1, "recall": 1}, n_fake=300, n_ref=300, dim=128) == []
    assert small_sample_warnings({"coverage": 1}, n_fake=500, n_ref=500, dim=128) == []
    # the advice names what sets n: eval.n during training
    trained = small_sample_warnings({"kid": 0.1, "is": 2.0}, n_fake=100, n_ref=100, dim=128, option="eval.n")
    assert any("use eval.n=2000 or more" in w for w in trained)
    assert any(w.startswith("is from 100 samples in one split") and "use eval.n=1000 or more" in w
               for w in trained)


def test_evaluate_warns_about_kid_and_knn_metrics_at_tiny_n(env):  # noqa: F811
    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate

    train = load_dataset("fashion-mnist", split="train")
    result = evaluate(train.images[:40], ref="fashion-mnist", extractor="fashion-mnist-cnn",
                      metrics=["kid", "precision", "recall", "density", "coverage"])
    warnings = result.protocol["warnings"]
    assert _warned(warnings, "kid from subsets of 20 samples")
    assert _warned(warnings, "precision and recall from 40 samples with k=3")
    assert _warned(warnings, "density and coverage from 40 samples with k=5")
    assert result.protocol["feature_dim"] == 128


def test_training_warns_once_when_eval_n_is_below_the_size_eval_warns_at(env, tmp_path, capsys):  # noqa: F811
    """eval.n=24 with fid: FID from 24 samples of 128-d features was logged with no word."""
    from ganforge import api

    cfg = tiny_config(**{"eval.every": 2, "eval.n": 24, "eval.metrics": "[fid,coverage]", "train.steps": 4})
    from ganforge.metrics import training_hook

    # the built-in hook, passed as the caller's own: with dataset= it is not added by itself
    api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=64, resolution=16),
              hooks=[training_hook(cfg, metrics=["fid", "coverage"], n=24)])
    lines = capsys.readouterr().out.splitlines()
    fid = [line for line in lines if line.startswith("ganforge: eval.n=24: fid from 24 samples")]
    assert len(fid) == 1 and "use eval.n above 128" in fid[0]  # two evaluations, one warning
    cov = [line for line in lines if line.startswith("ganforge: eval.n=24: coverage from 24 samples")]
    assert len(cov) == 1 and "use eval.n=500 or more" in cov[0]
    # a size at which `ganforge eval` does not warn: the training run does not either
    # (fid of 16-dimensional features from 24 samples)
    from ganforge.metrics import ModuleExtractor
    from ganforge.training.trainer import Trainer

    torch.manual_seed(0)
    ext = ModuleExtractor(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 16)), resolution=16,
                          channels=1)
    objective, dataset = api.build(cfg, random_dataset(n=64, resolution=16))
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                      device=torch.device("cpu"), progress=False)
    hook = training_hook(cfg, metrics=["fid"], n=24, extractor=ext)
    capsys.readouterr()
    hook(trainer, 2)
    assert "eval.n=24" not in capsys.readouterr().out


def test_eval_warns_when_the_npz_holds_fewer_than_n(tmp_path, gf_inproc):  # noqa: F811
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28, 1), dtype=np.uint8)
    npz = tmp_path / "samples.npz"
    np.savez(npz, images=images)
    proc = gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 50, "--metrics", "kid",
                     "--extractor", "fashion-mnist-cnn", "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "fewer than --n" in line]
    assert lines == [f"warning: {npz} holds 30 images, fewer than --n 50: only 30 are scored (against 50 "
                     f"reference images); pass --n 30, or write more samples (ganforge sample RUN --n 50 "
                     f"--out samples.npz)"]
    # KID's advice names more samples in the file, which --n cannot raise (it had said "use --n 2000")
    kid = [line for line in proc.stdout.splitlines() if line.startswith("warning: kid")]
    assert len(kid) == 1 and kid[0].endswith(f"there are only 30 generated images, so kid stays unreliable at "
                                             f"any --n; write more samples to {npz} (2000 or more), and "
                                             f"compare only at equal n"), proc.stdout
    exact = gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 30, "--metrics", "kid",
                      "--extractor", "fashion-mnist-cnn", "--quiet")
    assert exact.returncode == 0 and "fewer than --n" not in exact.stdout
    assert "use --n 2000 or more" in exact.stdout  # all that was asked for: --n is the fix


def test_eval_warns_when_the_folder_holds_fewer_than_n(tmp_path, gf_inproc):  # noqa: F811
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    proc = gf_inproc("eval", folder, "--ref", "fashion-mnist", "--n", 20, "--metrics", "kid",
                     "--extractor", "fashion-mnist-cnn", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {folder} holds 12 images, fewer than --n 20: only 12 are scored" in proc.stdout


def test_a_run_directory_draws_n_and_is_not_warned_about(tmp_path, gf_inproc):  # noqa: F811
    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset(n=64, resolution=16))
    proc = gf_inproc("eval", run, "--ref", "fashion-mnist", "--n", 20, "--metrics", "kid",
                     "--extractor", "fashion-mnist-cnn", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "fewer than --n" not in proc.stdout and "kid from subsets of 10 samples" in proc.stdout
