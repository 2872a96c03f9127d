"""Deep convolutional GAN (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning
with Deep Convolutional Generative Adversarial Networks").

G: z [N, z_dim] -> ConvTranspose(s x s) from 1x1 to `width * 2**(n_up-1)` channels, then n_up
   stride-2 ConvTranspose2d(4, 2, 1) upsamplings halving the channels, BatchNorm + ReLU after each
   but the last, which maps to `channels` with tanh -> [N, C, H, W]. With ``head="conv"`` every
   stage has twice the channels and the last upsampling keeps `width` channels (BatchNorm + ReLU)
   at the full resolution, where a 3x3 convolution maps them to `channels`: the generator of the
   PyTorch DCGAN-style loops users write for 28x28 data, which learns much more per step than the
   paper's 4x4 transposed convolution straight to the image (BENCHMARKS.md, issue 20).
D: the mirror image: n_up stride-2 Conv2d(4, 2, 1) doubling the channels from `width`, LeakyReLU(0.2),
   BatchNorm on all but the first, then an s x s conv to one logit -> [N]. With ``mbstd`` a
   minibatch standard-deviation channel is appended before that last conv. ``norm`` replaces
   D's BatchNorm: "layer" (GroupNorm with one group: layer norm over C, H, W, the critic norm of
   WGAN-GP, Gulrajani et al. 2017, sec. 4, since a gradient penalty on a batch-normalized critic
   mixes samples) or "none" (SNGAN's D, Miyato et al. 2018).

The start size s comes from halving the resolution while it is even and above 7, so 28 -> 7
(2 upsamplings), 32 -> 4 (3), 48 -> 6 (3), 64 -> 4 (4). Weights follow the paper's init.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import ARCHITECTURES, Architecture, MinibatchStd, check_positive, dcgan_init_

MIN_START, MAX_START = 3, 8


def start_size(resolution: int) -> tuple[int, int]:
    """(s, n_up): the spatial size the generator starts from and how many 2x upsamplings follow."""
    s, n_up = resolution, 0
    while s % 2 == 0 and s > 7:
        s, n_up = s // 2, n_up + 1
    return s, n_up


def supported_resolutions(limit: int = 256) -> list[int]:
    return [r for r in range(1, limit + 1) if _is_supported(*start_size(r))]


def _is_supported(s: int, n_up: int) -> bool:
    return MIN_START <= s <= MAX_START and n_up >= 1


def plan(resolution: int) -> tuple[int, int]:
    """start_size(), or a ConfigError naming the resolutions DCGAN can build."""
    s, n_up = start_size(resolution) if isinstance(resolution, int) else (resolution, 0)
    if isinstance(resolution, bool) or not _is_supported(s, n_up):
        valid = ", ".join(map(str, supported_resolutions()))
        raise ConfigError(
            f"dcgan cannot build resolution {resolution} (start size {s} after {n_up} halvings); "
            f"use one of {valid}, ... (4 to 7 times a power of two, at least 8)"
        )
    return s, n_up


G_HEADS = ("convt", "conv")


class DCGANGenerator(nn.Module):
    def __init__(self, *, resolution: int = 64, channels: int = 3, z_dim: int = 100, width: int = 64,
                 head: str = "convt", init: str = "dcgan"):
        super().__init__()
        check_positive("dcgan", channels=channels, z_dim=z_dim, width=width)
        if head not in G_HEADS:
            raise ConfigError(f"dcgan: model.g_head must be one of {', '.join(G_HEADS)}, got '{head}'")
        s, n_up = plan(resolution)
        self.resolution, self.channels, self.z_dim = resolution, channels, z_dim
        full = head == "conv"
        c = width * 2 ** (n_up - 1 + full)
        # Bias is dropped before BatchNorm: BN's shift makes it redundant.
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, c, s, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(n_up - 1 + full):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        if full:
            layers += [nn.Conv2d(c, channels, 3, 1, 1), nn.Tanh()]
        else:
            layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_(self, init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W]
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


D_NORMS = {"batch": lambda c: [nn.BatchNorm2d(c)], "layer": lambda c: [nn.GroupNorm(1, c)],
           "none": lambda c: []}


D_HEADS = ("conv", "deep")
INITS = ("dcgan", "torch")


def init_(net: nn.Module, init: str) -> None:
    """``dcgan``: the paper's N(0, 0.02) weights; ``torch``: PyTorch's default initialization (what a
    hand-written loop gets, and what it trains with)."""
    if init not in INITS:
        raise ConfigError(f"dcgan: model.init must be one of {', '.join(INITS)}, got '{init}'")
    if init == "dcgan":
        net.apply(dcgan_init_)


def d_body(in_channels: int, width: int, n_down: int, s: int, *, norm: str, head: str | None,
           mbstd: int) -> tuple[list[nn.Module], int, int]:
    """D's layers before its logit: strided 4x4 convolutions (each halving the size from
    ``s * 2**n_down``, doubling the channels); for ``head="deep"`` one more 3x3 stride-2
    convolution doubling the channels (7x7 -> 4x4 at 28x28); then the optional minibatch-stddev
    layer. Returns (layers, channels, size) of the last feature map. Shared by the conditional D."""
    if norm not in D_NORMS:
        raise ConfigError(f"dcgan: model.d_norm must be one of {', '.join(D_NORMS)}, got '{norm}'")
    head = head or "conv"
    if head not in D_HEADS:
        raise ConfigError(f"dcgan: model.d_head must be one of {', '.join(D_HEADS)}, got '{head}'")
    # No BatchNorm on the first layer (paper, sec. 3): it sees the raw images.
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    c = width
    for _ in range(n_down - 1):
        layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm == "none"), *D_NORMS[norm](c * 2),
                   nn.LeakyReLU(0.2, True)]
        c *= 2
    if head == "deep":
        layers += [nn.Conv2d(c, c * 2, 3, 2, 1, bias=norm == "none"), *D_NORMS[norm](c * 2),
                   nn.LeakyReLU(0.2, True)]
        c, s = c * 2, (s + 1) // 2
    if mbstd:
        layers.append(MinibatchStd(mbstd))
        c += 1
    return layers, c, s


class DCGANDiscriminator(nn.Module):
    """``head="deep"`` adds a 3x3 stride-2 convolution doubling the channels (7x7 -> 4x4 at 28x28)
    before the final convolution over what is left, a linear map of the flattened features: the
    discriminator of the DCGAN loops users write for 28x28 data."""

    def __init__(self, *, resolution: int = 64, channels: int = 3, width: int = 64, mbstd: int = 0,
                 norm: str = "batch", head: str = "conv", init: str = "dcgan"):
        super().__init__()
        check_positive("dcgan", channels=channels, width=width)
        s, n_up = plan(resolution)
        self.resolution, self.channels = resolution, channels
        layers, c, s = d_body(channels, width, n_up, s, norm=norm, head=head, mbstd=mbstd)
        layers.append(nn.Conv2d(c, 1, s, 1, 0))
        self.net = nn.Sequential(*layers)
        init_(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> logits [N]
        return self.net(x).reshape(x.shape[0])


ARCHITECTURES.register("dcgan")(Architecture(generator=DCGANGenerator, discriminator=DCGANDiscriminator))
