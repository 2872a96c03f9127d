"""Python API review 20: a run evaluated by the caller's hooks= records them (RUN/hooks.json), its
Ctrl-C message says to pass them again and a resume without them is refused (it had resumed with
the built-in FID/KID hook, mixing 'fid' into metrics.jsonl); a whole config section replaced in
Python is refused (it had trained with the library's defaults for the rest of the section); the
warnings ganforge.train says point at the caller's line, not at api.py."""
from __future__ import annotations

import json
import linecache
import os
import signal
import warnings

import pytest
from conftest import random_dataset, tiny_config

import ganforge
from ganforge import api, cli
from ganforge.errors import ConfigError


def _cfg(**overrides):
    return tiny_config(**{"data.name": overrides.pop("data", "fashion-mnist"), **overrides})


def _acc(trainer, step):
    return {"acc": 0.9}


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# 1. a run evaluated by hooks=
def test_a_resume_without_the_hooks_of_a_hooked_run_is_refused(tmp_path, image_folder, monkeypatch, capsys):
    builtin = []

    def fake_training_hook(cfg, **kwargs):  # the built-in FID/KID hook, without Inception weights
        def hook(trainer, step):
            builtin.append(step)
            return {"fid": 360.8}
        return hook

    import ganforge.metrics

    monkeypatch.setattr(ganforge.metrics, "training_hook", fake_training_hook)
    run, data = tmp_path / "hooked", f"folder:{image_folder}"
    api.train(_cfg(data=data, **{"eval.every": 2, "data.channels": 3}), run, hooks=_acc, progress=False)

    more = {"eval.every": 2, "train.steps": 8, "data.channels": 3}
    with pytest.raises(ConfigError, match=(
            rf"^{run} was evaluated by your own hooks= \(_acc\), and a resume without them would score it with "
            rf"the built-in FID/KID from here on; resume it with ganforge\.train\(cfg, '{run}', resume=True, "
            rf"hooks=\.\.\.\), or override eval\.every=0 to train on without evaluation \(to switch to the "
            rf"built-in metrics, delete {run / 'hooks.json'}\)$")):
        api.train(_cfg(data=data, **more), run, resume=True, progress=False)
    assert cli.main(["train", "--resume", "--out", str(run), "train.steps=8", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"ganforge: error: {run} was evaluated by your own hooks= (_acc)")
    assert ganforge.load(run).step == 6 and builtin == []  # nothing trained, no 'fid' logged
    assert not any("fid" in r for r in _records(run))
    assert json.loads((run / "hooks.json").read_text()) == {"hooks": ["_acc"]}

    result = api.train(_cfg(data=data, **more), run, resume=True, hooks=_acc, progress=False)  # as before
    assert (result.start, result.step) == (6, 8)
    off = {**more, "eval.every": 0, "train.steps": 10}  # evaluation off, deliberately: no hooks needed
    result = api.train(_cfg(data=data, **off), run, resume=True, progress=False)
    assert (result.start, result.step) == (8, 10) and builtin == []
    evaluated = [r for r in _records(run) if "acc" in r or "fid" in r]
    assert [r["step"] for r in evaluated] == [2, 4, 6, 8] and all("fid" not in r for r in evaluated)


def test_the_ctrl_c_message_of_a_hooked_run_says_to_pass_the_hooks(tmp_path):
    def interrupting(trainer, step):
        os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C while it trains
        return {"acc": 0.9}

    run = tmp_path / "r"
    with pytest.raises(ganforge.TrainingInterrupted) as info:
        api.train(_cfg(**{"eval.every": 2, "train.steps": 100}), run, hooks=[interrupting], progress=False,
                  dataset=random_dataset())
    assert f"Continue with: ganforge.train(cfg, {str(run)!r}, resume=True, hooks=..., dataset=...)" in str(info.value)


# 2. a whole section replaced in Python
@pytest.mark.parametrize("section, value, fix", [
    ("train", {"steps": 4}, r"cfg\.train\.steps = 4\), or apply overrides \(ganforge\.load_config\(PRESET, "
                            r"\[\"train\.steps=4\"\]\)\)"),
    ("model", None, r"cfg\.model\.name = \.\.\.\), or apply overrides"),
    ("train", None, r"cfg\.train\.steps = \.\.\.\)"),
])
def test_a_whole_section_replaced_in_python_is_refused(tmp_path, section, value, fix):
    cfg = _cfg()
    setattr(cfg, section, value)
    with pytest.raises(ConfigError, match=rf"^cfg\.{section} was replaced by {value!r}: the keys of the section it "
                                          rf"leaves out would take the library's defaults, not the config's; set its "
                                          rf"fields instead \({fix}"):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset())
    assert not (tmp_path / "run").exists()


# 3. warnings point at the caller's line
def _at_this_file(record):
    assert record.filename == __file__, (record.filename, record.lineno, str(record.message))
    assert "api.train(" in linecache.getline(record.filename, record.lineno)


def test_the_adapted_dataset_warning_names_the_callers_line(tmp_path):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        api.train(_cfg(), tmp_path / "r", progress=False, dataset=random_dataset(resolution=8))
    adapted = [w for w in said if "adapted to data.channels=1 and data.resolution=16" in str(w.message)]
    assert len(adapted) == 1
    _at_this_file(adapted[0])  # had been api.py's line


def test_the_resume_on_other_data_warning_names_the_callers_line(tmp_path):
    run = tmp_path / "r"
    api.train(_cfg(), run, progress=False, dataset=random_dataset())
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        api.train(_cfg(**{"train.steps": 8}), run, resume=True, progress=False, dataset=random_dataset(n=32))
    other = [w for w in said if "on other data" in str(w.message)]
    assert len(other) == 1
    _at_this_file(other[0])  # had been api.py's line
