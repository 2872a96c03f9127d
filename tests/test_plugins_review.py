"""Plugins that break the contract (an extending review): an architecture whose generator makes
images of another size, or whose builder does not take the contract's keywords, is one line
naming it when the networks are built (the first had trained silently, the second had been a
traceback); a checkpoint that no longer fits the networks (the plugin's code changed) says what
differs; an unknown --ref names the plugin route."""
import pytest
import torch
import torch.nn as nn

from conftest import random_dataset, tiny_config

from ganforge import api
from ganforge.errors import CheckpointError, ConfigError
from ganforge.metrics.evaluation import check_reference
from ganforge.models.layers import ARCHITECTURES, Architecture


class FixedG(nn.Module):
    """A generator that always draws 32x32, whatever the config asks."""

    def __init__(self, *, resolution, channels, z_dim, width, bias=True):
        super().__init__()
        self.z_dim, self.resolution, self.channels = z_dim, 32, channels
        self.fc = nn.Linear(z_dim, channels * 32 * 32, bias=bias)

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(len(z), self.channels, 32, 32)


class AnyD(nn.Module):
    def __init__(self, *, resolution, channels, width):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean((1, 2, 3))


def g_without_width(*, resolution, channels, z_dim):
    return FixedG(resolution=resolution, channels=channels, z_dim=z_dim, width=1)


@pytest.fixture(scope="module")
def archs():
    names = {"rv-fixed32": Architecture(FixedG, AnyD), "rv-nowidth": Architecture(g_without_width, AnyD),
             "rv-changes": Architecture(FixedG, AnyD)}
    for name, arch in names.items():
        ARCHITECTURES.register(name)(arch)
    yield
    for name in names:
        ARCHITECTURES.pop(name)


def train(run, **overrides):
    size = int(overrides.get("data.resolution", 16))
    return api.train(tiny_config(**{"train.steps": 2, **overrides}), run, progress=False,
                     dataset=random_dataset(resolution=size))


def test_a_generator_of_another_size_is_refused_when_built(archs, tmp_path):
    with pytest.raises(ConfigError, match=r"architecture 'rv-fixed32' \(module test_plugins_review\): its generator "
                                          r"gives \[2, 1, 32, 32\] for 2 latents; this config needs \[2, 1, 16, 16\]"):
        train(tmp_path / "run", **{"model.name": "rv-fixed32"})
    assert not (tmp_path / "run").exists()
    train(tmp_path / "ok", **{"model.name": "rv-fixed32", "data.resolution": 32})  # the right size trains


def test_a_builder_without_the_contracts_keywords_is_one_line(archs, tmp_path):
    with pytest.raises(ConfigError, match=r"architecture 'rv-nowidth' .*building its generator failed: TypeError: "
                                          r".*its builder takes resolution, channels, z_dim, width"):
        train(tmp_path / "run", **{"model.name": "rv-nowidth"})


def test_a_checkpoint_the_changed_code_no_longer_fits_says_what_differs(archs, tmp_path):
    run = tmp_path / "run"
    train(run, **{"model.name": "rv-changes", "data.resolution": 32})
    ARCHITECTURES.pop("rv-changes")  # the plugin's code changed: its first layer lost its bias
    ARCHITECTURES.register("rv-changes")(Architecture(lambda **kw: FixedG(bias=False, **kw), AnyD))
    with pytest.raises(CheckpointError, match=r'does not match the networks this config builds \(Unexpected '
                                              r'key\(s\) in state_dict: "fc.bias"'):
        api.train(api.resume_config(run, ["train.steps=4"]), run, progress=False,
                  dataset=random_dataset(resolution=32), resume=True)


def test_an_unknown_reference_names_the_plugin_route():
    with pytest.raises(ConfigError, match="registered outside ganforge needs its module imported first"):
        check_reference("blobz-not-here")
