r"""Differentiable augmentation of everything the discriminator sees, real and fake alike.

DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): a fixed policy of transforms (color, translation, cutout) applied to every real and
every fake image before D, in D's step and in G's step. The same policy (transform family) is
used for both, with independent random parameters per sample; every op is differentiable in the
image, so G's gradient flows through the augmentation.

    color        brightness + U(-0.5, 0.5); saturation x U(0, 2); contrast x U(0.5, 1.5)
    translation  integer shift up to 1/8 of the size in each direction, zero-filled
    cutout       a square of half the size at a random position set to 0

ADA (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative Adversarial
Networks with Limited Data"): each transform is applied to each image with probability p, and p
is adapted so that the overfitting heuristic r_t = E[sign(D(real))] stays near a target (0.6):
every ``interval`` D steps, p <- clip(p + sign(r_t - target) * N_images / (kimg * 1000), 0, 1),
N_images being the reals seen since the last update. The pipeline here is a reduced version of
the paper's "bgc": x-flip, 90-degree rotations, integer translation (pixel blitting), brightness,
contrast and saturation (the paper also has fractional geometric ops and hue). p is part of the
objective's extra state, so it is checkpointed and restored on resume.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .errors import ConfigError

Op = Callable[[Tensor, torch.Generator | None], Tensor]


def _rand(n: int, x: Tensor, generator, *shape) -> Tensor:
    return torch.rand((n, *shape), generator=generator, device=x.device, dtype=x.dtype)


def brightness(x: Tensor, generator=None) -> Tensor:
    return x + (_rand(x.shape[0], x, generator, 1, 1, 1) - 0.5)


def saturation(x: Tensor, generator=None) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x.shape[0], x, generator, 1, 1, 1) * 2) + mean


def contrast(x: Tensor, generator=None) -> Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x.shape[0], x, generator, 1, 1, 1) + 0.5) + mean


def color(x: Tensor, generator=None) -> Tensor:
    return contrast(saturation(brightness(x, generator), generator), generator)


def _randint(low: int, high: int, n: int, x: Tensor, generator) -> Tensor:
    return torch.randint(low, high, (n,), generator=generator, device=x.device)


def translate(x: Tensor, generator=None, ratio: float = 0.125) -> Tensor:
    """Shift each image by an integer (dy, dx) in [-r, r], r = ratio * size; zero fill."""
    n, _, h, w = x.shape
    ry, rx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _randint(-ry, ry + 1, n, x, generator).view(n, 1, 1)
    dx = _randint(-rx, rx + 1, n, x, generator).view(n, 1, 1)
    return _shift(x, dy, dx)


def _shift(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    # A gather from the zero-padded image: out[y, x] = in[y - dy, x - dx], 0 outside. Indexing is
    # differentiable in x (the positions are integers, chosen without gradient).
    n, c, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, h, 1) - dy  # [n, h, 1]
    xs = torch.arange(w, device=x.device).view(1, 1, w) - dx  # [n, 1, w]
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)  # [n, 1, h, w]
    ys, xs = ys.clamp(0, h - 1), xs.clamp(0, w - 1)
    idx = (ys * w + xs).reshape(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, h * w).gather(2, idx).reshape(n, c, h, w)
    return out * inside.to(x.dtype)


def cutout(x: Tensor, generator=None, ratio: float = 0.5) -> Tensor:
    """Zero a (ratio * size) square centred at a random position of each image."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _randint(0, h + (1 - sh % 2), n, x, generator).view(n, 1, 1)
    cx = _randint(0, w + (1 - sw % 2), n, x, generator).view(n, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    ty, tx = ys - cy + sh // 2, xs - cx + sw // 2  # position inside the hole
    hole = (ty >= 0) & (ty < sh) & (tx >= 0) & (tx < sw)  # [n, h, w]
    return x * (~hole).unsqueeze(1).to(x.dtype)


DIFFAUGMENT_OPS: dict[str, Op] = {"color": color, "translation": translate, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    """'color,translation' -> ['color', 'translation']; ConfigError for an unknown op."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in DIFFAUGMENT_OPS:
            raise ConfigError(f"augment.diffaugment: unknown op '{name}'; valid: "
                              f"{', '.join(DIFFAUGMENT_OPS)} (comma-separated)")
    return names


def diff_augment(x: Tensor, policy: str | list[str], *, generator: torch.Generator | None = None) -> Tensor:
    """DiffAugment: apply each op of ``policy`` to every image of x [N, C, H, W], in order."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    for name in names:
        x = DIFFAUGMENT_OPS[name](x, generator)
    return x


class DiffAugment:
    """The fixed policy as a callable, used identically on reals and fakes."""

    def __init__(self, policy: str):
        self.policy = parse_policy(policy)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return diff_augment(x, self.policy, generator=generator)


# ----------------------------------------------------------------------------- ADA


def xflip(x: Tensor, generator=None) -> Tensor:
    return x.flip(3)


def rot90(x: Tensor, generator=None) -> Tensor:
    """Rotate each image by a random multiple of 90 degrees (1, 2 or 3 quarter turns)."""
    if x.shape[2] != x.shape[3]:
        return x.flip(2).flip(3)  # non-square images: only the half turn keeps the shape
    k = _randint(1, 4, x.shape[0], x, generator).view(-1, 1, 1, 1)
    out = x
    for turns in (1, 2, 3):
        out = torch.where(k == turns, torch.rot90(x, turns, dims=(2, 3)), out)
    return out


ADA_OPS: dict[str, Op] = {"xflip": xflip, "rot90": rot90, "translation": translate,
                          "brightness": brightness, "contrast": contrast, "saturation": saturation}


def ada_augment(x: Tensor, p: float, *, generator: torch.Generator | None = None) -> Tensor:
    """Each op of ADA_OPS applied to each image of x [N, C, H, W] independently with probability p."""
    if p <= 0:
        return x
    for op in ADA_OPS.values():
        apply = _rand(x.shape[0], x, generator, 1, 1, 1) < p
        x = torch.where(apply, op(x, generator), x)
    return x


class ADA:
    """Adaptive augmentation: ``p`` follows the overfitting heuristic r_t = E[sign(D(real))].

    Call ``observe(d_real, images=N)`` with D's scores on the N (augmented) reals after each D
    step; every ``interval`` observations p moves by sign(r_t - target) * images / (kimg * 1000),
    r_t the mean sign of the scores. With PacGAN one score stands for ``model.pac`` images: p
    counts images, not scores (it had moved pac times slower than documented).
    """

    def __init__(self, *, target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0):
        self.target, self.interval, self.kimg = target, interval, kimg
        self.p = float(p)
        self._sign_sum: Tensor | float = 0.0  # a device tensor between updates: no host sync
        self._count = 0  # scores observed since the last update (r_t's denominator)
        self._images = 0  # real images they scored (p's step)
        self._steps = 0
        self.last_rt = float("nan")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return ada_augment(x, self.p, generator=generator)

    def observe(self, d_real: Tensor, images: int | None = None) -> None:
        """D's scores on reals [N / pac] and the number of real ``images`` they score (default: one
        per score)."""
        d_real = d_real.detach().float()
        self._sign_sum = self._sign_sum + d_real.sign().sum()
        self._count += d_real.numel()
        self._images += d_real.numel() if images is None else int(images)
        self._steps += 1
        if self._steps >= self.interval:
            self.update()

    def update(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Under torchrun every rank updates at the same D step: r_t over the global batch,
            # so p stays identical on every rank.
            nccl = torch.distributed.get_backend() == "nccl"
            device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
            sums = torch.tensor([float(self._sign_sum), float(self._count), float(self._images)],
                                dtype=torch.float64, device=device)
            torch.distributed.all_reduce(sums)
            self._sign_sum, self._count, self._images = float(sums[0]), int(sums[1]), int(sums[2])
        if self._count:
            rt = float(self._sign_sum) / self._count
            adjust = math.copysign(1.0, rt - self.target) * self._images / (self.kimg * 1000)
            if rt == self.target:
                adjust = 0.0
            self.p = min(1.0, max(0.0, self.p + adjust))
            self.last_rt = rt
        self._sign_sum, self._count, self._images, self._steps = 0.0, 0, 0, 0

    def state_dict(self) -> dict[str, float | int]:
        return {"p": self.p, "sign_sum": float(self._sign_sum), "count": self._count,
                "images": self._images, "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
        self._sign_sum = float(state.get("sign_sum", 0.0))
        self._count = int(state.get("count", 0))
        self._images = int(state.get("images", self._count))  # saved before images were counted: one per score
        self._steps = int(state.get("steps", 0))
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            # The checkpoint holds rank 0's scores since the last update; every rank reading them
            # would count them once per process at the next all-reduce. Rank 0 brings them in,
            # the others start their sums afresh (at the same step, so all ranks still update
            # together).
            self._sign_sum, self._count, self._images = 0.0, 0, 0


def build_augment(cfg) -> DiffAugment | ADA | None:
    """The augmentation named by an AugmentConfig, or None."""
    if cfg.ada:
        return ADA(target=cfg.ada_target, interval=cfg.ada_interval, kimg=cfg.ada_kimg, p=cfg.ada_p)
    if cfg.diffaugment:
        return DiffAugment(cfg.diffaugment)
    return None
