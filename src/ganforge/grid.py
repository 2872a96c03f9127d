"""Images laid out in a grid, as ``torchvision.utils.make_grid`` lays them out, value for value.

Our own few lines rather than torchvision's function: importing torchvision (it imports
torch._dynamo) takes about 2 s on a 2-core CPU, and every command that writes a grid paid it
(``ganforge sample`` of a small run took 5-7 s, about 3 s without it). The layout itself is a loop
of copies; tests/test_grid.py checks it against torchvision's on the cases ganforge draws.
"""
from __future__ import annotations

import math

import torch


def make_grid(images: torch.Tensor, nrow: int = 8, *, padding: int = 2,
              value_range: tuple[float, float] | None = None, pad_value: float = 0.0) -> torch.Tensor:
    """images [N, C, H, W] -> one [C', H', W'] picture: ``nrow`` images to a row, ``padding``
    pixels of ``pad_value`` between and around them; a single-channel batch becomes grey RGB.
    With ``value_range`` (low, high) the values are clamped to it and scaled to [0, 1] first
    (make_grid's normalize=True). A single image comes back alone, without padding, as
    torchvision's does."""
    if images.dim() != 4:
        raise ValueError(f"make_grid takes a batch [N, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = torch.cat((images, images, images), 1)
    if value_range is not None:
        low, high = value_range
        images = images.clamp(min=low, max=high).sub_(low).div_(max(high - low, 1e-5))
    if images.shape[0] == 1:
        return images[0]
    n, channels, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = images.new_full((channels, (h + padding) * rows + padding, (w + padding) * cols + padding), pad_value)
    for k in range(n):
        row, col = divmod(k, cols)
        top, left = row * (h + padding) + padding, col * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = images[k]
    return grid
