"""LAPGAN: a Laplacian pyramid of adversarial networks (Denton, Chintala, Szlam & Fergus 2015,
"Deep Generative Image Models using a Laplacian Pyramid of Adversarial Networks"); networks in
ganforge.models.lapgan, the pyramid in ganforge.models.pyramid.

With L = ``lapgan.levels`` the real image I_{L-1} (data.resolution) has the Gaussian pyramid
I_0 (coarsest, data.resolution / 2**(L-1)), ..., I_{L-1}. Level 0 is a plain GAN on I_0. Level
k >= 1 is a conditional GAN on the band-pass residual h_k = I_k - u(I_{k-1}): G_k(u(I_{k-1}),
noise) produces a residual, D_k judges u(I_{k-1}) + h conditioned on u(I_{k-1}). As in the
paper (sec. 3.2) the levels train independently, each on the real image's own pyramid; here in
one run, on the same batch, with one optimizer pair per level (G0/D0, G1/D1, ...) and phases
D0, G0, D1, G1, ... (each D phase repeated train.n_critic times).

Sampling runs the chain coarse to fine (sec. 3.1): I~_0 = G_0(z), I~_k = u(I~_{k-1}) +
G_k(u(I~_{k-1}), noise_k); ``sample(n, return_levels=True)`` returns every I~_k.

``objective=lapgan-conditional`` adds the class to every level (sec. 3.2's class-conditional
model): a one-hot vector at level 0, a plane computed from it at the residual levels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import losses
from ..errors import ConfigError
from ..labels import dataset_classes, labels_tensor
from ..latents import normal
from ..models import lapgan as nets_mod
from ..models.pyramid import gaussian_pyramid, upsample
from .base import (Objective, OptimizerSpec, Phase, cached_module, refuse_unused_model_settings,
                   refuse_unused_sections, register_objective)
from .unconditional import TINY_TRAIN, write_image_folder


@dataclass
class LAPGANConfig:
    """Laplacian pyramid GANs (objective=lapgan or lapgan-conditional; ganforge.objectives.lapgan).
    model.g_width / d_width are the channels of the residual levels' convolutions."""

    levels: int = 3  # pyramid levels; the coarsest is data.resolution / 2**(levels-1) (32: 8, 16, 32)
    base_width: int = 512  # hidden units of the fully connected level-0 G and D


def level_sizes(resolution: int, levels: int) -> list[int]:
    """[coarsest, ..., resolution]; ConfigError when ``levels`` does not fit ``resolution``.
    The coarsest must be even because level 1's D (two stride-2 convolutions, then a linear layer
    of (size // 4)**2 positions) needs twice it divisible by 4; >= 4 px keeps level 0 an image.
    ``check_run`` calls it before the data is read, ``__init__`` again for a loaded run."""
    fits = [k for k in range(2, 8) if resolution % 2 ** k == 0 and resolution // 2 ** (k - 1) >= 4]
    if levels < 2:  # one level is a plain GAN, no pyramid: the coarsest rule is not what fails
        hint = (f"use lapgan.levels in {fits}" if fits
                else "use lapgan.levels=2 or 3 with data.resolution=32 (or 16, 64)")
        raise ConfigError(f"lapgan.levels={levels} does not fit: LAPGAN needs at least 2 levels (a GAN "
                          f"on the coarsest image, then one residual level per doubling); {hint}")
    if resolution % 2 ** levels or resolution // 2 ** (levels - 1) < 4:
        hint = f"use lapgan.levels in {fits}" if fits else "use data.resolution=32 (or 16, 64)"
        raise ConfigError(f"lapgan.levels={levels} does not fit data.resolution={resolution}: every "
                          f"level halves it, the coarsest must be an even size >= 4; {hint}")
    return [resolution // 2 ** (levels - 1 - k) for k in range(levels)]


@register_objective("lapgan")
class LAPGAN(Objective):
    sections = {"lapgan": LAPGANConfig}
    capabilities = frozenset({"sample", "levels"})
    unsupported_advice = ("model.", "reg.", "augment.")
    conditional = False

    @classmethod
    def logs_d_probabilities(cls, config: Mapping[str, Any]) -> bool | None:
        """Each level's d_real_L / d_fake_L are the means of D's raw outputs, whatever the loss."""
        return False

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        if new:  # each level trains with loss.name only
            refuse_unused_model_settings(cfg, {"z_dim", "g_width", "d_width"})
            refuse_unused_sections(cfg)
        level_sizes(cfg.data.resolution, cfg.lapgan.levels)  # before the data is read: it needs none

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, p = cfg.model, cfg.lapgan
        self.sizes = level_sizes(cfg.data.resolution, p.levels)  # again: a loaded run skips check_run
        self.z_dim, self.channels = m.z_dim, cfg.data.channels
        k = self._classes(cfg, data_info)
        self.nets = {"G0": nets_mod.BaseGenerator(size=self.sizes[0], channels=self.channels,
                                                  z_dim=m.z_dim, width=p.base_width, num_classes=k),
                     "D0": nets_mod.BaseDiscriminator(size=self.sizes[0], channels=self.channels,
                                                      width=p.base_width, num_classes=k)}
        for level, r in enumerate(self.sizes[1:], start=1):
            self.nets[f"G{level}"] = nets_mod.ResidualGenerator(
                resolution=r, channels=self.channels, width=m.g_width, num_classes=k)
            self.nets[f"D{level}"] = nets_mod.ResidualDiscriminator(
                resolution=r, channels=self.channels, width=m.d_width, num_classes=k)
        self.optimizers, self.phases = {}, []
        for level in range(len(self.sizes)):
            g, d = f"G{level}", f"D{level}"
            self.optimizers[g] = OptimizerSpec([g], lr=cfg.optim.g_lr)
            self.optimizers[d] = OptimizerSpec([d], lr=cfg.optim.d_lr)
            # One batch per iteration: every level trains on the same images' pyramid.
            self.phases += [Phase(d, optimizer=d, repeat=cfg.train.n_critic, fresh_batch=level == 0),
                            Phase(g, optimizer=g, fresh_batch=False)]
        self.ema = [f"G{level}" for level in range(len(self.sizes))]
        self.adv = losses.get_loss(cfg.loss.name)
        self._cached: tuple[Tensor, list[Tensor]] | None = None

    def _classes(self, cfg, data_info) -> int:
        self.num_classes, self.class_names = 0, None
        return 0

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        name = "labeled16" if cls.conditional else "images16"  # not another family's folder
        folder = write_image_folder(workdir / name, n=4, size=16, channels=1,
                                    classes=("a", "b") if cls.conditional else ())
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 16, "channels": 1},
                "model": {"z_dim": 4, "g_width": 4, "d_width": 4},
                "lapgan": {"levels": 3, "base_width": 8},
                "train": dict(TINY_TRAIN), "monitor": {"probe_size": 4}}

    # ------------------------------------------------------------------ training

    def pyramid(self, real: Tensor) -> list[Tensor]:
        """The Gaussian pyramid of a batch, computed once for all the levels' phases."""
        if self._cached is None or self._cached[0] is not real:
            self._cached = (real, gaussian_pyramid(real, len(self.sizes)))
        return self._cached[1]

    def _noise(self, n: int, r: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, 1, r, r, generator=generator, device=generator.device).to(self.device)

    def _z(self, n: int, generator: torch.Generator) -> Tensor:
        return normal((n, self.z_dim), generator).to(self.device)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        level, is_d = int(phase[1:]), phase[0] == "D"
        gauss = self.pyramid(batch["real"])
        labels = batch.get("labels") if self.num_classes else None
        if self.num_classes and labels is None:
            raise ConfigError(f"objective={self.name} got a batch without labels; use a labeled dataset")
        G, D = self.nets[f"G{level}"], self.nets[f"D{level}"]
        real = gauss[level]
        n = real.shape[0]
        if level == 0:
            def score(x):
                return D(x, labels)
            z = self._z(n, self.rng)
            make_fake = lambda: G(z, labels)  # noqa: E731
        else:
            up = upsample(gauss[level - 1])

            def score(x):
                return D(x, up, labels)
            noise = self._noise(n, up.shape[-1], self.rng)
            make_fake = lambda: up + G(up, noise, labels)  # noqa: E731
        tag = f"_{level}"
        if is_d:
            with torch.no_grad():
                fake = make_fake()
            d_real, d_fake = score(real), score(fake)
            loss = self.adv.d(real=d_real, fake=d_fake)
            return {"loss": loss, f"d_loss{tag}": loss.detach(),
                    f"d_real{tag}": d_real.detach().float().mean(),
                    f"d_fake{tag}": d_fake.detach().float().mean()}
        d_fake = score(make_fake())
        d_real = score(real) if losses.g_needs_real(self.adv) else None
        loss = self.adv.g(fake=d_fake, real=d_real)
        return {"loss": loss, f"g_loss{tag}": loss.detach()}

    # ------------------------------------------------------------------ outputs

    def labels_for(self, n: int, labels) -> Tensor | None:
        return None

    def export_module(self, nets: Mapping[str, nn.Module] | None = None) -> nets_mod.PyramidSampler:
        """The sampling chain of ``nets``' G0..Gk as one module (models.lapgan.PyramidSampler),
        the same instance for the same networks: ``sample`` runs through it, and
        ganforge.serve.graph records its call for export and batching."""
        gens = [(nets or {}).get(f"G{level}", self.nets[f"G{level}"]) for level in range(len(self.sizes))]
        return cached_module(self, tuple(gens),
                             lambda *g: nets_mod.PyramidSampler(list(g), self.sizes, self.channels))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None,
               labels: Tensor | Sequence[int] | int | None = None,
               return_levels: bool = False) -> Tensor | list[Tensor]:
        """n images [n, C, R, R] in [-1, 1] by the chain coarse to fine; ``return_levels``: the
        list of every level's images, [n, C, r_k, r_k] for r_k = sizes[k]. Drawn from
        ``generator``: z, then each residual level's noise, coarse to fine."""
        sampler = self.export_module(nets)
        y = self.labels_for(n, labels)
        z = self._z(n, generator)
        noise = sampler.pack_noise([self._noise(n, r, generator) for r in self.sizes[1:]])
        return sampler.levels(z, y, noise) if return_levels else sampler(z, y, noise)


@register_objective("lapgan-conditional")
class ConditionalLAPGAN(LAPGAN):
    capabilities = frozenset({"sample", "sample_labels", "levels"})
    conditional = True

    def _classes(self, cfg, data_info) -> int:
        self.class_names = dataset_classes(cfg, data_info, otherwise="lapgan")
        self.num_classes = len(self.class_names)
        return self.num_classes

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "num_classes": self.num_classes, "class_names": list(self.class_names)}

    def labels_for(self, n: int, labels) -> Tensor:
        return labels_tensor(n, labels, self.class_names).to(self.device)
