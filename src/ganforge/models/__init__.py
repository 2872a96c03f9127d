"""Generator and discriminator architectures, looked up by name in ARCHITECTURES.

Generators map z [N, z_dim] to images [N, C, H, W] in [-1, 1] and expose `z_dim`, `resolution`,
`channels`. Discriminators map images [N, C, H, W] to raw logits [N], higher meaning "more real".
Models are float32 and device-agnostic; the Trainer owns devices, precision and optimizers.
"""
from __future__ import annotations

import torch.nn as nn

from .layers import ARCHITECTURES, Architecture, dcgan_init_
from . import dcgan, mlp  # noqa: F401  (importing registers the architectures)

__all__ = ["ARCHITECTURES", "Architecture", "build_generator", "build_discriminator", "count_parameters",
           "dcgan_init_"]


def build_generator(name: str, *, resolution: int, channels: int, z_dim: int, width: int) -> nn.Module:
    return ARCHITECTURES.get(name).generator(resolution=resolution, channels=channels, z_dim=z_dim, width=width)


def build_discriminator(name: str, *, resolution: int, channels: int, width: int) -> nn.Module:
    return ARCHITECTURES.get(name).discriminator(resolution=resolution, channels=channels, width=width)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters())
