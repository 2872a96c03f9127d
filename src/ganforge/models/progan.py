"""Progressively grown generator and discriminator (Karras, Aila, Laine & Lehtinen 2018,
"Progressive Growing of GANs for Improved Quality, Stability, and Variation").

Both networks hold every resolution from 4x4 to ``resolution`` from the start and run the first
``stage + 1`` of them (stage 0 is 4x4, stage s is 4 * 2**s). While stage s fades in, with alpha
in [0, 1]:

    G(z) = lerp(u(toRGB_{s-1}(h_{s-1})), toRGB_s(block_s(h_{s-1})), alpha)
    D(x) = rest_{s-1}(lerp(fromRGB_{s-1}(d(x)), block_s(fromRGB_s(x)), alpha))

with u nearest-neighbour upsampling and d 2x2 average pooling (sec. 2, fig. 2). At alpha = 0 both
are exactly the previous stage's networks (on the downsampled input for D), at alpha = 1 the new
block alone.

The paper's recipe (sec. 4): equalized learning rate (weights drawn N(0, 1) and scaled at run
time by He's constant, so Adam's per-weight steps are scale-free), pixel-wise feature vector
normalization in G after every convolution, a minibatch standard-deviation channel before D's
last block (sec. 3), leaky ReLU 0.2, a linear toRGB (no tanh). Channels: ``width`` at the final
resolution, doubling at each halving up to ``max_width`` (the paper: 512 up to 32x32, then
halving, i.e. width 16 and max_width 512 at 1024x1024).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import MinibatchStd, check_positive

# the config key behind each size the networks check (objective=progressive; width is G's or D's)
CONFIG_KEYS = {"channels": "data.channels", "max_width": "progressive.max_width"}


def stage_resolutions(resolution: int) -> list[int]:
    """[4, 8, ..., resolution]; ConfigError unless resolution is 4 times a power of two >= 8."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 \
            or resolution & (resolution - 1):
        raise ConfigError(f"progressive growing needs data.resolution = 4 times a power of two "
                          f"(8, 16, 32, 64, 128, 256), got {resolution}; set data.resolution")
    return [4 * 2 ** i for i in range(int(math.log2(resolution)) - 1)]


def stage_channels(resolution: int, width: int, max_width: int) -> list[int]:
    """Channels at each stage: ``width`` at the final one, doubling per halving, capped."""
    return [min(max_width, width * resolution // r) for r in stage_resolutions(resolution)]


class EqualizedConv2d(nn.Module):
    """Conv2d with the equalized learning rate: w ~ N(0, 1), used as w * gain / sqrt(fan_in)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.padding = gain / math.sqrt(cin * kernel * kernel), padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, cin: int, cout: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square (sec. 4.2, epsilon 1e-8)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * x.square().mean(1, keepdim=True).add(1e-8).rsqrt()


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


def upsample2(x: Tensor) -> Tensor:
    """Nearest-neighbour 2x upsampling, the paper's (and the real images' blend's) u(.)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class ProGANGenerator(nn.Module):
    def __init__(self, *, resolution: int = 32, channels: int = 1, z_dim: int = 128,
                 width: int = 32, max_width: int = 256, pixelnorm: bool = True):
        super().__init__()
        check_positive("progan", {**CONFIG_KEYS, "width": "model.g_width"}, channels=channels, z_dim=z_dim,
                       width=width, max_width=max_width)
        self.resolution, self.channels, self.z_dim = resolution, channels, z_dim
        ch = stage_channels(resolution, width, max_width)
        self.stages = len(ch)
        norm = PixelNorm if pixelnorm else nn.Identity
        self.input_norm = norm()
        # 4x4: a dense layer to 4x4 feature maps (the paper's 4x4 "conv" on a 1x1 latent), then 3x3.
        self.dense = EqualizedLinear(z_dim, ch[0] * 16, gain=math.sqrt(2) / 4)
        blocks = [nn.Sequential(_act(), norm(), EqualizedConv2d(ch[0], ch[0], 3, 1), _act(), norm())]
        for cin, cout in zip(ch, ch[1:]):
            blocks.append(nn.Sequential(EqualizedConv2d(cin, cout, 3, 1), _act(), norm(),
                                        EqualizedConv2d(cout, cout, 3, 1), _act(), norm()))
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(EqualizedConv2d(c, channels, 1, gain=1.0) for c in ch)

    def features(self, z: Tensor, upto: int) -> Tensor:
        """Feature maps after blocks 0..upto: [N, ch[upto], 4 * 2**upto, same]."""
        h = self.dense(self.input_norm(z)).reshape(z.shape[0], -1, 4, 4)
        h = self.blocks[0](h)
        for i in range(1, upto + 1):
            h = self.blocks[i](upsample2(h))
        return h

    def forward(self, z: Tensor, stage: int | None = None, alpha: float = 1.0) -> Tensor:
        """z [N, z_dim] -> images [N, C, 4 * 2**stage, same] (stage None: the last)."""
        stage = self.stages - 1 if stage is None else stage
        if stage == 0:
            return self.to_rgb[0](self.features(z, 0))
        h = self.features(z, stage - 1)
        new = self.to_rgb[stage](self.blocks[stage](upsample2(h)))
        if alpha >= 1:
            return new
        return torch.lerp(upsample2(self.to_rgb[stage - 1](h)), new, alpha)


class StageSampler(nn.Module):
    """G at the stage and fade-in ``where()`` says, its images nearest-upsampled to G's full
    resolution: what a run samples at any point of the growth, as one module (what ONNX export
    records and the server batches). z [N, z_dim] -> [N, C, resolution, resolution]."""

    def __init__(self, G: ProGANGenerator, where: Callable[[], tuple[int, float]]):
        super().__init__()
        self.G, self.where = G, where

    def forward(self, z: Tensor) -> Tensor:
        stage, alpha = self.where()
        x = self.G(z, stage, alpha)
        factor = 2 ** (self.G.stages - 1 - stage)  # from the stage, not x's shape: a constant in a trace
        return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x


class ProGANDiscriminator(nn.Module):
    def __init__(self, *, resolution: int = 32, channels: int = 1, width: int = 32,
                 max_width: int = 256, mbstd: int = 4):
        super().__init__()
        check_positive("progan", {**CONFIG_KEYS, "width": "model.d_width"}, channels=channels, width=width,
                       max_width=max_width)
        self.resolution, self.channels = resolution, channels
        ch = stage_channels(resolution, width, max_width)
        self.stages = len(ch)
        self.from_rgb = nn.ModuleList(nn.Sequential(EqualizedConv2d(channels, c, 1), _act()) for c in ch)
        # blocks[s] maps stage s's features to stage s-1's (conv, conv, 2x2 average pool).
        blocks: list[nn.Module] = [nn.Identity()]
        for cout, cin in zip(ch, ch[1:]):
            blocks.append(nn.Sequential(EqualizedConv2d(cin, cin, 3, 1), _act(),
                                        EqualizedConv2d(cin, cout, 3, 1), _act(), nn.AvgPool2d(2)))
        self.blocks = nn.ModuleList(blocks)
        c = ch[0]
        self.head = nn.Sequential(*([MinibatchStd(mbstd)] if mbstd else []),
                                  EqualizedConv2d(c + (1 if mbstd else 0), c, 3, 1), _act(),
                                  EqualizedConv2d(c, c, 4), _act(), nn.Flatten(),
                                  EqualizedLinear(c, 1, gain=1.0))

    def forward(self, x: Tensor, alpha: float = 1.0) -> Tensor:
        """images [N, C, r, r] at a stage's resolution r -> scores [N] (stage from r)."""
        stage = int(math.log2(x.shape[-1])) - 2
        if not 0 <= stage < self.stages or x.shape[-1] != 4 * 2 ** stage:
            raise ValueError(f"ProGAN D takes 4 * 2**s pixels up to {self.resolution}, got {x.shape[-1]}")
        h = self.from_rgb[stage](x)
        if stage > 0:
            h = self.blocks[stage](h)
            if alpha < 1:
                h = torch.lerp(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)), h, alpha)
            for i in range(stage - 1, 0, -1):
                h = self.blocks[i](h)
        return self.head(h).reshape(x.shape[0])
