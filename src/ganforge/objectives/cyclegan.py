"""Unpaired image-to-image translation: CycleGAN (Zhu, Park, Isola & Efros 2017, "Unpaired
Image-to-Image Translation using Cycle-Consistent Adversarial Networks").

Two residual generators G_AB: A -> B and G_BA: B -> A (ganforge.models.resnet), two PatchGAN
discriminators D_A (real A against G_BA(b)) and D_B (real B against G_AB(a)), all under two
optimizers: "G" steps both generators, "D" both discriminators. With ``loss.name=lsgan`` (the
paper's least-squares loss, as the cyclegan-folder preset sets):

    G: g_adv(D_B(G_AB(a))) + g_adv(D_A(G_BA(b)))
       + lambda_cycle (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
       + lambda_cycle lambda_identity (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)
    D: d_adv(D_B(b), D_B(pool_B(G_AB(a)))) + d_adv(D_A(a), D_A(pool_A(G_BA(b))))

lambda_cycle = 10, lambda_identity = 0.5 (sec. 4 and 5.2 of the paper). ganforge's lsgan
generator loss is 1/2 (D - 1)^2, half of the reference code's MSE; the D loss
1/2 ((D(real) - 1)^2 + D(fake)^2) is the reference's halved D objective exactly.

The discriminators see a history of generated images (Shrivastava et al. 2017), ``ImagePool``:
with a full pool, each new image is shown with probability 1/2, otherwise a random stored image
is shown and replaced by the new one. The pool is saved with the checkpoint (exact resume).
The paper's learning-rate schedule (constant, then linear decay to 0 over the second half) is
``optim.lr_decay=linear optim.lr_decay_start=0.5``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from .. import losses
from ..data.pairs import a_channels, check_config
from ..errors import ConfigError
from ..models import spectral_norm_
from ..models.patchgan import PatchDiscriminator
from ..models.resnet import ResnetGenerator
from .base import OptimizerSpec, Phase, register_objective
from .pix2pix import TranslationFamily, check_input, preview_inputs, run_tiled, strip
from .unconditional import TINY_TRAIN, write_image_folder


class ImagePool:
    """A history of up to ``size`` generated images (Shrivastava et al. 2017, sec. 2.3).

    ``query(images, generator)``: while the pool is not full, each image is stored and returned
    as is. Once it is full, each image is, with probability 1/2, returned as is, and otherwise
    swapped with a uniformly chosen stored image, which is returned in its place. size 0: the
    images pass through unchanged.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    @torch.no_grad()
    def query(self, images: Tensor, generator: torch.Generator) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            u = torch.rand((), generator=generator, device=generator.device)
            if u < 0.5:
                out.append(image)
            else:
                j = int(torch.randint(self.size, (), generator=generator, device=generator.device))
                out.append(self.images[j])
                self.images[j] = image.clone()
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.stack(self.images).cpu() if self.images else torch.zeros(0)
        return {"images": stacked}

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device) -> None:
        self.images = [x.to(device) for x in state["images"]] if len(state["images"]) else []


@register_objective("cyclegan")
class CycleGAN(TranslationFamily):
    ema = ["G_AB", "G_BA"]
    unused_settings = (*TranslationFamily.unused_settings,  # Pix2Pix's U-Net and L1 keys of the shared section
                       "translate.lambda_l1", "translate.depth", "translate.dropout", "translate.chroma")
    preview_legend = ("left to right: an A image | it translated to B (G_AB) | a B image | it "
                      "translated to A (G_BA)")  # preview's strip

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        check_config(cfg)
        t, m = cfg.translate, cfg.model
        for key in ("lambda_cycle", "lambda_identity"):
            if getattr(t, key) < 0:
                raise ConfigError(f"translate.{key} must be >= 0, got {getattr(t, key)}")
        if t.pool_size < 0:
            raise ConfigError(f"translate.pool_size must be >= 0, got {t.pool_size}")
        self.check_sizes(cfg)
        ca, cb = a_channels(cfg), cfg.data.channels
        if t.lambda_identity > 0 and ca != cb:
            raise ConfigError(f"the identity loss maps B through G_AB, which needs as many input "
                              f"as output channels (A has {ca}, B has {cb}); set "
                              f"translate.lambda_identity=0")
        self.in_channels, self.out_channels = ca, cb
        norm = t.norm or "instance"
        gen = dict(width=m.g_width, n_blocks=t.n_blocks, norm=norm)
        disc = dict(width=m.d_width, n_layers=t.d_layers, norm=norm)
        self.nets = {"G_AB": ResnetGenerator(in_channels=ca, out_channels=cb, **gen),
                     "G_BA": ResnetGenerator(in_channels=cb, out_channels=ca, **gen),
                     "D_A": PatchDiscriminator(channels=ca, **disc),
                     "D_B": PatchDiscriminator(channels=cb, **disc)}
        if m.d_spectral_norm:
            spectral_norm_(self.nets["D_A"])
            spectral_norm_(self.nets["D_B"])
        self.stride = ResnetGenerator.stride
        self.optimizers = {"G": OptimizerSpec(["G_AB", "G_BA"], lr=cfg.optim.g_lr),
                           "D": OptimizerSpec(["D_A", "D_B"], lr=cfg.optim.d_lr)}
        self.phases = [Phase("G", optimizer="G"),
                       Phase("D", optimizer="D", repeat=cfg.train.n_critic, fresh_batch=False)]
        self.adv = losses.get_loss(cfg.loss.name)
        self.lambda_cycle, self.lambda_identity = t.lambda_cycle, t.lambda_identity
        self.pool_a, self.pool_b = ImagePool(t.pool_size), ImagePool(t.pool_size)
        self.info = dict(data_info)
        self._fakes: tuple[Tensor, Tensor] | None = None  # (G_BA(b), G_AB(a)) of this step

    @classmethod
    def check_sizes(cls, cfg) -> None:
        super().check_sizes(cfg)
        # The residual generator takes sides divisible by its stride 4; its instance norm at the
        # 4x-downsampled bottleneck needs 2x2 there, so 8 px at least.
        res, stride = cfg.data.resolution, ResnetGenerator.stride
        if res % stride or res < 2 * stride:
            near = max(2 * stride, res // stride * stride)
            raise ConfigError(f"data.resolution={res} does not suit CycleGAN's residual generator, which "
                              f"needs a multiple of {stride} of at least {2 * stride}: use data.resolution="
                              f"{near}{f' or {near + stride}' if near < res else ''}")

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        a, b = batch["a"], batch["b"]  # [N, Ca, H, W], [N, Cb, H, W] in [-1, 1], unpaired
        n = self.nets
        if phase == "G":
            fake_b, fake_a = n["G_AB"](a), n["G_BA"](b)
            self._fakes = (fake_a.detach(), fake_b.detach())
            adv = self.adv.g(fake=n["D_B"](fake_b)) + self.adv.g(fake=n["D_A"](fake_a))
            cycle = ((n["G_BA"](fake_b).float() - a.float()).abs().mean()
                     + (n["G_AB"](fake_a).float() - b.float()).abs().mean())
            loss = adv + self.lambda_cycle * cycle
            out = {"g_adv": adv.detach(), "cycle": cycle.detach()}
            if self.lambda_identity > 0:
                idt = ((n["G_AB"](b).float() - b.float()).abs().mean()
                       + (n["G_BA"](a).float() - a.float()).abs().mean())
                loss = loss + self.lambda_cycle * self.lambda_identity * idt
                out["identity"] = idt.detach()
            return {"loss": loss, "g_loss": loss.detach(), **out}
        if phase == "D":
            if self._fakes is None:
                with torch.no_grad():
                    self._fakes = (n["G_BA"](b), n["G_AB"](a))
            fake_a = self.pool_a.query(self._fakes[0], self.rng)
            fake_b = self.pool_b.query(self._fakes[1], self.rng)
            real_scores = (n["D_A"](a), n["D_B"](b))
            fake_scores = (n["D_A"](fake_a), n["D_B"](fake_b))
            loss = (self.adv.d(real=real_scores[0], fake=fake_scores[0])
                    + self.adv.d(real=real_scores[1], fake=fake_scores[1]))
            d_real = torch.cat([s.detach().float().flatten() for s in real_scores])
            d_fake = torch.cat([s.detach().float().flatten() for s in fake_scores])
            # each D decides on its own scores (a relativistic loss compares with its own means)
            right = [losses.d_decisions(self.adv, real=rs, fake=fs) for rs, fs in zip(real_scores, fake_scores)]
            out = {"d_acc_real": torch.cat([rr.flatten() for rr, _ in right]).float().mean(),
                   "d_acc_fake": torch.cat([rf.flatten() for _, rf in right]).float().mean()}
            if losses.is_probabilistic(self.adv):
                d_real, d_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
            return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.mean(),
                    "d_fake": d_fake.mean(), **out}
        raise ValueError(f"unknown phase {phase}")

    def after_step(self, phase: str) -> None:
        if phase == "D":
            self._fakes = None

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = getattr(self, "device", torch.device("cpu"))
        if "pool_a" in state:
            self.pool_a.load_state_dict(state["pool_a"], device)
            self.pool_b.load_state_dict(state["pool_b"], device)

    @torch.no_grad()
    def translate(self, x: Tensor, *, direction: str | None = None,
                  nets: Mapping[str, nn.Module] | None = None, tile: int | None = None) -> Tensor:
        """G_AB(x) (AtoB) or G_BA(x) (BtoA) for x float [N, C, H, W] in [-1, 1], any H, W;
        ``tile``: see pix2pix.run_tiled."""
        direction = direction or self.default_direction
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"translate: direction={direction!r} is not a direction; pass direction='AtoB' "
                              f"(domain A to B) or direction='BtoA'")
        name = "G_AB" if direction == "AtoB" else "G_BA"
        G = (nets or {}).get(name, self.nets[name])
        channels = self.in_channels if direction == "AtoB" else self.out_channels
        x = check_input(x, channels).to(self.device)
        return run_tiled(G, x, self.stride, tile).clamp(-1, 1)

    def translate_eval(self, run, *, ema: bool = True, limit: int | None = None,
                       extractor: str = "inception", inception_weights=None) -> dict[str, Any]:
        """FID / KID of the held-out translations against the other domain's held-out images."""
        from ..data.pairs import load_pairs
        from ..metrics.paired import evaluate_unpaired

        return evaluate_unpaired(run, load_pairs(run.config, evaluating=True), extractor=extractor, ema=ema,
                                 limit=limit, inception_weights=inception_weights)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        root = workdir / "unpaired"
        for side in ("trainA", "trainB", "testA", "testB"):
            write_image_folder(root / side, n=4, size=8, channels=3, seed=len(side))
        return {"objective": cls.name, "loss": {"name": "lsgan"},
                "data": {"name": f"folder:{root}", "resolution": 8, "channels": 3},
                "model": {"g_width": 2, "d_width": 2},
                "translate": {"task": "unpaired", "n_blocks": 1, "d_layers": 1, "pool_size": 2},
                "train": dict(TINY_TRAIN)}

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """Strips a | G_AB(a) | b | G_BA(b) of n fixed held-out images of each domain."""
        a, b = preview_inputs(self.info, n)
        fake_b = self.translate(a, nets=nets)
        fake_a = self.translate(b, direction="BtoA", nets=nets)
        return strip(a.to(fake_b.device), fake_b, b.to(fake_b.device), fake_a)
