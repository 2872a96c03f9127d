"""U-Net generator of Pix2Pix (Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with
Conditional Adversarial Networks", sec. 3.2.1 and appendix 6.1.1): an encoder-decoder whose
decoder level i also sees the encoder's level-i features through a skip connection, so the
low-level structure shared by input and output (edges, layout) needs not pass the bottleneck.

Encoder: ``depth`` stride-2 Conv2d(4, 2, 1) layers, channels width, 2 width, 4 width, 8 width,
8 width, ... (capped at 8 width); LeakyReLU(0.2) before every conv but the first, a norm after
every conv but the first and the innermost (a 1x1 bottleneck has no spatial statistics).
Decoder: the mirror image with ReLU and ConvTranspose2d(4, 2, 1), the input of each level
concatenated with the encoder's features of the same size, a norm after every layer but the
last, tanh at the end. Dropout (0.5 in the paper) follows the three decoder layers just above the
innermost one; it is the only noise source of the generator (the paper drops z), and, as is
usual in eval mode, it is off at inference.

[N, in_channels, H, W] -> [N, out_channels, H, W] for any H, W divisible by ``stride`` = 2**depth
(ganforge.objectives.pix2pix pads other sizes). With depth = log2(resolution) the bottleneck is
1x1 (the paper's 8 levels at 256 px).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import check_positive

NORMS = {
    "batch": lambda c: nn.BatchNorm2d(c),
    # Without running statistics instance norm does the same in train and eval mode.
    "instance": lambda c: nn.InstanceNorm2d(c, affine=True),
    "none": lambda c: nn.Identity(),
}


def make_norm(name: str, channels: int) -> nn.Module:
    if name not in NORMS:
        raise ConfigError(f"translate.norm must be one of {', '.join(NORMS)}, got '{name}'")
    return NORMS[name](channels)


def auto_depth(resolution: int, max_depth: int = 8) -> int:
    """Levels down to a 1x1 bottleneck for a power-of-two resolution (at most ``max_depth``)."""
    depth = 0
    while resolution % 2 == 0 and resolution > 1 and depth < max_depth:
        resolution, depth = resolution // 2, depth + 1
    return depth


def init_weights_(module: nn.Module) -> None:
    """N(0, 0.02) conv weights, norm scales N(1, 0.02), zero biases (Pix2Pix / CycleGAN init)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class UNetGenerator(nn.Module):
    def __init__(self, *, in_channels: int, out_channels: int, width: int = 64, depth: int = 8,
                 norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        check_positive("unet", in_channels=in_channels, out_channels=out_channels, width=width,
                       depth=depth)
        if not 0 <= dropout < 1:
            raise ConfigError(f"translate.dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        self.stride = 2 ** depth
        chs = [width * min(2 ** i, 8) for i in range(depth)]  # output channels of encoder level i
        bias = norm != "batch"  # a batch norm's shift makes the conv bias redundant
        self.down = nn.ModuleList()
        for i in range(depth):
            c_in = in_channels if i == 0 else chs[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(c_in, chs[i], 4, 2, 1, bias=bias or i in (0, depth - 1)))
            if 0 < i < depth - 1:
                layers.append(make_norm(norm, chs[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in range(depth):  # up[i] brings level i's features back to level i-1's size
            c_in = chs[i] if i == depth - 1 else 2 * chs[i]
            c_out = out_channels if i == 0 else chs[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias or i == 0)]
            if i == 0:
                layers.append(nn.Tanh())
            else:
                layers.append(make_norm(norm, c_out))
                if dropout > 0 and depth - 4 <= i <= depth - 2:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.apply(init_weights_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, Cin, H, W] -> [N, Cout, H, W]
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(f"U-Net of depth {self.depth} needs H and W divisible by "
                             f"{self.stride}, got {tuple(x.shape[-2:])}; pad the input")
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.up[-1](skips[-1])
        for i in range(self.depth - 2, -1, -1):
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
        return x


def build_unet(*, in_channels: int, out_channels: int, resolution: int, width: int,
               depth: int | None = None, norm: str = "batch", dropout: float = 0.5) -> UNetGenerator:
    """A U-Net for ``resolution`` px training crops; depth None: down to a 1x1 bottleneck."""
    if depth is None:
        depth = auto_depth(resolution)
        if depth < 2:
            raise ConfigError(f"data.resolution={resolution} is too small or odd for a U-Net; "
                              f"use a multiple of 4 (e.g. 32 or 64) or set translate.depth")
    if resolution % (2 ** depth):
        raise ConfigError(f"a U-Net of depth {depth} needs data.resolution divisible by "
                          f"{2 ** depth}, got {resolution}; lower translate.depth to at most "
                          f"{auto_depth(resolution)} or change data.resolution")
    return UNetGenerator(in_channels=in_channels, out_channels=out_channels, width=width,
                         depth=depth, norm=norm, dropout=dropout)
