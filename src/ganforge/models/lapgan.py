"""The networks of a Laplacian pyramid GAN (Denton, Chintala, Szlam & Fergus 2015, "Deep
Generative Image Models using a Laplacian Pyramid of Adversarial Networks").

Level 0 (the coarsest, s x s): fully connected G_0: z -> image and D_0: image -> score, as the
paper's 8x8 base model on CIFAR-10 (sec. 4).
Level k >= 1: convolutional G_k(l, noise) -> band-pass residual h, where l = u(I_{k-1}) is the
upsampled coarser image and the noise a fourth (here: an extra) input plane; D_k(l + h, l) ->
score, judging the fine image conditioned on the coarse one (sec. 3.1, 3.2).

Class conditioning (optional, ``num_classes`` > 0): G_0 and D_0 take a one-hot vector next to
their input; the residual models take a plane computed from the label by a linear layer (the
paper's class-conditional LAPGAN, sec. 3.2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import check_positive

# the config key behind each size the networks check (objective=lapgan; width is level 0's
# lapgan.base_width, model.g_width / d_width above it)
CONFIG_KEYS = {"channels": "data.channels"}


def _one_hot(labels: Tensor | None, k: int, like: Tensor) -> list[Tensor]:
    return [] if not k else [F.one_hot(labels, k).to(like.dtype)]


class BaseGenerator(nn.Module):
    """z [N, z_dim] (+ labels [N]) -> coarse images [N, C, s, s] in [-1, 1]."""

    def __init__(self, *, size: int, channels: int, z_dim: int, width: int, num_classes: int = 0):
        super().__init__()
        check_positive("lapgan", {**CONFIG_KEYS, "width": "lapgan.base_width"}, channels=channels, z_dim=z_dim,
                       width=width)
        self.size, self.channels, self.z_dim, self.num_classes = size, channels, z_dim, num_classes
        self.net = nn.Sequential(nn.Linear(z_dim + num_classes, width), nn.ReLU(),
                                 nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, channels * size * size), nn.Tanh())

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x = torch.cat([z, *_one_hot(labels, self.num_classes, z)], 1)
        return self.net(x).reshape(z.shape[0], self.channels, self.size, self.size)


class BaseDiscriminator(nn.Module):
    """coarse images [N, C, s, s] (+ labels) -> scores [N]."""

    def __init__(self, *, size: int, channels: int, width: int, num_classes: int = 0):
        super().__init__()
        check_positive("lapgan", {**CONFIG_KEYS, "width": "lapgan.base_width"}, channels=channels, width=width)
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Linear(channels * size * size + num_classes, width),
                                 nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, 1))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return self.net(torch.cat([flat, *_one_hot(labels, self.num_classes, flat)], 1)).reshape(-1)


class _ClassPlane(nn.Module):
    """labels [N] -> one [N, 1, r, r] plane per sample (a linear map of the one-hot vector)."""

    def __init__(self, num_classes: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.embed = nn.Embedding(num_classes, resolution * resolution)

    def forward(self, labels: Tensor) -> Tensor:
        return self.embed(labels).reshape(-1, 1, self.resolution, self.resolution)


class ResidualGenerator(nn.Module):
    """(coarse l [N, C, r, r], noise [N, 1, r, r], labels) -> residual h [N, C, r, r] (linear)."""

    def __init__(self, *, resolution: int, channels: int, width: int, num_classes: int = 0):
        super().__init__()
        check_positive("lapgan", {**CONFIG_KEYS, "width": "model.g_width"}, channels=channels, width=width)
        self.resolution, self.channels = resolution, channels
        self.plane = _ClassPlane(num_classes, resolution) if num_classes else None
        cin = channels + 1 + (1 if num_classes else 0)
        self.net = nn.Sequential(nn.Conv2d(cin, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.Conv2d(width, channels, 3, 1, 1))

    def forward(self, coarse: Tensor, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        planes = [coarse, noise] + ([self.plane(labels).to(coarse.dtype)] if self.plane else [])
        return self.net(torch.cat(planes, 1))


class ResidualDiscriminator(nn.Module):
    """(image l + h [N, C, r, r], coarse l, labels) -> scores [N]."""

    def __init__(self, *, resolution: int, channels: int, width: int, num_classes: int = 0):
        super().__init__()
        check_positive("lapgan", {**CONFIG_KEYS, "width": "model.d_width"}, channels=channels, width=width)
        self.plane = _ClassPlane(num_classes, resolution) if num_classes else None
        cin = 2 * channels + (1 if num_classes else 0)
        self.net = nn.Sequential(nn.Conv2d(cin, width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Flatten(), nn.Linear(2 * width * (resolution // 4) ** 2, 1))

    def forward(self, image: Tensor, coarse: Tensor, labels: Tensor | None = None) -> Tensor:
        planes = [image, coarse] + ([self.plane(labels).to(image.dtype)] if self.plane else [])
        return self.net(torch.cat(planes, 1)).reshape(-1)


def upsample_static(x: Tensor, channels: int, size: int) -> Tensor:
    """``models.pyramid.upsample`` (zero insertion, binomial 5x5 blur, times 4) of [N, C, s, s]
    with C and s known in advance, so a traced graph has a constant blur kernel (ONNX export
    refuses a convolution kernel whose shape depends on the input's). The same operations on the
    same values: equal to it bit for bit."""
    up = torch.stack([x, torch.zeros_like(x)], -1).reshape(-1, channels, size, 2 * size)
    up = torch.stack([up, torch.zeros_like(up)], -2).reshape(-1, channels, 2 * size, 2 * size)
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16.0
    kernel = torch.outer(taps, taps).expand(channels, 1, 5, 5)
    return F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), kernel, groups=channels) * 4.0


class PyramidSampler(nn.Module):
    """The coarse-to-fine sampling chain (sec. 3.1) as one tensor function, what ONNX export
    writes and the server batches: z [N, z_dim], labels [N] (class-conditional pyramids, else
    None) and the residual levels' noise packed as [N, sum of r_k * r_k] (each level's plane
    [N, 1, r_k, r_k] flattened, coarse to fine) -> the finest images [N, C, R, R] in [-1, 1].
    I~_0 = G_0(z), I~_k = u(I~_{k-1}) + G_k(u(I~_{k-1}), noise_k); ``levels`` returns every I~_k."""

    input_meaning = {"noise": "float32 [N, sum r_k*r_k], each residual level's noise plane "
                              "[N, 1, r_k, r_k] flattened, coarse to fine"}

    def __init__(self, generators: list[nn.Module], sizes: list[int], channels: int):
        super().__init__()
        self.generators, self.sizes, self.channels = nn.ModuleList(generators), list(sizes), channels

    def pack_noise(self, planes: list[Tensor]) -> Tensor:
        return torch.cat([p.flatten(1) for p in planes], 1)

    def levels(self, z: Tensor, labels: Tensor | None, noise: Tensor) -> list[Tensor]:
        """Every level's images, coarse to fine, each clamped to [-1, 1] (the chain itself
        continues from the unclamped image, as trained)."""
        sides = self.sizes[1:]
        planes = [p.reshape(-1, 1, r, r) for p, r in zip(noise.split([r * r for r in sides], 1), sides)]
        x = self.generators[0](z, labels).float()
        out = [x.clamp(-1, 1)]
        for G, plane, r in zip(self.generators[1:], planes, self.sizes):
            up = upsample_static(x, self.channels, r)
            x = up + G(up, plane, labels).float()
            out.append(x.clamp(-1, 1))
        return out

    def forward(self, z: Tensor, labels: Tensor | None, noise: Tensor) -> Tensor:
        return self.levels(z, labels, noise)[-1]
