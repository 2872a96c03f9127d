"""Configuring runs (review 20): another family's section beside a registered objective is named as
such, not as an unknown objective; one the user wrote is refused even with only its defaults (a
saved run's config.yaml keeps the lenient rule); a run directory given as the config says what to
do; negative eval.every / train.ema_start / eval.n are refused; a quoted boolean is named a string;
StyleGAN2's value checks name the bad key and its value."""
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import run_cli, tiny_config

import ganforge
from ganforge import api
from ganforge.config import SECTIONS, apply_overrides, from_dict, load_raw
from ganforge.errors import ConfigError
from ganforge.objectives.stylegan2 import StyleGAN2

LEGACY = Path(__file__).parent / "fixtures" / "legacy-runs"


def _section_message(name: str, objective: str = "unconditional") -> str:
    owners = " / ".join(sorted(SECTIONS[name].objectives))
    return (rf"^section '{name}' configures objective {re.escape(owners)}, but this config trains "
            rf"objective={objective}; remove the {name} section or change the objective$")


def _preset_as(tmp_path, preset: str, objective: str) -> str:
    """`ganforge presets PRESET | sed 's/^objective: .*/objective: OBJECTIVE/' > PRESET.yaml`."""
    raw = load_raw(preset)[1]
    raw["objective"] = objective
    path = tmp_path / f"{preset}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def test_a_registered_objective_beside_another_familys_section_is_not_called_unknown(tmp_path):
    # had been "unknown objective 'unconditional' (did you mean 'stylegan2_conditional'?)"
    with pytest.raises(ConfigError, match=_section_message("style")):
        ganforge.load_config("dcgan-fashion-mnist", ["style.w_dim=64"])
    with pytest.raises(ConfigError, match=_section_message("style")):  # a saved config read back too
        from_dict({**tiny_config().to_dict(), "style": {"w_dim": 64}})
    # ... "(did you mean 'conditional'?)"
    with pytest.raises(ConfigError, match=_section_message("cond")):
        ganforge.load_config(_preset_as(tmp_path, "cgan-fashion-mnist", "unconditional"))
    # a misspelt objective still is one
    with pytest.raises(ConfigError, match=r"unknown objective 'stylegan' \(did you mean 'stylegan2'\?\)"):
        ganforge.load_config("dcgan-fashion-mnist", ["objective=stylegan", "style.w_dim=64"])


def test_another_familys_section_the_user_wrote_is_refused_even_with_its_defaults(tmp_path):
    # a LAPGAN preset's copy made unconditional had trained a DCGAN, its lapgan: block dropped
    with pytest.raises(ConfigError, match=_section_message("lapgan")):
        ganforge.load_config(_preset_as(tmp_path, "lapgan-fashion-mnist", "unconditional"))
    defaults = {name: SECTIONS[name].cls() for name in ("style", "lapgan")}
    with pytest.raises(ConfigError, match=_section_message("style")):
        ganforge.load_config("dcgan-fashion-mnist", [f"style.w_dim={defaults['style'].w_dim}"])
    with pytest.raises(ConfigError, match="section '(style|lapgan)' configures objective"):
        ganforge.load_config("dcgan-fashion-mnist", [f"style.w_dim={defaults['style'].w_dim}",
                                                     f"lapgan.levels={defaults['lapgan'].levels}"])
    # a family's own section, written with its defaults, is its own
    assert ganforge.load_config("lapgan-fashion-mnist", [f"lapgan.levels={defaults['lapgan'].levels}"])[1]


def test_a_saved_run_config_keeps_dropping_default_sections(tmp_path):
    """Runs written before families declared their sections carry every section in config.yaml."""
    run = shutil.copytree(LEGACY / "dcgan", tmp_path / "old")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert {"cond", "sr", "translate"} <= saved.keys()  # what the fixture is about
    assert from_dict(saved).objective == "unconditional"
    assert api.resume_config(run, ["train.steps=4"]).train.steps == 4
    _, cfg = ganforge.load_config(str(run / "config.yaml"))  # a new run like it
    assert cfg.objective == "unconditional" and "sr" not in cfg.to_dict()
    with pytest.raises(ConfigError, match=_section_message("sr")):  # what the user adds is theirs
        ganforge.load_config(str(run / "config.yaml"), ["sr.scale=4"])
    copy = tmp_path / "mine.yaml"  # a file of the user's, no run's
    copy.write_text((run / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=_section_message("cond")):
        ganforge.load_config(str(copy))


def test_a_run_directory_given_as_the_config_says_what_to_do(tmp_path):
    run = shutil.copytree(LEGACY / "dcgan", tmp_path / "run1")
    expected = (f"{run} is a run directory: train {run / 'config.yaml'} for a new run like it, or "
                f"ganforge train --resume --out {run} to continue it")
    for given in (str(run), f"{run}/", run):
        with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
            ganforge.load_config(given)
    proc = run_cli("train", "run1", "--out", "e", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("ganforge: error: run1 is a run directory: train run1/config.yaml for a new run "
                           "like it, or ganforge train --resume --out run1 to continue it\n")
    assert not (tmp_path / "e").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="^unknown preset '.*empty'"):  # no config.yaml there: as before
        ganforge.load_config(str(tmp_path / "empty"))


@pytest.mark.parametrize("override, message", [
    ("eval.every=-5", r"^eval.every must be >= 0 \(evaluate every N steps; 0: off\), got -5$"),
    ("train.ema_start=-4", r"^train.ema_start must be >= 0 \(the step from which G is averaged into the "
                           r"EMA; 0: from the start\), got -4$"),
    ("eval.n=0", r"^eval.n must be > 0 \(the samples each evaluation draws\), got 0$"),
])
def test_negative_counts_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        ganforge.load_config("dcgan-fashion-mnist", [override])
    # the smallest meaningful values still are: evaluation off, the EMA from the start, one sample
    _, cfg = ganforge.load_config("dcgan-fashion-mnist", ["eval.every=0", "train.ema_start=0", "eval.n=1"])
    assert (cfg.eval.every, cfg.train.ema_start, cfg.eval.n) == (0, 0, 1)


def test_a_quoted_boolean_is_named_a_string(tmp_path):
    path = tmp_path / "c.yaml"
    for quoted, fix in (('"true"', "true"), ("'False'", "false")):
        path.write_text(f"train:\n  compile: {quoted}\n")
        with pytest.raises(ConfigError, match=rf"^train.compile must be true or false, got '{quoted[1:-1]}', "
                                              rf"a string; write {fix} without quotes \(a bool\)$"):
            ganforge.load_config(str(path))
    with pytest.raises(ConfigError, match=r"^train.compile must be true or false, got 3$"):
        ganforge.load_config("dcgan-fashion-mnist", ["train.compile=3"])


@pytest.mark.parametrize("override, message", [
    ("style.ema_kimg=-1", r"^style.ema_kimg must be >= 0 \(.*half-life.*\), got -1.0$"),
    ("style.pl_weight=-2", r"^style.pl_weight must be >= 0 \(.*path-length.*\), got -2.0$"),
    ("style.ema_rampup=-0.5", r"^style.ema_rampup must be >= 0 \(.*\), got -0.5$"),
    ("style.mapping_lr_mul=0", r"^style.mapping_lr_mul must be > 0 \(.*mapping network.*\), got 0.0$"),
])
def test_stylegan2_value_checks_name_the_key_and_its_value(tmp_path, override, message):
    raw = StyleGAN2.example_config(tmp_path)
    with pytest.raises(ConfigError, match=message):
        StyleGAN2(from_dict(apply_overrides(raw, [override])), {})
