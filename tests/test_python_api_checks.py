"""Python API checks from the API review: labels of a passed dataset, hook values, argument
combinations and messages that name both the CLI flag and the Python argument."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ganforge
from ganforge import api, metrics, rundir
from ganforge.data import ImageDataset
from ganforge.errors import CheckpointError, ConfigError, DataError
from ganforge.metrics import EvalError

TINY = ["train.steps=2", "train.batch_size=8", "model.g_width=4", "model.d_width=4"]


def _u8(n=64):
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _ds(labels=None, class_names=None, n=64):
    return ImageDataset(images=_u8(n), labels=labels, class_names=class_names, source="memory", name="mine")


def _cgan(*extra):
    return ganforge.load_config("cgan-fashion-mnist", [*TINY, *extra])[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny conditional run (its eval hook logs a plain float)."""
    out = tmp_path_factory.mktemp("api") / "run"
    api.train(_cgan("eval.every=1"), out, hooks=[lambda trainer, step: {"v": 1.0}],
              dataset=_ds(torch.arange(64) % 10, [str(i) for i in range(10)]), progress=False)
    return out


# 1. labels of a Python dataset
@pytest.mark.parametrize("labels, names, match", [
    (torch.full((64,), 15), [str(i) for i in range(10)], r"labels hold class 15, outside 0\.\.9"),
    (torch.full((64,), -1), None, r"labels hold class -1, outside 0 or more"),
    (torch.zeros(64), None, r"labels must be integer class indices \[N\] = \[64\].*got torch.float32"),
    (torch.arange(10), None, r"labels must be integer.*got shape \(10,\) for 64 images"),
    ([0] * 64, None, r"labels must be integer.*got list"),
])
def test_dataset_labels_checked_before_training(tmp_path, labels, names, match):
    with pytest.raises(DataError, match=match) as err:
        api.train(_cgan(), tmp_path / "r", dataset=_ds(labels, names), progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_dataset_labels_numpy_and_no_names_accepted():
    _, ds = api.build(_cgan(), _ds(np.arange(64) % 3))
    assert ds.labels.dtype == torch.int64 and ds.class_names == ["0", "1", "2"]


# 2. the passed dataset is named, not cfg.data.name
def test_conditional_unlabeled_python_dataset_names_it():
    with pytest.raises(ConfigError, match="needs a labeled dataset; mine has no labels") as err:
        api.build(_cgan(), _ds())
    assert "fashion-mnist has no labels" not in str(err.value)


# 3 and 8. hook values; a single callable as hooks
def test_single_hook_values_logged_as_numbers(tmp_path):
    """hooks= one callable (not a list) that logs nothing at the first evaluation (None) and a
    0-d tensor and numpy scalars at the second."""
    steps = []

    def hook(trainer, step):
        steps.append(step)
        return None if step == 1 else {"t": torch.tensor(1.5), "f": np.float32(2.5), "i": np.int64(3)}

    api.train(_cgan("eval.every=1"), tmp_path / "r", hooks=hook, dataset=_ds(torch.arange(64) % 10),
              progress=False)
    assert steps == [1, 2]
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if "t" in r] == [{"step": 2, "t": 1.5, "f": 2.5, "i": 3}]
    assert not any(set(r) == {"step"} for r in records)  # None logged nothing


def test_none_from_hook_in_a_list_logs_nothing(tmp_path):
    api.train(_cgan("eval.every=1", "train.steps=1"), tmp_path / "r", hooks=[lambda t, s: None],
              dataset=_ds(torch.arange(64) % 10), progress=False)
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert not any(set(r) == {"step"} for r in records)


@pytest.mark.parametrize("value, match", [
    ([1.0], r"hook bad returned list; a hook returns a dict"),
    ({"my": "x"}, r"hook bad returned 'my': str; a hook's values are numbers"),
    ({"my": torch.ones(3)}, r"hook bad returned 'my': tensor of shape \(3,\)"),
])
def test_bad_hook_value_is_one_line(tmp_path, value, match):
    def bad(trainer, step):
        return value

    with pytest.raises(ConfigError, match=match) as err:
        api.train(_cgan("eval.every=1", "train.steps=1"), tmp_path / "r", hooks=[bad],
                  dataset=_ds(torch.arange(64) % 10), progress=False)
    assert "\n" not in str(err.value)


# 4. resume and force together
def test_train_refuses_resume_with_force(tmp_path):
    with pytest.raises(ConfigError, match=r"--resume \(Python: resume=True\) continues the run in --out "
                                          r"\(Python: run_dir\) and --force \(Python: force=True\) replaces it; "
                                          r"pass one of them"):
        api.train(_cgan(), tmp_path / "r", resume=True, force=True, dataset=_ds(torch.arange(64) % 10))
    assert not (tmp_path / "r").exists()


# 5. messages naming both spellings and the value given
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_device_names_python_argument(tmp_path):
    with pytest.raises(ConfigError, match=r"--device is cuda .*; use --device auto \(device='auto'\)"):
        ganforge.load(tmp_path, device="cuda:0")


def test_interpolate_messages_name_value_and_argument(run_dir):
    run = ganforge.load(run_dir)
    with pytest.raises(ConfigError, match=r"not 'bogus' \(--space bogus, space='bogus'\); use --space z "
                                          r"\(space='z'\)"):
        run.interpolate([0, 1], 4, space="bogus")
    with pytest.raises(ConfigError, match=r"leave out --truncation \(truncation=None\)"):
        run.interpolate([0, 1], 4, truncation=0.5)


@pytest.mark.filterwarnings("ignore:dataset mine. images")
def test_biggan_interpolate_space_names_value():
    _, cfg = ganforge.load_config("biggan-fashion-mnist", ["model.g_width=2", "model.d_width=2",
                                                           "model.z_dim=9", "data.resolution=16"])
    objective, _ = api.build(cfg, _ds(torch.arange(64) % 10))
    with pytest.raises(ConfigError, match=r"not 'w' \(--space w, space='w'\); use --space z \(space='z'\)"):
        objective.interpolate([0, 1], 4, space="w")


def test_load_best_names_python_argument(run_dir):
    with pytest.raises(CheckpointError, match=r"use --checkpoint latest or a step_XXXXXXX name "
                                              r"\(checkpoint='latest' in Python"):
        ganforge.load(run_dir, checkpoint="best")


def test_evaluate_too_few_images_message():
    with pytest.raises(EvalError, match=r"got 2; pass more images \(--n on the command line\)"):
        metrics.evaluate(_u8(2), ref="fashion-mnist")


def test_force_refused_names_python_argument(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"^--force \(Python: force=True\) refused: .* is not a ganforge run"):
        rundir.claim_run_dir(tmp_path, force=True)
    assert (tmp_path / "notes.txt").exists()


# 6. to_uint8
def test_to_uint8_passes_uint8_and_takes_numpy():
    u8 = _u8(4)
    assert torch.equal(metrics.to_uint8(u8), u8)
    out = metrics.to_uint8(np.array([[[[-1.0, 0.0, 1.0]]]], np.float32))
    assert out.dtype == torch.uint8 and out.flatten().tolist() == [0, 128, 255]
    with pytest.raises(EvalError, match="to_uint8 takes float images in \\[-1, 1\\].*got torch.int32"):
        metrics.to_uint8(torch.zeros(1, 1, 2, 2, dtype=torch.int32))


# 7. require with an unknown capability
def test_require_unknown_capability(run_dir):
    run = ganforge.load(run_dir)
    with pytest.raises(ConfigError, match=r"unknown capability 'bogus'; valid: .*sample"):
        run.require("bogus")
