"""Class-conditional generation: G(z, y) -> image of class y, D(x, y) -> score.

Conditionings (networks in ganforge.models.conditional): the generator by label embedding joined
to z (Mirza & Osindero 2014) or by conditional batch norm (de Vries et al. 2017); the
discriminator by one-hot concatenation, by projection (Miyato & Koyama 2018) or by an auxiliary
classifier (AC-GAN, Odena et al. 2017). For AC-GAN the objective adds, with weight
``cond.aux_weight``, the cross-entropy of D's class head on real and on fake images to D's loss
and on fake images to G's loss (the paper's L_C, which both players maximise);
``cond.aux_fake_in_d=false`` drops the fake term from D's loss, so D's class head learns from
real images only and cannot learn to accept whatever G draws for a label.

Fakes in a step are generated for the labels of the real batch, so generated classes follow the
data's class frequencies. Everything else (losses, R1/R2, gradient penalties, DiffAugment/ADA,
instance noise, phases, EMA) behaves as in the unconditional objective, whose helpers this one
inherits. The classes (count and names) come from the dataset and are saved with every
checkpoint (``extra_state``), so ``ganforge.load(run)`` rebuilds the model from the run alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..errors import ConfigError
from ..models import spectral_norm_
from ..models.conditional import ConditionalDiscriminator, ConditionalGenerator
from ..labels import dataset_classes, labels_tensor
from .base import register_objective
from .unconditional import TINY_TRAIN, UnconditionalGAN, gan_optimizers, write_image_folder



@dataclass
class ConditionalConfig:
    """Conditional GANs (objective=conditional; ganforge.objectives.conditional). The classes and
    their names come from the labeled dataset and are saved in every checkpoint."""

    g_cond: str = "concat"  # concat (label embedding joined to z) | cbn (conditional batch norm)
    d_cond: str = "projection"  # concat (one-hot planes) | projection (Miyato & Koyama 2018) | acgan
    d_concat_at: str = "input"  # d_cond=concat: label planes at D's input only, or "every" convolution
    embed_dim: int = 0  # size of G's label embedding for g_cond=concat; 0: the number of classes
    aux_weight: float = 1.0  # AC-GAN: weight of the auxiliary classification loss, for D and G
    aux_fake_in_d: bool = True  # AC-GAN: D's class loss also on fakes (the paper); false: reals only


class _Bound(nn.Module):
    """D with the labels fixed, as the one-argument critic the regularizers call."""

    def __init__(self, D: nn.Module, labels: Tensor):
        super().__init__()
        self.D, self.labels = D, labels

    def forward(self, x: Tensor) -> Tensor:
        return self.D(x, self.labels)


@register_objective("conditional")
class ConditionalGAN(UnconditionalGAN):
    ema = ["G"]
    sections = {"cond": ConditionalConfig}
    capabilities = frozenset({"sample", "sample_labels", "interpolate"})
    accepts_points = False
    unsupported_advice = ("model.pac",)

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, c, self.reg = cfg.model, cfg.cond, cfg.reg
        names = dataset_classes(cfg, data_info, otherwise="unconditional")
        k = len(names)
        if m.name != "dcgan":
            raise ConfigError(f"objective=conditional builds dcgan networks; set model.name=dcgan "
                              f"(got '{m.name}')")
        if m.pac > 1:
            raise ConfigError("model.pac (PacGAN) is not supported with objective=conditional; set model.pac=1")
        if m.init is not None:  # the conditional networks' init is DCGAN's own
            raise ConfigError("model.init is not supported with objective=conditional; remove it")
        if c.aux_weight < 0 or c.embed_dim < 0:
            raise ConfigError(f"cond.aux_weight and cond.embed_dim must be >= 0, got {c.aux_weight} "
                              f"and {c.embed_dim}")
        self.num_classes, self.class_names = k, names
        self.z_dim, self.point_dim = m.z_dim, None
        self.aux_weight = c.aux_weight if c.d_cond == "acgan" else 0.0
        self.aux_fake_in_d = c.aux_fake_in_d
        res, ch = cfg.data.resolution, cfg.data.channels
        G = ConditionalGenerator(resolution=res, channels=ch, z_dim=m.z_dim, width=m.g_width,
                                 num_classes=k, cond=c.g_cond, embed_dim=c.embed_dim, head=m.g_head)
        D = ConditionalDiscriminator(resolution=res, channels=ch, width=m.d_width, num_classes=k,
                                     cond=c.d_cond, norm=m.d_norm, mbstd=m.mbstd_group,
                                     head=m.d_head, concat_at=c.d_concat_at)
        if m.g_spectral_norm:
            spectral_norm_(G)
        if m.d_spectral_norm:
            spectral_norm_(D)
        self.nets = {"G": G, "D": D}
        self.optimizers = gan_optimizers(cfg)
        self.setup_training(cfg)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "labeled", n=4, size=8, channels=1,
                                    classes=("a", "b"))
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
                "model": {"name": "dcgan", "z_dim": 4, "g_width": 4, "d_width": 4},
                "cond": {"g_cond": "cbn", "d_cond": "acgan"},
                "train": dict(TINY_TRAIN), "monitor": {"probe_size": 4}}

    # ------------------------------------------------------------------ phases

    def _aux(self, class_logits: Tensor | None, labels: Tensor) -> Tensor:
        """AC-GAN's class cross-entropy (0 without an auxiliary head)."""
        if class_logits is None or self.aux_weight == 0:
            return labels.new_zeros((), dtype=torch.float32)
        return F.cross_entropy(class_logits.float(), labels)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        real, labels = batch["real"], batch.get("labels")  # [N, C, H, W], int64 [N]
        if labels is None:
            raise ConfigError("objective=conditional got a batch without labels; use a labeled dataset")
        G, D = self.nets["G"], self.nets["D"]
        z = self._z(real.shape[0], self.rng)
        r = self.reg
        if phase == "D":
            with torch.no_grad():
                fake = G(z, labels)
            real_in, fake_in = self.d_input(real), self.d_input(fake)
            r1_now = r.r1 > 0 and not self.lazy
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real, c_real = D.scores(real_in, labels)
            d_fake, c_fake = D.scores(fake_in, labels)
            loss = self.adv.d(real=d_real, fake=d_fake, **self.d_kwargs)
            out = {"d_loss": loss.detach(), **self._scores(d_real, d_fake)}
            if self.aux_weight:
                aux = self._aux(c_real, labels)
                if self.aux_fake_in_d:
                    aux = aux + self._aux(c_fake, labels)
                loss = loss + self.aux_weight * aux
                out["d_aux"] = aux.detach()
                out["d_class_acc_real"] = (c_real.argmax(1) == labels).float().mean()
            penalty, terms = self.d_penalties(_Bound(D, labels), real_in, fake_in, d_real, r1_now)
            return {"loss": loss + penalty, **{k: v.detach() for k, v in out.items()}, **terms}
        if phase == "Dreg":
            return self.lazy_penalties(_Bound(D, labels), real, lambda: G(z, labels))
        if phase == "G":
            d_fake, c_fake = D.scores(self.d_input(G(z, labels)), labels)
            d_real = D(self.d_input(real), labels) if losses.g_needs_real(self.adv) else None
            loss = self.adv.g(fake=d_fake, real=d_real)
            out = {"g_loss": loss.detach()}
            if self.aux_weight:
                aux = self._aux(c_fake, labels)
                loss = loss + self.aux_weight * aux
                out["g_aux"] = aux.detach()
            return {"loss": loss, **out}
        raise ValueError(f"unknown phase {phase}")

    # ------------------------------------------------------------------ state

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "num_classes": self.num_classes,
                "class_names": list(self.class_names)}

    # ------------------------------------------------------------------ sampling

    def labels_for(self, n: int, labels: Tensor | Sequence[int] | int | None) -> Tensor:
        """int64 [n] on the objective's device: given labels (one int for all), or the grid
        layout of ``grid_labels`` (one class per row) when None."""
        return labels_tensor(n, labels, self.class_names).to(self.device)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None,
               labels: Tensor | Sequence[int] | int | None = None) -> Tensor:
        """n images [n, C, H, W] in [-1, 1] of the given classes (default: one class per grid row)."""
        G = (nets or {}).get("G", self.nets["G"])
        y = self.labels_for(n, labels)
        return G(self._z(n, generator), y).float().clamp(-1, 1)
