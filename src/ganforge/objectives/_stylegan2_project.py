"""GAN inversion of a StyleGAN2 run: find the latent whose image matches a real one (the
projector of Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN",
sec. 5 and app. D, in our own code).

Start from w_avg; optimize w (one w for every layer, ``space="w"``) or one w per layer
(``"w+"``) together with the per-layer noise maps, with Adam and a learning rate ramped up,
then down (cosine); Gaussian noise on w that fades over the first 3/4 of the steps explores
early. Loss = pixel MSE + perceptual distance (0.1 x the mean squared difference of the dataset
classifier's features, ``ganforge.metrics.ppl.float_forward``, when the run's dataset has one;
LPIPS/VGG16 weights are not available offline) + 1e5 x the noise maps' autocorrelation at every
scale (which stops the noise from absorbing the image). The noise maps are renormalized after
every step.
"""
from __future__ import annotations

import math
import signal
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import signals
from ..signals import Terminated, sigterm_interrupts

NOISE_REG = 1e5
# The mean squared difference of the classifier's 128 features, weighted against pixel MSE; their
# sum at weight 1 swamped the pixel term and projections of generated images drifted away (PSNR
# 8 dB after 200 steps against 21 dB with this weight, on a briefly trained 32 px run).
PERCEPTUAL_WEIGHT = 0.1
INITIAL_NOISE = 0.05  # of w's spread, fading to 0 at NOISE_RAMP of the steps
NOISE_RAMP, LR_RAMPUP, LR_RAMPDOWN = 0.75, 0.05, 0.25


class ProjectionInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a projection, with ``result``: the latent and image of the steps
    done so far ("steps" of them), for the caller to keep (ganforge project writes them, then
    exits 128 + ``signum``: 130 or 143)."""

    def __init__(self, result: dict, signum: int = signal.SIGINT):
        super().__init__(f"projection interrupted by {signal.Signals(signum).name} after {result['steps']} steps")
        self.result, self.signum = result, int(signum)


def noise_regularization(maps: list[Tensor]) -> Tensor:
    """Sum over maps and scales of the squared 1-pixel autocorrelations along x and y."""
    total = maps[0].new_zeros(())
    for n in maps:
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean() ** 2 + (n * torch.roll(n, 1, dims=2)).mean() ** 2
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


def learning_rate(t: float, base: float) -> float:
    """Base lr, ramped up over the first 5% and down (cosine) over the last 25% of t in [0, 1]."""
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / LR_RAMPUP)


def project(G, target: Tensor, *, space: str = "w", steps: int = 1000, lr: float = 0.1,
            features: Callable[[Tensor], Tensor] | None = None, seed: int = 0, snapshots: int = 8,
            log: Callable[[int, float], None] | None = None) -> dict:
    """Invert ``target`` (float [1, C, H, W] in [-1, 1] at G's resolution) -> {"ws" [L, D],
    "image" [1, C, H, W], "noise" [maps], "progress" [snapshots, C, H, W], "loss", "steps"}.
    Ctrl-C or SIGTERM raises ProjectionInterrupted with that result for the steps done so far."""
    gen = torch.Generator().manual_seed(seed)
    device = target.device
    with torch.no_grad():
        z = torch.randn(10000, G.z_dim, generator=gen).to(device)
        w = G.mapping(z, None if not G.num_classes else torch.zeros(10000, dtype=torch.long, device=device))
        w_avg = w.mean(0)
        w_std = float((w - w_avg).square().sum(1).mean().sqrt())
    L = G.num_ws
    start = w_avg.view(1, 1, -1).repeat(1, 1 if space == "w" else L, 1)
    w_opt = start.clone().requires_grad_(True)
    noise = [torch.randn(s, generator=gen).to(device).requires_grad_(True) for s in G.synthesis.noise_shapes(1)]
    signals.before_first_optimizer()
    opt = torch.optim.Adam([w_opt] + noise, betas=(0.9, 0.999), lr=lr)
    target_features = features(target) if features is not None else None
    marks = {int(round(k * (steps - 1) / max(snapshots - 1, 1))) for k in range(snapshots)}
    progress, loss_value, done, snapped = [], float("nan"), 0, -1  # snapped: the steps done at the last snapshot
    try:
        with sigterm_interrupts():
            for step in range(steps):
                t = step / steps
                w_noise_scale = w_std * INITIAL_NOISE * max(0.0, 1.0 - t / NOISE_RAMP) ** 2
                for group in opt.param_groups:
                    group["lr"] = learning_rate(t, lr)
                w_in = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
                image = G.synthesis(w_in.expand(1, L, -1), noise)
                loss = (image - target).square().mean()
                if target_features is not None:
                    loss = loss + PERCEPTUAL_WEIGHT * (features(image) - target_features).square().mean()
                loss = loss + NOISE_REG * noise_regularization(noise)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _renormalize(noise)
                loss_value, done = float(loss.detach()), step + 1
                if step in marks:
                    with torch.no_grad():
                        progress.append(G.synthesis(w_opt.expand(1, L, -1), noise).clamp(-1, 1))
                    snapped = done
                if log is not None and (step % 100 == 0 or step == steps - 1):
                    log(step, loss_value)
    except KeyboardInterrupt as exc:
        _renormalize(noise)  # the signal may have come between an update and the renormalization
        signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        raise ProjectionInterrupted(_result(G, w_opt, noise, progress, loss_value, done, snapped == done),
                                    signum) from None
    return _result(G, w_opt, noise, progress, loss_value, done, snapped == done)


@torch.no_grad()
def _renormalize(noise: list[Tensor]) -> None:
    for n in noise:  # zero mean, unit variance
        n.sub_(n.mean()).div_(n.square().mean().sqrt())


@torch.no_grad()
def _result(G, w_opt: Tensor, noise: list[Tensor], progress: list[Tensor], loss: float, steps: int,
            current: bool = False) -> dict:
    """project's result for the latent as it is after ``steps`` steps. Its image ends the progress
    snapshots unless the last one (``current``) is already of it: a projection interrupted after
    600 steps had shown only the step-0 snapshot, not the latent it kept."""
    ws = w_opt.expand(1, G.num_ws, -1)[0].detach()
    image = G.synthesis(ws.unsqueeze(0), noise).clamp(-1, 1)
    return {"ws": ws.cpu(), "image": image.cpu(), "noise": [n.detach().cpu() for n in noise],
            "progress": torch.cat(progress if progress and current else progress + [image]).cpu(), "loss": loss,
            "steps": steps}
