"""Python API review fixes: eval.best's direction for a hook's own metric, a checkpoint folder
as the run to load, default run directories taken in the same second, train.seed's range, NHWC
uint8 images for the metrics, TF32 restored after training, a loss registered again from a
re-run cell, one-line errors for wrong argument types, load_config's tuple, dir(ganforge)."""
from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import random_dataset, tiny_config

import ganforge
from ganforge import api, rundir
from ganforge.errors import CheckpointError, ConfigError, GanforgeError


def _train(run_dir, *overrides, hooks=(), **kwargs):
    cfg = tiny_config(**dict(o.split("=", 1) for o in overrides))
    return api.train(cfg, run_dir, hooks=hooks, dataset=random_dataset(), progress=False, **kwargs)


# 1. eval.best of a hook's own metric
def test_hook_metric_declared_higher_marks_the_highest_step_best(tmp_path):
    accuracy = {2: 0.2, 4: 0.5, 6: 0.9}
    _train(tmp_path / "r", "eval.every=2", "eval.best=my_accuracy:higher",
           hooks=lambda trainer, step: {"my_accuracy": accuracy[step]})
    assert ganforge.load(tmp_path / "r", checkpoint="best").step == 6  # had been step 2, the worst


@pytest.mark.parametrize("best, match", [
    ("my_accuracy", r"eval.best=my_accuracy: whether a higher or a lower .* declare it: "
                    r"eval.best=my_accuracy:higher \(or my_accuracy:lower\)"),
    ("my_accuracy:sideways", r"eval.best=my_accuracy:sideways: .* NAME:higher or NAME:lower"),
])
def test_hook_metric_of_unknown_direction_is_refused(tmp_path, best, match):
    with pytest.raises(ConfigError, match=match) as err:
        _train(tmp_path / "r", "eval.every=2", f"eval.best={best}", hooks=lambda t, s: {"my_accuracy": 0.5})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_eval_best_missing_from_the_evaluations_is_said_once(tmp_path, capsys):
    _train(tmp_path / "r", "eval.every=2", hooks=lambda t, s: {"v": 1.0, "w": 2.0})  # eval.best=fid
    out = capsys.readouterr().out
    assert out.count("eval.best=fid is not among the values the evaluation returned (v, w)") == 1
    assert "no 'best' checkpoint is marked" in out


# 2. a checkpoint folder (train()'s .checkpoint) loads that run at that checkpoint
def test_checkpoint_folder_loads_its_run(tmp_path):
    result = _train(tmp_path / "r")  # checkpoints at steps 0, 3 and 6
    folder = tmp_path / "r" / "checkpoints" / "step_0000003"
    run = ganforge.load(folder)
    assert (run.run_dir, run.step, run.checkpoint) == (tmp_path / "r", 3, folder)
    assert ganforge.load(result.checkpoint).step == 6
    assert ganforge.load(folder, checkpoint="step_0000003").step == 3
    with pytest.raises(CheckpointError, match=r"is checkpoint step_0000003 of run .*--checkpoint best"):
        ganforge.load(folder, checkpoint="best")


# 3. default run directories of the same second
def test_default_run_dir_taken_in_the_same_second_gets_the_next_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(api.time, "strftime", lambda fmt: "20240101-120000")
    first = _train(None, "train.steps=1").run_dir
    second = _train(None, "train.steps=1").run_dir  # had been "run directory ... already exists"
    third = _train(api.default_run_dir("run"), "train.steps=1").run_dir  # the CLI's way, without --out
    assert [str(p) for p in (first, second, third)] == [
        "runs/run-20240101-120000", "runs/run-20240101-120000-2", "runs/run-20240101-120000-3"]
    assert all((p / "config.yaml").is_file() for p in (first, second, third))
    with pytest.raises(ConfigError, match="already exists"):  # a path of one's own is still refused
        _train(first, "train.steps=1")


def test_default_run_dir_claimed_at_once_by_several_gets_one_each(tmp_path):
    base, got, errors = tmp_path / "runs" / "x-20240101-120000", [], []

    def claim():
        try:
            path, lock = rundir.claim_default_run_dir(base)
            lock.release()
            got.append(path)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    want = ["x-20240101-120000"] + [f"x-20240101-120000-{i}" for i in range(2, 7)]
    assert sorted(p.name for p in got) == sorted(want)


# 4. train.seed's range
@pytest.mark.parametrize("seed", [-1, 2**63, 2**63 - 1])
def test_train_seed_out_of_range_is_one_line(seed):
    with pytest.raises(ConfigError, match=rf"train.seed must be an integer from 0 to 99999999, got {seed}$"):
        ganforge.load_config("dcgan-fashion-mnist", [f"train.seed={seed}"])


def test_train_seed_edited_in_python_is_checked(tmp_path):
    cfg = tiny_config()
    cfg.train.seed = -1
    with pytest.raises(ConfigError, match="train.seed must be an integer from 0 to"):
        api.train(cfg, tmp_path / "r", dataset=random_dataset(), progress=False)


# 5. uint8 NHWC images (sample_uint8's layout) for the metrics
def test_metrics_take_uint8_nhwc_images():
    from ganforge.metrics.features import ModuleExtractor, as_uint8_nchw

    nchw = torch.randint(0, 256, (6, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    nhwc = nchw.permute(0, 2, 3, 1).numpy()
    assert torch.equal(as_uint8_nchw(nhwc), nchw)
    assert torch.equal(as_uint8_nchw(nchw[:, :1].permute(0, 2, 3, 1)), nchw[:, :1])  # gray
    torch.manual_seed(0)
    ext = ModuleExtractor(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)), channels=3)
    assert np.array_equal(ext(nhwc).features, ext(nchw).features)
    with pytest.raises(GanforgeError, match=r"got torch.uint8 \(6, 8, 8, 2\); give 1 or 3 channels"):
        as_uint8_nchw(torch.zeros(6, 8, 8, 2, dtype=torch.uint8))


# 6. TF32 switches put back after training
def test_tf32_switches_are_put_back():
    from ganforge.training.trainer import set_tf32

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        restore = set_tf32(True)
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("high", True)
        restore()
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="train.tf32 applies on CUDA only")
def test_training_with_tf32_leaves_the_callers_precision(tmp_path):
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        _train(tmp_path / "r", "train.tf32=true", "train.device=cuda", "train.steps=1")
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


# 7. a loss registered again
def test_loss_instance_registered_again_from_a_rerun_cell():
    import torch.nn.functional as F

    from ganforge.losses import LOSSES, LossPair

    def cell():  # a notebook cell: the functions defined anew on each run
        def d_review(*, real, fake):
            return F.softplus(-real).mean() + F.softplus(fake).mean()

        def g_review(*, fake, real=None):
            return F.softplus(-fake).mean()

        return LossPair(d=d_review, g=g_review)

    try:
        LOSSES.register("review-loss")(cell())
        again = cell()
        LOSSES.register("review-loss")(again)  # had been ValueError: registered twice
        assert LOSSES["review-loss"] is again

        def g_other(*, fake, real=None):
            return fake.mean()

        with pytest.raises(ConfigError, match=r"loss 'review-loss' registered twice.*another name$"):
            LOSSES.register("review-loss")(LossPair(d=again.d, g=g_other))
    finally:
        LOSSES.pop("review-loss", None)


# 8. wrong argument types: one line, not a TypeError from inside
def _stub_run(tmp_path):
    calls = []
    run = object.__new__(api.LoadedRun)
    run.run_dir, run.is_model_folder, run.ema_nets = tmp_path, False, {}
    run.config = SimpleNamespace(objective="stub")
    run.objective = SimpleNamespace(capabilities=frozenset({"translate", "upscale"}),
                                    translate=lambda x, **kw: calls.append(kw) or x,
                                    upscale=lambda image, **kw: calls.append(kw) or image)
    return run, calls


def test_wrong_argument_types_are_one_line(tmp_path):
    from ganforge import provenance

    run, calls = _stub_run(tmp_path)
    with pytest.raises(ConfigError, match=r"tile must be an integer >= 1, got 32.0"):
        run.translate(torch.zeros(1, 3, 8, 8), tile=32.0)
    with pytest.raises(ConfigError, match=r"interp must be a number in \[0, 1\].*got 'x'"):
        run.upscale(np.zeros((4, 4, 3), np.uint8), interp="x")
    with pytest.raises(ConfigError, match=r"not a file name \('x.png'\): pass PIL.Image.open\(path\).*upscale for"):
        run.upscale("x.png")
    assert calls == []
    run.upscale(np.zeros((4, 4, 3), np.uint8), interp=np.float32(0.5))
    assert calls[-1]["interp"] == 0.5 and type(calls[-1]["interp"]) is float
    with pytest.raises(ConfigError, match=r"uint8 \[H, W\] or \[H, W, C\].*got float32 \(3, 8, 8\); convert"):
        provenance.png_bytes(torch.rand(3, 8, 8), {"operation": "x"})


# 9. load_config's (name, config) tuple passed as the config
def test_load_config_tuple_says_to_unpack(tmp_path):
    with pytest.raises(ConfigError, match=r"got the tuple \(name, config\).*name, cfg = ganforge.load_config"):
        api.train(ganforge.load_config("dcgan-fashion-mnist", ["train.steps=4"]), tmp_path / "r")


# 10. tab completion of the lazy names
def test_dir_lists_the_public_names():
    names = dir(ganforge)
    assert {"load", "train", "load_config", "LoadedRun", "metrics", "GanforgeError"} <= set(names)


def test_hook_best_recorded_in_metrics(tmp_path):
    """The records a declared direction leaves: the hook's values logged under the plain name."""
    _train(tmp_path / "r", "eval.every=3", "eval.best=acc:lower", hooks=lambda t, s: {"acc": s / 10})
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["acc"] for r in records if "acc" in r] == [0.3, 0.6]
    assert ganforge.load(tmp_path / "r", checkpoint="best").step == 3
