"""Unconditional generation: G(z) -> data, D(x) -> score (Goodfellow et al. 2014, "Generative
Adversarial Nets"; DCGAN architecture from Radford et al. 2016), with the stabilizers of
ganforge.losses, ganforge.regularizers and ganforge.augment switched on from the config.

Data is images [N, C, H, W] in [-1, 1], or 2-D points [N, 2] for the toy mixtures (then G has a
linear output and ``sample`` returns [N, 2] unclamped).

Phases: "D" (repeated train.n_critic times), "Dreg" (lazy R1/R2 every reg.r_interval generator
steps, that is every reg.r_interval x train.n_critic D steps, the penalty times that count; only
when the interval is > 1), "G". What D sees, real and fake alike and in both D's and G's steps,
passes through the same augmentation (DiffAugment or ADA) and the same instance noise.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import augment as augment_mod
from .. import losses, models
from .. import regularizers as regs
from ..errors import ConfigError, warn
from ..latents import normal, slerp, walk_fractions
from .base import OBJECTIVES, Objective, OptimizerSpec, Phase, register_objective


def point_dim(cfg, data_info: Mapping[str, Any]) -> int | None:
    """2 for the toy point datasets, None for images (known from the config alone, so that a run
    directory rebuilds without its data)."""
    if data_info.get("point_dim"):
        return int(data_info["point_dim"])
    return 2 if cfg.data.name.startswith("toy:") else None


def gan_optimizers(cfg) -> dict[str, OptimizerSpec]:
    """One optimizer for G at optim.g_lr and one for D at optim.d_lr (TTUR when they differ)."""
    return {"G": OptimizerSpec(["G"], lr=cfg.optim.g_lr), "D": OptimizerSpec(["D"], lr=cfg.optim.d_lr)}


def write_image_folder(root: Path, *, n: int, size: int, channels: int = 3,
                       classes: tuple[str, ...] = (), seed: int = 0) -> Path:
    """Smooth random PNGs under ``root`` (in one subfolder per class when ``classes``): the
    offline data of the families' example configs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, sub in enumerate(classes or ("",)):
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            low = rng.uniform(0, 255, (3, 3, channels)) * (0.5 + 0.5 * k / max(len(classes), 1))
            img = Image.fromarray(low.astype(np.uint8).squeeze(-1) if channels == 1
                                  else low.astype(np.uint8))
            img.resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i:03d}.png")
    return root


# interpolate(): the walk's latents, handed to the family's own ``sample`` in place of fresh
# noise (per thread, so a server thread sampling meanwhile draws its own)
_WALK = threading.local()


# Points in a point run's training preview, at least (train.n_sample_grid's 64 leave a 25-mode
# mixture's coverage unreadable); what `ganforge sample RUN --n 1000 --out points.png` draws
POINT_PREVIEW_N = 1000


TINY_TRAIN = {"steps": 4, "batch_size": 4, "log_every": 2, "sample_every": 2,
              "checkpoint_every": 2, "n_sample_grid": 4, "device": "cpu", "seed": 0,
              "keep_checkpoints": 5}


@register_objective("unconditional")
class UnconditionalGAN(Objective):
    ema = ["G"]
    capabilities = frozenset({"sample", "interpolate"})
    accepts_points = True

    @property
    def rate_unit(self) -> str:
        """A toy mixture's items are 2-D points (its progress bar had said img/s)."""
        return "points/s" if getattr(self, "point_dim", None) is not None else Objective.rate_unit.fget(self)

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, self.reg = cfg.model, cfg.reg
        self.z_dim = m.z_dim
        self.point_dim = point_dim(cfg, data_info)
        self.data_name = cfg.data.name  # a point preview's title and mixture
        if self.point_dim is not None:  # a walk of points draws no image: not offered (CLI, server)
            self.capabilities = type(self).capabilities - {"interpolate"}
        shape = dict(resolution=cfg.data.resolution, channels=cfg.data.channels)
        d_shape = dict(resolution=cfg.data.resolution, channels=cfg.data.channels * m.pac)
        if self.point_dim is not None:
            d_shape["point_dim"] = self.point_dim * m.pac
            shape["point_dim"] = self.point_dim
        if m.name not in models.ARCHITECTURES and m.name in OBJECTIVES:  # model.name=stylegan2
            raise ConfigError(f"model.name={m.name} is a family of its own, not an architecture of "
                              f"objective={cfg.objective} ({', '.join(sorted(models.ARCHITECTURES))}); start "
                              f"from one of its presets (ganforge presets lists them) or set objective={m.name}")
        G = models.build_generator(m.name, z_dim=self.z_dim, width=m.g_width, depth=m.g_depth,
                                       head=m.g_head, init=m.init, **shape)
        D = models.build_discriminator(m.name, width=m.d_width, depth=m.d_depth, norm=m.d_norm,
                                       mbstd=m.mbstd_group or None, head=m.d_head, init=m.init, **d_shape)
        if self.point_dim is None:  # a plugin's networks against the config's shapes, once
            models.check_plugin_shapes(m.name, G, D, z_dim=self.z_dim, channels=cfg.data.channels,
                                       resolution=cfg.data.resolution, d_channels=d_shape["channels"])
        if m.g_spectral_norm:
            models.spectral_norm_(G)
        if m.d_spectral_norm:
            models.spectral_norm_(D)
        if m.pac > 1:
            D = models.Packed(D, m.pac)
        self.nets = {"G": G, "D": D}
        self.optimizers = gan_optimizers(cfg)
        self.setup_training(cfg)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "images", n=8, size=8, channels=1)
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
                "model": {"name": "dcgan", "z_dim": 4, "g_width": 4, "d_width": 4},
                "train": dict(TINY_TRAIN), "monitor": {"probe_size": 4}}

    def setup_training(self, cfg) -> None:
        """Loss, augmentation and phases from the config (shared by the conditional objective)."""
        self.adv = losses.get_loss(cfg.loss.name)
        self.d_kwargs = {}
        if cfg.loss.label_smoothing:
            if not losses.supports_label_smoothing(self.adv):
                ok = ", ".join(n for n, p in losses.LOSSES.items() if losses.supports_label_smoothing(p))
                raise ConfigError(f"loss.label_smoothing has no meaning for loss '{cfg.loss.name}'; "
                                  f"use it with {ok}, or set loss.label_smoothing=0")
            self.d_kwargs["real_target"] = 1.0 - cfg.loss.label_smoothing
        self.augment = augment_mod.build_augment(cfg.augment)
        if self.augment is not None and self.point_dim is not None:
            raise ConfigError(f"augment.* transforms images; {cfg.data.name} holds 2-D points, so "
                              f"set augment.diffaugment='' and augment.ada=false")

        r = self.reg
        self.lazy = r.r_interval > 1 and (r.r1 > 0 or r.r2 > 0)
        self.phases = [Phase("D", optimizer="D", repeat=cfg.train.n_critic)]
        # D steps from one "Dreg" pass to the next: it runs every reg.r_interval iterations, each
        # of train.n_critic D steps. StyleGAN2 (sec. 3.1, app. B) scales the penalty by the
        # minibatches it stands for, so that its total is non-lazy R1's; scaling by r_interval
        # alone had made lazy R1 n_critic times weaker. The lazy Adam ratio c = k / (k + 1)
        # takes the same k.
        self.d_reg_interval = r.r_interval * cfg.train.n_critic if self.lazy else 1
        if self.lazy:
            # StyleGAN2's lazy regularization: its own step on the last D batch, every k iterations.
            self.phases.append(Phase("Dreg", optimizer="D", every=r.r_interval, fresh_batch=False))
        self._warn_gp_on_batch_norm(cfg)
        # G needs no real data; reusing the last batch keeps one batch per D step.
        self.phases.append(Phase("G", optimizer="G", fresh_batch=False))
        self.g_steps = 0  # generator steps taken, for the instance-noise schedule

    def _warn_gp_on_batch_norm(self, cfg) -> None:
        """reg.gp on a D with BatchNorm, where model.d_norm was left to the architecture's default
        (dcgan: batch); config validation warns when model.d_norm=batch is set explicitly. The
        nets are inspected, so families whose own D has no BatchNorm (progressive, stylegan2,
        biggan) get no warning."""
        D = getattr(self, "nets", {}).get("D")
        if self.reg.gp <= 0 or cfg.model.d_norm is not None or D is None:
            return
        if any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in D.modules()):
            warn(f"reg.gp with a batch-normalized D (model.name={cfg.model.name}'s default D "
                          f"norm): batch norm mixes the samples, so the per-sample gradient penalty is "
                          f"not what WGAN-GP penalizes (Gulrajani et al. 2017, sec. 4); set "
                          f"model.d_norm=layer (or none)")

    # ------------------------------------------------------------------ pieces

    def _z(self, n: int, generator: torch.Generator) -> Tensor:
        walk = getattr(_WALK, "z", None)
        if walk is not None and getattr(_WALK, "owner", None) is self:
            if n != len(walk):
                raise ValueError(f"a walk of {len(walk)} latents, but {n} were drawn")
            return walk
        # Noise is drawn on the generator's device (a CPU generator gives the same samples everywhere).
        return normal((n, self.z_dim), generator).to(self.device)

    def noise_std(self) -> float:
        return regs.instance_noise_std(self.reg.instance_noise, self.reg.instance_noise_anneal,
                                       self.g_steps)

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees of a real or fake batch: augmented, then with instance noise."""
        if self.augment is not None:
            x = self.augment(x, self.rng)
        std = self.noise_std()
        if std > 0:
            x = x + std * torch.randn(x.shape, generator=self.rng, device=self.rng.device).to(x)
        return x

    def _scores(self, d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
        """Logged means: D(x) probabilities for logistic losses, raw scores otherwise."""
        d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
        acc_real, acc_fake = losses.d_accuracy(self.adv, real=d_real, fake=d_fake)
        out = {"d_real": d_real.mean(), "d_fake": d_fake.mean(),
               # share of real / fake samples D classifies correctly (losses.d_decisions)
               "d_acc_real": acc_real, "d_acc_fake": acc_fake}
        if losses.is_probabilistic(self.adv):
            out["d_real"], out["d_fake"] = torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()
        return out

    # ------------------------------------------------------------------ phases

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        real = batch["real"]  # [N, C, H, W] in [-1, 1] or points [N, 2]
        G, D = self.nets["G"], self.nets["D"]
        z = self._z(real.shape[0], self.rng)
        r = self.reg
        if phase == "D":
            with torch.no_grad():
                fake = G(z)
            real_in, fake_in = self.d_input(real), self.d_input(fake)
            r1_now = r.r1 > 0 and not self.lazy
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real, d_fake = D(real_in), D(fake_in)  # scores [N] ([N / pac] packed)
            loss = self.adv.d(real=d_real, fake=d_fake, **self.d_kwargs)
            out = {"d_loss": loss.detach(), **self._scores(d_real, d_fake)}
            penalty, terms = self.d_penalties(D, real_in, fake_in, d_real, r1_now)
            return {"loss": loss + penalty, **out, **terms}
        if phase == "Dreg":
            return self.lazy_penalties(D, real, lambda: G(z))
        if phase == "G":
            d_fake = D(self.d_input(G(z)))
            d_real = D(self.d_input(real)) if losses.g_needs_real(self.adv) else None
            loss = self.adv.g(fake=d_fake, real=d_real)
            return {"loss": loss, "g_loss": loss.detach()}
        raise ValueError(f"unknown phase {phase}")

    def double_backward(self, phase: str) -> bool:
        """A "D" step differentiates a gradient when GP or DRAGAN is on, or R1/R2 outside a lazy
        "Dreg" phase (as ``loss`` and ``d_penalties`` apply them)."""
        r = self.reg
        if phase == "D":
            return r.gp > 0 or r.dragan > 0 or ((r.r1 > 0 or r.r2 > 0) and not self.lazy)
        return super().double_backward(phase)

    def d_penalties(self, D, real_in: Tensor, fake_in: Tensor, d_real: Tensor,
                    r1_now: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The regularizers of a D step: (weighted sum to add to D's loss, detached terms and
        ADA / instance-noise state to log). ``D`` maps D's inputs to scores (a conditional
        objective binds the labels); ``real_in`` requires grad when ``r1_now``."""
        r = self.reg
        loss, out = d_real.new_zeros((), dtype=torch.float32), {}
        if r.gp > 0:
            out["gp"] = regs.gradient_penalty(D, real_in, fake_in, generator=self.rng)
            loss = loss + r.gp * out["gp"]
        if r.dragan > 0:
            out["dragan"] = regs.dragan_penalty(D, real_in, generator=self.rng)
            loss = loss + r.dragan * out["dragan"]
        if r1_now:
            out["r1"] = regs.grad_sq_norm(d_real, real_in)
            loss = loss + r.r1 / 2 * out["r1"]
        if r.r2 > 0 and not self.lazy:
            out["r2"] = regs.r2_penalty(D, fake_in)
            loss = loss + r.r2 / 2 * out["r2"]
        if isinstance(self.augment, augment_mod.ADA):
            # p moves by images seen: with PacGAN a score stands for model.pac images
            self.augment.observe(d_real, images=real_in.shape[0])
            out["ada_p"] = d_real.new_tensor(self.augment.p, dtype=torch.float32)
        if r.instance_noise > 0:
            out["noise_std"] = d_real.new_tensor(self.noise_std(), dtype=torch.float32)
        return loss, {k: v.detach() for k, v in out.items()}

    def lazy_penalties(self, D, real: Tensor, make_fake) -> dict[str, Tensor]:
        """The "Dreg" phase: lazy R1/R2 (StyleGAN2), the penalty times the D steps it stands
        for (``d_reg_interval``: reg.r_interval x train.n_critic).
        ``make_fake()`` draws the fakes for R2 (called without gradients)."""
        r = self.reg
        loss, out = real.new_zeros((), dtype=torch.float32), {}
        if r.r1 > 0:
            out["r1"] = regs.r1_penalty(D, self.d_input(real))
            loss = loss + r.r1 / 2 * out["r1"]
        if r.r2 > 0:
            with torch.no_grad():
                fake = make_fake()
            out["r2"] = regs.r2_penalty(D, self.d_input(fake))
            loss = loss + r.r2 / 2 * out["r2"]
        return {"loss": loss * self.d_reg_interval, **{k: v.detach() for k, v in out.items()}}

    def after_step(self, phase: str) -> None:
        if phase == "D" and self.reg.clip > 0:
            regs.clip_weights_(self.nets["D"], self.reg.clip)
        elif phase == "G":
            self.g_steps += 1

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {**super().extra_state(), "g_steps": self.g_steps}
        if isinstance(self.augment, augment_mod.ADA):
            state["ada"] = self.augment.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.g_steps = int(state.get("g_steps", 0))
        if isinstance(self.augment, augment_mod.ADA) and "ada" in state:
            self.augment.load_state_dict(state["ada"])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        G = (nets or {}).get("G", self.nets["G"])
        out = G(self._z(n, generator)).float()
        return out if self.point_dim is not None else out.clamp(-1, 1)

    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        if self.point_dim is not None:
            n = max(n, POINT_PREVIEW_N)
        return self.sample(n, generator=generator, nets=nets)

    def preview_picture(self, samples: Tensor, *, step: int):
        if self.point_dim != 2 or samples.dim() != 2:  # only a plane is drawn
            return None
        import io

        from PIL import Image

        from ..data.toy import scatter_png

        png = scatter_png(samples, data=self.data_name, step=step)  # None without matplotlib: no preview
        return None if png is None else Image.open(io.BytesIO(png)).convert("RGB")

    @torch.no_grad()
    def interpolate(self, seeds: Sequence[int], frames: int, *, space: str | None = None, nets=None,
                    truncation: float | None = None, labels=None) -> Tensor:
        """A looping walk through the seeds' z: ``frames`` images [frames, C, H, W], spherical
        (slerp) between consecutive seeds; frame k * frames / len(seeds) is exactly seed k's z,
        so it is ``sample(1, seed=seeds[k])``. Conditional families keep one class (``labels``,
        default class 0). The images come from the family's own ``sample`` with the walk's z in
        place of fresh noise, so a family that post-processes G's output does so here too."""
        if space not in (None, "z"):
            raise ConfigError(f"objective={self.name} has one latent space, z (slerp), not {space!r} "
                              f"(--space {space}, space={space!r}); use --space z (space='z') or leave it out")
        if self.point_dim is not None:
            raise ConfigError("this run generates 2-D points, not images; a latent walk needs an image run")
        if truncation is not None and "truncation" not in self.capabilities:
            raise ConfigError(f"objective={self.name} samples without truncation; leave out --truncation "
                              f"(truncation=None)")
        zs = torch.cat([self._z(1, torch.Generator().manual_seed(int(s))) for s in seeds])  # [S, z_dim]
        a, b, frac = walk_fractions(len(seeds), frames)
        z = slerp(zs[a], zs[b], frac)  # [frames, z_dim]
        kwargs: dict[str, Any] = {} if truncation is None else {"truncation": truncation}
        if "sample_labels" in self.capabilities:
            y = torch.as_tensor(0 if labels is None else labels).reshape(-1)[:1]
            kwargs["labels"] = y.expand(frames).clone()
        _WALK.owner, _WALK.z = self, z
        try:
            return self.sample(frames, generator=torch.Generator().manual_seed(0), nets=nets, **kwargs)
        finally:
            _WALK.owner = _WALK.z = None
