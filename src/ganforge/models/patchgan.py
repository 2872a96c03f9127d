"""PatchGAN discriminator of Pix2Pix (Isola et al. 2017, sec. 3.2.2 and appendix 6.1.2), also
used by CycleGAN (Zhu et al. 2017): a fully convolutional net that scores every overlapping
patch of its input as real or fake, so it models high-frequency structure while the L1 (or
cycle) term takes care of low frequencies.

``n_layers`` stride-2 Conv2d(4, 2, 1) layers with width, 2 width, 4 width, 8 width, ... (capped
at 8 width) channels, then one stride-1 Conv2d(4, 1, 1) and a final stride-1 Conv2d(4, 1, 1) to
one logit per patch; LeakyReLU(0.2) after every conv but the last and a norm after every conv but
the first and the last. The receptive field of one output is
``receptive_field(n_layers)``: 70 px for n_layers=3 (the paper's 70x70 default), 34 for 2,
16 for 1, 142 for 4.

[N, channels, H, W] -> raw scores [N, 1, H', W'] (H' = H / 2**n_layers - 2), higher = more real;
the losses of ganforge.losses average them over patches and samples alike.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import check_positive
from .unet import init_weights_, make_norm


def receptive_field(n_layers: int) -> int:
    """Side of the input window one output score sees: back-propagate r <- (r - 1) * s + k."""
    r = 1
    for stride in [1, 1] + [2] * n_layers:  # the two stride-1 convs are last, walked first
        r = (r - 1) * stride + 4
    return r


def min_input(n_layers: int) -> int:
    """Smallest input side with at least 1x1 scores: Conv2d(4, 2, 1) floors H to H // 2 and each
    Conv2d(4, 1, 1) takes 1 off, so the scores are H // 2**n_layers - 2 wide. The last normed
    layer is then at least 2x2, which instance norm needs (1x1 has no spatial statistics)."""
    return 3 * 2 ** n_layers


def check_input_size(resolution: int, n_layers: int) -> None:
    """A one-line ConfigError when ``resolution`` px crops are too small for ``n_layers``: the
    first training step had failed in a norm layer, or with zero-size scores."""
    least = min_input(n_layers)
    if resolution < least:
        fits = max((n for n in range(1, n_layers) if min_input(n) <= resolution), default=None)
        fix = f" or set translate.d_layers={fits}" if fits else ""
        raise ConfigError(f"data.resolution={resolution} is too small for translate.d_layers={n_layers} "
                          f"(the PatchGAN needs >= {least}): raise data.resolution to {least}{fix}")


class PatchDiscriminator(nn.Module):
    def __init__(self, *, channels: int, width: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        check_positive("patchgan", channels=channels, width=width, n_layers=n_layers)
        self.n_layers = n_layers
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for i in range(1, n_layers + 1):
            c_out = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_out, 4, stride, 1, bias=bias), make_norm(norm, c_out),
                       nn.LeakyReLU(0.2)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights_)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, 1, H', W']
        return self.net(x)
