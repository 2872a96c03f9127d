"""The WGAN presets' constraints in combinations that train badly are named at the start, and
the papers' names of the losses (wgan, wgan-gp, sngan) suggest the right loss and settings."""
import warnings

import pytest

from ganforge.api import load_config
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES


def _warnings(preset, overrides):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(preset, overrides)
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("overrides, said", [
    (["loss.name=nonsaturating"], "reg.clip=0.01 with loss.name=nonsaturating: weight clipping is the WGAN critic's"),
    (["loss.name=hinge"], "reg.clip=0.01 with loss.name=hinge:"),
    (["reg.gp=10"], "reg.clip with reg.gp: two constraints that work against each other"),
    (["reg.dragan=10"], "reg.clip with reg.dragan:"),
    (["optim.betas=[0.0,0.9]"], "optim.betas=[0.0, 0.9] with optim.name=rmsprop: RMSprop has no betas"),
])
def test_clipping_with_another_loss_or_a_penalty_and_betas_with_rmsprop_are_warned(overrides, said):
    assert any(w.startswith(said) for w in _warnings("wgan-fashion-mnist", overrides)), said


@pytest.mark.parametrize("preset", ["wgan-fashion-mnist", "wgan-gp-fashion-mnist", "sngan-hinge-fashion-mnist"])
def test_the_presets_themselves_are_not_warned(preset):
    assert _warnings(preset, []) == []


def test_an_unknown_loss_gets_no_clipping_warning_before_its_error():
    assert not any("reg.clip" in w for w in _warnings("wgan-fashion-mnist", ["loss.name=wgan"]))


@pytest.mark.parametrize("name, hint", [
    ("wgan", "(did you mean 'wasserstein' with reg.clip=0.01 (WGAN; the wgan-fashion-mnist preset) or reg.gp=10"),
    ("WGAN-GP", "(did you mean 'wasserstein' with reg.gp=10 and model.d_norm=layer (WGAN-GP"),
    ("sngan", "(did you mean 'hinge' with model.d_spectral_norm=true (SNGAN"),
    ("nonsaturatin", "(did you mean 'nonsaturating'?)"),
])
def test_a_papers_name_of_a_loss_suggests_the_loss_and_its_settings(name, hint):
    with pytest.raises(ConfigError) as err:
        LOSSES.get(name)
    assert str(err.value).startswith(f"unknown loss '{name}' {hint}"), str(err.value)
