"""Perceptual path length (Karras, Laine & Aila 2019, "A Style-Based Generator Architecture for
Generative Adversarial Networks", sec. 4.2; end-point sampling of Karras et al. 2020, StyleGAN2):
how much the image changes, perceptually, for a small step in latent space.

    PPL = E[ d(G(l(t)), G(l(t + eps))) / eps^2 ],  t = 0 (end points), eps = 1e-4

with l the path between two random latents: slerp in Z, linear in W. The paper's d is LPIPS
(VGG16), whose weights cannot be fetched offline; here d is the squared L2 distance of the
dataset classifier's 128-d features (fashion-mnist-cnn), so numbers compare only with other
runs scored by the same extractor (the protocol names it), not with papers. As in the paper,
distances outside the 1st-99th percentiles are dropped before averaging.

A metric that needs the generator, not samples: it receives a ``path_pairs(n, *, space, eps,
seed) -> (images_a, images_b)`` callable (``ganforge.load(run).path_pairs``), float [n, C, H, W]
in [-1, 1], generated with the same noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import EvalError
from .features import ClassifierExtractor, Extractor, ModuleExtractor

EPS = 1e-4
PERCENTILES = (1, 99)
_LUMA = (0.299, 0.587, 0.114)


def float_forward(extractor: Extractor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features [N, D], logits [N, K] or None) of float images [N, C, H, W] in [-1, 1], without
    the uint8 rounding of the extractor protocol (which would erase a 1e-4 step): resized and
    converted like the extractor's own input."""
    if isinstance(extractor, ClassifierExtractor):
        net, size, channels = extractor.model.embed, extractor.resolution, extractor.channels
    elif isinstance(extractor, ModuleExtractor):
        def net(x):
            out = extractor.module(x)
            return tuple(out[:2]) if isinstance(out, (tuple, list)) else (out, None)
        size, channels = extractor.resolution, extractor.channels
    else:
        raise EvalError(f"this metric needs an extractor that reads float images (the dataset's "
                        f"classifier such as fashion-mnist-cnn, or a module); {extractor.name} reads uint8 only")
    x = images.float().to(extractor.device)
    if channels != x.shape[1]:
        x = x.repeat(1, 3, 1, 1) if channels == 3 else (x * torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)).sum(
            1, keepdim=True)
    if size and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return net(x)


def float_features(extractor: Extractor, images: torch.Tensor) -> torch.Tensor:
    """Features [N, D] (float64) of float images; see ``float_forward``."""
    with torch.no_grad():
        return float_forward(extractor, images)[0].flatten(1).double()


def perceptual_path_length(path_pairs: Callable, extractor: Extractor, *, n: int, space: str,
                           eps: float = EPS, seed: int = 0, batch: int = 250) -> tuple[float, dict]:
    """(PPL, details) over ``n`` latent pairs of ``space`` ('w' or 'z')."""
    dist = []
    for k, start in enumerate(range(0, n, batch)):
        a, b = path_pairs(min(batch, n - start), space=space, eps=eps, seed=seed + k)
        fa, fb = float_features(extractor, a), float_features(extractor, b)
        dist.append(((fa - fb).square().sum(1) / eps ** 2).cpu().numpy())
    d = np.concatenate(dist)
    lo = np.percentile(d, PERCENTILES[0], method="lower")
    hi = np.percentile(d, PERCENTILES[1], method="higher")
    kept = d[(d >= lo) & (d <= hi)]
    return float(kept.mean()), {"n": int(n), "eps": eps, "sampling": "end", "space": space,
                                "kept": int(len(kept)), "distance": f"squared L2 of {extractor.name} features"}
