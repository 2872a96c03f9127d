"""Progressive growing (Karras, Aila, Laine & Lehtinen 2018, "Progressive Growing of GANs for
Improved Quality, Stability, and Variation"), networks in ganforge.models.progan.

Training starts at the first resolution of ``progressive.resolutions`` (default 4x4) and grows
to data.resolution. Each later stage first fades in over ``fade_images`` real images (alpha rises
linearly from 0 to 1), then trains stable for ``stable_images``; the last stage trains on until
train.steps (``check_run`` warns when train.steps ends before it is fully faded in: the schedule
counts images, train.steps counts steps). Per stage, the batch (the first ``batch_sizes[s]``
images of each train.batch_size batch; under torchrun each rank its share of them) and a
learning-rate factor (``lr_mult``) are config too.

Real images are drawn at the stage's resolution: 2x2 average pooling down from the dataset and,
during a fade, ``lerp(u(d(x)), x, alpha)``, the same blend of the previous resolution that G's
output makes (u: nearest upsampling, d: average pooling; the paper's sec. A.1).

The paper's loss is WGAN-GP with the drift term eps * E[D(x)^2] (eps = 0.001, sec. A.1), which
``progressive.drift`` adds to D's loss for any loss.name; every loss and regularizer of the zoo
(reg.*, augment.*) applies as in the unconditional objective, whose helpers this one inherits.

Stage and alpha follow from the number of real images D has seen, saved in the extra state
(exact resume in the middle of a fade) and read back by ``ganforge.load``. Stage boundaries are
events (``pop_events``): the Trainer writes them to metrics.jsonl and tells the monitor, which
then does not take the loss jump of a fade-in for a divergence. Sample grids are drawn at the
stage's resolution, upsampled to the final one, with the stage written under them.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..errors import ConfigError, warn
from ..models.progan import (ProGANDiscriminator, ProGANGenerator, StageSampler, stage_resolutions,
                             upsample2)
from .base import cached_module, refuse_unused_model_settings, register_objective
from .unconditional import TINY_TRAIN, UnconditionalGAN, gan_optimizers, write_image_folder


@dataclass
class ProgressiveConfig:
    """Progressive growing (objective=progressive; ganforge.objectives.progan). Lists of one value
    apply to every stage (or fade)."""

    resolutions: list[int] = field(default_factory=list)  # stages, doubling to data.resolution; empty: 4 to it
    fade_images: list[int] = field(default_factory=lambda: [600_000])  # per fade (paper: 600k)
    stable_images: list[int] = field(default_factory=lambda: [600_000])  # per stage; the last trains on
    batch_sizes: list[int] = field(default_factory=list)  # per stage, <= train.batch_size; empty: it
    lr_mult: list[float] = field(default_factory=list)  # per stage, on optim.g_lr and d_lr; empty: 1
    max_width: int = 256  # channel cap; model.g_width / d_width are the channels at the last stage
    pixelnorm: bool = True  # pixel-wise feature normalization in G (sec. 4.2)
    drift: float = 0.001  # eps of the drift term eps * E[D(real)^2] added to D's loss (sec. A.1)


class Stage(NamedTuple):
    resolution: int
    fade: int  # real images over which alpha rises from 0 to 1 (0 for the first stage)
    stable: int  # real images at alpha = 1 before the next stage
    batch: int
    lr_mult: float


def _per(values: list, n: int, key: str, what: str, default, notes: list[str] | None = None,
         span: str = "") -> list:
    """``values`` as one value per stage (or fade) from the first up: one value applies to all; a
    longer list (a preset's, written for a larger data.resolution) gives its first n values, with
    a note in ``notes``; a shorter one is an error with a list of the right length."""
    if not values:
        return [default] * n
    if len(values) == 1:
        return list(values) * n
    if len(values) > n:
        if notes is not None:
            notes.append(f"progressive.{key} has {len(values)} values for {n} {what}{span}: using the first "
                         f"{n}, {_list(values[:n])}")
        return list(values[:n])
    if len(values) < n:
        example = _list(list(values) + [values[-1]] * (n - len(values)))
        raise ConfigError(f"progressive.{key} has {len(values)} values for {n} {what}{span}; give one value or "
                          f"one per {what[:-1]}, from the first up, e.g. progressive.{key}={example}")
    return list(values)


def _list(values: list) -> str:
    return "[" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def plan(p: ProgressiveConfig, resolution: int, batch_size: int,
         notes: list[str] | None = None) -> list[Stage]:
    """The stage schedule, with a one-line ConfigError for every inconsistency; ``notes`` gets
    one line per list that was longer than the stages and was cut."""
    every = stage_resolutions(resolution)
    res = list(p.resolutions) or every
    if res[-1] != resolution:
        raise ConfigError(f"progressive.resolutions ends at {res[-1]}, so the schedule does not reach "
                          f"data.resolution={resolution}; end the list with {resolution}")
    if res[0] not in every or any(b != 2 * a for a, b in zip(res, res[1:])):
        raise ConfigError(f"progressive.resolutions must double from 4, 8, ... up to "
                          f"{resolution}, got {res}; e.g. {every}")
    n = len(res)
    span = f" ({res[0]} to {resolution} px)"
    fades = [0] + _per(p.fade_images, n - 1, "fade_images", "fades", 0, notes, span) if n > 1 else [0]
    stables = _per(p.stable_images, n, "stable_images", "stages", 0, notes, span)
    batches = _per(p.batch_sizes, n, "batch_sizes", "stages", batch_size, notes, span)
    mults = _per(p.lr_mult, n, "lr_mult", "stages", 1.0, notes, span)
    if min(fades + stables) < 0 or min(mults) <= 0:
        raise ConfigError("progressive.fade_images and stable_images must be >= 0 and lr_mult > 0")
    if not all(1 <= b <= batch_size for b in batches):
        raise ConfigError(f"progressive.batch_sizes {batches} must lie in 1..train.batch_size "
                          f"({batch_size}): each stage uses the first images of every batch; raise "
                          f"train.batch_size to the largest")
    return [Stage(*s) for s in zip(res, fades, stables, batches, mults)]


def position(images: int, stages: list[Stage]) -> tuple[int, float]:
    """(stage index, alpha) once D has seen ``images`` real images: stage 0 stable, then for each
    later stage a fade (alpha = images into the fade / fade length) and a stable phase."""
    start = 0
    for i, s in enumerate(stages):
        if i and images < start + s.fade:
            return i, (images - start) / s.fade
        start += s.fade
        if i == len(stages) - 1 or images < start + s.stable:
            return i, 1.0
        start += s.stable
    raise AssertionError("unreachable")


def stage_steps(stages: list[Stage], per_batch: int) -> list[tuple[int, int]]:
    """(train step, real images seen) at which each stage begins, then at which the last stage
    is fully faded in. A step counts ``per_batch`` (train.n_critic D steps of train.accumulate
    batches) times the batch of the stage it began in, as ``after_step`` does, so it may run past
    a boundary."""
    marks, step, images, end = [], 0, 0, 0
    for i, s in enumerate(stages):
        marks.append((step, images))
        end += s.fade + (s.stable if i < len(stages) - 1 else 0)
        per = per_batch * s.batch
        k = max(0, -(-(end - images) // per))
        step, images = step + k, images + k * per
    return marks + [(step, images)]


def images_after(steps: int, stages: list[Stage], per_batch: int) -> int:
    """Real images D has seen after ``steps`` train steps of a run started at 0 (stage_steps)."""
    marks = stage_steps(stages, per_batch)
    i = max(i for i, (step, _) in enumerate(marks[:len(stages)]) if step <= steps)
    return marks[i][1] + (steps - marks[i][0]) * per_batch * stages[i].batch


def short_schedule(stages: list[Stage], steps: int, per_batch: int) -> str | None:
    """The warning for a train.steps that ends before the last stage is fully faded in (the
    schedule counts images, train.steps counts steps, so a preset's steps can fall short of its
    own schedule without anything failing), or None."""
    marks = stage_steps(stages, per_batch)
    full = marks[-1][0]
    if steps >= full:
        return None
    stage, alpha = position(images_after(steps, stages, per_batch), stages)
    here, last = stages[stage].resolution, stages[-1]
    where = f"fade-in alpha {math.floor(alpha * 100) / 100:.2f}" if alpha < 1 else "stable"
    stable = -(-last.stable // (per_batch * last.batch))  # the steps of the last stage's stable images
    both = f" ({full + stable:,} with its {last.stable:,} stable images)" if stable else ""
    return (f"train.steps={steps} ends at stage {stage + 1}/{len(stages)}, {here}x{here} ({where}), before "
            f"{last.resolution}x{last.resolution} is fully faded in: that takes {full:,} steps{both}; raise "
            f"train.steps to {full + stable} or shorten progressive.fade_images / stable_images")


@register_objective("progressive")
class ProgressiveGAN(UnconditionalGAN):
    sections = {"progressive": ProgressiveConfig}
    accepts_points = False
    unsupported_advice = ("model.pac", "model.d_spectral_norm", "model.g_spectral_norm")

    @classmethod
    def smaller_batch(cls, cfg) -> str:
        """Also progressive.batch_sizes, which must stay within train.batch_size."""
        stages = cfg.progressive.batch_sizes
        halved = f" progressive.batch_sizes=[{','.join(str(max(1, int(b) // 2)) for b in stages)}]"
        return super().smaller_batch(cfg) + (halved if stages else "")

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        if new:
            refuse_unused_model_settings(cfg, {"z_dim", "g_width", "d_width", "mbstd_group"})
        notes: list[str] = []
        stages = plan(cfg.progressive, cfg.data.resolution, cfg.train.batch_size, notes)
        t = cfg.train
        short = short_schedule(stages, t.steps, t.n_critic * t.accumulate)
        for note in notes + ([short] if short else []):  # said once, before training; the run's
            warn(note)  # config then holds the cut lists
        if any(s.batch % world_size for s in stages):
            raise ConfigError(f"progressive.batch_sizes {[s.batch for s in stages]} (global, as "
                              f"train.batch_size) do not all divide among {world_size} processes; use "
                              f"multiples of {world_size}")

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, p, self.reg = cfg.model, cfg.progressive, cfg.reg
        self.z_dim, self.point_dim = m.z_dim, None
        self.resolution = cfg.data.resolution
        self.stages = plan(p, self.resolution, cfg.train.batch_size)
        # lists longer than the stages (a preset's, for a larger resolution) are saved as used
        n = len(self.stages)
        for key, count in (("fade_images", n - 1), ("stable_images", n), ("batch_sizes", n), ("lr_mult", n)):
            values = getattr(p, key)
            if len(values) > max(count, 1):
                setattr(p, key, list(values[:max(count, 1)]))
        # stage batches are global, as train.batch_size is: each rank takes its share of one
        # (check_run: they divide), and each of train.accumulate micro-batches is a global batch
        self.global_batch, self.accumulate = cfg.train.batch_size, cfg.train.accumulate
        if m.pac > 1 or m.g_spectral_norm or m.d_spectral_norm:
            raise ConfigError("objective=progressive uses equalized learning rates; set model.pac=1, "
                              "model.g_spectral_norm=false and model.d_spectral_norm=false")
        if p.drift < 0:
            raise ConfigError(f"progressive.drift must be >= 0, got {p.drift}")
        self.drift = p.drift
        shape = dict(resolution=self.resolution, channels=cfg.data.channels, max_width=p.max_width)
        self.nets = {"G": ProGANGenerator(z_dim=m.z_dim, width=m.g_width, pixelnorm=p.pixelnorm, **shape),
                     "D": ProGANDiscriminator(width=m.d_width, mbstd=m.mbstd_group, **shape)}
        self.optimizers = gan_optimizers(cfg)
        self.setup_training(cfg)
        self.events: list[dict[str, Any]] = []
        self.set_images(int(data_info.get("images", 0)))

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "images", n=8, size=8, channels=1)
        # 4x4 for 6 images (2 steps of 4), then 8x8 fades in over 8: step 2 is mid-fade.
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
                "model": {"z_dim": 4, "g_width": 4, "d_width": 4, "mbstd_group": 2},
                "loss": {"name": "wasserstein"}, "reg": {"gp": 10.0},
                "progressive": {"fade_images": [8], "stable_images": [6], "lr_mult": [1.0, 0.5]},
                "train": dict(TINY_TRAIN), "monitor": {"probe_size": 4}}

    @classmethod
    def info_from_state(cls, cfg, extra_state: Mapping[str, Any]) -> dict[str, Any]:
        return {**super().info_from_state(cfg, extra_state), "images": int(extra_state.get("images", 0))}

    # ------------------------------------------------------------------ schedule

    def set_images(self, images: int) -> None:
        """Move the schedule to ``images`` real images seen (no events)."""
        self.images = images
        self.stage, self.alpha = position(images, self.stages)

    @property
    def current(self) -> Stage:
        return self.stages[self.stage]

    @property
    def net_stage(self) -> int:
        """The networks' stage index (0 is 4x4) of the current resolution."""
        return stage_resolutions(self.resolution).index(self.current.resolution)

    def lr_factor(self, optimizer: str) -> float:
        return self.current.lr_mult

    def pop_events(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    def _advance(self) -> None:
        """After an iteration: stage and alpha for the next one, and the boundary it crossed."""
        before = (self.stage, self.alpha)
        self.stage, self.alpha = position(self.images, self.stages)
        r = self.current.resolution
        if self.stage != before[0]:
            phase = "fade_in" if self.alpha < 1 else "stable"
            message = (f"stage {self.stage + 1}/{len(self.stages)}: {r}x{r} fades in over "
                       f"{self.current.fade:,} images" if phase == "fade_in" else
                       f"stage {self.stage + 1}/{len(self.stages)}: {r}x{r} (no fade)")
        elif before[1] < 1 <= self.alpha:
            phase, message = "stable", f"stage {self.stage + 1}/{len(self.stages)}: {r}x{r} faded in"
        else:
            return
        self.events.append({"event": "stage", "message": message,
                            "evidence": {"phase": phase, "resolution": r, "stage": self.stage,
                                         "alpha": round(self.alpha, 4), "images": self.images,
                                         "batch": self.current.batch,
                                         "lr_mult": self.current.lr_mult}})

    def after_step(self, phase: str) -> None:
        super().after_step(phase)
        if phase == "D":
            self.images += self.current.batch * self.accumulate
        elif phase == "G":
            self._advance()

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "images": self.images, "stage": self.stage,
                "alpha": self.alpha, "resolution": self.current.resolution}

    @staticmethod
    def _where(resolution: int, alpha: float) -> str:
        return f"{resolution}x{resolution} ({f'fade-in alpha {alpha:.2f}' if alpha < 1 else 'stable'})"

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.set_images(int(state.get("images", 0)))
        if "resolution" not in state:  # a checkpoint from before it was saved: its stage index
            return  # belongs to the schedule it was written under, which may have changed
        here, there, alpha = self.current.resolution, int(state["resolution"]), float(state.get("alpha", 1.0))
        was, now = self._where(there, alpha), self._where(here, self.alpha)
        if (here, self.alpha) < (there, alpha - 1e-9):
            raise ConfigError(f"this progressive schedule puts the run back from {was} to {now} after "
                              f"{self.images:,} images; on resume a schedule may only keep the run where it "
                              f"is or move it forward; restore the run's progressive settings or start a new "
                              f"run with another --out")
        if now != was:  # a schedule changed on resume: said, logged and marked like a boundary
            phase = "fade_in" if self.alpha < 1 else "stable"
            self.events.append({"event": "stage", "message": f"the changed schedule moves the run from {was} "
                                                             f"to {now} after {self.images:,} images",
                                "evidence": {"phase": phase, "resolution": self.current.resolution,
                                             "stage": self.stage, "alpha": round(self.alpha, 4),
                                             "images": self.images, "batch": self.current.batch,
                                             "lr_mult": self.current.lr_mult, "resumed_from": was}})

    # ------------------------------------------------------------------ phases

    def stage_real(self, real: Tensor) -> Tensor:
        """Real images [N, C, R, R] -> the current stage's view [N, C, r, r], blended while fading."""
        r = self.current.resolution
        x = F.avg_pool2d(real, self.resolution // r) if r < self.resolution else real
        if self.alpha < 1:
            x = torch.lerp(upsample2(F.avg_pool2d(x, 2)), x, self.alpha)
        return x

    def generate(self, z: Tensor, G: nn.Module | None = None) -> Tensor:
        return (G or self.nets["G"])(z, self.net_stage, self.alpha)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        real = batch["real"]  # this rank's share of a global batch: its share of the stage's
        real = self.stage_real(real[:self.current.batch * len(real) // self.global_batch])
        D = functools.partial(self.nets["D"], alpha=self.alpha)
        z = self._z(real.shape[0], self.rng)
        r = self.reg
        if phase == "D":
            with torch.no_grad():
                fake = self.generate(z)
            real_in, fake_in = self.d_input(real), self.d_input(fake)
            r1_now = r.r1 > 0 and not self.lazy
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real, d_fake = D(real_in), D(fake_in)
            loss = self.adv.d(real=d_real, fake=d_fake, **self.d_kwargs)
            out = {"d_loss": loss.detach(), **self._scores(d_real, d_fake),
                   "alpha": d_real.new_tensor(self.alpha, dtype=torch.float32)}
            if self.drift:
                drift = d_real.float().square().mean()
                loss = loss + self.drift * drift
                out["drift"] = drift.detach()
            penalty, terms = self.d_penalties(D, real_in, fake_in, d_real, r1_now)
            return {"loss": loss + penalty, **out, **terms}
        if phase == "Dreg":
            return self.lazy_penalties(D, real, lambda: self.generate(z))
        if phase == "G":
            d_fake = D(self.d_input(self.generate(z)))
            d_real = D(self.d_input(real)) if losses.g_needs_real(self.adv) else None
            loss = self.adv.g(fake=d_fake, real=d_real)
            return {"loss": loss, "g_loss": loss.detach()}
        raise ValueError(f"unknown phase {phase}")

    # ------------------------------------------------------------------ outputs

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """n images at the current stage, nearest-upsampled to data.resolution, in [-1, 1]."""
        return self.export_module(nets)(self._z(n, generator)).float().clamp(-1, 1)

    def export_module(self, nets: Mapping[str, nn.Module] | None = None) -> StageSampler:
        """``nets``' G at the current stage and fade, upsampled to data.resolution, as one module
        (the same instance for the same G): ``sample`` runs through it, and ganforge.serve.graph
        records its call, so a run stopped before its last stage exports and serves as it samples."""
        G = (nets or {}).get("G", self.nets["G"])
        return cached_module(self, (G,), lambda g: StageSampler(g, lambda: (self.net_stage, self.alpha)))

    def preview_caption(self) -> str:
        s, r = self.current, self.current.resolution
        where = f"fade-in alpha {self.alpha:.2f}" if self.alpha < 1 else "stable"
        return (f"stage {self.stage + 1}/{len(self.stages)}: {r}x{r} ({where}), "
                f"{self.images:,} images, batch {s.batch}")
