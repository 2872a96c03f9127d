"""Settings a family never reads are refused for a new run, a whole section ("model.", "loss.") as
well as single keys: the audio families had trained with model.g_width=8 and the vocoder with
loss.name=foo as if absent, recorded in config.yaml; super-resolution with model.g_width=8, which
sr.width overrides. And vocoder.phase=foo is named as not a phase."""
import pytest

import ganforge
from ganforge.errors import ConfigError
from ganforge.objectives.base import check_training


@pytest.mark.parametrize("preset,override,words", [
    ("hifigan-speech", "model.g_width=8",
     "model.g_width=8 is not used by objective=vocoder (its networks never read it)"),
    ("cyclegan-vc-speech", "model.z_dim=7", "model.z_dim=7 is not used by objective=cyclegan-vc"),
    ("hifigan-speech", "loss.name=foo", "loss.name=foo is not used by objective=vocoder (its training never reads it)"),
    ("vocos-pghi-speech", "loss.label_smoothing=0.2", "loss.label_smoothing=0.2 is not used by objective=vocoder"),
    ("srresnet-x4", "model.g_width=8", "model.g_width=8 is not used by objective=superres"),
])
def test_a_setting_the_family_never_reads_is_refused(preset, override, words):
    _, cfg = ganforge.load_config(preset, [override])
    with pytest.raises(ConfigError, match="remove it") as exc:
        check_training(cfg, 1, new=True)
    assert words in str(exc.value), exc.value
    check_training(cfg, 1, new=False)  # a run trained with it before the check still resumes


@pytest.mark.parametrize("preset,override", [("srgan-x4", "model.d_width=8"), ("srgan-x4", "loss.name=hinge"),
                                             ("cyclegan-vc-speech", "loss.name=hinge"), ("hifigan-speech", "")])
def test_what_the_family_reads_and_the_presets_pass(preset, override):
    _, cfg = ganforge.load_config(preset, [override] if override else [])
    check_training(cfg, 1, new=True)


def test_an_unknown_vocoder_phase_is_named_as_such_for_hifigan_too():
    from ganforge.objectives.vocoder import check_config

    _, cfg = ganforge.load_config("hifigan-speech", ["vocoder.phase=foo"])
    with pytest.raises(ConfigError, match="vocoder.phase 'foo' is not one of learned, pghi"):
        check_config(cfg)
