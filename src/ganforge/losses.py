r"""Adversarial losses as pure functions of discriminator outputs.

Sign convention: the discriminator returns raw scores d (logits for the logistic losses), higher
meaning "more real"; D(x) = sigmoid(d) is the probability of "real" where a probability is meant.
Every function takes keyword-only arguments and returns a scalar mean over the batch. Logits are
used through softplus, which never forms sigmoid(d) and so stays finite at |d| = 100 and beyond:

    -log sigmoid(d)      = softplus(-d)
    -log(1 - sigmoid(d)) = softplus(d)

minimax (Goodfellow et al. 2014, "Generative Adversarial Nets", eq. 1, the saturating form)
    L_D = -log D(x) - log(1 - D(G(z)))  = softplus(-d_real) + softplus(d_fake)
    L_G =  log(1 - D(G(z)))             = -softplus(d_fake)
    dL_G/dd_fake = -sigmoid(d_fake) -> 0 when D confidently rejects fakes: G stops learning early.

nonsaturating (same paper, sec. 3, the heuristic used in practice)
    L_D as above
    L_G = -log D(G(z))                  = softplus(-d_fake)
    dL_G/dd_fake = -sigmoid(-d_fake) -> -1 in that regime, so the gradient survives.

wasserstein (Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", eq. 3). d is a critic score,
not a logit; the critic must be kept Lipschitz (reg.clip, reg.gp or model.d_spectral_norm).
    L_D = mean d_fake - mean d_real     (minus the critic's estimate of W(P_r, P_g))
    L_G = -mean d_fake

hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization for GANs", eq. 16)
    L_D = mean relu(1 - d_real) + mean relu(1 + d_fake)
    L_G = -mean d_fake

lsgan (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 with a=0, b=c=1)
    L_D = 1/2 mean (d_real - 1)^2 + 1/2 mean d_fake^2
    L_G = 1/2 mean (d_fake - 1)^2

ragan (Jolicoeur-Martineau 2019, "The relativistic discriminator: a key element missing from
standard GAN", RaSGAN, eqs. 9-10). With the relativistic average scores
    r = d_real - mean d_fake    ("real is more real than the average fake")
    f = d_fake - mean d_real
    L_D = mean softplus(-r) + mean softplus(f)     = -log sigmoid(r) - log(1 - sigmoid(f))
    L_G = mean softplus(-f) + mean softplus(r)     (the same with real and fake swapped)

rahinge (same paper, RaHingeGAN)
    L_D = mean relu(1 - r) + mean relu(1 + f)
    L_G = mean relu(1 - f) + mean relu(1 + r)

A loss pair is registered in LOSSES as LossPair(d, g) with
    d(*, real: Tensor [N], fake: Tensor [N]) -> Tensor []
    g(*, fake: Tensor [N], real: Tensor [N] | None = None) -> Tensor []
`real` is optional for g so that losses comparing fakes with reals (relativistic) fit the same
signature; those raise without it and are marked so that callers know to pass it
(``g_needs_real(pair)``). A d that takes ``real_target`` supports one-sided label smoothing
(``supports_label_smoothing(pair)``): the real term aims at real_target instead of 1.

Logged scores: for the logistic losses (minimax, nonsaturating) the objective logs d_real / d_fake
as mean D(x) = mean sigmoid(d), a probability; for every other loss (critics, hinge, least squares,
relativistic) it logs the mean raw score, whose scale is the loss's own (``is_probabilistic``).
D's accuracy (``d_accuracy``) is the share of scores on the right side of the loss's decision
threshold (0; 0.5 for lsgan), except for the shift-invariant losses (wasserstein, ragan, rahinge:
adding a constant to every score changes nothing, so "above 0" decides nothing), where it is the
relativistic accuracy: a real scored above the mean fake score, a fake below the mean real score.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Protocol

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .registry import Registry

__all__ = ["LOSSES", "LossPair", "get_loss", "g_needs_real", "supports_label_smoothing",
           "is_probabilistic", "decision_threshold", "is_shift_invariant", "d_decisions", "d_accuracy",
           "d_loss_logistic", "d_loss_nonsaturating", "g_loss_minimax",
           "g_loss_nonsaturating", "d_loss_wasserstein", "g_loss_wasserstein", "d_loss_hinge",
           "g_loss_hinge", "d_loss_lsgan", "g_loss_lsgan", "d_loss_ragan", "g_loss_ragan",
           "d_loss_rahinge", "g_loss_rahinge"]


class DLoss(Protocol):
    def __call__(self, *, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor: ...


class GLoss(Protocol):
    def __call__(self, *, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor: ...


class LossPair(NamedTuple):
    d: DLoss
    g: GLoss


def _is_loss_pair(obj) -> bool:
    """A pair whose parts are read as .d and .g and iterated (_check_outside): a LossPair."""
    return (isinstance(obj, Iterable) and callable(getattr(obj, "d", None))
            and callable(getattr(obj, "g", None)))


LOSSES: Registry[LossPair] = Registry(
    "loss", check=_is_loss_pair,
    expects="a ganforge.losses.LossPair(d=..., g=...) of two functions (CONTRIBUTING.md, 'Other extension points')")


_INFERENCE: contextvars.ContextVar[bool] = contextvars.ContextVar("ganforge_loss_inference", default=False)


@contextlib.contextmanager
def for_inference() -> Iterator[None]:
    """While a run is loaded to sample or translate: a loss registered outside ganforge by the
    script that trained it is not needed, so its name is not refused (a loss that raises when
    called stands in). `ganforge sample` of such a run had failed on "unknown loss"."""
    token = _INFERENCE.set(True)
    try:
        yield
    finally:
        _INFERENCE.reset(token)


def _unregistered(name: str) -> LossPair:
    def refuse(**_):
        raise ConfigError(f"loss '{name}' is not registered in this process; import the module that "
                          f"registers it before training")
    refuse.real_target = True  # type: ignore[attr-defined]  # label smoothing was checked in training
    return LossPair(d=refuse, g=refuse)


def get_loss(name: str) -> LossPair:
    """The (d, g) pair registered under `name`; ConfigError listing the valid names otherwise
    (within ``for_inference``, a stand-in that refuses to be called)."""
    if _INFERENCE.get() and name not in LOSSES:
        return _unregistered(name)
    pair = LOSSES.get(name)
    if not _INFERENCE.get():
        _check_outside(name, pair)
    return pair


def _check_outside(name: str, pair: LossPair) -> None:
    """A loss registered outside ganforge (a plugin) returns a 0-d tensor, checked once on two
    scores: one of a batch's shape (no .mean()) or a Python float had been a traceback from
    backward() at the first step."""
    module = next((m for m in (getattr(fn, "__module__", None) or "?" for fn in pair)
                   if not m.startswith("ganforge.")), None)
    if module is None:
        return
    scores = torch.zeros(2)
    for part, fn, kwargs in (("d", pair.d, {"real": scores, "fake": scores}),
                             ("g", pair.g, {"fake": scores, "real": scores})):
        try:
            out = fn(**kwargs)
        except Exception as exc:
            raise ConfigError(f"loss '{name}' (module {module}): its {part} fails on 2 scores: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:160]}; it is called with the keywords "
                              f"{' and '.join(kwargs)} (ganforge.losses.LossPair)") from exc
        if not (isinstance(out, torch.Tensor) and out.dim() == 0):
            got = f"a tensor of shape {list(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"loss '{name}' (module {module}): its {part} returns {got} for 2 scores; a loss "
                              f"returns one 0-d tensor that backward() can start from (the batch's .mean())")


def g_needs_real(pair: LossPair) -> bool:
    """True when the generator loss compares fakes with reals (relativistic losses)."""
    return getattr(pair.g, "needs_real", False)


def supports_label_smoothing(pair: LossPair) -> bool:
    return getattr(pair.d, "real_target", False)


def is_probabilistic(pair: LossPair) -> bool:
    """True when sigmoid(d) is D's probability of "real" (the logistic losses)."""
    return getattr(pair.d, "probabilistic", False)


def decision_threshold(pair: LossPair) -> float:
    """The score between "real" and "fake" (0, or 0.5 for least squares with targets 0 and 1)."""
    return getattr(pair.d, "threshold", 0.0)


def is_shift_invariant(pair: LossPair) -> bool:
    """True when D's loss sees its scores only through real-fake differences (wasserstein and the
    relativistic losses): scores shifted by any constant train the same, so no fixed threshold
    tells "real" from "fake"."""
    return getattr(pair.d, "shift_invariant", False)


def d_decisions(pair: LossPair, *, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which scores D gets right, as bool tensors of the scores' shapes: (real scored real, fake
    scored fake). For a shift-invariant loss the relativistic decision (Jolicoeur-Martineau 2019,
    eqs. 9-10: real above the mean fake score, fake below the mean real score; for wasserstein the
    pair ordering the critic's estimate of W rests on); otherwise the side of
    ``decision_threshold``. A D separating 93% of pairs had logged 0% real / 100% fake."""
    real, fake = real.detach().float(), fake.detach().float()
    if is_shift_invariant(pair):
        return real > fake.mean(), fake < real.mean()
    t = decision_threshold(pair)
    return real > t, fake < t


def d_accuracy(pair: LossPair, *, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_acc_real, d_acc_fake): the shares of ``d_decisions`` that are right, each a [] tensor."""
    right_real, right_fake = d_decisions(pair, real=real, fake=fake)
    return right_real.float().mean(), right_fake.float().mean()


def _mark(**flags) -> Callable:
    def deco(fn):
        for key, value in flags.items():
            setattr(fn, key, value)
        return fn

    return deco


def _f32(x: torch.Tensor) -> torch.Tensor:
    # Scores from a bf16/fp16 autocast region: average in float32 so the scalar keeps its precision.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _need(real: Optional[torch.Tensor], name: str) -> torch.Tensor:
    if real is None:
        raise ValueError(f"the {name} generator loss compares fakes with reals: pass real=D(real)")
    return _f32(real)


# ----------------------------------------------------------------------------- logistic


@_mark(real_target=True, probabilistic=True)
def d_loss_logistic(*, real: torch.Tensor, fake: torch.Tensor,
                    real_target: float = 1.0) -> torch.Tensor:
    """-t log D(x) - (1-t) log(1 - D(x)) - log(1 - D(G(z))), t = real_target (1: no smoothing).

    The discriminator loss of both minimax and nonsaturating GANs; real_target < 1 is one-sided
    label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 3.4).
    """
    real, fake = _f32(real), _f32(fake)
    real_term = F.softplus(-real).mean()
    if real_target != 1.0:
        real_term = real_target * real_term + (1.0 - real_target) * F.softplus(real).mean()
    return real_term + F.softplus(fake).mean()


d_loss_nonsaturating = d_loss_logistic  # the name GUIDE.md uses


def g_loss_minimax(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log(1 - D(G(z))), minimized by G: saturates (vanishing gradient) when D rejects fakes."""
    return -F.softplus(_f32(fake)).mean()


def g_loss_nonsaturating(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """-log D(G(z)): same fixed point as minimax, strong gradients early in training."""
    return F.softplus(-_f32(fake)).mean()


# ----------------------------------------------------------------------------- critics


@_mark(shift_invariant=True)
def d_loss_wasserstein(*, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean d_fake - mean d_real (Arjovsky et al. 2017); needs a Lipschitz critic."""
    return _f32(fake).mean() - _f32(real).mean()


def g_loss_wasserstein(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """-mean d_fake (Arjovsky et al. 2017)."""
    return -_f32(fake).mean()


def d_loss_hinge(*, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """mean relu(1 - d_real) + mean relu(1 + d_fake) (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - _f32(real)).mean() + F.relu(1.0 + _f32(fake)).mean()


g_loss_hinge = g_loss_wasserstein  # -mean d_fake, as in SNGAN and BigGAN


@_mark(real_target=True, threshold=0.5)
def d_loss_lsgan(*, real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """1/2 mean (d_real - b)^2 + 1/2 mean d_fake^2, b = real_target (Mao et al. 2017, a=0, b=c=1)."""
    return 0.5 * (_f32(real) - real_target).square().mean() + 0.5 * _f32(fake).square().mean()


def g_loss_lsgan(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """1/2 mean (d_fake - 1)^2 (Mao et al. 2017, c=1)."""
    return 0.5 * (_f32(fake) - 1.0).square().mean()


# ----------------------------------------------------------------------------- relativistic


def _relative(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_real - mean d_fake, d_fake - mean d_real): the relativistic average scores."""
    real, fake = _f32(real), _f32(fake)
    return real - fake.mean(), fake - real.mean()


@_mark(shift_invariant=True)
def d_loss_ragan(*, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """RaSGAN: mean softplus(-(d_real - mean d_fake)) + mean softplus(d_fake - mean d_real)."""
    r, f = _relative(real, fake)
    return F.softplus(-r).mean() + F.softplus(f).mean()


@_mark(needs_real=True)
def g_loss_ragan(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RaSGAN generator: the D loss with the roles of real and fake swapped."""
    r, f = _relative(_need(real, "ragan"), fake)
    return F.softplus(-f).mean() + F.softplus(r).mean()


@_mark(shift_invariant=True)
def d_loss_rahinge(*, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """RaHinge: mean relu(1 - (d_real - mean d_fake)) + mean relu(1 + (d_fake - mean d_real))."""
    r, f = _relative(real, fake)
    return F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()


@_mark(needs_real=True)
def g_loss_rahinge(*, fake: torch.Tensor, real: Optional[torch.Tensor] = None) -> torch.Tensor:
    """RaHinge generator: mean relu(1 - (d_fake - mean d_real)) + mean relu(1 + (d_real - mean d_fake))."""
    r, f = _relative(_need(real, "rahinge"), fake)
    return F.relu(1.0 - f).mean() + F.relu(1.0 + r).mean()


LOSSES.register("minimax")(LossPair(d=d_loss_logistic, g=g_loss_minimax))
LOSSES.register("nonsaturating")(LossPair(d=d_loss_logistic, g=g_loss_nonsaturating))
LOSSES.register("wasserstein")(LossPair(d=d_loss_wasserstein, g=g_loss_wasserstein))
LOSSES.register("hinge")(LossPair(d=d_loss_hinge, g=g_loss_hinge))
LOSSES.register("lsgan")(LossPair(d=d_loss_lsgan, g=g_loss_lsgan))
LOSSES.register("ragan")(LossPair(d=d_loss_ragan, g=g_loss_ragan))
LOSSES.register("rahinge")(LossPair(d=d_loss_rahinge, g=g_loss_rahinge))
# The papers' and presets' names, which difflib matched to the wrong loss ('wgan' -> 'ragan')
_WGAN_GP = "'wasserstein' with reg.gp=10 and model.d_norm=layer (WGAN-GP; the wgan-gp-fashion-mnist preset)"
LOSSES.hints.update({
    "wgan": "'wasserstein' with reg.clip=0.01 (WGAN; the wgan-fashion-mnist preset) or reg.gp=10 (WGAN-GP)",
    "wgan-gp": _WGAN_GP, "wgangp": _WGAN_GP, "wgan_gp": _WGAN_GP,
    "sngan": "'hinge' with model.d_spectral_norm=true (SNGAN; the sngan-hinge-fashion-mnist preset)",
    "gan": "'nonsaturating' (the original GAN's practical loss) or 'minimax'",
    "vanilla": "'nonsaturating' (the vanilla-fashion-mnist preset) or 'minimax'",
    "bce": "'nonsaturating' (binary cross-entropy on D's logits) or 'minimax'",
})
