"""Discriminators for super-resolution GANs: HR image [N, C, H, W] -> raw scores (higher = more
real), any H, W that are multiples of 16 (VGG) or 8 (U-Net).

vgg: the SRGAN discriminator (Ledig et al. 2017, fig. 4; also ESRGAN's): eight 3x3 convs with
LeakyReLU(0.2), channels doubling every other conv (width .. 8 x width), stride 2 on every second
conv, then a 1024-unit dense layer and one score. Batch normalization as in the paper, or
spectral normalization instead (``spectral_norm=True``). An adaptive 4x4 average pool before the
dense layer lets one D score any crop size (the paper fixes 96x96). Scores: [N].

unet: the U-Net discriminator with spectral normalization of Real-ESRGAN (Wang et al. 2021,
sec. 3.3, fig. 6): an encoder of three stride-2 convs, a decoder with bilinear upsampling and
skip connections, and a per-pixel score. Scores: [N, H * W], one per pixel; the adversarial
losses average over every element, so a per-pixel D plugs into the same loss functions.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from ..registry import Registry

SR_DISCRIMINATORS: Registry = Registry(
    "super-resolution discriminator", loads=True,
    check=lambda obj: callable(obj) and not isinstance(obj, nn.Module),  # a network is built, not given
    expects="a class (or function) building an nn.Module from the keyword arguments channels and width "
            "(and spectral_norm), as VGGDiscriminator")


@SR_DISCRIMINATORS.register("vgg")
class VGGDiscriminator(nn.Module):
    def __init__(self, *, channels: int = 3, width: int = 64, spectral_norm: bool = False):
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(8):
            c_out = width * 2 ** (i // 2)
            layers.append(sn(nn.Conv2d(c_in, c_out, 3, stride=1 + i % 2, padding=1)))
            if i > 0 and not spectral_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(sn(nn.Linear(c_in * 16, 1024)), nn.LeakyReLU(0.2, inplace=True),
                                  sn(nn.Linear(1024, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N]
        return self.head(self.features(x).flatten(1)).squeeze(1)


@SR_DISCRIMINATORS.register("unet")
class UNetDiscriminator(nn.Module):
    def __init__(self, *, channels: int = 3, width: int = 64, spectral_norm: bool = True):
        super().__init__()
        # Real-ESRGAN keeps spectral norm on every conv but the first and the last.
        sn = _sn if spectral_norm else (lambda m: m)
        w = width
        self.conv0 = nn.Conv2d(channels, w, 3, padding=1)
        self.down = nn.ModuleList([sn(nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False)),
                                   sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False)),
                                   sn(nn.Conv2d(4 * w, 8 * w, 4, 2, 1, bias=False))])
        self.up = nn.ModuleList([sn(nn.Conv2d(8 * w, 4 * w, 3, 1, 1, bias=False)),
                                 sn(nn.Conv2d(4 * w, 2 * w, 3, 1, 1, bias=False)),
                                 sn(nn.Conv2d(2 * w, w, 3, 1, 1, bias=False))])
        self.extra = nn.Sequential(sn(nn.Conv2d(w, w, 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, True),
                                   sn(nn.Conv2d(w, w, 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, True))
        self.out = nn.Conv2d(w, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, H * W]
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        skips = [act(self.conv0(x))]
        for conv in self.down:
            skips.append(act(conv(skips[-1])))
        y = skips.pop()
        for conv in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = act(conv(y)) + skips.pop()
        return self.out(self.extra(y)).flatten(1)


def _sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module)


def build_sr_discriminator(name: str, *, channels: int = 3, width: int,
                           spectral_norm: bool | None = None) -> nn.Module:
    if width < 1:
        raise ConfigError(f"model.d_width must be a positive integer, got {width}")
    cls = SR_DISCRIMINATORS.get(name)
    kwargs = {"channels": channels, "width": width}
    if spectral_norm is not None:
        kwargs["spectral_norm"] = spectral_norm
    return cls(**kwargs)
