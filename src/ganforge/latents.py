"""Paths through a Gaussian latent space, shared by the families' latent walks and the server.

Spherical interpolation (White 2016, "Sampling Generative Networks"): a linear path between two
Gaussian latents passes through the low-norm region near the origin, where the generator saw
no training latents; slerp keeps the path at the norm the latents concentrate on.
"""
from __future__ import annotations

import torch
from torch import Tensor


# torch's CPU normal sampler turns uniform numbers into normal ones in blocks of this many
_NORMAL_BLOCK = 16


def normal(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """N(0, 1) numbers [shape] on the generator's device, drawn so that row i (shape[0] indexes
    the samples) is the same whatever the count: torch's CPU sampler redraws the last block of 16
    of a count that is not a multiple of 16, so a batch's last latent had depended on the batch's
    size (seed 1's first image differed between `sample --n 1` and `--n 64`, and a walk's frame
    from that seed's sample). Counts that are multiples of 16 draw exactly as torch.randn."""
    count = 1
    for size in shape:
        count *= int(size)
    padded = -(-count // _NORMAL_BLOCK) * _NORMAL_BLOCK
    return torch.randn(padded, generator=generator, device=generator.device)[:count].view(shape)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation from a to b at fractions t [k] -> [k, ...] (a, b: one latent
    [1, ...] each, or k latents [k, ...]). Computed in float64, so t = 0 and t = 1 give a and b
    exactly (after rounding back to a's dtype); linear where a and b are (nearly) parallel."""
    t = t.to(device=a.device, dtype=torch.float64).reshape(-1, 1)
    fa = a.reshape(a.shape[0], -1).double().expand(len(t), -1)
    fb = b.reshape(b.shape[0], -1).double().expand(len(t), -1)
    norms = fa.norm(dim=1, keepdim=True) * fb.norm(dim=1, keepdim=True)
    cos = (fa * fb).sum(1, keepdim=True) / norms.clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    so = torch.sin(omega)
    lin = (1 - t) * fa + t * fb
    sph = (torch.sin((1 - t) * omega) * fa + torch.sin(t * omega) * fb) / so.clamp_min(1e-12)
    out = torch.where(so < 1e-6, lin, sph)
    return out.reshape(len(t), *a.shape[1:]).to(a.dtype)


def walk_fractions(n_seeds: int, frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """A looping walk through ``n_seeds`` latents in ``frames`` steps: for each frame the index
    of the latent it leaves (a), the one it heads for (b) and how far it is (frac in [0, 1)).
    Segment k (latent k to k + 1) starts at frame round(k * frames / n_seeds), which is exactly
    latent k, also when frames is not a multiple of n_seeds (then segments differ by a frame);
    it needs frames >= n_seeds. For a multiple, frame j is at j * n_seeds / frames."""
    if frames < n_seeds:
        raise ValueError(f"a walk through {n_seeds} latents needs at least {n_seeds} frames, got {frames}")
    starts = [round(k * frames / n_seeds) for k in range(n_seeds)] + [frames]
    idx = torch.empty(frames, dtype=torch.long)
    frac = torch.empty(frames, dtype=torch.float64)
    for k in range(n_seeds):
        length = starts[k + 1] - starts[k]
        idx[starts[k]:starts[k + 1]] = k
        frac[starts[k]:starts[k + 1]] = torch.arange(length, dtype=torch.float64) / length
    return idx, (idx + 1) % n_seeds, frac
