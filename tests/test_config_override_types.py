"""Overrides are read by the key's type, and config slips get a message that names the fix."""
from pathlib import Path

import pytest

import ganforge
from ganforge import config
from ganforge.cli import parse_args
from ganforge.errors import ConfigError


def test_text_key_keeps_what_follows_a_hash_and_dates_and_yes():
    _, cfg = ganforge.load_config("toy-ring8", ["description=run #2", "data.name=folder:/x y/2026-12-06"])
    assert cfg.description == "run #2"  # YAML had dropped ' #2' as a comment
    assert cfg.data.name == "folder:/x y/2026-12-06"
    assert config.parse_override("description=yes") == ("description", "yes")  # YAML: True
    assert config.parse_override("description=2026-12-06") == ("description", "2026-12-06")  # a date
    assert config.parse_override("description='quoted'") == ("description", "quoted")


def test_int_key_reads_decimal_and_integral_floats():
    assert config.parse_override("train.steps=010") == ("train.steps", 10)  # YAML 1.1: octal 8
    assert config.parse_override("train.steps=1e4") == ("train.steps", 10000)  # YAML: the string '1e4'
    with pytest.raises(ConfigError, match="train.steps must be a whole number, got 1.5; write e.g. 10000"):
        ganforge.load_config("toy-ring8", ["train.steps=1.5"])


def test_a_section_given_a_value_names_its_keys():
    with pytest.raises(ConfigError, match="'train' is a config section, not a key; set one of its keys, "
                                          "such as train.steps="):
        config.parse_override("train=5")


def test_misspelt_section_in_a_file_is_not_called_a_plugin(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trian:\n  steps: 5\n")
    with pytest.raises(ConfigError) as info:
        ganforge.load_config(str(path))
    assert "did you mean 'train'" in str(info.value)
    assert "defined outside ganforge" not in str(info.value)
    path.write_text("zzqx:\n  steps: 5\n")  # nothing close: perhaps a plugin's section
    with pytest.raises(ConfigError, match="defined outside ganforge"):
        ganforge.load_config(str(path))


def test_empty_file_is_called_empty(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="empty.yaml is empty; write config sections in it"):
        ganforge.load_config(str(path))


def test_config_file_with_equals_in_its_name_is_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("lr=2e-4.yaml").write_text("description: x\n")
    args = parse_args(["train", "lr=2e-4.yaml", "train.steps=3"])
    assert args.config == "lr=2e-4.yaml" and args.overrides == ["train.steps=3"]
    args = parse_args(["train", "--resume", "--out", "r", "train.steps=3"])  # still an override
    assert args.config is None and args.overrides == ["train.steps=3"]


def test_unknown_optimizer_is_refused_before_training_is_announced(tmp_path):
    _, cfg = ganforge.load_config("toy-ring8", ["optim.name=adamx", "train.steps=2"])
    started = []
    with pytest.raises(ConfigError, match="unknown optimizer 'adamx'"):
        ganforge.train(cfg, tmp_path / "run", on_start=started.append)
    assert started == [] and not (tmp_path / "run").exists()



def test_fp16_off_cuda_is_refused_before_training_is_announced(tmp_path):
    # it had been refused when the trainer was built, after the CLI's "training ..." line
    _, cfg = ganforge.load_config("toy-ring8", ["train.precision=fp16", "train.device=cpu",
                                                "train.steps=2"])
    started = []
    with pytest.raises(ConfigError, match="train.precision=fp16 needs a CUDA GPU"):
        ganforge.train(cfg, tmp_path / "run", on_start=started.append)
    assert started == [] and not (tmp_path / "run").exists()
