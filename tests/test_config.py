import pytest
import yaml

import ganforge
from ganforge import config
from ganforge.errors import ConfigError


def test_every_preset_loads_with_description():
    presets = config.list_presets()
    for required in ("vanilla-fashion-mnist", "dcgan-fashion-mnist", "dcgan-cifar10", "dcgan-folder"):
        assert required in presets
    for name, description in presets.items():
        assert description, f"preset {name} has no description"
        _, cfg = ganforge.load_config(name)  # registers the families' sections first, as users get it
        assert cfg.train.steps > 0


def test_overrides_are_typed():
    _, cfg = config.load_config("dcgan-fashion-mnist",
                                ["train.steps=123", "optim.d_lr=1e-4", "optim.betas=[0.0,0.99]",
                                 "optim.g_lr=1", "train.compile=true", "data.data_dir=/x y"])
    assert cfg.train.steps == 123
    assert cfg.optim.d_lr == 1e-4
    assert cfg.optim.betas == [0.0, 0.99]
    assert cfg.optim.g_lr == 1.0 and isinstance(cfg.optim.g_lr, float)
    assert cfg.train.compile is True
    assert cfg.data.data_dir == "/x y"


@pytest.mark.parametrize("override, expect", [
    ("train.stepz=3", "unknown config key 'train.stepz' (did you mean 'train.steps'?)"),
    ("optim.dlr=3", "did you mean 'optim.d_lr'?"),
    ("steps=5", "unknown config key 'steps' (did you mean 'train.steps'? keys are written with their section)"),
    ("train.steps=abc", "train.steps must be a whole number"),
    ("train.steps=1.5", "train.steps must be a whole number"),
    ("train.compile=3", "train.compile must be true or false"),
    ("optim.betas=0.5", "optim.betas must be a list"),
    ("train.steps", "is not key=value"),
    ("train.steps=0", "train.steps must be > 0"),
    ("train.precision=fp8", "train.precision must be fp32, bf16, fp16 or auto"),
    ("data.num_workers=-1", "data.num_workers must be >= 0 (0: load in the training process), got -1"),
])
def test_bad_overrides_name_the_key(override, expect):
    with pytest.raises(ConfigError) as err:
        config.load_config("dcgan-fashion-mnist", [override])
    assert expect in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'dcgan-fashion-mnist'"):
        config.load_config("dcgan-fashion-mnst")


def test_yaml_file_roundtrip_and_errors(tmp_path):
    _, cfg = config.load_config("vanilla-fashion-mnist", ["train.steps=7"])
    path = tmp_path / "mine.yaml"
    path.write_text(cfg.to_yaml())
    name, again = config.load_config(str(path))
    assert name == "mine" and again == cfg

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load_config(str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"trian": {"steps": 3}}))
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        config.load_config(str(unknown))
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_config(str(tmp_path / "missing.yaml"))


def test_a_preset_with_overrides_says_so_in_its_description():
    load_config = config.load_config
    """The report's header and the model card show the description: toy-ring8 trained with the
    minimax loss and no R1 had been described as the preset (non-saturating, lazy R1, 8/8 modes)."""
    from ganforge.api import config_changes

    preset = load_config("toy-ring8")[1]
    cfg = load_config("toy-ring8", ["loss.name=minimax", "reg.r1=0"])[1]
    assert cfg.description == ("toy-ring8 with loss.name=minimax reg.r1=0; the preset's description: "
                               + preset.description)
    assert load_config("toy-ring8", ["description=mine", "reg.r1=0"])[1].description == "mine"
    assert "description" not in config_changes(preset, cfg)  # not a setting a resume reports


def test_a_section_or_key_given_twice_in_a_yaml_file_is_refused(tmp_path):
    """A second `train:` block appended to a preset's file had silently replaced the first (its
    precision and channels_last with it); a key twice kept the last value."""
    from ganforge.config import load_config

    path = tmp_path / "my.yaml"
    path.write_text("train:\n  steps: 5\n  precision: bf16\nmodel:\n  g_width: 8\ntrain:\n  steps: 7\n")
    with pytest.raises(ConfigError, match=r"line 6: 'train' is given twice in one mapping \(first at line 1\)"):
        load_config(str(path))
    path.write_text("train:\n  steps: 2\n  steps: 3\n")
    with pytest.raises(ConfigError, match="'steps' is given twice"):
        load_config(str(path))


def test_a_file_named_like_a_preset_does_not_replace_the_preset(tmp_path, monkeypatch):
    from ganforge.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dcgan-fashion-mnist").write_text("model:\n  name: mlp\n")
    with pytest.warns(UserWarning, match="using the preset dcgan-fashion-mnist, not the file"):
        assert load_config("dcgan-fashion-mnist")[1].model.name == "dcgan"
    assert load_config("./dcgan-fashion-mnist")[1].model.name == "mlp"


def test_a_files_description_is_kept_with_overrides(tmp_path):
    """Only a preset's description says which settings were overridden: a run's config.yaml reused
    as a file had nested "config with ...; the preset's description: toy-ring8 with ...; ..."."""
    first = config.load_config("toy-ring8", ["reg.r1=0"])[1]
    path = tmp_path / "config.yaml"
    path.write_text(__import__("yaml").safe_dump(first.to_dict()))
    again = config.load_config(str(path), ["train.steps=5"])[1]
    assert again.description == first.description and again.train.steps == 5
    assert config.load_config(path, ["train.steps=5"])[1].description == first.description
