"""Exponential moving average of a network's weights (Karras et al. 2018, "Progressive Growing
of GANs"; Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training")."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, net: nn.Module):
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, source: nn.Module, decay: float) -> None:
        params = [p for p in self.net.parameters()]
        src = [p.detach() for p in source.parameters()]
        if decay <= 0:
            torch._foreach_copy_(params, src)
        else:
            torch._foreach_lerp_(params, src, 1.0 - decay)
        # Buffers (batch-norm statistics) are copied, not averaged.
        for dst, b in zip(self.net.buffers(), source.buffers()):
            dst.copy_(b)
