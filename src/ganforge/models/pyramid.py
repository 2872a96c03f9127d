"""Gaussian and Laplacian image pyramids (Burt & Adelson 1983, "The Laplacian Pyramid as a Compact
Image Code"), the representation LAPGAN generates in (Denton et al. 2015, sec. 3.1).

- ``blur``: the 5-tap binomial filter [1, 4, 6, 4, 1] / 16 along each axis, reflect padding;
- ``downsample`` d(.): blur, then keep every second pixel: [N, C, H, W] -> [N, C, H/2, W/2];
- ``upsample`` u(.): put the pixels on the even positions of a zero image twice the size, blur,
  and multiply by 4 (each output pixel receives a quarter of the kernel's mass);
- ``gaussian_pyramid``: [I_0, ..., I_K] coarse to fine, I_K the image, I_{k-1} = d(I_k);
- ``laplacian_pyramid``: [I_0, h_1, ..., h_K] with the band-pass residuals h_k = I_k - u(I_{k-1});
- ``reconstruct``: I_k = u(I_{k-1}) + h_k from the coarsest image up, exact up to float rounding
  because the residuals are defined with the same u(.).

Written here rather than taken from kornia (pyrdown / pyrup) to avoid a dependency for three
small depthwise convolutions whose exact definition the LAPGAN chain and its tests rely on.
Images are float NCHW; H and W must be divisible by 2 ** levels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def _kernel(x: Tensor) -> Tensor:
    k = torch.tensor(_TAPS, dtype=x.dtype, device=x.device) / 16.0
    return torch.outer(k, k).expand(x.shape[1], 1, 5, 5)  # one depthwise 5x5 per channel


def blur(x: Tensor) -> Tensor:
    """Binomial 5x5 blur of [N, C, H, W] (H, W >= 3), same size."""
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _kernel(x), groups=x.shape[1])


def downsample(x: Tensor) -> Tensor:
    """d(.): [N, C, H, W] -> [N, C, H/2, W/2]."""
    return blur(x)[..., ::2, ::2]


def upsample(x: Tensor) -> Tensor:
    """u(.): [N, C, H, W] -> [N, C, 2H, 2W]."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return blur(up) * 4.0


def gaussian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """``levels`` images, coarse to fine, the last being ``x``."""
    out = [x]
    for _ in range(levels - 1):
        out.append(downsample(out[-1]))
    return out[::-1]


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """[I_0, h_1, ..., h_{levels-1}]: the coarsest image, then the residuals, coarse to fine."""
    gauss = gaussian_pyramid(x, levels)
    return [gauss[0]] + [fine - upsample(coarse) for coarse, fine in zip(gauss, gauss[1:])]


def reconstruct(pyramid: list[Tensor]) -> Tensor:
    """The image whose ``laplacian_pyramid`` is ``pyramid``."""
    x = pyramid[0]
    for residual in pyramid[1:]:
        x = upsample(x) + residual
    return x
