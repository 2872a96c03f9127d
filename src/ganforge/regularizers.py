r"""Discriminator regularizers: gradient penalties, weight clipping, instance noise.

Each penalty is a function of the discriminator and its inputs that returns the *unweighted*
penalty (a scalar); the objective multiplies it by the configured weight. Gradients are taken with
``create_graph=True`` so that the penalty itself can be minimized (double backpropagation).

WGAN weight clipping (Arjovsky et al. 2017, "Wasserstein GAN", Algorithm 1)
    after every critic step: w <- clip(w, -c, c), c = 0.01, with RMSprop (lr 5e-5) and n_critic 5.

WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", eq. 3)
    x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample
    GP    = E[(||grad_x D(x_hat)||_2 - 1)^2]                (weight lambda = 10)

DRAGAN (Kodali et al. 2017, "On Convergence and Stability of GANs", sec. 5; the authors' code)
    x_p   = x + 0.5 std(x) u, u ~ U[0, 1]   (a perturbation of the real data)
    x_hat = a x + (1 - a) x_p, a ~ U[0, 1] per sample
    DRAGAN = E[(||grad_x D(x_hat)||_2 - 1)^2]               (weight lambda = 10)

R1 / R2 (Mescheder, Geiger & Nowozin 2018, "Which Training Methods for GANs do actually
Converge?", eq. 9-10)
    R1 = E_real[||grad_x D(x)||^2],  R2 = E_fake[||grad_x D(x)||^2]; the loss adds gamma/2 R.
    Lazy regularization (Karras et al. 2020, "Analyzing and Improving the Image Quality of
    StyleGAN", sec. 3.1): apply every k steps with the penalty multiplied by k.

Instance noise (Sonderby et al. 2017, "Amortised MAP Inference for Image Super-resolution",
app. C; Arjovsky & Bottou 2017): N(0, sigma_t^2) is added to every input of D, real and fake,
with sigma_t annealed linearly to 0 so that the supports of real and fake overlap early on.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

Critic = Callable[[Tensor], Tensor]  # [N, ...] -> scores [N] (or [N / pac] with packing)


def _rand_like_batch(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) of shape [N, 1, 1, ...] broadcasting over one sample of x."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)


def input_grad(scores: Tensor, inputs: Tensor) -> Tensor:
    """d(sum scores)/d inputs with a graph, so a penalty on it can be backpropagated."""
    (grad,) = torch.autograd.grad(scores.float().sum(), inputs, create_graph=True)
    return grad


def _sq_norms(grad: Tensor) -> Tensor:  # [N, ...] -> [N]
    return grad.float().reshape(grad.shape[0], -1).square().sum(1)


def gradient_penalty(D: Critic, real: Tensor, fake: Tensor, *,
                     generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2] on random interpolates of real and fake [N, ...]."""
    eps = _rand_like_batch(real, generator)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    norms = _sq_norms(input_grad(D(x_hat), x_hat)).add(1e-12).sqrt()
    return (norms - 1).square().mean()


def dragan_penalty(D: Critic, real: Tensor, *, scale: float = 0.5,
                   generator: torch.Generator | None = None) -> Tensor:
    """DRAGAN: E[(||grad D(x_hat)|| - 1)^2] around the real data [N, ...]."""
    real = real.detach()
    noise = torch.rand(real.shape, generator=generator, device=real.device, dtype=real.dtype)
    perturbed = real + scale * real.std() * noise
    alpha = _rand_like_batch(real, generator)
    x_hat = (alpha * real + (1 - alpha) * perturbed).requires_grad_(True)
    norms = _sq_norms(input_grad(D(x_hat), x_hat)).add(1e-12).sqrt()
    return (norms - 1).square().mean()


def grad_sq_norm(scores: Tensor, inputs: Tensor) -> Tensor:
    """E[||grad_x D(x)||^2]: R1 when inputs are reals, R2 when fakes. ``inputs`` must have had
    requires_grad set before ``scores = D(inputs)`` was computed."""
    return _sq_norms(input_grad(scores, inputs)).mean()


def r1_penalty(D: Critic, real: Tensor) -> Tensor:
    """R1 = E_real[||grad_x D(x)||^2] (unweighted; the loss adds gamma/2 R1)."""
    x = real.detach().requires_grad_(True)
    return grad_sq_norm(D(x), x)


r2_penalty = r1_penalty  # the same penalty, evaluated on fakes


@torch.no_grad()
def clip_weights_(net: nn.Module, bound: float) -> None:
    """WGAN weight clipping: every parameter of ``net`` clamped to [-bound, bound] in place."""
    params = [p for p in net.parameters()]
    if params:
        torch._foreach_clamp_min_(params, -bound)
        torch._foreach_clamp_max_(params, bound)


def instance_noise_std(sigma0: float, anneal_steps: int, step: int) -> float:
    """sigma_t = sigma0 (1 - step / anneal_steps), floored at 0; constant when anneal_steps is 0."""
    if anneal_steps <= 0:
        return sigma0
    return sigma0 * max(0.0, 1.0 - step / anneal_steps)
