"""Evaluation during training names its extractor in the config (eval.extractor): offline, a
folder run had no way to score without the Inception weights, and the error's advice was eval's
--extractor flag, which training does not take. A 2-D toy run's eval.every is refused up front
(it had asked for Inception weights)."""
from __future__ import annotations

import pytest
import yaml

from ganforge import api, config
from ganforge.errors import ConfigError
from ganforge.metrics import features as F
from ganforge.metrics.errors import EvalError
from ganforge.objectives.unconditional import write_image_folder
from test_metrics_eval import closed_port_url


def _raw(tmp_path, **eval_keys) -> dict:
    folder = write_image_folder(tmp_path / "images", n=40, size=8, channels=1)
    return {"objective": "unconditional",
            "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
            "model": {"name": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8},
            "train": {"steps": 2, "batch_size": 8, "log_every": 2, "sample_every": 1000,
                      "checkpoint_every": 1000, "n_sample_grid": 4, "device": "cpu", "seed": 0},
            "eval": {"every": 2, "n": 20, **eval_keys},
            "monitor": {"probe_size": 4}}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(F, "INCEPTION_URL", closed_port_url())
    monkeypatch.setattr(F, "DOWNLOAD_TIMEOUT", 2.0)
    monkeypatch.setattr(F, "find_inception_weights", lambda: None)


def test_eval_extractor_scores_a_folder_run_offline(tmp_path, offline):
    api.train(config.from_dict(_raw(tmp_path, extractor="fashion-mnist-cnn")), tmp_path / "run", progress=False)
    records = [yaml.safe_load(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "fid" in r]
    assert [r["step"] for r in scored] == [2]
    assert scored[0]["protocol"]["extractor"] == "fashion-mnist-cnn" and scored[0]["fid"] > 0


def test_training_without_inception_weights_names_the_config_key(tmp_path, offline):
    with pytest.raises(EvalError) as err:
        api.train(config.from_dict(_raw(tmp_path)), tmp_path / "run", progress=False)
    msg = str(err.value)
    assert msg.startswith("eval.every=2: Inception weights ") and F.INCEPTION_FILE in msg, msg
    assert "eval.extractor=fashion-mnist-cnn" in msg and "--extractor" not in msg, msg
    assert "--inception-weights" not in msg, msg  # a flag of ganforge eval, not of training
    assert not (tmp_path / "run").exists()  # refused before the run was written


def test_a_toy_run_refuses_eval_every_before_training(tmp_path):
    name, cfg = config.load_config("toy-ring8", ["eval.every=10", "train.steps=20"])
    with pytest.raises(ConfigError, match=r"toy:ring8 is 2-D points; .*ganforge bench modes --data toy:ring8"):
        api.train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
