"""Super-resolution generators: LR image [N, C, h, w] -> SR image [N, C, scale*h, scale*w].

SRResNet (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", fig. 4): a 9x9 head, B residual blocks (conv3x3-PReLU-conv3x3 plus the
identity), a conv with a long skip over the body, log2(scale) upsampling blocks (conv to 4x the
channels, pixel shuffle by 2 (Shi et al. 2016), PReLU) and a 9x9 tail. Batch normalization is
left out: Wang et al. 2018 (ESRGAN, sec. 3.1) show it causes artifacts in SR and removing it
helps PSNR; without it a network's output on a tile does not depend on the other tiles, so tiled
inference equals whole-image inference.

RRDB (Wang et al. 2018, "ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks",
fig. 4): residual-in-residual dense blocks (three 5-conv dense blocks, each residual scaled by
beta = 0.2), LeakyReLU(0.2), nearest-neighbour upsampling by 2 followed by a conv.

Both take ``bicubic_skip``: the network then predicts the residual over the bicubic upsampled
input (the global skip of VDSR, Kim et al. 2016), which starts training at bicubic quality and
converges faster on small CPU budgets. Images are in [-1, 1]; outputs are not clamped.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry

SR_GENERATORS: Registry = Registry(
    "super-resolution generator", loads=True,
    check=lambda obj: callable(obj) and not isinstance(obj, nn.Module),  # a network is built, not given
    expects="a class (or function) building an nn.Module from the keyword arguments scale, channels, "
            "width, blocks and bicubic_skip, as SRResNet")
SCALES = (2, 4)


def check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise ConfigError(f"sr.scale must be 2 or 4, got {scale}; set sr.scale=2 or sr.scale=4")
    return scale


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling with PIL's kernel (a = -0.5, also MATLAB's imresize): torch's plain
    bicubic uses a = -0.75, its antialias path PIL's. [N, C, h, w] -> [N, C, scale*h, scale*w]."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False,
                         antialias=True)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class SRResNet(nn.Module):
    def __init__(self, *, scale: int = 4, channels: int = 3, width: int = 64, blocks: int = 16,
                 bicubic_skip: bool = False):
        super().__init__()
        self.scale, self.bicubic_skip = check_scale(scale), bicubic_skip
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1))
        up = []
        for _ in range(int(math.log2(scale))):
            up += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.up = nn.Sequential(*up)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if bicubic_skip:  # start from the bicubic image: the residual branch begins near 0
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def receptive_radius(self) -> int:
        """LR pixels on each side that can change an output pixel: an upper bound from the
        kernels (the upsampling convs run at 2x, 4x; +1 for the sub-pixel position)."""
        n_up = int(math.log2(self.scale))
        r = 4 + 2 * len(self.body[:-1]) + 1 + sum(1 / 2 ** i for i in range(n_up)) + 4 / self.scale
        return math.ceil(r) + 1 + (2 if self.bicubic_skip else 0)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:  # [N, C, h, w] -> [N, C, s*h, s*w]
        feat = self.head(lr)
        out = self.tail(self.up(feat + self.body(feat)))
        return out + bicubic_up(lr, self.scale) if self.bicubic_skip else out


class _DenseBlock(nn.Module):
    """Five convs, each seeing the block input and every earlier output (ESRGAN fig. 4)."""

    def __init__(self, width: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(width + i * growth, growth if i < 4 else width, 3, padding=1) for i in range(5))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(self.act(y))
        return x + 0.2 * y  # residual scaling beta = 0.2 (ESRGAN sec. 3.1)


class _RRDB(nn.Module):
    def __init__(self, width: int, growth: int):
        super().__init__()
        self.blocks = nn.Sequential(*[_DenseBlock(width, growth) for _ in range(3)])

    def forward(self, x):
        return x + 0.2 * self.blocks(x)


class RRDBNet(nn.Module):
    def __init__(self, *, scale: int = 4, channels: int = 3, width: int = 64, blocks: int = 23,
                 growth: int = 32, bicubic_skip: bool = False):
        super().__init__()
        self.scale, self.bicubic_skip = check_scale(scale), bicubic_skip
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[_RRDB(width, growth) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1))
        self.ups = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1)
                                 for _ in range(int(math.log2(scale))))
        self.hr = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        if bicubic_skip:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def receptive_radius(self) -> int:
        """As SRResNet.receptive_radius: 15 convs per RRDB."""
        n_up = len(self.ups)
        r = 1 + 15 * len(self.body[:-1]) + 1 + sum(1 / 2 ** (i + 1) for i in range(n_up)) + 2 / self.scale
        return math.ceil(r) + 1 + (2 if self.bicubic_skip else 0)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:  # [N, C, h, w] -> [N, C, s*h, s*w]
        feat = self.head(lr)
        feat = feat + self.body(feat)
        for conv in self.ups:
            feat = self.act(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.tail(self.act(self.hr(feat)))
        return out + bicubic_up(lr, self.scale) if self.bicubic_skip else out


SR_GENERATORS.register("srresnet")(SRResNet)
SR_GENERATORS.register("rrdb")(RRDBNet)


def build_sr_generator(arch: str, *, scale: int, channels: int = 3, width: int, blocks: int,
                       growth: int = 32, bicubic_skip: bool = False) -> nn.Module:
    for key, value in {"sr.width": width, "sr.blocks": blocks, "sr.growth": growth}.items():
        if value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    cls = SR_GENERATORS.get(arch)
    kwargs = dict(scale=scale, channels=channels, width=width, blocks=blocks,
                  bicubic_skip=bicubic_skip)
    if cls is RRDBNet:
        kwargs["growth"] = growth
    return cls(**kwargs)
