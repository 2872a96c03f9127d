"""Generator and discriminator architectures, looked up by name in ARCHITECTURES.

Generators map z [N, z_dim] to images [N, C, H, W] in [-1, 1] (or points [N, point_dim]) and expose
`z_dim`, `resolution`, `channels`. Discriminators map images [N, C, H, W] (or points) to raw
scores [N], higher meaning "more real". Models are float32 and device-agnostic; the Trainer owns
devices, precision and optimizers.

Architecture-specific options (``depth``, ``point_dim``, ``mbstd``) are passed as keyword
options; an architecture that does not take one raises a ConfigError naming it. Options that
apply to any architecture are wrappers: ``spectral_norm_`` and ``Packed`` (PacGAN).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn

from ..errors import ConfigError
from .layers import ARCHITECTURES, Architecture, MinibatchStd, Packed, dcgan_init_, spectral_norm_
from . import dcgan, mlp  # noqa: F401  (importing registers the architectures)

__all__ = ["ARCHITECTURES", "Architecture", "MinibatchStd", "Packed", "build_generator",
           "build_discriminator", "count_parameters", "dcgan_init_", "spectral_norm_"]

# What a config key means to a user, for the error when an architecture lacks the option.
_OPTION_KEYS = {"depth": "model.g_depth / model.d_depth", "point_dim": "2-D point data (toy:*)",
                "mbstd": "model.mbstd_group", "norm": "model.d_norm", "head": "model.g_head / model.d_head",
                "init": "model.init"}


def _options(name: str, builder, options: dict[str, Any]) -> dict[str, Any]:
    """Drop options that are None; ConfigError for one the architecture does not take."""
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(builder).parameters
    for key in sorted(options, key=lambda k: k != "point_dim"):  # the data mismatch first
        if key not in accepted:
            takers = sorted(n for n, a in ARCHITECTURES.items()
                            if key in inspect.signature(a.discriminator).parameters
                            or key in inspect.signature(a.generator).parameters)
            raise ConfigError(f"architecture '{name}' does not support {_OPTION_KEYS.get(key, key)}; "
                              f"use model.name={' or '.join(takers) or '...'}")
    return options


def build_generator(name: str, *, resolution: int, channels: int, z_dim: int, width: int,
                    **options: Any) -> nn.Module:
    builder = ARCHITECTURES.get(name).generator
    return builder(resolution=resolution, channels=channels, z_dim=z_dim, width=width,
                   **_options(name, builder, options))


def build_discriminator(name: str, *, resolution: int, channels: int, width: int,
                        **options: Any) -> nn.Module:
    builder = ARCHITECTURES.get(name).discriminator
    return builder(resolution=resolution, channels=channels, width=width,
                   **_options(name, builder, options))


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters())
