r"""Adversarial losses as pure functions of discriminator logits.

Sign convention: the discriminator returns raw scores (logits) d, higher meaning "more real";
D(x) = sigmoid(d) is the probability of "real" where a probability is meant. Every function takes
keyword-only arguments and returns a scalar mean over the batch. Logits are used through softplus,
which never forms sigmoid(d) and so stays finite at |d| = 100 and beyond:

    -log sigmoid(d)     = softplus(-d)
    -log(1 - sigmoid(d)) = softplus(d)

minimax (Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1, the saturating form)
    L_D = -log D(x) - log(1 - D(G(z)))  = softplus(-d_real) + softplus(d_fake)
    L_G =  log(1 - D(G(z)))             = -softplus(d_fake)
    dL_G/dd_fake = -sigmoid(d_fake) -> 0 when D confidently rejects fakes: G stops learning early.

nonsaturating (same paper, sec. 3, the heuristic used in practice)
    L_D as above
    L_G = -log D(G(z))                  = softplus(-d_fake)
    dL_G/dd_fake = -sigmoid(-d_fake) -> -1 in that regime, so the gradient survives.

A loss pair is registered in LOSSES as LossPair(d, g) with
    d(*, real: Tensor [N], fake: Tensor [N]) -> Tensor []
    g(*, fake: Tensor [N], real: Tensor [N] | None = None) -> Tensor []
`real` is optional for g so that losses that compare fakes with reals (relativistic) fit the same
signature; losses that do not need it ignore it.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Protocol

import torch
import torch.nn.functional as F

from .registry import Registry

__all__ = ["LOSSES", "LossPair", "get_loss", "d_loss_logistic", "d_loss_nonsaturating",
           "g_loss_minimax", "g_loss_nonsaturating"]


class DLoss(Protocol):
    def __call__(self, *, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor: ...


class GLoss(Protocol):
    def __call__(self, *, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor: ...


class LossPair(NamedTuple):
    d: DLoss
    g: GLoss


LOSSES: Registry[LossPair] = Registry("loss")


def get_loss(name: str) -> LossPair:
    """The (d, g) pair registered under `name`; ConfigError listing the valid names otherwise."""
    return LOSSES.get(name)


def _f32(x: torch.Tensor) -> torch.Tensor:
    # Logits from a bf16/fp16 autocast region: average in float32 so the scalar keeps its precision.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def d_loss_logistic(*, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))): the discriminator loss of both minimax and nonsaturating GANs."""
    return F.softplus(-_f32(real)).mean() + F.softplus(_f32(fake)).mean()


d_loss_nonsaturating = d_loss_logistic  # the name GUIDE.md uses


def g_loss_minimax(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log(1 - D(G(z))), minimized by G: saturates (vanishing gradient) when D rejects fakes."""
    return -F.softplus(_f32(fake)).mean()


def g_loss_nonsaturating(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """-log D(G(z)): same fixed point as minimax, strong gradients early in training."""
    return F.softplus(-_f32(fake)).mean()


LOSSES.register("minimax")(LossPair(d=d_loss_logistic, g=g_loss_minimax))
LOSSES.register("nonsaturating")(LossPair(d=d_loss_logistic, g=g_loss_nonsaturating))
