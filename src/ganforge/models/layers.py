"""Pieces shared by the architecture files: the architecture registry, argument checks, DCGAN init.

Each architecture file registers one `Architecture` (a generator class and a discriminator
class); `ganforge.models.build_generator` / `build_discriminator` look it up once by name.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple

import torch
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


ARCHITECTURES: Registry[Architecture] = Registry(
    "architecture", loads=True,
    check=lambda obj: callable(getattr(obj, "generator", None)) and callable(getattr(obj, "discriminator", None)),
    expects="a ganforge.models.Architecture(generator=..., discriminator=...) of two builders taking "
            "keyword arguments (CONTRIBUTING.md, 'Other extension points')")


def check_positive(arch: str, keys: Mapping[str, str] | None = None, **dims: int) -> None:
    """Raise ConfigError for a size that is not a positive integer (a config typo, not a bug),
    naming the setting to fix: ``keys`` maps a size to the config key it comes from where that is
    not model.<size> (data.channels, a family's own section)."""
    for key, value in dims.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            setting = (keys or {}).get(key, f"model.{key}")
            raise ConfigError(f"{arch}: {key} must be a positive integer, got {value!r}; fix {setting}")


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


# ----------------------------------------------------------------------------- stability options


class MinibatchStd(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, "Progressive Growing of GANs", sec. 3).

    Splits the batch into groups of ``group`` samples, takes the standard deviation of every
    feature over each group, averages it to one number per group and appends it as an extra
    feature (a channel for images): [N, C, H, W] -> [N, C+1, H, W], [N, F] -> [N, F+1]. D can then
    see how varied a batch is, which penalizes a generator that collapses to few outputs.
    A batch that the group size does not divide uses the largest divisor that fits.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = max(d for d in range(1, min(self.group, n) + 1) if n % d == 0)
        y = x.float().reshape(g, n // g, *x.shape[1:])  # sample i = j * (n/g) + m is in group m
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # [n/g, ...]
        y = y.reshape(n // g, -1).mean(1).to(x.dtype)  # [n/g]
        y = y.repeat(g).reshape(n, 1, *([1] * (x.dim() - 2)))
        y = y.expand(n, 1, *x.shape[2:])
        return torch.cat([x, y], dim=1)


def spectral_norm_(net: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) of every Linear / conv layer of ``net``, in place.

    Uses torch.nn.utils.parametrizations.spectral_norm: one power iteration per forward in
    training mode, the persistent u/v vectors are buffers (saved in checkpoints, copied to EMA).
    """
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            spectral_norm(module)
    return net


class Packed(nn.Module):
    """PacGAN (Lin, Khetan, Fanti & Oh 2018, "PacGAN: The power of two samples in generative
    adversarial networks"): D scores ``pac`` samples at once, stacked along channels.

    [N, C, H, W] -> [N/pac, pac*C, H, W] (points [N, F] -> [N/pac, pac*F]) -> inner D -> [N/pac].
    Consecutive samples form a pack; the inner D is built for pac times the channels.
    """

    def __init__(self, inner: nn.Module, pac: int):
        super().__init__()
        self.inner, self.pac = inner, pac

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n % self.pac:
            raise ValueError(f"PacGAN: batch of {n} is not divisible by pac={self.pac}")
        return self.inner(x.reshape(n // self.pac, self.pac * x.shape[1], *x.shape[2:]))


# ----------------------------------------------------------------------------- standing statistics


def batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``net`` that keep running statistics."""
    return [m for m in net.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextlib.contextmanager
def accumulating_bn_stats(net: nn.Module) -> Iterator[None]:
    """Inside: ``net`` in eval mode except its BatchNorms, whose running statistics restart and
    become the plain average over every forward pass (momentum None), so spectral norm's power
    iteration and every parameter stay as they are. BigGAN's "standing statistics" (Brock et al.
    2019, sec. 3.1)."""
    bns = batch_norms(net)
    was_training, momenta = net.training, [m.momentum for m in bns]
    net.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        yield
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        net.train(was_training)


@torch.no_grad()
def standing_stats_(net: nn.Module, inputs: Iterable[tuple[torch.Tensor, ...]]) -> None:
    """Every BatchNorm's running mean and variance become the averages over ``net(*args)`` for
    the batches of ``inputs`` (see ``accumulating_bn_stats``)."""
    with accumulating_bn_stats(net):
        for args in inputs:
            net(*args)
