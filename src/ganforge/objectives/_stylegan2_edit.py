"""Latent editing along attribute directions in W (Shen, Gu, Tang & Zhou 2020, "Interpreting the
Latent Space of GANs for Semantic Face Editing", InterFaceGAN), in our own code.

Sample n latents, label their images with a classifier (the run's dataset classifier: the
attribute is one of its classes, "this image is a Shirt" against the rest), fit a linear
classifier on w, and take its unit normal as the direction. Editing moves w along it:
w' = w + s * sigma * normal, with sigma the spread of the sampled w along the normal, so the
strength s is in standard deviations. InterFaceGAN fits a linear SVM; we fit a class-weighted
logistic regression (Adam on the full batch), which gives a separating hyperplane as well and
needs no scikit-learn.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import signals

FIT_STEPS = 500
HOLDOUT = 0.2
MIN_PER_SIDE = 10  # images with and without the attribute needed to fit a direction


def fit_direction(w: Tensor, positive: Tensor, *, seed: int = 0) -> dict:
    """Unit normal [D] of a logistic-regression hyperplane separating ``positive`` (bool [n]) w's
    [n, D], its accuracy on a held-out fifth (``n_heldout`` images, ``n_heldout_positive`` of them
    positive), and the spread of w along it.
    ``positive_share`` is the share of all n images that are positive (it had been that of the
    training four fifths, which the message calling it the share of the n did not match)."""
    n = len(w)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    cut = int(n * (1 - HOLDOUT))
    train, val = order[:cut], order[cut:]
    mean, std = w[train].mean(0), w[train].std(0).clamp_min(1e-8)
    x = (w - mean) / std
    y = positive.float()
    pos = float(y[train].mean())
    n_pos = int(positive.sum())
    if min(n_pos, n - n_pos) < MIN_PER_SIDE:
        return {"normal": None, "positive_share": float(y.mean()), "n_positive": n_pos}
    weight = torch.zeros(w.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    signals.before_first_optimizer()
    opt = torch.optim.Adam([weight, bias], lr=0.05)
    pos_weight = torch.tensor((1 - pos) / pos)  # balance a one-class-against-the-rest split
    with torch.enable_grad():  # callers generate under no_grad
        for _ in range(FIT_STEPS):
            loss = F.binary_cross_entropy_with_logits(x[train] @ weight + bias, y[train], pos_weight=pos_weight)
            loss = loss + 1e-3 * weight.square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = (x[val] @ weight + bias) > 0
        has = y[val] > 0
        balanced = 0.5 * (pred[has].float().mean() + (~pred[~has]).float().mean()) if 0 < has.sum() < len(val) \
            else torch.tensor(float("nan"))  # a held-out fifth without both sides: not measured
        normal = F.normalize(weight / std, dim=0)  # the hyperplane's normal in W itself
        sigma = float((w @ normal).std())
    return {"normal": normal, "sigma": sigma, "val_balanced_accuracy": float(balanced),
            "positive_share": float(y.mean()), "n": n, "n_heldout": len(val),
            "n_heldout_positive": int(has.sum())}


def find_direction(synthesize: Callable[[Tensor], Tensor], mapping: Callable[[Tensor], Tensor],
                   classify: Callable[[Tensor], Tensor], z: Tensor, attribute: int,
                   batch: int = 250) -> tuple[dict, Tensor]:
    """(fit_direction result, w [n, D]) for latents z: w = mapping(z), labels = argmax of the
    classifier's logits on synthesize(w)."""
    ws, labels = [], []
    with torch.no_grad():
        for chunk in z.split(batch):
            w = mapping(chunk)
            ws.append(w.cpu())
            labels.append(classify(synthesize(w)).argmax(1).cpu())
    w = torch.cat(ws)
    return fit_direction(w, torch.cat(labels) == attribute), w
