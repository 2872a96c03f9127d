"""A new run refuses a model.* key its family never reads (Objective.unused_settings), set away
from its default: StyleGAN2 had trained with model.g_depth=4 and pix2pix with model.z_dim=128 as
if absent. A resume of a run that set one still trains; every preset passes."""
from __future__ import annotations

import pytest

from ganforge.config import list_presets, load_config
from ganforge.errors import ConfigError
from ganforge.objectives.base import check_training


@pytest.mark.parametrize("preset, override", [
    ("stylegan2-fashion-mnist", "model.g_depth=4"),
    ("stylegan2-fashion-mnist", "model.init=torch"),
    ("pix2pix-colorize", "model.z_dim=128"),
    ("cyclegan-folder", "model.g_head=conv"),
])
def test_a_new_run_refuses_a_model_key_its_family_does_not_read(preset, override):
    _, cfg = load_config(preset, [override])
    with pytest.raises(ConfigError) as err:
        check_training(cfg, 1, new=True)
    text = str(err.value)
    assert text.startswith(f"{override} is not used by objective={cfg.objective}")
    assert text.endswith("remove it") and "\n" not in text
    check_training(cfg, 1, new=False)  # a resume of a run trained with it goes on


def test_keys_the_family_reads_are_not_refused():
    _, cfg = load_config("stylegan2-fashion-mnist", ["model.g_width=8", "model.mbstd_group=2"])
    check_training(cfg, 1, new=True)
    _, cfg = load_config("pix2pix-colorize", ["model.g_width=8", "model.d_spectral_norm=true"])
    check_training(cfg, 1, new=True)


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_passes_as_it_ships(name):
    _, cfg = load_config(name)
    check_training(cfg, 1, new=True)
