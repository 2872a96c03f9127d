"""Fully connected GAN (Goodfellow et al. 2014, "Generative Adversarial Nets").

G: z [N, z_dim] -> Linear -> ReLU -> Linear -> tanh -> [N, C, H, W]   (paper default 100 -> 256 -> 784)
D: x [N, C, H, W] -> flatten -> Linear -> LeakyReLU(0.2) -> Linear -> logit [N]

The paper's generator used rectifiers, as here; its discriminator used maxout units, replaced by
LeakyReLU(0.2) as in most later reimplementations (fewer parameters, same role). The output is tanh
rather than the paper's sigmoid because images inside ganforge live in [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ARCHITECTURES, Architecture, check_positive


class MLPGenerator(nn.Module):
    def __init__(self, *, resolution: int = 28, channels: int = 1, z_dim: int = 100, width: int = 256):
        super().__init__()
        check_positive("mlp", resolution=resolution, channels=channels, z_dim=z_dim, width=width)
        self.resolution, self.channels, self.z_dim = resolution, channels, z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, width),
            nn.ReLU(inplace=True),
            nn.Linear(width, channels * resolution * resolution),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W]
        return self.net(z).reshape(z.shape[0], self.channels, self.resolution, self.resolution)


class MLPDiscriminator(nn.Module):
    def __init__(self, *, resolution: int = 28, channels: int = 1, width: int = 256):
        super().__init__()
        check_positive("mlp", resolution=resolution, channels=channels, width=width)
        self.resolution, self.channels = resolution, channels
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * resolution * resolution, width),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> logits [N]
        return self.net(x).reshape(x.shape[0])


ARCHITECTURES.register("mlp")(Architecture(generator=MLPGenerator, discriminator=MLPDiscriminator))
