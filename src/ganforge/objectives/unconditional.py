"""Unconditional generation: G(z) -> data, D(x) -> logit (Goodfellow et al. 2014, "Generative
Adversarial Nets"; DCGAN architecture from Radford et al. 2016)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from .. import losses, models
from . import OBJECTIVES, Objective, Phase


@OBJECTIVES.register("unconditional")
class UnconditionalGAN(Objective):
    ema = ["G"]

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        self.z_dim = cfg.model.z_dim
        shape = dict(resolution=cfg.data.resolution, channels=cfg.data.channels)
        self.nets = {
            "G": models.build_generator(cfg.model.name, z_dim=self.z_dim, width=cfg.model.g_width,
                                        **shape),
            "D": models.build_discriminator(cfg.model.name, width=cfg.model.d_width, **shape),
        }
        self.optimizers = {"G": ["G"], "D": ["D"]}
        self.phases = [
            Phase("D", optimizer="D", repeat=cfg.train.n_critic),
            # G needs no real data; reusing the last batch keeps one batch per D step.
            Phase("G", optimizer="G", fresh_batch=False),
        ]
        self.adv = losses.get_loss(cfg.loss.name)

    def _z(self, n: int, generator: torch.Generator) -> Tensor:
        # Noise is drawn on the generator's device (a CPU generator gives the same samples everywhere).
        return torch.randn(n, self.z_dim, generator=generator, device=generator.device).to(self.device)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        real = batch["real"]  # [N, C, H, W] in [-1, 1]
        G, D = self.nets["G"], self.nets["D"]
        z = self._z(real.shape[0], self.rng)
        if phase == "D":
            with torch.no_grad():
                fake = G(z)
            d_real, d_fake = D(real), D(fake)  # logits [N]
            loss = self.adv.d(real=d_real, fake=d_fake)
            return {"loss": loss, "d_loss": loss.detach(),
                    "d_real": torch.sigmoid(d_real.detach().float()).mean(),
                    "d_fake": torch.sigmoid(d_fake.detach().float()).mean()}
        if phase == "G":
            d_fake = D(G(z))
            loss = self.adv.g(fake=d_fake)
            return {"loss": loss, "g_loss": loss.detach()}
        raise ValueError(f"unknown phase {phase}")

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        G = (nets or {}).get("G", self.nets["G"])
        return G(self._z(n, generator)).float().clamp(-1, 1)
