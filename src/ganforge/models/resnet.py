"""Residual image-to-image generator of CycleGAN (Zhu, Park, Isola & Efros 2017, "Unpaired
Image-to-Image Translation using Cycle-Consistent Adversarial Networks", appendix 7.2), after
Johnson et al. 2016's style-transfer network.

c7s1-w, d2w, d4w, R4w x n_blocks, u2w, uw, c7s1-out: a reflection-padded 7x7 conv, two stride-2
3x3 convs down, ``n_blocks`` residual blocks (two reflection-padded 3x3 convs each, the input
added back), two stride-2 transposed convs up and a 7x7 conv with tanh. Instance norm and ReLU
after every conv but the last (the paper's 6 blocks at 128 px, 9 at 256 px).

[N, in_channels, H, W] -> [N, out_channels, H, W] for H, W divisible by ``stride`` = 4.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import check_positive
from .unet import init_weights_, make_norm


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), make_norm(norm, channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), make_norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    stride = 4

    def __init__(self, *, in_channels: int, out_channels: int, width: int = 64, n_blocks: int = 9,
                 norm: str = "instance"):
        super().__init__()
        check_positive("resnet", in_channels=in_channels, out_channels=out_channels, width=width)
        self.in_channels, self.out_channels = in_channels, out_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7),
                                   make_norm(norm, width), nn.ReLU()]
        c = width
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), make_norm(norm, 2 * c), nn.ReLU()]
            c *= 2
        layers += [ResidualBlock(c, norm) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1),
                       make_norm(norm, c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, Cin, H, W] -> [N, Cout, H, W]
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"the residual generator needs H and W divisible by {self.stride}, "
                             f"got {tuple(x.shape[-2:])}; pad the input")
        return self.net(x)
