"""Pieces shared by the architecture files: the architecture registry, argument checks, DCGAN init.

Each architecture file registers one `Architecture` (a generator class and a discriminator
class); `ganforge.models.build_generator` / `build_discriminator` look it up once by name.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch.nn as nn

from ..errors import ConfigError
from ..registry import Registry


class Architecture(NamedTuple):
    """A generator builder and a discriminator builder, both called with keyword arguments only.

    generator(*, resolution, channels, z_dim, width) -> nn.Module  # [N, z_dim] -> [N, C, H, W]
    discriminator(*, resolution, channels, width) -> nn.Module     # [N, C, H, W] -> [N]
    """

    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def check_positive(arch: str, **dims: int) -> None:
    """Raise ConfigError for a size that is not a positive integer (a config typo, not a bug)."""
    for key, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{arch}: {key} must be a positive integer, got {value!r}; fix model.{key}")


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN weight init (Radford et al. 2016, sec. 4): conv weights ~ N(0, 0.02), BN weight ~ N(1, 0.02).

    Use as `net.apply(dcgan_init_)`. Biases start at zero.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
