"""CycleGAN-VC2 networks (Kaneko, Kameoka, Tanaka & Hojo 2019, "CycleGAN-VC2: Improved
CycleGAN-based Non-parallel Voice Conversion"), on log-mel spectrograms [B, 1, n_mels, T].

Generator, "2-1-2D" (sec. 3.2): 2-D convolutions downsample frequency and time by 4, the
features are reshaped to 1-D (channels x frequency) and a 1x1 convolution maps them to the
residual width, residual blocks run in 1-D over time, a 1x1 convolution and a reshape return to
2-D, and two pixel-shuffle upsampling blocks restore the size. Gated linear units (GLU) follow
each convolution, instance normalization each inner one. The paper's widths are 128 (2-D in),
256 (2-D down, 1-D residual) - ``width`` 128 here.

Discriminator, 2-D PatchGAN (sec. 3.3): a GLU convolution, three strided GLU blocks doubling the
channels, a (1, 5) block and a (1, 3) output convolution: one real/fake score per patch.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


class GLUConv2d(nn.Module):
    """conv (2 x out channels) -> optional instance norm -> GLU over channels."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, *, norm: bool = True,
                 shuffle: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout * shuffle ** 2, kernel, stride, padding)
        self.shuffle = nn.PixelShuffle(shuffle) if shuffle > 1 else nn.Identity()
        self.norm = nn.InstanceNorm2d(2 * cout, affine=True) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(self.norm(self.shuffle(self.conv(x))), dim=1)


class ResBlock1d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, 2 * channels, 3, padding=1)
        self.norm1 = nn.InstanceNorm1d(2 * channels, affine=True)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = nn.InstanceNorm1d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(F.glu(self.norm1(self.conv1(x)), dim=1)))


class Generator212(nn.Module):
    """log-mel [B, n_mels, T] (T a multiple of 4, n_mels of 4) -> [B, n_mels, T]."""

    stride = 4

    def __init__(self, *, n_mels: int = 80, width: int = 128, res_width: int = 256, blocks: int = 6):
        super().__init__()
        if n_mels % 4:
            raise ConfigError(f"the 2-1-2D generator halves audio.n_mels={n_mels} twice; use a "
                              f"multiple of 4 (80)")
        self.inp = GLUConv2d(1, width, (5, 15), padding=(2, 7), norm=False)
        self.down = nn.Sequential(GLUConv2d(width, 2 * width, 5, 2, 2), GLUConv2d(2 * width, 2 * width, 5, 2, 2))
        self.flat = 2 * width * (n_mels // 4)
        self.to1d = nn.Sequential(nn.Conv1d(self.flat, res_width, 1), nn.InstanceNorm1d(res_width, affine=True))
        self.res = nn.Sequential(*(ResBlock1d(res_width) for _ in range(blocks)))
        self.to2d = nn.Sequential(nn.Conv1d(res_width, self.flat, 1), nn.InstanceNorm1d(self.flat, affine=True))
        self.up = nn.Sequential(GLUConv2d(2 * width, 2 * width, 5, padding=2, shuffle=2),
                                GLUConv2d(2 * width, width, 5, padding=2, shuffle=2))
        self.out = nn.Conv2d(width, 1, (5, 15), padding=(2, 7))

    def forward(self, mel: Tensor) -> Tensor:
        x = self.down(self.inp(mel[:, None]))  # [B, 2w, F/4, T/4]
        b, c, f, t = x.shape
        x = self.to2d(self.res(self.to1d(x.reshape(b, c * f, t))))
        return self.out(self.up(x.view(b, c, f, t)))[:, 0]


class PatchDiscriminator2d(nn.Module):
    """log-mel [B, n_mels, T] -> patch scores [B, P] (raw logits, higher = more real)."""

    def __init__(self, *, width: int = 128):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            GLUConv2d(1, w, 3, padding=1, norm=False),
            GLUConv2d(w, 2 * w, 3, 2, 1), GLUConv2d(2 * w, 4 * w, 3, 2, 1), GLUConv2d(4 * w, 8 * w, 3, 2, 1),
            GLUConv2d(8 * w, 8 * w, (1, 5), padding=(0, 2)),
            nn.Conv2d(8 * w, 1, (1, 3), padding=(0, 1)))

    def forward(self, mel: Tensor) -> Tensor:
        return self.net(mel[:, None]).flatten(1)
