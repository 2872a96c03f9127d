"""HiFi-GAN (Kong, Kim & Bae 2020, "HiFi-GAN: Generative Adversarial Networks for Efficient and
High Fidelity Speech Synthesis"): a mel -> waveform generator and its two discriminators.

Generator (sec. 2.1): a 7-wide input convolution to ``width`` channels, then per upsampling rate
u a transposed convolution (kernel k_u, stride u, channels halved) followed by the
multi-receptive-field fusion (MRF) module: the mean of residual blocks with kernels k_r and
dilations D_r; a 7-wide output convolution and tanh. Leaky ReLU slope 0.1, weight normalization.
Residual block "1" (V1, V2): per dilation d, lrelu-conv(d)-lrelu-conv(1) with a skip; "2" (V3):
per dilation, lrelu-conv(d) with a skip. Sizes (the paper's table 5/appendix A):

    v1: width 512, rates 8,8,2,2, kernels 16,16,4,4, block 1, k_r 3,7,11, D_r (1,3,5) x 3
    v2: width 128, otherwise as v1
    v3: width 256, rates 8,8,4, kernels 16,16,8, block 2, k_r 3,5,7, D_r (1,2),(2,6),(3,12)
    small (ours, CPU-sized): the v3 layout at width 64

Multi-period discriminator (sec. 2.2): for each period p (2, 3, 5, 7, 11) the waveform is
reflect-padded to a multiple of p and reshaped to [T / p, p], then 2-D convolutions with (5, 1)
kernels and stride (3, 1) see each phase of the period separately. Channels 32, 128, 512, 1024,
1024 (``d_width`` 32 scales them), a (5, 1) convolution and a (3, 1) output.
Multi-scale discriminator (sec. 2.3, from MelGAN): three identical 1-D networks on the raw, 2x
and 4x average-pooled waveform, grouped strided convolutions; spectral norm on the first (raw)
scale, weight norm on the others. Every discriminator returns (scores, feature maps) for the
feature-matching loss.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ..errors import ConfigError

SLOPE = 0.1
SIZES = {
    "v1": dict(width=512, rates=(8, 8, 2, 2), kernels=(16, 16, 4, 4), block="1",
               block_kernels=(3, 7, 11), dilations=((1, 3, 5), (1, 3, 5), (1, 3, 5))),
    "v2": dict(width=128, rates=(8, 8, 2, 2), kernels=(16, 16, 4, 4), block="1",
               block_kernels=(3, 7, 11), dilations=((1, 3, 5), (1, 3, 5), (1, 3, 5))),
    "v3": dict(width=256, rates=(8, 8, 4), kernels=(16, 16, 8), block="2",
               block_kernels=(3, 5, 7), dilations=((1, 2), (2, 6), (3, 12))),
    "small": dict(width=64, rates=(8, 8, 4), kernels=(16, 16, 8), block="2",
                  block_kernels=(3, 5, 7), dilations=((1, 2), (2, 6), (3, 12))),
}


def generator_layout(size: str, *, width: int = 0, rates: Sequence[int] = ()) -> dict:
    """The constructor arguments of ``size``, with ``width`` / ``rates`` (kernels 2 x rate)
    replacing the size's when given."""
    if size not in SIZES:
        raise ConfigError(f"vocoder.size '{size}' is not one of {', '.join(SIZES)}")
    layout = dict(SIZES[size])
    if width:
        layout["width"] = width
    if rates:
        if any(r < 2 or r % 2 for r in rates):
            raise ConfigError(f"vocoder.upsample_rates {list(rates)} must be even numbers >= 2 "
                              f"(kernels are twice the rate, so each stage maps T to rate x T)")
        layout["rates"], layout["kernels"] = tuple(rates), tuple(2 * r for r in rates)
    if layout["width"] < 2 ** len(layout["rates"]):
        raise ConfigError(f"vocoder.g_width={layout['width']} is halved {len(layout['rates'])} times; "
                          f"use at least {2 ** len(layout['rates'])}")
    return layout


def _pad(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """An MRF branch: kernel ``k``, one residual unit per dilation (type "1": two convolutions,
    the second undilated; type "2": one)."""

    def __init__(self, channels: int, k: int, dilations: Sequence[int], kind: str):
        super().__init__()
        conv = lambda d: weight_norm(nn.Conv1d(channels, channels, k, dilation=d,  # noqa: E731
                                               padding=_pad(k, d)))
        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations) if kind == "1" else None

    def forward(self, x: Tensor) -> Tensor:
        for i, c1 in enumerate(self.convs1):
            y = c1(F.leaky_relu(x, SLOPE))
            if self.convs2 is not None:
                y = self.convs2[i](F.leaky_relu(y, SLOPE))
            x = x + y
        return x


class HiFiGANGenerator(nn.Module):
    """log-mel [B, n_mels, T] -> waveform [B, 1, T * prod(rates)] in [-1, 1]."""

    def __init__(self, *, n_mels: int = 80, width: int = 512, rates: Sequence[int] = (8, 8, 2, 2),
                 kernels: Sequence[int] = (16, 16, 4, 4), block: str = "1",
                 block_kernels: Sequence[int] = (3, 7, 11),
                 dilations: Sequence[Sequence[int]] = ((1, 3, 5),) * 3):
        super().__init__()
        self.hop = math.prod(rates)
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, width, 7, padding=3))
        self.ups, self.mrfs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for u, k in zip(rates, kernels):
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2)))
            ch //= 2
            self.mrfs.append(nn.ModuleList(ResBlock(ch, kr, d, block)
                                           for kr, d in zip(block_kernels, dilations)))
        self.conv_post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)
        for up, mrf in zip(self.ups, self.mrfs):
            x = up(F.leaky_relu(x, SLOPE))
            x = sum(block(x) for block in mrf) / len(mrf)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # the authors' final slope 0.01


# ----------------------------------------------------------------------------- discriminators


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, width: int = 32):
        super().__init__()
        self.period = period
        chans = [1] + [width * m for m in (1, 4, 16, 32)]
        self.convs = nn.ModuleList(weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
                                   for a, b in zip(chans, chans[1:]))
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], width * 32, (5, 1), padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(width * 32, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return _scores_and_features(self.convs, self.post, to_periods(x, self.period))


def _scores_and_features(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """A sub-discriminator's pass: (scores [B, -1], every layer's activations for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


def to_periods(x: Tensor, period: int) -> Tensor:
    """[B, 1, T] -> [B, 1, ceil(T / p), p]: the reflect-padded signal with row r holding
    samples r p .. r p + p - 1, so column j holds every sample of phase j."""
    b, c, t = x.shape
    if t % period:
        x = F.pad(x, (0, period - t % period), mode="reflect")
    return x.view(b, c, -1, period)


class ScaleDiscriminator(nn.Module):
    # (out channels / 32 * width, kernel, stride, groups) of MelGAN's discriminator, as HiFi-GAN
    LAYERS = ((4, 15, 1, 1), (4, 41, 2, 4), (8, 41, 2, 16), (16, 41, 4, 16), (32, 41, 4, 16),
              (32, 41, 1, 16), (32, 5, 1, 1))

    def __init__(self, width: int = 32, *, spectral: bool = False):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        self.convs = nn.ModuleList()
        ch = 1
        for mult, k, s, g in self.LAYERS:
            out = width * mult
            groups = math.gcd(g, math.gcd(ch, out))
            self.convs.append(norm(nn.Conv1d(ch, out, k, s, padding=(k - 1) // 2, groups=groups)))
            ch = out
        self.post = norm(nn.Conv1d(ch, 1, 3, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return _scores_and_features(self.convs, self.post, x)


class MultiDiscriminator(nn.Module):
    """The MPD (periods) and the MSD (``scales`` scales) as one module: a waveform [B, 1, T] ->
    (list of scores [B, *], list of feature-map lists), one entry per sub-discriminator."""

    def __init__(self, *, width: int = 32, periods: Sequence[int] = (2, 3, 5, 7, 11), scales: int = 3):
        super().__init__()
        self.periods = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)
        self.scales = nn.ModuleList(ScaleDiscriminator(width, spectral=i == 0) for i in range(scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        scores, feats = [], []
        for d in self.periods:
            s, f = d(x)
            scores.append(s)
            feats.append(f)
        for i, d in enumerate(self.scales):
            if i:
                x = self.pool(x)
            s, f = d(x)
            scores.append(s)
            feats.append(f)
        return scores, feats
