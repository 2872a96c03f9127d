"""The real-vs-generated classifier and its training augmentation, after Wang et al. 2020,
"CNN-generated images are surprisingly easy to spot... for now" (CVPR 2020).

The paper fine-tunes an ImageNet ResNet-50 on ProGAN images and shows it generalizes to other
generators when trained with blur and JPEG augmentation ("Blur+JPEG (0.5)": each image is blurred
with probability 0.5, sigma ~ U[0, 3], and JPEG-compressed with probability 0.5, quality ~
U{30..100}), plus random flips. Pretrained weights cannot be fetched offline and our images are
28-64 px, so the network here is a small CNN trained from scratch; the augmentation is the
paper's. It has no batch norm: a detector's eval-mode statistics should not depend on the mix of
real and generated images it was trained on.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class DetectorCNN(nn.Module):
    """uint8-range float images [N, C, H, W] in [-1, 1] -> one logit per image (higher: more
    likely generated). ``width`` doubles at each of ``depth`` stride-2 stages; global average
    pooling makes it work at any resolution."""

    def __init__(self, channels: int = 1, width: int = 16, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(depth):  # full resolution first: generator artifacts are high-frequency
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)

    def forward(self, x: Tensor) -> Tensor:  # [N, C, H, W] -> [N]
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def _blur(image: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of one uint8 [C, H, W] image (torchvision's, kernel 2*ceil(3 sigma)+1 clipped
    to what reflection padding allows at this size)."""
    from torchvision.transforms.functional import gaussian_blur

    h, w = image.shape[1:]
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(h, w) - 1)
    k -= 1 - k % 2
    return gaussian_blur(image, [k, k], [sigma, sigma]) if k >= 3 else image


def _jpeg(image: Tensor, quality: int) -> Tensor:
    """One uint8 [C, H, W] image through JPEG at ``quality`` (torchvision's libjpeg codec)."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    return decode_jpeg(encode_jpeg(image, quality=quality), mode=ImageReadMode.UNCHANGED)


def blur_jpeg(images: Tensor, generator: torch.Generator, *, p_blur: float = 0.5, p_jpeg: float = 0.5,
              max_sigma: float = 3.0, quality: tuple[int, int] = (30, 100), flip: bool = True) -> Tensor:
    """Wang et al.'s "Blur+JPEG" augmentation of uint8 [N, C, H, W] images (a new tensor): per image,
    blur with probability ``p_blur`` (sigma ~ U[0, max_sigma]), then JPEG with probability
    ``p_jpeg`` (quality ~ U{quality}), then a horizontal flip with probability 0.5."""
    out = images.clone()
    n = len(images)
    u = torch.rand(n, 4, generator=generator)
    qualities = torch.randint(quality[0], quality[1] + 1, (n,), generator=generator)
    for i in range(n):
        img = out[i]
        if u[i, 0] < p_blur:
            img = _blur(img, float(u[i, 1]) * max_sigma + 1e-3)
        if u[i, 2] < p_jpeg:
            img = _jpeg(img.contiguous(), int(qualities[i]))
        if flip and u[i, 3] < 0.5:
            img = img.flip(-1)
        out[i] = img
    return out


def to_float(images: Tensor) -> Tensor:
    """uint8 [N, C, H, W] -> float [-1, 1], the library's image convention."""
    return images.float().div(127.5).sub(1)
