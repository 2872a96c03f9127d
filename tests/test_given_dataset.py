"""A run trained on a dataset passed from Python (train's dataset=) records it (RUN/dataset.json),
a resume without the dataset is refused, the built-in FID/KID hook (which scores against the
dataset data.name names) is refused; and a resume without the hooks= whose value eval.best names
says so."""
from __future__ import annotations

import json

import pytest
from conftest import random_dataset, tiny_config

import ganforge
from ganforge import api, cli
from ganforge.errors import ConfigError


def _cfg(*overrides):
    return tiny_config(**dict(o.split("=", 1) for o in overrides))


def _cli(*args) -> int:
    return cli.main([str(a) for a in args])


def test_given_dataset_is_recorded_and_a_resume_without_it_is_refused(tmp_path, capsys):
    run = tmp_path / "r"
    api.train(_cfg(), run, dataset=random_dataset(), progress=False)
    assert json.loads((run / "dataset.json").read_text()) == {"name": "random", "images": len(random_dataset())}

    # the CLI resume had trained on the preset's fashion-mnist and exited 0
    assert _cli("train", "--resume", "--out", run, "train.steps=8", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"ganforge: error: {run} was trained on the dataset 'random' passed from Python; "
                       f"resume it with ganforge.train(cfg, {str(run)!r}, resume=True, dataset=...)")
    with pytest.raises(ConfigError, match=r"trained on the dataset 'random' passed from Python"):
        api.train(_cfg("train.steps=8"), run, resume=True, progress=False)
    # a preset's config had resumed on its own data.name, as a changed data.name
    with pytest.raises(ConfigError, match=r"trained on the dataset 'random' passed from Python"):
        api.train(_cfg("train.steps=8", "data.name=cifar10"), run, resume=True, progress=False)
    assert ganforge.load(run).step == 6  # nothing trained

    result = api.train(_cfg("train.steps=8"), run, resume=True, dataset=random_dataset(), progress=False)
    assert (result.start, result.step) == (6, 8)
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["evidence"] for e in events if e.get("event") == "config_change"] == [{"train.steps": [6, 8]}]


def test_builtin_eval_hook_with_given_dataset_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"^eval.every=2 with dataset=: .*not images passed from "
                                          r"Python; pass hooks= \(your own scoring\) or eval.every=0$"):
        api.train(_cfg("eval.every=2", "eval.n=16"), tmp_path / "r", dataset=random_dataset(), progress=False)
    assert not (tmp_path / "r").exists()  # it had scored FID against fashion-mnist


def test_resume_without_the_hooks_eval_best_names_says_so(tmp_path, capsys):
    run = tmp_path / "r"
    api.train(_cfg("eval.every=2", "eval.best=my_acc:higher"), run, progress=False,
              hooks=lambda trainer, step: {"my_acc": float(step)}, dataset=random_dataset())
    cfg = _cfg("eval.every=2", "eval.best=my_acc:higher", "train.steps=8")
    # it had said "unknown metric 'my_acc'", as if a plugin's metric were not imported
    with pytest.raises(ConfigError, match=r"^eval.best=my_acc:higher names a value of your own hooks=; "
                                          r"resume \(or train\) from Python with the same hooks, or "
                                          r"override eval.every=0 \(or eval.best=fid\)$"):
        api.train(cfg, run, resume=True, dataset=random_dataset(), progress=False)
    assert ganforge.load(run).step == 6
