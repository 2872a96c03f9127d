"""Fully connected GAN (Goodfellow et al. 2014, "Generative Adversarial Nets"), for images and for
2-D points (the toy mixtures of Metz et al. 2017 and Lin et al. 2018, "PacGAN").

G: z [N, z_dim] -> (Linear -> ReLU) x depth -> Linear -> tanh -> [N, C, H, W]
   (paper default 100 -> 256 -> 784); for points (``point_dim``) the output is [N, point_dim]
   with no tanh, since coordinates are not confined to [-1, 1].
D: x -> flatten -> (Linear -> LeakyReLU(0.2)) x depth -> Linear -> logit [N]; with ``mbstd`` a
   minibatch standard-deviation feature is appended before the last layer.

The paper's generator used rectifiers, as here; its discriminator used maxout units, replaced by
LeakyReLU(0.2) as in most later reimplementations (fewer parameters, same role). The image output
is tanh rather than the paper's sigmoid because images inside ganforge live in [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ARCHITECTURES, Architecture, MinibatchStd, check_positive


def _sample_shape(resolution: int, channels: int, point_dim: int | None) -> tuple[int, ...]:
    if point_dim is not None:
        check_positive("mlp", point_dim=point_dim)
        return (point_dim,)
    check_positive("mlp", resolution=resolution, channels=channels)
    return (channels, resolution, resolution)


class MLPGenerator(nn.Module):
    def __init__(self, *, resolution: int = 28, channels: int = 1, z_dim: int = 100, width: int = 256,
                 depth: int = 1, point_dim: int | None = None):
        super().__init__()
        check_positive("mlp", z_dim=z_dim, width=width, depth=depth)
        self.shape = _sample_shape(resolution, channels, point_dim)
        self.resolution, self.channels, self.z_dim = resolution, channels, z_dim
        layers: list[nn.Module] = []
        d_in = z_dim
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.ReLU(inplace=True)]
            d_in = width
        layers.append(nn.Linear(d_in, int(torch.tensor(self.shape).prod())))
        if point_dim is None:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W] or [N, point_dim]
        return self.net(z).reshape(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, *, resolution: int = 28, channels: int = 1, width: int = 256, depth: int = 1,
                 point_dim: int | None = None, mbstd: int = 0):
        super().__init__()
        check_positive("mlp", width=width, depth=depth)
        shape = _sample_shape(resolution, channels, point_dim)
        self.resolution, self.channels = resolution, channels
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = int(torch.tensor(shape).prod())
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.LeakyReLU(0.2, inplace=True)]
            d_in = width
        if mbstd:
            layers.append(MinibatchStd(mbstd))
            d_in += 1
        layers.append(nn.Linear(d_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] or [N, F] -> logits [N]
        return self.net(x).reshape(x.shape[0])


ARCHITECTURES.register("mlp")(Architecture(generator=MLPGenerator, discriminator=MLPDiscriminator))
