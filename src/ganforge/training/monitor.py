"""Training diagnostics: pure detectors over the stream of per-interval log records.

The Trainer averages scalars over each log interval; once per interval it hands the averaged
record to :meth:`Monitor.update`, which returns the events that fire at that record (usually
none). An event is a plain dict, written to metrics.jsonl as it is::

    {"event": "mode_collapse", "step": 1500, "message": "...",
     "evidence": {"diversity": 0.61, "diversity_real": 9.1, "ratio": 0.067, ...},
     "suggestion": "let D see batch statistics: model.mbstd_group=4; ...; add R1 with reg.r1=0.0025"}

Record keys read (each optional: a detector that lacks its inputs stays silent)::

    step                      int, required
    d_loss, g_loss            mean losses of the interval
    d_real, d_fake            mean D(x), D(G(z)) as probabilities
    d_acc_real, d_acc_fake    fraction of real scored real / fake scored fake (see d_accuracy;
                              relativistic for wasserstein, ragan, rahinge)
    g_grad_norm, d_grad_norm  mean L2 norm of all gradients of G / D (unscaled)
    diversity, diversity_real pairwise_diversity of a fixed probe batch of fakes / of reals
    probe_classes             classes the dataset's classifier finds among the probe fakes; on a
                              toy mixture (toy:ring8, toy:grid25), the modes they capture (the
                              mode benchmark's definition: within 3 sigma of the nearest centre)
    probe_classes_real        the same on the fixed real probe batch
    nonfinite                 1 if a loss or weight was NaN/inf in the interval, else 0
    any float NaN/inf, or None (metrics.jsonl's spelling of it), also counts as non-finite

The probe also logs, on a toy mixture, probe_hq / probe_hq_real (the share of its points within 3
sigma of a centre) for the report; no detector reads them: a young healthy run has 5-15% there.

Detectors (thresholds are fields of MonitorSettings):

- mode_collapse: diversity / diversity_real < collapse_ratio (0.3) for `patience` records,
  judged once the ratio has held at or above the threshold for `patience` records, or from step
  warmup_steps (1000) on (a DCGAN at initialisation sits near 0.15 and spreads within a few
  hundred steps; a toy run that wobbled 0.30, 0.19, 0.36, 0.12 early on had been armed by its
  first record and called collapsed at step 90 though it spread to 1.0 by step 250); before
  either, a ratio below SAME_SAMPLES (1e-4: every sample the same) counts as bad and any other
  as good (a toy run at 0.000 from step 20 on had waited for step 1000), unless G gets no
  gradient at all: that is vanishing_gradients (b), which names the same samples; or
  probe_classes < coverage_ratio (0.75) x its best value so far. Mean pairwise distance
  between samples of one generator that ignores z is 0; a generator that covers the data has
  about the data's own value, so 0.3 leaves room for a sharper-than-real generator while
  catching one that emits a handful of images. Class coverage is judged against the best
  value so far and, from warmup_steps on, against probe_classes_real (the Trainer counts both
  with the dataset's classifier when one exists, e.g. fashion-mnist-cnn, and on a toy mixture as
  the modes its samples capture): a generator stuck on one or two classes still has about half
  the real feature and pixel diversity, but its class count shows it (a toy run stuck on 3 of
  the ring's 8 modes kept 0.55 of the real pixel diversity). Coverage is not judged when the
  real probe falls in fewer than min_classes (4) classes: the classifier does not fit that data.
  Before warmup_steps it is judged only once the count has held at min_classes or more for
  `patience` records: a young generator's count wobbles (2, 3, 2 classes), and a drop from a
  best of 3 to 2 had been called a collapse on a healthy run, then, once one record touched 4,
  a drop from 4 to 2 on another.
- vanishing_gradients: (a) D wins outright (d_acc_real and d_acc_fake >= 0.95 when logged,
  d_real >= 0.95, d_fake <= 0.05) while g_grad_norm <= vanish_ratio (0.05) x its early value
  (the largest of the first `window` records), <= vanish_abs (0.1; a D that wins from the first
  record leaves an early value that had already vanished: 0.023 against a healthy 7-18 on
  dcgan-fashion-mnist; the toy and image presets train with G norms of 0.2 and up) or
  <= vanish_floor (1e-4), for `patience` records. This is the saturation of Goodfellow et
  al. 2014 (sec. 3): with D(G(z)) ~ 0 the minimax generator gradient sigmoid(d_fake)
  vanishes. Not judged for loss.name=wasserstein, whose critic scores are not logits (sigmoid
  of them is no probability of "real") and whose critic is meant to separate (CRITIC_LOSSES);
  for ragan / rahinge, "D wins outright" is d_acc_real and d_acc_fake >= 0.95 alone, their
  relativistic accuracy (_relativistic): their raw scores shift freely; so it is for a family
  that logs raw scores (Objective.logs_d_probabilities False: CycleGAN-VC) under a loss other
  than least squares, whose scores are on no [0, 1] scale. (b) Whoever
  wins: g_grad_norm <= vanish_floor (no gradient reaches G at all) while the probe's
  diversity is below collapse_ratio of real (or not probed): the generator is stuck
  (saturated or dead units, a learning rate far too high);
  fires after `patience` records like (a), or after 2 when G's gradient norm was exactly 0 in
  both: nothing reaches G at all (a non-finite one is a divergence).
- divergence: a non-finite loss, weight or gradient; a grad norm above explode_factor (100)
  x the median of its last `window` finite values (at least 4 of them) and above explode_min
  (1.0: a D recovering from saturation grows from 0.003 back to 0.4, which is no explosion;
  healthy norms of the presets are 0.1-2 on toy data, 7-18 on DCGAN); not for G's norm while a
  vanishing_gradients episode is active: the vanished norms are no scale for G's recovery (a
  norm of 230 against a vanished median of 0.0076 had been rolled back three times), and a
  record with G no longer vanishing clears G's window, so its ratio test starts over; a loss or grad norm
  above explode_abs (1e6), which needs no history; or, for a logit loss (not a critic's),
  d_loss or G's adversarial loss above d_loss_abs (1e3): D's outputs are in the thousands
  (healthy runs of every preset stay below 20). G's counts because a D that wins with logits of
  -2000 on the fakes has a small d_loss: lr 0.5 had trained on to the end with g_loss 1400-2100
  and d_loss under 600. A family whose g_loss adds reconstruction terms names the record key of
  its adversarial part (Objective.g_adversarial_key: g_adv, adv), judged only when logged.
  Fires at once.
- oscillation: over the last `window` (16) records of d_loss and of g_loss, after removing a
  least-squares line: (a) large: the residual's standard deviation is >= osc_amplitude (0.3) x
  the series' mean absolute value (0.1 at least); (b) no progress: the trend over the window,
  |slope| x window, is smaller than the residual's peak-to-peak; (c) back and forth: the
  residual changes sign >= osc_crossings (4) times, i.e. two or more full swings. A decaying or
  drifting loss fails (b) or (c), one excursion fails (c), normal jitter fails (a) (healthy
  DCGAN runs on Fashion-MNIST stay below 0.2 on d_loss, 0.1 on g_loss). Periodic and chaotic
  swings both count. Sustained for `patience` records.

Known events: :meth:`Monitor.note` takes an event the objective reported through the Trainer.
A progressive stage that starts to fade in (``{"event": "stage", "evidence": {"phase":
"fade_in", ...}}``) changes the regime: the new block's untrained layers enter G and D as alpha
rises, so D's loss and both gradient norms jump and settle at a new level (and a new batch size
or learning rate may apply). The monitor then clears the loss and gradient-norm windows and the
oscillation and vanishing-gradient counters, so the jump is compared with the new stage, not the
old one: the oscillation test waits for `window` records of the new stage, the grad-norm ratio
test for 4. Non-finite values and losses or grad norms above explode_abs still fire at once, and
an explosion relative to the new stage's own history fires once it has 4 records. A resume that
changes a setting which sets the scale of the losses and gradient norms (``{"event":
"config_change", "evidence": {key: [old, new], ...}}`` with a key of REGIME_KEYS: the loss, the
optimizer and its rates, the regularizers, augmentation, the model, train.n_critic or
train.batch_size) is a new regime in the same way: a switch from minimax to nonsaturating that
the vanishing-gradients advice asks for had been judged against the vanished norms and called a
divergence.

Episodes: each detector fires once when its condition has held for `patience` consecutive
records (1 for divergence), then stays quiet until the condition has been false for `patience`
consecutive records (1 for divergence, so a rollback that diverges again is reported again);
records a detector cannot judge (missing keys) leave its counters unchanged. After a rollback
the Trainer calls :meth:`Monitor.after_rollback` to clear the loss windows and re-arm.

Rollback targets: :attr:`Monitor.healthy` says whether the last record is one to roll back to:
not divergent, judged bad by no detector (before `patience` too) and, for a logit loss, d_loss
<= d_loss_healthy (10; healthy runs stay below 2) and G's adversarial loss <= G_HEALTHY_FACTOR x
d_loss_healthy (100; healthy runs reach 19). The Trainer rolls back to the newest checkpoint
at or before the last healthy record, i.e. from before the trouble started.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import asdict, fields
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import Tensor

from .. import losses
from ..config import MonitorConfig
from ..errors import ConfigError

KINDS = ("mode_collapse", "vanishing_gradients", "divergence", "oscillation")

# Config keys named in suggestions, in one place so that a rename is a one-line change.
KEYS = {
    "loss": "loss.name", "g_lr": "optim.g_lr", "d_lr": "optim.d_lr", "betas": "optim.betas",
    "n_critic": "train.n_critic", "precision": "train.precision", "ema": "train.ema_decay",
    "r1": "reg.r1", "diffaugment": "augment.diffaugment", "ada": "augment.ada",
    "d_sn": "model.d_spectral_norm", "mbstd": "model.mbstd_group", "pac": "model.pac",
}
DIFFAUGMENT_POLICY = "color,translation,cutout"  # Zhao et al. 2020, the policy for small data
TOY_R1 = 0.01  # reg.r1 of the toy-ring8 / toy-grid25 presets (2-D point data)
# A critic's scores are unanchored and it is no classifier: a critic that separates every pair is
# what WGAN trains it to be, and G's gradient -mean d_fake does not saturate when it does
# (Arjovsky et al. 2017, sec. 3), so "D wins outright" is not judged (nor are its loss values)
CRITIC_LOSSES = ("wasserstein",)


def _relativistic(loss_name) -> bool:
    """Whether "D wins outright" is judged on the relativistic accuracy alone: a shift-invariant
    loss (``losses.is_shift_invariant``: ragan, rahinge, one a plugin marks so) that is not a
    critic's. Their raw scores shift freely, but their D loss trains a decision, real above the
    mean fake score and fake below the mean real score (Jolicoeur-Martineau 2019, eqs. 9-10),
    which d_acc_real / d_acc_fake log for them."""
    if not isinstance(loss_name, str) or loss_name in CRITIC_LOSSES:
        return False
    try:
        return losses.is_shift_invariant(losses.LOSSES.get(loss_name))
    except ConfigError:  # a name no loss is registered under here: judged as before
        return False
# A rollback target's G loss may be this many times d_loss_healthy: a D that rejects fakes with
# logits near -17 is normal (healthy StyleGAN2 and ESRGAN runs reach 16.8 and 18.9)
G_HEALTHY_FACTOR = 10
# mode_collapse: diversity below this share of real: every sample the same (a toy G with dead
# units emits exactly 0; a young tiny DCGAN on noise images starts near 0.001 and spreads)
SAME_SAMPLES = 1e-4
# Config sections and keys whose change on resume starts a new regime of losses and grad norms
REGIME_KEYS = ("loss.", "optim.", "reg.", "augment.", "model.", "train.n_critic", "train.batch_size")


# The thresholds are the config's monitor section (one set of names and defaults; each is
# documented there and, with its reason, in the detectors above)
MonitorSettings = MonitorConfig


# ----------------------------------------------------------------------------- helpers for the Trainer


def pairwise_diversity(x: Tensor) -> Tensor:
    """Mean L2 distance over all pairs of samples. x: [N, ...] (flattened per sample) -> [].

    0 for a generator that ignores z; stays on x's device (no host sync)."""
    flat = x.detach().reshape(x.shape[0], -1).float()
    if flat.shape[0] < 2:
        return flat.new_zeros(())
    return torch.pdist(flat).mean()


def d_accuracy(scores_real: Tensor, scores_fake: Tensor, loss: str = "nonsaturating") -> tuple[Tensor, Tensor]:
    """(d_acc_real, d_acc_fake) of D's scores under ``loss`` (a loss.name), each a [] tensor: the
    objectives' own ``ganforge.losses.d_accuracy`` (logits: the shares of reals scored > 0 and
    of fakes scored < 0; shift-invariant losses: the relativistic accuracy)."""
    return losses.d_accuracy(losses.LOSSES.get(loss), real=scores_real, fake=scores_fake)


def grad_norm(parameters: Iterable[Tensor]) -> Tensor:
    """L2 norm of all gradients together (0 when none); divide by the grad scaler's scale
    under fp16. Stays on the device."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def nonfinite(*tensors: Tensor) -> Tensor:
    """1.0 if any element of any tensor is NaN or inf, else 0.0 (a [] tensor, no host sync)."""
    flags = [~torch.isfinite(t.detach()).all() for t in tensors]
    return torch.stack(flags).any().float() if flags else torch.zeros(())


def format_event(event: Mapping[str, Any]) -> str:
    """One console line: 'ganforge: warning: step 1500: mode_collapse: ... -> suggestion'."""
    text = f"ganforge: warning: step {event.get('step')}: {event['event']}"
    if event.get("message"):
        text += f": {event['message']}"
    if event.get("suggestion"):
        text += f". Try: {event['suggestion']}"
    return text


# ----------------------------------------------------------------------------- config access


def _cfg(cfg: Any, dotted: str, default: Any = None) -> Any:
    """cfg.a.b for a dataclass config or a plain dict; default when a part is missing."""
    node = cfg
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if isinstance(node, Mapping) else getattr(node, part, None)
    return default if node is None else node


def _halve(cfg: Any, key: str, ev: Mapping[str, Any] | None = None) -> str | None:
    """'lower KEY to half': half the rate in effect, which rollbacks may already have scaled
    down (evidence lr_scale), not half the configured one they showed too high."""
    value = _cfg(cfg, KEYS[key])
    if not isinstance(value, (int, float)):
        return None
    scale = (ev or {}).get("lr_scale", 1.0)
    if scale != 1.0:
        return f"lower {KEYS[key]} below the {value * scale:g} the rollbacks reached, e.g. to {value * scale / 2:g}"
    return f"lower {KEYS[key]} to {value / 2:g}"


def _r1(cfg: Any) -> str:
    gamma = _cfg(cfg, KEYS["r1"], 0.0) or 0.0
    if gamma > 0:
        return f"raise {KEYS['r1']} from {gamma:g} to {gamma * 10:g}"
    if str(_cfg(cfg, "data.name", "")).startswith("toy:"):
        # 2-D points have no pixels for the heuristic below: the toy presets' value
        return f"add R1 with {KEYS['r1']}={TOY_R1:g} (the toy presets' value)"
    # Heuristic of Karras et al. 2020 (StyleGAN2-ADA, sec. 5): gamma = 0.0002 * pixels / batch.
    res, batch = _cfg(cfg, "data.resolution", 32), _cfg(cfg, "train.batch_size", 64)
    return f"add R1 with {KEYS['r1']}={0.0002 * res * res / batch:.2g}"


def _augment(cfg: Any) -> str | None:
    if _cfg(cfg, KEYS["diffaugment"]) or _cfg(cfg, KEYS["ada"]):
        return None
    return f"enable DiffAugment with {KEYS['diffaugment']}={DIFFAUGMENT_POLICY}"


def _switch(cfg: Any, key: str, value: Any, why: str, *, off: tuple = (None, 0)) -> str | None:
    """'why: key=value' while the config has the switch off (False == 0 counts as off)."""
    if _cfg(cfg, KEYS[key]) not in off:
        return None
    return f"{why}: {KEYS[key]}={value}"


def _minimax(cfg: Any) -> str | None:
    if _cfg(cfg, KEYS["loss"]) == "minimax":
        return f"loss is minimax (saturating): switch to {KEYS['loss']}=nonsaturating"
    return None


def _join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


def _toy(cfg: Any) -> bool:
    """Whether the run trains on a 2-D toy mixture (data.name toy:ring8, toy:grid25, ...)."""
    return str(_cfg(cfg, "data.name", "")).startswith("toy:")


def _lipschitz(cfg: Any) -> str | None:
    """Spectral norm on D, except on 2-D toy data: there it stopped a divergence at lr 1 but left
    0 of toy:grid25's 25 modes, and an oscillating run ended on 1 (README: spectral norm gives 0-5
    of 25 modes on low-dimensional data); that data's fixes are the rates, Adam's momentum and R1."""
    if _toy(cfg):
        return None
    return _switch(cfg, "d_sn", "true", "bound D's Lipschitz constant")


# A generator too small for its data collapses whatever regularizes D: on toy:grid25, g_width 4
# (g_depth 1) against d_width 128 covered 10 of 25 modes, z_dim 1 covered 3, and the rounds of
# PacGAN, R1 and lower rates the advice offered instead did not help (11 and 5 modes)
G_SMALLER = 4  # model.g_width at most model.d_width over this: G is much smaller than D
POINT_DIM = 2  # a toy mixture's points: a z of fewer dimensions maps onto a curve through the plane
TOY_Z_DIM = {"toy:grid25": 2, "toy:ring8": 4}  # model.z_dim of the toy-grid25 / toy-ring8 presets


def _small_generator(cfg: Any) -> list[str]:
    """G's size named first when it, not D, is why samples collapse: a width far below D's, or
    on 2-D points a latent of fewer dimensions than theirs, each with the override that restores
    it. (An image z_dim is not judged: the presets use 100 to 512, the tests' tiny DCGANs 8, and
    no run has shown where too few begin.)"""
    parts = []
    g, d = _cfg(cfg, "model.g_width"), _cfg(cfg, "model.d_width")
    if _finite(g) and _finite(d) and 0 < g * G_SMALLER <= d:
        restore = f"model.g_width={d:g}"
        g_depth, d_depth = _cfg(cfg, "model.g_depth"), _cfg(cfg, "model.d_depth")
        if _finite(g_depth) and _finite(d_depth) and g_depth < d_depth:
            restore += f" model.g_depth={d_depth:g}"
        # no "; " inside: _advice splits the suggestion there
        parts.append(f"G is much smaller than D (model.g_width {g:g} against model.d_width {d:g}), too "
                     f"few units to place samples on every mode: give it D's size, {restore}")
    z = _cfg(cfg, "model.z_dim")
    data = str(_cfg(cfg, "data.name", ""))
    if _finite(z) and _toy(cfg) and z < POINT_DIM:
        parts.append(f"model.z_dim {z:g} is below the points' {POINT_DIM} dimensions, so G maps z onto "
                     f"a curve through the plane: restore it, model.z_dim={TOY_Z_DIM.get(data, POINT_DIM)}"
                     + (f" (the toy-{data[4:]} preset's)" if data in TOY_Z_DIM else ""))
    return parts


def _suggest_collapse(cfg, ev) -> str:
    return _join(*_small_generator(cfg), _switch(cfg, "mbstd", 4, "let D see batch statistics"),
                 _switch(cfg, "pac", 2, "let D score packed samples (PacGAN)", off=(None, 1)),
                 _r1(cfg), _augment(cfg), *_collapse_rates(cfg, ev))


PRESET_MAX_LR = 3e-3  # the largest learning rate of any preset (0.0025); 10x above it is no tuning
PRESET_LR = 2e-4  # the usual rate of the presets (DCGAN's): what a rate far out of line is advised down to
LOW_LR = 1e-5  # 10x below the smallest learning rate of any preset (1e-4)
RATE_GAP = 10  # optim.d_lr over optim.g_lr above this is no TTUR: the presets keep it within 4


def _collapse_rates(cfg, ev) -> list[str | None]:
    """G's rate lowered, unless it is the one far too low: under LOW_LR, or D's over RATE_GAP times
    it. Then D outlearns G, and halving G's rate makes that worse: a g_lr of 1e-6 against a d_lr
    of 0.01 had been advised down to 5e-07."""
    g, d = _cfg(cfg, KEYS["g_lr"]), _cfg(cfg, KEYS["d_lr"])
    if not (isinstance(g, (int, float)) and isinstance(d, (int, float)) and g > 0):
        return _lower_rates(cfg, ev, "g_lr")
    g_now = g * (ev or {}).get("lr_scale", 1.0)  # the rate in effect; the ratio is the same
    if d > RATE_GAP * g:
        to = (f"lower {KEYS['d_lr']} to {g:g}" if g_now >= LOW_LR else
              f"bring both to a preset's rate, e.g. {KEYS['g_lr']}={PRESET_LR:g} {KEYS['d_lr']}={PRESET_LR:g}")
        return [f"{KEYS['d_lr']} {d:g} is {d / g:,.0f}x {KEYS['g_lr']} {g:g} (the presets keep D's rate "
                f"within 4x G's), so D outlearns G: {to}"]
    if g_now < LOW_LR:
        return [f"{KEYS['g_lr']} {g_now:g} is far below the presets' 1e-4 to {PRESET_MAX_LR:g}: "
                f"raise it, e.g. to {PRESET_LR:g}"]
    if _high_lr(cfg, ev, "g_lr"):  # D's too when it is as far out of line: g_lr = d_lr = 0.4 had named G's alone
        return _lower_rates(cfg, ev, "g_lr", "d_lr")
    return [_halve(cfg, "g_lr", ev)]


_TOO_BIG = {"g_lr": "steps that large saturate G's units",
            "d_lr": "steps that large blow D's outputs up"}


def _high_lr(cfg, ev, key: str) -> str | None:
    """A learning rate far above every preset's, named with a preset-sized value to use. Halving
    it (even after the rollbacks' halvings) leaves it hundreds of times too large: a d_lr of 10
    had been advised down to 0.625, and the innocent g_lr down with it."""
    lr = _cfg(cfg, KEYS[key])
    if not isinstance(lr, (int, float)):
        return None
    scale = (ev or {}).get("lr_scale", 1.0)
    if lr * scale <= 10 * PRESET_MAX_LR:
        return None
    after = f" ({lr * scale:g} after the rollbacks)" if scale != 1.0 else ""
    return (f"{KEYS[key]} {lr:g}{after} is far above the presets' 1e-4 to {PRESET_MAX_LR:g}: "
            f"lower it, e.g. to {PRESET_LR:g} ({_TOO_BIG[key]})")


def _lower_rates(cfg, ev, *keys: str) -> list[str | None]:
    """The rates far out of line when any is (the others are not to blame), else each halved."""
    high = [_high_lr(cfg, ev, key) for key in keys]
    return high if any(high) else [_halve(cfg, key, ev) for key in keys]


def resume_rates(cfg, lr_scale: float = 1.0) -> dict[str, float]:
    """The learning rates a diverged run continues with, as the divergence's advice names them
    (``_lower_rates``): a rate far above the presets' alone, down to a preset's, else both halved
    from the rates in effect (``lr_scale``: the rollbacks' scale)."""
    ev = {"lr_scale": lr_scale}
    high = [key for key in ("g_lr", "d_lr") if _high_lr(cfg, ev, key)]
    if high:
        return {KEYS[key]: PRESET_LR for key in high}
    rates = {key: _cfg(cfg, KEYS[key]) for key in ("g_lr", "d_lr")}
    return {KEYS[key]: lr * lr_scale / 2 for key, lr in rates.items() if isinstance(lr, (int, float))}


def _suggest_vanishing(cfg, ev) -> str:
    n_critic = _cfg(cfg, KEYS["n_critic"], 1)
    fewer = f"lower {KEYS['n_critic']} from {n_critic} to 1" if n_critic > 1 else None
    # halving D's rate is the usual cure for a D that wins; a G rate far out of line is named too
    return _join(_high_lr(cfg, ev, "g_lr"), _minimax(cfg),
                 _high_lr(cfg, ev, "d_lr") or _halve(cfg, "d_lr", ev), fewer, _r1(cfg), _augment(cfg))


def _suggest_divergence(cfg, ev) -> str:
    precision = _cfg(cfg, KEYS["precision"])
    fp16 = f"switch {KEYS['precision']} from fp16 to bf16 or fp32" if precision == "fp16" else None
    return _join(fp16, *_lower_rates(cfg, ev, "g_lr", "d_lr"), _lipschitz(cfg), _r1(cfg))


def non_finite_advice(cfg, lr_scale: float) -> str:
    """The trainer's advice for NaN or infinite values: the monitor's for a divergence (a rate
    far out of line named alone, else both halved from the rates in effect), and fp32 where the
    run computes in lower precision."""
    fp32 = (f"use {KEYS['precision']}=fp32" if _cfg(cfg, KEYS["precision"]) not in ("fp32", "fp16")
            else None)  # fp16's own advice is in the divergence's
    return _join(_suggest_divergence(cfg, {"lr_scale": lr_scale}), fp32)


def _suggest_oscillation(cfg, ev) -> str:
    betas = _cfg(cfg, KEYS["betas"])
    beta1 = f"lower Adam momentum: {KEYS['betas']}=[0.0,0.99]" if betas and betas[0] > 0.5 else None
    ema = f"average G: {KEYS['ema']}=0.999" if _cfg(cfg, KEYS["ema"], 0.0) == 0 else None
    return _join(*_lower_rates(cfg, ev, "d_lr", "g_lr"), beta1, _r1(cfg), _lipschitz(cfg), ema)


# ----------------------------------------------------------------------------- the monitor


class _Episode:
    """Fire after `fire_after` consecutive bad records; re-arm after `clear_after` good ones."""

    def __init__(self, fire_after: int, clear_after: int):
        self.fire_after, self.clear_after = fire_after, clear_after
        self.bad = self.good = 0
        self.active = False

    def update(self, bad: bool) -> bool:
        if bad:
            self.bad, self.good = self.bad + 1, 0
            if not self.active and self.bad >= self.fire_after:
                self.active = True
                return True
        else:
            self.bad, self.good = 0, self.good + 1
            if self.active and self.good >= self.clear_after:
                self.active = False
        return False

    def state(self) -> list[int]:
        return [self.bad, self.good, int(self.active)]

    def load(self, s: list[int]) -> None:
        self.bad, self.good, self.active = int(s[0]), int(s[1]), bool(s[2])


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def _percent(ratio: float) -> str:
    """A share as a percentage that reads right at any size: '0%', 'under 0.1%', '3.7%', '45%'.
    (Ratios printed with ':.2g' had read "G's gradient norm 0 is 0 of its early 27.1", and
    ':.2f' "its samples have 0.00 of real-data diversity".)"""
    p = 100 * ratio
    if p == 0:
        return "0%"
    if 0 < p < 0.1:
        return "under 0.1%"
    return f"{p:.2g}%" if abs(p) < 10 else f"{p:,.0f}%"


def oscillation_stats(values: list[float], *, amplitude: float, crossings: int) -> dict | None:
    """The oscillation test of the module docstring on one series: evidence, or None."""
    n = len(values)
    mean_t, mean_x = (n - 1) / 2, sum(values) / n
    slope = (sum((t - mean_t) * (x - mean_x) for t, x in enumerate(values))
             / sum((t - mean_t) ** 2 for t in range(n)))
    e = [x - mean_x - slope * (t - mean_t) for t, x in enumerate(values)]  # detrended
    std = math.sqrt(sum(v * v for v in e) / n)
    scale = max(sum(abs(x) for x in values) / n, 0.1)
    swing = max(e) - min(e)
    signs = [v > 0 for v in e if v != 0]
    flips = sum(a != b for a, b in zip(signs, signs[1:]))
    if std < amplitude * scale or abs(slope) * n >= swing or flips < crossings:
        return None
    return {"relative_std": _round(std / scale), "swing": _round(swing), "sign_changes": flips,
            "trend_per_record": _round(slope), "records": n}


class Monitor:
    """Feed it one averaged record per log interval; it returns the events that fire."""

    SERIES = ("d_loss", "g_loss", "g_grad_norm", "d_grad_norm")

    def __init__(self, cfg: Any = None, settings: MonitorSettings | None = None, **overrides):
        self.cfg = cfg
        self.settings = settings or MonitorSettings()
        if overrides:
            self.settings = MonitorSettings(**{**asdict(self.settings), **overrides})
        s = self.settings
        if s.window < 4 or s.patience < 1:
            raise ValueError("monitor window must be >= 4 and patience >= 1")
        self.history: dict[str, deque] = {k: deque(maxlen=s.window) for k in self.SERIES}
        self.episodes = {k: _Episode(s.patience, s.patience) for k in KINDS}
        self.episodes["divergence"] = _Episode(1, 1)
        self.records = 0
        self.diversity_was_healthy = False
        self.diversity_healthy_run = 0  # consecutive records with diversity at or above collapse_ratio
        self.early_g_grad = 0.0  # largest g_grad_norm of the first `window` records
        self.diverging = False  # whether the last record was judged divergent
        self.troubled: list[str] = []  # what judged the last record bad (see `healthy`)
        self.zero_g = 0  # consecutive records whose g_grad_norm was exactly 0
        self.best_coverage = 0.0
        self.coverage_was_healthy = False  # probe_classes held at min_classes or more for `patience` records
        self.coverage_healthy_run = 0
        self.stage_changes = 0  # fade-ins noted (for the state and the tests)
        self.lr_scale = 1.0  # the Trainer's learning-rate multiplier (rollbacks), for suggestions
        self.unsupported: tuple[str, ...] = ()  # the family's Objective.unsupported_advice
        self.g_adversarial = "g_loss"  # the family's Objective.g_adversarial_key
        # the family logs d_real / d_fake as raw scores (Objective.logs_d_probabilities is False),
        # set by the Trainer: then "D wins outright" is judged on D's accuracy (see _vanishing)
        self.d_raw = False
        self.checks: dict[str, Callable[[dict], tuple[bool, dict] | None]] = {
            "divergence": self._divergence, "mode_collapse": self._mode_collapse,
            "vanishing_gradients": self._vanishing, "oscillation": self._oscillation,
        }
        self.suggest = {"divergence": _suggest_divergence, "mode_collapse": _suggest_collapse,
                        "vanishing_gradients": _suggest_vanishing,
                        "oscillation": _suggest_oscillation}

    @classmethod
    def from_config(cls, cfg: Any) -> "Monitor":
        """Thresholds from cfg.monitor (a dataclass or dict with MonitorSettings' names), if any."""
        section = _cfg(cfg, "monitor")
        names = {f.name for f in fields(MonitorSettings)}
        values = {} if section is None else {
            n: _cfg(section, n) for n in names if _cfg(section, n) is not None}
        return cls(cfg, MonitorSettings(**values))

    # ------------------------------------------------------------------ stream

    def update(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        record = dict(record)
        # Judge against the history before this record joins it (the median excludes a spike).
        verdicts = {kind: check(record) for kind, check in self.checks.items()}
        self.diverging = bool((verdicts.get("divergence") or (False,))[0])  # this record
        vanishing = verdicts.get("vanishing_gradients")
        if self.episodes["vanishing_gradients"].active and vanishing is not None and not vanishing[0]:
            self.history["g_grad_norm"].clear()  # G recovers: its vanished norms are no scale for it
        self._remember(record, diverging=self.diverging)
        g = record.get("g_grad_norm")
        self.zero_g = self.zero_g + 1 if _finite(g) and g == 0 else 0
        self.troubled = sorted(kind for kind, v in verdicts.items() if v is not None and v[0])
        for key, v in self._logit_losses(record):
            if abs(v) > self.settings.d_loss_healthy * (G_HEALTHY_FACTOR if key != "d_loss" else 1):
                self.troubled.append(key)
        events = []
        for kind in KINDS:
            verdict = verdicts[kind]
            if verdict is None:
                continue
            bad, evidence = verdict
            episode = self.episodes[kind]
            fired = episode.update(bad)
            if (kind == "vanishing_gradients" and bad and not fired and not episode.active
                    and self.zero_g >= min(2, self.settings.patience)):
                episode.active = fired = True  # no gradient reaches G at all: two records suffice
            if fired:
                events.append(self._event(kind, record, evidence))
        return events

    @property
    def healthy(self) -> bool:
        """Whether the last record is one to roll back to: finite (not divergent), no detector
        judged it bad (before `patience` too), and, for a logit loss, d_loss within
        d_loss_healthy (healthy runs of every preset stay below 2) and G's adversarial loss within
        G_HEALTHY_FACTOR times that (healthy runs reach 19). The Trainer rolls back to
        the newest checkpoint at or before the last healthy record: a bf16 run at lr 1 with
        d_loss 574 and no G gradient had been rolled back to that broken step."""
        return not self.diverging and not self.troubled

    def _remember(self, record: dict, *, diverging: bool = False) -> None:
        self.records += 1
        for key in self.SERIES:
            if _finite(record.get(key)):
                self.history[key].append(float(record[key]))
        g = record.get("g_grad_norm")
        # an exploding record is no reference for 'vanishing': against an early 2.8e16, a norm of
        # 1.4e10 had been called 5e-07 of its early value
        if _finite(g) and self.records <= self.settings.window and not diverging:
            self.early_g_grad = max(self.early_g_grad, float(g))
        div, real = record.get("diversity"), record.get("diversity_real")
        if _finite(div) and _finite(real) and real > 0:
            # armed by a ratio that holds, not by one record that touches the threshold
            healthy = div >= self.settings.collapse_ratio * real
            self.diversity_healthy_run = self.diversity_healthy_run + 1 if healthy else 0
            if self.diversity_healthy_run >= self.settings.patience:
                self.diversity_was_healthy = True
        c = record.get("probe_classes")
        if _finite(c):
            self.best_coverage = max(self.best_coverage, float(c))
            # armed as diversity is: a young G that touched 4 classes once (2, 3, 4, 3, 2) had
            # been called collapsed at step 210 of a healthy run
            self.coverage_healthy_run = self.coverage_healthy_run + 1 if c >= self.settings.min_classes else 0
            if self.coverage_healthy_run >= self.settings.patience:
                self.coverage_was_healthy = True

    def _event(self, kind: str, record: dict, evidence: dict) -> dict[str, Any]:
        message = evidence.pop("message")
        if self.lr_scale != 1.0:  # the Trainer's rollbacks scaled the learning rates down
            evidence["lr_scale"] = _round(self.lr_scale)
        return {"event": kind, "step": record.get("step"), "message": message,
                "evidence": evidence, "suggestion": self._advice(self.suggest[kind](self.cfg, evidence))}

    def _advice(self, suggestion: str) -> str:
        """The suggestion without the settings the family refuses."""
        return _join(*(part for part in suggestion.split("; ")
                       if not any(key in part for key in self.unsupported)))

    def note(self, event: Mapping[str, Any]) -> None:
        """A known event (see the module docstring): a fade-in from the objective, or a resume
        that changes what sets the scale of losses and grad norms, starts a new regime, so the
        windows that judge jumps against the recent past start over."""
        evidence = event.get("evidence") or {}
        fade_in = event.get("event") == "stage" and evidence.get("phase") == "fade_in"
        regime = event.get("event") == "config_change" and any(
            key.startswith(REGIME_KEYS) for key in evidence)
        if fade_in or regime:
            for series in self.history.values():
                series.clear()
            for kind in ("oscillation", "vanishing_gradients"):
                self.episodes[kind].bad = 0
        if fade_in:
            self.stage_changes += 1

    def after_rollback(self) -> None:
        """After the Trainer restored an earlier checkpoint: re-arm every detector and clear the
        loss windows (they hold the run that went wrong). Grad-norm scales are kept."""
        for key in ("d_loss", "g_loss"):
            self.history[key].clear()
        for episode in self.episodes.values():
            episode.bad = episode.good = 0
            episode.active = False
        self.zero_g = 0

    def _logit_losses(self, r: Mapping[str, Any]) -> list[tuple[str, float]]:
        """(key, value) of D's loss and G's adversarial loss where the loss is no critic's (whose
        scores are unbounded by design). G's counts too: a D that wins with logits of -2000 on
        the fakes has a small d_loss but a g_loss of 2000 (lr 0.5 had trained on so to the end).
        A family whose g_loss adds reconstruction terms is judged on its adversarial part
        (``g_adversarial``), and not while that is not logged (a vocoder's mel-only warm-up)."""
        if _cfg(self.cfg, KEYS["loss"]) in CRITIC_LOSSES:
            return []
        return [(k, float(r[k])) for k in ("d_loss", self.g_adversarial) if _finite(r.get(k))]

    # ------------------------------------------------------------------ detectors
    # Each returns None (cannot judge), or (bad, evidence) with evidence["message"] a summary.

    def _divergence(self, r: dict) -> tuple[bool, dict] | None:
        s = self.settings
        bad_keys = sorted(k for k, v in r.items() if k != "step" and (
            v is None or (isinstance(v, float) and not math.isfinite(v))))
        if r.get("nonfinite"):
            bad_keys = sorted(set(bad_keys) | {"nonfinite"})
        if bad_keys:
            return True, {"message": f"non-finite values: {', '.join(bad_keys)}",
                          "nonfinite": bad_keys}
        for key in self.SERIES:
            v = r.get(key)
            if _finite(v) and abs(v) > s.explode_abs:
                return True, {"message": f"{key} is {v:.4g} (limit {s.explode_abs:g})",
                              key: _round(v), "limit": s.explode_abs}
        for key, v in self._logit_losses(r):
            if abs(v) > s.d_loss_abs:
                return True, {"message": f"{key} is {v:.4g}: a logit loss this large means D's outputs are "
                                         f"in the thousands (limit {s.d_loss_abs:g})",
                              key: _round(v), "limit": s.d_loss_abs}
        for key in ("g_grad_norm", "d_grad_norm"):
            v, past = r.get(key), self.history[key]
            if key == "g_grad_norm" and self.episodes["vanishing_gradients"].active:
                continue  # a vanished median is no scale for G's recovery (module docstring)
            if _finite(v) and len(past) >= 4:
                median = statistics.median(past)
                # and large in absolute terms: a D recovering from saturation had gone from a
                # median of 0.0028 to 0.41 (148x) and been rolled back to step 0, while
                # healthy grad norms of its preset are 7-18
                if median > 0 and v > s.explode_factor * median and v > s.explode_min:
                    return True, {"message": f"{key} {v:.4g} is {v / median:.0f}x its median "
                                             f"{median:.4g} over the last {len(past)} records",
                                  key: _round(v), "median": _round(median),
                                  "factor": _round(v / median)}
        return False, {"message": ""}

    def _mode_collapse(self, r: dict) -> tuple[bool, dict] | None:
        s = self.settings
        verdict = None
        covered, probe_real = r.get("probe_classes"), r.get("probe_classes_real")
        step = r.get("step") or 0
        reference = self.best_coverage
        if _finite(probe_real):
            if probe_real < s.min_classes:  # the classifier does not see classes in this data
                covered = None
            elif step >= s.warmup_steps:
                reference = max(reference, float(probe_real))
        if _finite(covered) and reference > 0 and (step >= s.warmup_steps or self.coverage_was_healthy):
            bad = covered < s.coverage_ratio * reference
            drop = ("real data's" if reference == probe_real and reference > self.best_coverage
                    else "a best of")
            # a toy mixture's coverage counts its modes (probe.DiversityProbe), not a classifier's classes
            unit = "modes" if str(_cfg(self.cfg, "data.name", "")).startswith("toy:") else "classes"
            verdict = (bad, {"message": f"samples cover {covered:g} {unit} against {drop} "
                                        f"{reference:g}",
                             "probe_classes": covered, "best_coverage": self.best_coverage})
            for key in ("probe_classes_real", "classes_total"):
                if key in r:
                    verdict[1][key] = r[key]
            if bad:
                return verdict
        div, real = r.get("diversity"), r.get("diversity_real")
        if _finite(div) and _finite(real) and real > 0:
            ratio = div / real
            if self.diversity_was_healthy or step >= s.warmup_steps:
                bad = ratio < s.collapse_ratio
            else:  # too early to judge a low ratio: only identical samples of a G that learns
                g = r.get("g_grad_norm")
                bad = ratio < SAME_SAMPLES and not (_finite(g) and g <= s.vanish_floor)
            why = (f"threshold {_percent(s.collapse_ratio)}" if ratio >= SAME_SAMPLES
                   else "every sample is the same")
            return bad, {
                "message": f"sample diversity is {_percent(ratio)} of real-data diversity ({why})",
                "diversity": _round(div), "diversity_real": _round(real), "ratio": _round(ratio)}
        return verdict

    def _vanishing(self, r: dict) -> tuple[bool, dict] | None:
        s = self.settings
        g, d_fake = r.get("g_grad_norm"), r.get("d_fake")
        loss = _cfg(self.cfg, KEYS["loss"])
        if not (_finite(g) and _finite(d_fake)) or loss in CRITIC_LOSSES:
            return None
        acc = [r.get(k) for k in ("d_acc_real", "d_acc_fake") if _finite(r.get(k))]
        d_real = r.get("d_real")
        relative = _relativistic(loss)
        if relative or not self._scores_are_probabilities(loss):
            # the relativistic accuracy (see _relativistic), or the accuracy of a family whose raw
            # scores are on no [0, 1] scale, both halves logged
            d_wins = len(acc) == 2 and all(a >= s.win_accuracy for a in acc)
        else:
            d_wins = (d_fake <= s.win_d_fake and all(a >= s.win_accuracy for a in acc)
                      and (not _finite(d_real) or d_real >= s.win_accuracy))
        early = max(self.early_g_grad, g if self.records < s.window else 0.0)
        # vanish_abs: a D that wins from the first record on leaves an 'early' norm that had
        # already vanished (0.023 then 0.0017 against healthy 7-18 on dcgan-fashion-mnist)
        g_small = (g <= s.vanish_floor or g <= s.vanish_abs
                   or (early > 0 and g <= s.vanish_ratio * early))
        div, real = r.get("diversity"), r.get("diversity_real")
        if g <= s.vanish_floor and not d_wins and (
                not (_finite(div) and _finite(real) and real > 0) or div < s.collapse_ratio * real):
            # no gradient reaches G at all, and its samples are near-identical (or not probed):
            # the generator is stuck whoever wins (saturated or dead units, a learning rate far too high)
            evidence = {"message": f"G's gradient norm is {g:.3g}: the generator gets no learning signal"
                                   + (f" and its samples have {_percent(div / real)} of real-data diversity"
                                      if _finite(div) and _finite(real) and real > 0 else ""),
                        "g_grad_norm": _round(g), "d_fake": _round(d_fake)}
            return True, evidence
        fell = (f"is {g:.3g} ({_percent(g / early)} of its early {early:.3g})"
                if early > 0 and g <= s.vanish_ratio * early else
                f"is {g:.3g} (at most monitor.vanish_abs {s.vanish_abs:g})" if s.vanish_floor < g <= s.vanish_abs
                else f"is {g:.3g}")
        how = (f"it ranks {_percent(acc[0])} of reals above the mean fake score and {_percent(acc[1])} of fakes "
               f"below the mean real score" if relative and len(acc) == 2 else
               f"it scores {_percent(acc[0])} of reals real and {_percent(acc[1])} of fakes fake"
               if len(acc) == 2 and not self._scores_are_probabilities(loss) else f"D(G(z)) = {d_fake:.3g}")
        evidence = {"message": f"D wins outright ({how}) and G's gradient norm {fell}",
                    "g_grad_norm": _round(g), "early_g_grad_norm": _round(early),
                    "d_fake": _round(d_fake)}
        for k in ("d_real", "d_acc_real", "d_acc_fake"):
            if _finite(r.get(k)):
                evidence[k] = _round(r[k])
        return d_wins and g_small, evidence

    def _scores_are_probabilities(self, loss_name) -> bool:
        """Whether d_real / d_fake sit on the [0, 1] scale that win_d_fake and win_accuracy are
        thresholds on: probabilities, or the raw scores of least squares with targets 0 and 1
        (``losses.decision_threshold`` 0.5). A family logging raw logits or hinge scores
        (CycleGAN-VC at loss.name=nonsaturating) had D(G(z)) = 0.04, a probability of 0.51, read
        as D winning outright."""
        if not self.d_raw:
            return True
        try:
            return losses.decision_threshold(losses.LOSSES.get(loss_name)) == 0.5
        except ConfigError:  # a name no loss is registered under here: judged on accuracy
            return False

    def _oscillation(self, r: dict) -> tuple[bool, dict] | None:
        s = self.settings
        judged = False
        for key in ("d_loss", "g_loss"):
            v = r.get(key)
            if not _finite(v) or len(self.history[key]) < s.window - 1:
                continue
            judged = True
            values = list(self.history[key])[-(s.window - 1):] + [float(v)]
            stats = oscillation_stats(values, amplitude=s.osc_amplitude,
                                      crossings=s.osc_crossings)
            if stats is not None:
                return True, {"message": f"{key} swings back and forth ({stats['sign_changes']} "
                                         f"reversals, peak-to-peak {stats['swing']:.3g}) over "
                                         f"{len(values)} intervals without a trend",
                              "series": key, **stats}
        return (False, {"message": ""}) if judged else None

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Plain ints, floats and lists: loads with torch.load(weights_only=True)."""
        return {"settings": asdict(self.settings), "records": self.records,
                "diversity_was_healthy": self.diversity_was_healthy,
                "diversity_healthy_run": self.diversity_healthy_run,
                "early_g_grad": self.early_g_grad, "best_coverage": self.best_coverage,
                "coverage_was_healthy": self.coverage_was_healthy,
                "coverage_healthy_run": self.coverage_healthy_run,
                "stage_changes": self.stage_changes,
                "history": {k: list(v) for k, v in self.history.items()},
                "episodes": {k: e.state() for k, e in self.episodes.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.records = int(state["records"])
        self.diversity_was_healthy = bool(state["diversity_was_healthy"])
        self.diversity_healthy_run = int(state.get("diversity_healthy_run", 0))
        self.early_g_grad = float(state["early_g_grad"])
        self.best_coverage = float(state["best_coverage"])
        self.coverage_was_healthy = bool(state.get("coverage_was_healthy", False))
        self.coverage_healthy_run = int(state.get("coverage_healthy_run", 0))
        self.stage_changes = int(state.get("stage_changes", 0))
        for key, values in state["history"].items():
            if key in self.history:
                self.history[key].clear()
                self.history[key].extend(float(v) for v in values)
        for kind, s in state["episodes"].items():
            if kind in self.episodes:
                self.episodes[kind].load(s)
