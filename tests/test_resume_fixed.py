"""A resume may not change the settings a family's trained networks are bound to although no
weight changes shape: an audio run's front end (its mels), a voice-conversion run's voice pair.
Other changes (more steps) still resume."""
from __future__ import annotations

import pytest

from ganforge import api
from ganforge.config import from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(name, tmp_path):
    raw = OBJECTIVES[name].example_config(tmp_path / "data")
    run = tmp_path / name
    api.train(from_dict(raw), run, progress=False)
    return run, raw["train"]["steps"]


@pytest.mark.parametrize("name, overrides", [
    ("vocoder", ["audio.hop=32"]),
    ("vocoder", ["audio.rate=16000"]),
    ("vocoder", ["audio.fmax=3000.0"]),
    ("cyclegan-vc", ["vc.voice_a=high", "vc.voice_b=low"]),  # AtoB would become BtoA
])
def test_a_resume_that_changes_what_the_networks_learned_is_refused(tmp_path, name, overrides):
    run, steps = _run(name, tmp_path)
    key, value = overrides[0].split("=")
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    cfg = api.resume_config(run, [f"train.steps={steps + 2}", *overrides])
    with pytest.raises(ConfigError, match=rf"cannot resume .* with {key}={value} \(the run has .*\): "):
        api.train(cfg, run, resume=True, progress=False)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    # the same resume without it trains on
    api.train(api.resume_config(run, [f"train.steps={steps + 2}"]), run, resume=True, progress=False)
    assert (run / "checkpoints" / f"step_{steps + 2:07d}").is_dir()


def test_a_hand_edited_config_is_named_as_one(tmp_path):
    """A YAML syntax error is not called a tag; a change made in config.yaml, not by an
    override, is offered its undoing."""
    from ganforge.errors import CheckpointError

    run, steps = _run("vocoder", tmp_path)
    path = run / "config.yaml"
    text = path.read_text()
    path.write_text(text.replace("train:", "train;", 1))
    with pytest.raises(CheckpointError, match=r"is not valid YAML \(.*at line \d+\); fix that line"):
        api.resume_config(run, [])
    # a key of its own: a second 'model' is refused first, as given twice
    path.write_text("hacked: !!python/object/apply:os.system ['true']\n" + text)
    with pytest.raises(CheckpointError, match="ganforge writes no YAML tags"):
        api.resume_config(run, [])
    assert "  hop: 64\n" in text
    path.write_text(text.replace("  hop: 64\n", "  hop: 32\n", 1))
    with pytest.raises(ConfigError, match=r"with audio\.hop=32 .*undo the edit of .*config\.yaml"):
        api.train(api.resume_config(run, [f"train.steps={steps + 2}"]), run, resume=True, progress=False)
