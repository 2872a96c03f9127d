"""Writing config files (a review): whole-number keys read 1e4 and 2000.0 from YAML as overrides
do, merge keys work, a YAML syntax error says what and where (tabs: indent with spaces), a
misspelt objective beside its family's section is named as such, and load_config takes a Path
and refuses a dict of overrides in one line."""
from pathlib import Path

import pytest

import ganforge
from ganforge.errors import ConfigError


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_whole_number_keys_read_1e4_and_2000_0(tmp_path):
    _, cfg = ganforge.load_config(write(tmp_path, "train:\n  steps: 1e4\n  batch_size: 16.0\n"
                                                  "progressive:\n  fade_images: [6e5]\nobjective: progressive\n"))
    assert (cfg.train.steps, cfg.train.batch_size, cfg.progressive.fade_images) == (10000, 16, [600000])
    with pytest.raises(ConfigError, match=r"train.steps must be a whole number, got 2.5; write e.g. 10000"):
        ganforge.load_config(write(tmp_path, "train:\n  steps: 2.5\n"))


def test_yaml_merge_keys_are_read(tmp_path):
    _, cfg = ganforge.load_config(write(tmp_path, "optim:\n  <<: &lr {g_lr: 0.001, d_lr: 0.003}\n  d_lr: 0.002\n"))
    assert (cfg.optim.g_lr, cfg.optim.d_lr) == (0.001, 0.002)
    with pytest.raises(ConfigError, match="'d_lr' is given twice"):  # a real duplicate still is one
        ganforge.load_config(write(tmp_path, "optim:\n  d_lr: 0.1\n  d_lr: 0.2\n"))


def test_a_syntax_error_says_what_and_where(tmp_path):
    with pytest.raises(ConfigError, match=r"at line 2, column 1 \(found character '\\t' .*\); indent with "
                                          r"spaces, not tabs$"):
        ganforge.load_config(write(tmp_path, "train:\n\tsteps: 3\n"))
    with pytest.raises(ConfigError, match=r"at line 3, column 1 \(expected ',' or '\]'"):
        ganforge.load_config(write(tmp_path, "train:\n  steps: [1, 2\n"))


def test_a_misspelt_objective_beside_its_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown objective 'stylegan' \(did you mean 'stylegan2'\?\)"):
        ganforge.load_config(write(tmp_path, "objective: stylegan\nstyle:\n  mapping_layers: 2\n"))


def test_load_config_takes_a_path_and_refuses_a_dict_of_overrides(tmp_path):
    path = Path(write(tmp_path, "train:\n  steps: 3\n", "mine.yaml"))
    assert ganforge.load_config(path)[0] == "mine"
    with pytest.raises(ConfigError, match=r"got a dict; pass \['train.steps=3'\]"):
        ganforge.load_config(path, {"train.steps": 3})
