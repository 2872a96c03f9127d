"""The Python API (review 4): a resume on other in-memory images of the same count is told; a
hook's failure note in a run given dataset= says to pass it again; ganforge.load and load_config
refuse an argument of the wrong type in one line; a digit string set in Python is named a string."""
from __future__ import annotations

import warnings

import pytest
import torch
from conftest import random_dataset, tiny_config

import ganforge
from ganforge import api
from ganforge.errors import ConfigError
from ganforge.objectives.base import data_record


def _data_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "on other data" in str(w.message)]


def _resume(run, dataset, steps: int) -> list[str]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        api.train(tiny_config(**{"train.steps": steps}), run, resume=True, progress=False, dataset=dataset)
    return _data_warnings(record)


# 1. other in-memory images of the same count
def test_a_resume_on_other_images_of_the_same_count_warns(tmp_path):
    run = tmp_path / "run"
    data = random_dataset(n=16, resolution=16)
    api.train(tiny_config(**{"train.steps": 2}), run, progress=False, dataset=data)
    assert _resume(run, data, 3) == []  # the same images: nothing to say
    other = random_dataset(n=16, resolution=16)
    other.images = torch.zeros_like(other.images)
    assert _resume(run, other, 4) == [
        f"resuming {run} on other data: the data now has other images than the run trained on up to step 3 "
        f"(16 both times, other content): the resume trains on the new set and is not bit-exact"]


def test_the_fingerprint_sees_images_and_labels_and_a_checkpoint_without_one_is_no_change():
    data = random_dataset(n=2000, resolution=8, labels=True)
    record = data_record(data)
    assert record["images"] == 2000 and isinstance(record["fingerprint"], str)
    assert data_record(random_dataset(n=2000, resolution=8, labels=True)) == record  # deterministic
    relabeled = random_dataset(n=2000, resolution=8, labels=True)
    relabeled.labels = 1 - relabeled.labels
    assert data_record(relabeled)["fingerprint"] != record["fingerprint"]
    changed = random_dataset(n=2000, resolution=8, labels=True)
    changed.images[0] += 1  # the first image is always among those hashed
    assert data_record(changed)["fingerprint"] != record["fingerprint"]
    assert api._data_change({"images": 2000}, record, 5) is None  # a checkpoint from before it was kept
    assert api._data_change(record, {"images": 2000}, 5) is None
    assert api._data_change(record, data_record(changed), 5) == \
        "the data now has other images than the run trained on up to step 5 (2000 both times, other content)"


# 2. a hook that raises in a run given dataset=
def test_a_hook_failure_in_a_run_given_a_dataset_says_to_pass_it_again(tmp_path):
    run = tmp_path / "r"

    def acc(trainer, step):
        raise RuntimeError("bug in my scoring code")

    cfg = tiny_config(**{"eval.every": 2, "eval.best": "acc:higher", "train.steps": 4})
    with pytest.raises(RuntimeError, match="bug in my scoring code") as err:
        api.train(cfg, run, hooks=[acc], dataset=random_dataset(), progress=False)
    note = "\n".join(getattr(err.value, "__notes__", []))
    assert f"continue with api.train(cfg, {str(run)!r}, resume=True, hooks=..., dataset=...)" in note


# 3. arguments of the wrong type
@pytest.mark.parametrize("value, shown", [(5, "5 (int)"), (None, "None (NoneType)")])
def test_load_and_load_config_refuse_a_wrong_type_in_one_line(value, shown):
    with pytest.raises(ConfigError) as err:
        ganforge.load(value)
    assert str(err.value) == (f"run_dir must be a path (str or pathlib.Path) of a run directory or a model folder, "
                              f"got {shown}")
    with pytest.raises(ConfigError) as err:
        ganforge.load_config(value)
    assert str(err.value) == (f"preset_or_file must be a preset name (ganforge presets) or the path (str or "
                              f"pathlib.Path) of a YAML file, got {shown}")


# 4. a digit string set in Python
def test_a_digit_string_is_refused_as_a_string_with_the_int_to_write(tmp_path):
    cfg = tiny_config()
    cfg.train.steps = "10"
    with pytest.raises(ConfigError, match=r"^train.steps must be a whole number, got '10', a string; write 10 "
                                          r"without quotes \(an int\)$"):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))
    assert not (tmp_path / "run").exists()
    cfg = tiny_config()
    cfg.train.steps = "ten"  # not digits: the general advice, as before
    with pytest.raises(ConfigError, match=r"^train.steps must be a whole number, got 'ten'; write e.g. 10000 or 1e4$"):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))
