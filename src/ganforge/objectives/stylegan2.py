"""StyleGAN2 and StyleGAN2-ADA (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"; Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"):
networks in ganforge.models.stylegan2, training recipe here.

Phases per iteration (the reference's Dmain / Dreg / Gmain / Greg):

- "D": non-saturating logistic loss (``loss.name``) on reals and style-mixed fakes;
- "Dreg": lazy R1 (``reg.r1`` gamma, every ``reg.r_interval`` = 16 iterations, times the D steps
  that stands for: r_interval x train.n_critic);
- "G": non-saturating loss; style mixing regularization (``style.mixing_prob`` = 0.9: the ws
  switch to a second latent's from a random crossover layer on);
- "Greg": path-length regularization every ``style.pl_interval`` = 4 steps: with y ~ N(0, I) / sqrt(HW),
  a = ||J_w^T y|| per sample, penalty E[(a - pl_mean)^2] (weight ``style.pl_weight`` = 2, times
  the interval), ``pl_mean`` a running mean (decay 0.01) saved with the run.

Adam's learning rate and betas of an optimizer whose net has a lazy regularizer every k steps
are scaled by c = k / (k + 1): lr c and beta^c (paper, app. B). The EMA generator has a half-life
of ``style.ema_kimg`` thousand images, ramped up over the first images seen (ema_rampup). What
D sees passes through the common augment section (ADA, DiffAugment) as in every family.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import losses
from ..errors import ConfigError
from ..labels import dataset_classes
from ..models.stylegan2 import Discriminator, Generator, Sampler, mix_styles, slerp
from .base import OptimizerSpec, Phase, cached_module, register_objective
from .conditional import ConditionalGAN
from .unconditional import TINY_TRAIN, UnconditionalGAN, write_image_folder


@dataclass
class StyleConfig:
    """StyleGAN2 (objective=stylegan2 / stylegan2_conditional). Widths: model.g_width and
    model.d_width are the channels at the output resolution, doubling per halving up to
    style.channel_max; model.z_dim is z's size; model.mbstd_group D's minibatch-stddev group."""

    w_dim: int = 512  # size of w (the paper: 512)
    mapping_layers: int = 8  # fully connected layers of the mapping network (2 suffice for small data)
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping network
    channel_max: int = 512  # most channels of any layer
    mixing_prob: float = 0.9  # share of batches generated with two latents (style mixing)
    pl_weight: float = 2.0  # path-length regularization weight; 0 off
    pl_interval: int = 4  # lazy path-length regularization: every k generator steps, times k
    pl_batch_shrink: int = 2  # the path-length batch is train.batch_size / this
    pl_decay: float = 0.01  # decay of the running mean path length pl_mean
    ema_kimg: float = 10.0  # half-life of the EMA generator in thousands of images; 0: train.ema_decay
    ema_rampup: float = 0.05  # half-life at most this share of the images seen so far; 0 off
    truncation_cutoff: int = 0  # default cutoff layer of sampling truncation (0: every layer)


def lazy_adam(lr: float, betas: Sequence[float], interval: int) -> tuple[float, tuple[float, float]]:
    """Adam's settings for a net regularized every ``interval`` steps: lr c, betas ** c with
    c = interval / (interval + 1) (StyleGAN2, app. B); unchanged for interval <= 1."""
    if interval <= 1:
        return lr, (float(betas[0]), float(betas[1]))
    c = interval / (interval + 1)
    return lr * c, (float(betas[0]) ** c, float(betas[1]) ** c)


def path_lengths(images: Tensor, ws: Tensor, noise: Tensor) -> Tensor:
    """||J_w^T y|| per sample [N] for images [N, C, H, W] = g(ws [N, L, D]) and y = ``noise``
    (already scaled by 1 / sqrt(H W)): the gradient of <g(ws), y> with respect to ws, its squared
    norm summed over D, averaged over the L layers, square root. Differentiable (create_graph)."""
    dtype = torch.promote_types(images.dtype, torch.float32)  # bf16 under autocast: sum in fp32
    (grad,) = torch.autograd.grad((images.to(dtype) * noise).sum(), ws, create_graph=True)
    return grad.to(dtype).square().sum(2).mean(1).sqrt()


MIX_CHUNK = 64  # images of a style-mixing grid synthesized at once (a 80x80 grid in one call took 3.9 GB at 32 px)
# The seed of the latents edit fits an attribute's direction on: fixed, so that every edit of a run
# along an attribute moves along the same direction (it had been the edited seed + this, so seeds 5
# and 6 were moved along two different directions, and --latent edits depended on --seed)
EDIT_DIRECTION_SEED = 1_000_003


def layer_groups(num_ws: int) -> str:
    """'0-3 coarse, 4-7 middle, 8-11 fine' for the layers a generator has: StyleGAN's groups, only
    those present (the message had named "the rest fine" to a 32 px run, whose layers end at 7)."""
    groups = [(lo, min(hi, num_ws - 1), name) for lo, hi, name in
              ((0, 3, "coarse"), (4, 7, "middle"), (8, num_ws - 1, "fine")) if lo < num_ws]
    return ", ".join(f"{lo}-{hi} {name}" if hi > lo else f"{lo} {name}" for lo, hi, name in groups)


def check_psi(psi: float) -> float:
    if not isinstance(psi, (int, float)) or isinstance(psi, bool) or not 0 <= psi <= 1:
        raise ConfigError(f"truncation psi must be in [0, 1] for StyleGAN2 (1: none, 0: the average "
                          f"image; 0.7 is common), got {psi}")
    return float(psi)


def check_config(cfg, name: str) -> None:
    """The one-line refusals of a StyleGAN2 config that need no data: model.name, the style
    section's ranges, data.resolution a power of two. ``check_run`` says them before the data is
    read (a 48 px run had decoded the whole folder first), ``__init__`` again for a loaded run."""
    m, s = cfg.model, cfg.style
    if m.name != "stylegan2":
        raise ConfigError(f"objective={name} builds its own networks; set model.name=stylegan2 "
                          f"(got '{m.name}')")
    for key in ("w_dim", "mapping_layers", "channel_max", "pl_interval", "pl_batch_shrink"):
        if getattr(s, key) <= 0:
            raise ConfigError(f"style.{key} must be > 0, got {getattr(s, key)}")
    if not 0 <= s.mixing_prob <= 1 or not 0 < s.pl_decay <= 1:
        raise ConfigError(f"style.mixing_prob must be in [0, 1] and style.pl_decay in (0, 1], got "
                          f"{s.mixing_prob} and {s.pl_decay}")
    for key, meaning in (("pl_weight", "the path-length regularization weight; 0 off"),
                         ("ema_kimg", "the EMA generator's half-life in thousands of images; "
                                      "0: train.ema_decay"),
                         ("ema_rampup", "the EMA half-life's cap as a share of the images seen; 0 off")):
        if getattr(s, key) < 0:
            raise ConfigError(f"style.{key} must be >= 0 ({meaning}), got {getattr(s, key)}")
    if s.mapping_lr_mul <= 0:
        raise ConfigError(f"style.mapping_lr_mul must be > 0 (the mapping network's learning-rate "
                          f"multiplier; StyleGAN2: 0.01), got {s.mapping_lr_mul}")
    res = cfg.data.resolution
    if res < 8 or res & (res - 1):
        near = 1 << max(3, res.bit_length() - 1)  # the power of two at or below, 8 at least
        fix = f"use {near}" + (f" or {2 * near}" if near < res else "")
        if cfg.data.name.split(":")[0] == "fashion-mnist":  # 28x28 images: the note says where they go
            fix += " (Fashion-MNIST's 28x28 images are resized to it)"
        raise ConfigError(f"objective={name} needs data.resolution a power of two >= 8 "
                          f"(8, 16, 32, 64, ...), got {res}; {fix}")


@register_objective("stylegan2")
class StyleGAN2(UnconditionalGAN):
    ema = ["G"]
    sections = {"style": StyleConfig}
    capabilities = frozenset({"sample", "truncation", "mix", "interpolate", "project", "edit"})
    unsupported_advice = ("model.pac", "model.d_spectral_norm", "model.g_spectral_norm")
    # model.* its networks do not take (the style section sizes them): the report shows them apart
    unused_settings = tuple(f"model.{k}" for k in ("g_depth", "d_depth", "g_head", "d_head", "init", "d_norm",
                                                     "pac", "d_spectral_norm", "g_spectral_norm"))
    accepts_points = False
    conditional = False

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        super().check_run(cfg, world_size, new=new)
        check_config(cfg, cls.name)  # before the data is read: a bad resolution needs none

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, s, self.reg, self.style = cfg.model, cfg.style, cfg.reg, cfg.style
        check_config(cfg, self.name)  # again here: a loaded run is built without check_run
        res = cfg.data.resolution
        if m.pac > 1 or m.d_spectral_norm or m.g_spectral_norm:
            raise ConfigError(f"objective={self.name} supports neither model.pac nor spectral norm; "
                              f"set model.pac=1, model.d_spectral_norm=false, model.g_spectral_norm=false")
        self.num_classes = self._classes(cfg, data_info)
        self.z_dim, self.point_dim = m.z_dim, None
        self.batch_size, self.cfg_data_name = cfg.train.batch_size, cfg.data.name
        G = Generator(z_dim=m.z_dim, w_dim=s.w_dim, resolution=res, channels=cfg.data.channels,
                      width=m.g_width, channel_max=s.channel_max, mapping_layers=s.mapping_layers,
                      num_classes=self.num_classes, lr_mul=s.mapping_lr_mul)
        D = Discriminator(resolution=res, channels=cfg.data.channels, width=m.d_width,
                          channel_max=s.channel_max, mbstd_group=m.mbstd_group,
                          num_classes=self.num_classes)
        if s.truncation_cutoff < 0 or s.truncation_cutoff > G.num_ws:
            raise ConfigError(f"style.truncation_cutoff must be in 0..{G.num_ws} (layers of this "
                              f"generator), got {s.truncation_cutoff}")
        self.nets = {"G": G, "D": D}
        self.setup_training(cfg)
        self.pl_on = s.pl_weight > 0
        if self.pl_on:
            self.phases.append(Phase("Greg", optimizer="G", every=s.pl_interval, fresh_batch=False))
        g_lr, g_betas = lazy_adam(cfg.optim.g_lr, cfg.optim.betas, s.pl_interval if self.pl_on else 1)
        d_lr, d_betas = lazy_adam(cfg.optim.d_lr, cfg.optim.betas, self.d_reg_interval)  # D steps per Dreg
        self.optimizers = {"G": OptimizerSpec(["G"], lr=g_lr, betas=g_betas),
                           "D": OptimizerSpec(["D"], lr=d_lr, betas=d_betas)}
        self.pl_mean = torch.zeros([])

    def _classes(self, cfg, data_info) -> int:
        return 0

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "images", n=8, size=8, channels=1)
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
                "model": {"name": "stylegan2", "z_dim": 4, "g_width": 4, "d_width": 4, "mbstd_group": 2},
                "style": {"w_dim": 8, "mapping_layers": 2, "channel_max": 8, "pl_interval": 2,
                          "ema_kimg": 0.01},
                "reg": {"r1": 0.1, "r_interval": 2},
                "optim": {"g_lr": 0.002, "d_lr": 0.002, "betas": [0.0, 0.99]},
                "train": dict(TINY_TRAIN), "monitor": {"probe_size": 4}}

    # ------------------------------------------------------------------ training

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        super().bind(device=device, rng=rng)
        self.pl_mean = self.pl_mean.to(device)

    def ema_beta(self, step: int) -> float | None:
        """EMA decay per update for a half-life of ema_kimg thousand images, at most ema_rampup
        of the images seen so far (the reference's ema_kimg / ema_rampup)."""
        s = self.style
        if s.ema_kimg <= 0:
            return None
        half_life = s.ema_kimg * 1000
        if s.ema_rampup > 0:
            half_life = min(half_life, step * self.batch_size * s.ema_rampup)
        return 0.5 ** (self.batch_size / half_life) if half_life > 0 else 0.0

    def _labels(self, batch: Mapping[str, Any], n: int) -> Tensor | None:
        return None

    def _crossover(self, num_ws: int) -> Tensor:
        """The layer from which a mixed batch takes the second latent's ws (num_ws: no mixing), as
        a 0-d tensor on the device: deciding on the host would make every step wait for the GPU.
        Both random numbers are always drawn, so the noise stream does not depend on the outcome."""
        u = torch.rand((), generator=self.rng, device=self.rng.device)
        layer = torch.randint(1, num_ws, (), generator=self.rng, device=self.rng.device)
        return torch.where(u < self.style.mixing_prob, layer, torch.full_like(layer, num_ws))

    def generate(self, n: int, labels: Tensor | None, *, update_w_avg: bool = False) -> tuple[Tensor, Tensor]:
        """Training fakes [n, C, H, W] and their ws [n, L, w_dim], style-mixed, with random noise.
        The second latent's ws are computed whether or not this batch mixes (the mapping network
        is a small share of a step), so nothing here waits on the device."""
        G = self.nets["G"]
        ws = G.ws(self._z(n, self.rng), labels, update_w_avg=update_w_avg)
        if self.style.mixing_prob > 0:
            cutoff = self._crossover(G.num_ws)
            ws = mix_styles(ws, G.ws(self._z(n, self.rng), labels), cutoff)
        noise = G.synthesis.make_noise(n, "random", generator=self.rng, device=self.device)
        return G.synthesis(ws, noise), ws

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        real = batch["real"]  # [N, C, H, W] in [-1, 1]
        n = real.shape[0]
        labels = self._labels(batch, n)
        D = self.nets["D"]

        def critic(x: Tensor) -> Tensor:
            return D(x, labels)

        if phase == "D":
            with torch.no_grad():
                fake, _ = self.generate(n, labels)
            real_in, fake_in = self.d_input(real), self.d_input(fake)
            r1_now = self.reg.r1 > 0 and not self.lazy
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real, d_fake = critic(real_in), critic(fake_in)
            loss = self.adv.d(real=d_real, fake=d_fake, **self.d_kwargs)
            out = {"d_loss": loss.detach(), **self._scores(d_real, d_fake)}
            penalty, terms = self.d_penalties(critic, real_in, fake_in, d_real, r1_now)
            return {"loss": loss + penalty, **out, **terms}
        if phase == "Dreg":
            return self.lazy_penalties(critic, real, lambda: self.generate(n, labels)[0])
        if phase == "G":
            fake, _ = self.generate(n, labels, update_w_avg=True)
            d_fake = critic(self.d_input(fake))
            d_real = critic(self.d_input(real)) if losses.g_needs_real(self.adv) else None
            loss = self.adv.g(fake=d_fake, real=d_real)
            return {"loss": loss, "g_loss": loss.detach()}
        if phase == "Greg":
            m = max(1, n // self.style.pl_batch_shrink)
            fake, ws = self.generate(m, None if labels is None else labels[:m])
            h, w = fake.shape[-2:]
            y = torch.randn(fake.shape, generator=self.rng, device=self.rng.device).to(fake.device)
            lengths = path_lengths(fake, ws, y / math.sqrt(h * w))
            self.pl_mean = self.pl_mean.lerp(lengths.detach().mean(), self.style.pl_decay)
            penalty = (lengths - self.pl_mean).square().mean()
            return {"loss": penalty * self.style.pl_weight * self.style.pl_interval,
                    "pl_penalty": penalty.detach(), "pl_mean": self.pl_mean.clone()}
        raise ValueError(f"unknown phase {phase}")

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "pl_mean" in state:
            self.pl_mean = torch.as_tensor(state["pl_mean"], dtype=torch.float32).to(self.pl_mean.device)

    # ------------------------------------------------------------------ outputs

    def _G(self, nets: Mapping[str, nn.Module] | None) -> Generator:
        return (nets or {}).get("G", self.nets["G"])

    def _cutoff(self, cutoff: int | None, num_ws: int) -> int | None:
        cutoff = self.style.truncation_cutoff if cutoff is None else cutoff
        if not isinstance(cutoff, int) or not 0 <= cutoff <= num_ws:
            raise ConfigError(f"truncation cutoff must be a layer in 0..{num_ws} (0: every layer), "
                              f"got {cutoff}")
        return cutoff or None

    def sample_labels_for(self, n: int, labels, generator: torch.Generator) -> Tensor | None:
        return None

    def balanced_labels(self, n: int) -> Tensor | None:
        """Labels [n] with every class equally often, to one (``labels.interleaved_labels``), for
        what is fitted or measured over the generator's whole output (edit's direction, PPL); None
        for an unconditional run. The grid layout of ``sample_labels_for`` had left classes out
        (with 60 images of 10 classes, 8 and 9 never appeared)."""
        from ..labels import interleaved_labels

        return interleaved_labels(n, self.num_classes).to(self.device) if self.num_classes else None

    def latents(self, n: int, generator: torch.Generator, labels=None, *, truncation: float | None = None,
                truncation_cutoff: int | None = None, nets=None) -> tuple[Tensor, Tensor | None]:
        """(ws [n, L, w_dim], labels) for n latents drawn from ``generator``, truncated."""
        G = self._G(nets)
        psi = 1.0 if truncation is None else check_psi(truncation)
        y = self.sample_labels_for(n, labels, generator)
        ws = G.ws(self._z(n, generator), y, psi=psi, cutoff=self._cutoff(truncation_cutoff, G.num_ws))
        return ws, y

    def synthesize(self, ws: Tensor, *, generator: torch.Generator | None = None, nets=None,
                   noise: str | list[Tensor] = "random") -> Tensor:
        """ws [n, L, w_dim] -> images [n, C, H, W] in [-1, 1]; random noise from ``generator``."""
        G = self._G(nets)
        if isinstance(noise, str):
            noise = G.synthesis.make_noise(ws.shape[0], noise, generator=generator, device=ws.device)
        return G.synthesis(ws.to(self.device), noise).float().clamp(-1, 1)

    def export_module(self, nets: Mapping[str, nn.Module] | None = None) -> Sampler:
        """The sampling pass of ``nets``' G as one module (models.stylegan2.Sampler), the same
        instance for the same G: ``sample`` runs through it, ganforge.serve.graph records its call."""
        G = self._G(nets)
        return cached_module(self, (G,), Sampler)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator, nets: Mapping[str, nn.Module] | None = None,
               labels=None, truncation: float | None = None, truncation_cutoff: int | None = None) -> Tensor:
        """n images [n, C, H, W] in [-1, 1]; ``truncation`` psi in [0, 1] pulls w toward w_avg on
        the layers below ``truncation_cutoff`` (default style.truncation_cutoff, 0: all). Drawn
        from ``generator`` in this order: labels (where random), z, each layer's noise."""
        sampler = self.export_module(nets)
        G = sampler.G
        psi = 1.0 if truncation is None else check_psi(truncation)
        cutoff = self._cutoff(truncation_cutoff, G.num_ws)
        y = self.sample_labels_for(n, labels, generator)
        z = self._z(n, generator)
        noise = sampler.pack_noise(G.synthesis.make_noise(n, "random", generator=generator, device=self.device))
        return sampler(z, y, torch.full((n,), psi, device=self.device), noise, cutoff)

    def parse_layers(self, text: str, nets=None) -> list[int]:
        """'0-3', '4,5,8-9', '4-' (4 to the last layer) or '-3' (0 to 3) -> layer indices, checked
        against this generator's num_ws ('4-' had been read as layer 4 alone)."""
        num_ws = self._G(nets).num_ws
        layers: list[int] = []
        try:
            for part in (p.strip() for p in str(text).split(",") if p.strip()):
                lo, dash, hi = (v.strip() for v in part.partition("-"))
                if not lo and not hi:  # '-' alone: no bound at all
                    raise ValueError
                lo_i = int(lo) if lo else 0  # an open bound runs to the first or last layer
                hi_i = (int(hi) if hi else num_ws - 1) if dash else lo_i
                if lo_i > hi_i:
                    raise ValueError
                layers += range(lo_i, hi_i + 1)
        except ValueError:
            layers = [-1]
        if not layers or min(layers) < 0 or max(layers) >= num_ws:
            raise ConfigError(f"unknown layer range '{text}': this generator has layers 0-{num_ws - 1} "
                              f"({layer_groups(num_ws)}); write e.g. --layers 0-{min(3, num_ws - 1)} "
                              f"(or {min(4, num_ws - 1)}- for layer {min(4, num_ws - 1)} to the last)")
        return sorted(set(layers))

    @torch.no_grad()
    def mix(self, row_seeds: Sequence[int], col_seeds: Sequence[int], layers: Sequence[int], *,
            nets=None, truncation: float | None = None, labels=None) -> Tensor:
        """The style-mixing grid [(1 + R) * (1 + C), C, H, W] in [-1, 1]: a blank corner, the
        column seeds' images on top, the row seeds' down the left, and at (r, c) the row seed's
        ws with ``layers`` taken from the column seed (StyleGAN, fig. 3). Noise is the fixed
        ``const`` noise, so only the styles differ."""
        def ws_of(seed: int) -> Tensor:
            return self.latents(1, torch.Generator().manual_seed(int(seed)), labels,
                                truncation=truncation, nets=nets)[0]

        def img(ws: Tensor) -> Tensor:  # MIX_CHUNK at a time: memory grows with the grid, not its synthesis
            return torch.cat([self.synthesize(c, nets=nets, noise="const") for c in ws.split(MIX_CHUNK)])

        rows = torch.cat([ws_of(s) for s in row_seeds])
        cols = torch.cat([ws_of(s) for s in col_seeds])
        take = torch.zeros(rows.shape[1], dtype=torch.bool, device=rows.device)
        take[list(layers)] = True
        mixed = torch.where(take.view(1, 1, -1, 1), cols.unsqueeze(0), rows.unsqueeze(1)).flatten(0, 1)  # [R C, L, D]
        top = img(cols)
        n_cols = len(col_seeds)
        grid = top.new_ones(1 + len(row_seeds), 1 + n_cols, *top.shape[1:])  # the corner stays blank
        grid[0, 1:], grid[1:, 0] = top, img(rows)
        for start in range(0, len(mixed), MIX_CHUNK):
            index = torch.arange(start, min(start + MIX_CHUNK, len(mixed)), device=grid.device)
            grid[1 + index // n_cols, 1 + index % n_cols] = img(mixed[start:start + MIX_CHUNK])
        return grid.flatten(0, 1)

    @torch.no_grad()
    def interpolate(self, seeds: Sequence[int], frames: int, *, space: str = "w", nets=None,
                    truncation: float | None = None, labels=None) -> Tensor:
        """A looping walk through the seeds' latents: ``frames`` images [frames, C, H, W];
        linear in W, spherical (slerp) in Z, with the fixed ``const`` noise."""
        if space not in ("w", "z"):
            raise ConfigError(f"--space must be w or z, got '{space}'")
        G = self._G(nets)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        zs = torch.cat([self._z(1, g) for g in gens])
        ys = [self.sample_labels_for(1, labels, g) for g in gens]
        y = None if ys[0] is None else torch.cat(ys)
        from ..latents import walk_fractions

        a, b, frac = walk_fractions(len(seeds), frames)  # every seed a frame, whatever frames is
        frac = frac.float().to(self.device)
        cutoff = self._cutoff(None, G.num_ws)
        psi = 1.0 if truncation is None else check_psi(truncation)
        if space == "z":
            z = slerp(zs[a], zs[b], frac.view(-1, 1))
            ws = G.ws(z, None if y is None else y[a], psi=psi, cutoff=cutoff)
        else:
            ends = G.ws(zs, y, psi=psi, cutoff=cutoff)
            ws = ends[a].lerp(ends[b], frac.view(-1, 1, 1))
        return torch.cat([self.synthesize(chunk, nets=nets, noise="const") for chunk in ws.split(64)])

    @torch.no_grad()
    def path_pairs(self, n: int, *, space: str, eps: float, generator: torch.Generator,
                   nets=None) -> tuple[Tensor, Tensor]:
        """PPL's end-point pairs: latents l0, l1, images at t = 0 and t = eps along l0 -> l1
        (slerp in Z, linear in W), the same ``const`` noise in both (ganforge.metrics.ppl)."""
        if space not in ("w", "z"):
            raise ConfigError(f"path length space must be w or z, got '{space}'")
        G = self._G(nets)
        z0, z1 = self._z(n, generator), self._z(n, generator)
        y = self.balanced_labels(n)
        eps_t = torch.full((n, 1), eps, device=self.device)
        if space == "z":
            ws = G.ws(torch.cat([z0, slerp(z0, z1, eps_t)]), None if y is None else torch.cat([y, y]))
        else:
            w0, w1 = G.mapping(z0, y), G.mapping(z1, y)
            ws = torch.cat([w0, w0.lerp(w1, eps_t)]).unsqueeze(1).repeat(1, G.num_ws, 1)
        images = G.synthesis(ws, G.synthesis.make_noise(2 * n, "const")).float()  # not clamped: smooth in eps
        return images[:n], images[n:]

    def projection_target(self, image) -> tuple[Tensor, list[str]]:
        """uint8 [H, W] or [H, W, C] (C 1, 2 = gray + alpha, 3 or 4 = RGBA) -> float [1, C_G, R, R] in
        [-1, 1] on the device, made as the data pipeline makes a training image (transparency
        composited on white, ``ganforge.imageio.normalize``; resized as the run's data source resizes),
        and what was changed to get there (said to the user): transparency, channels, size."""
        import numpy as np
        from PIL import Image

        from ..imageio import normalize

        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise ConfigError(f"the image to project must be uint8 [H, W] or [H, W, 1|2|3|4], got "
                              f"{arr.dtype} {arr.shape}; save it as a PNG or JPEG")
        G, notes = self.nets["G"], []
        res, channels = G.synthesis.resolution, G.synthesis.channels
        img = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        mode = "L" if channels == 1 else "RGB"
        if img.mode in ("LA", "RGBA"):  # img.convert(mode) had dropped the alpha (a transparent
            # background came out as whatever colour lay under it, often black)
            transparent = int((arr[..., -1] < 255).sum())
            if transparent:
                notes.append(f"composited {img.mode}'s {transparent} transparent or translucent pixel(s) on "
                             f"white, as the data loader does")
        if img.mode != mode:
            notes.append(f"converted {img.mode} to {mode} ({channels} channel(s), as the run was trained)")
        img = normalize(img, mode)
        if img.size != (res, res):
            w, h = img.size
            img = self._resize_target(img, res)
            notes.append(f"center-cropped and resized {w}x{h} to {res}x{res} (the run's resolution)")
        x = torch.from_numpy(np.asarray(img).copy()).float().div(127.5).sub(1)
        x = x.view(res, res, channels).permute(2, 0, 1).unsqueeze(0)
        return x.to(self.device), notes

    def _resize_target(self, img, res: int):
        """``img`` (PIL) center-cropped and resized to res x res as the run's data source resizes its
        training images, so the target is what G was trained on (LANCZOS had differed from a
        Fashion-MNIST image's bilinear antialias by up to 67/255): an image folder's bicubic fit of
        the short side, a named dataset's bilinear antialias (``data.base.adapt_images``)."""
        import numpy as np
        from PIL import Image, ImageOps

        if self.cfg_data_name.split(":")[0] == "folder":
            return ImageOps.fit(img, (res, res), method=Image.Resampling.BICUBIC)
        from ..data.base import adapt_images

        w, h = img.size
        side = min(w, h)
        img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        arr = np.asarray(img).reshape(side, side, -1)
        out = adapt_images(torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0), res, None)[0]
        out = out.permute(1, 2, 0).numpy()
        return Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)

    def project(self, image, *, space: str = "w", steps: int = 1000, seed: int = 0, nets=None,
                log=None) -> dict:
        """GAN inversion of a real image (objectives._stylegan2_project): the latent ws [L, D],
        the reconstruction, a progress strip, PSNR / SSIM to the target and how it was done.
        Ctrl-C or SIGTERM raises _stylegan2_project.ProjectionInterrupted, whose ``result`` is
        that of the steps done so far."""
        from ..metrics.features import ClassifierExtractor, classifier_weights
        from ..metrics.paired import SSIM_WINDOW, psnr, ssim
        from ..metrics.ppl import float_forward
        from ._stylegan2_project import ProjectionInterrupted, project

        if space not in ("w", "w+"):
            raise ConfigError(f"--space must be w or w+, got '{space}'")
        if steps < 1:
            raise ConfigError(f"--steps must be positive, got {steps}")
        target, notes = self.projection_target(image)
        name, features = self.cfg_data_name, None
        if classifier_weights(name) is not None:
            ext = ClassifierExtractor(name, device=self.device)
            ext.model.requires_grad_(False)
            features = lambda x: float_forward(ext, x)[0].flatten(1)  # noqa: E731  (differentiable in x)
            perceptual = f"pixel MSE + {name}-cnn feature distance"
        else:
            perceptual = (f"pixel MSE only ({name} has no ganforge classifier; LPIPS/VGG16 weights are "
                          f"not available offline)")
        def scored(out: dict) -> dict:
            out["target"] = target.cpu()
            out["psnr"] = float(psnr(out["image"], out["target"])[0])
            big = min(target.shape[-2:]) >= SSIM_WINDOW
            out["ssim"] = float(ssim(out["image"], out["target"])[0]) if big else None
            out.update(space=space, perceptual=perceptual, notes=notes)  # "steps": those done
            return out

        G = self._G(nets)
        with torch.enable_grad():
            G.requires_grad_(False)
            try:
                out = project(G, target, space=space, steps=steps, features=features, seed=seed, log=log)
            except ProjectionInterrupted as exc:  # Ctrl-C or SIGTERM: the latent so far, scored, for the caller
                exc.result = scored(exc.result)
                raise
        return scored(out)

    def dataset_classifier(self):
        """(logits of float images, class names) from the run's dataset classifier, or a ConfigError."""
        from ..metrics.features import ClassifierExtractor, classifier_weights
        from ..metrics.ppl import float_forward

        name = self.cfg_data_name
        if classifier_weights(name) is None:
            raise ConfigError(f"edit labels generated images with the dataset's classifier, and {name} has "
                              f"none (fashion-mnist and mnist have one); from Python pass classify=...")
        ext = ClassifierExtractor(name, device=self.device)
        return (lambda x: float_forward(ext, x)[1]), list(ext.class_names)

    def check_latent(self, latent, *, nets=None) -> Tensor:
        """A latent of ``ganforge project`` (ws [L, D], numpy or torch) as float ws [1, L, D] on the
        device, refused in one line unless it has this run's shape and finite values (one of
        another run, or NaN, had been edited into a black image or failed after the fitting)."""
        import numpy as np

        G = self._G(nets)
        want = (G.num_ws, G.w_dim)
        arr = latent.detach().cpu().numpy() if isinstance(latent, Tensor) else np.asarray(latent)
        if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
            raise ConfigError(f"the latent holds {arr.dtype} values, not numbers; pass the latent.npy of "
                              f"ganforge project on this run (ws {want})")
        if tuple(arr.shape) != want:
            raise ConfigError(f"the latent has shape {tuple(arr.shape)}, this run's ws are {want}; pass the "
                              f"latent.npy of ganforge project on this run")
        if not np.isfinite(arr).all():
            raise ConfigError(f"the latent has {int((~np.isfinite(arr)).sum())} NaN or infinite values; pass "
                              f"the latent.npy of ganforge project on this run, or project again")
        return torch.as_tensor(arr, dtype=torch.float32).to(self.device).unsqueeze(0)

    def check_noise(self, noise, *, nets=None) -> list[Tensor]:
        """The noise maps of ``ganforge project`` (one [1, 1, r, r] per layer, numpy or torch) as
        float tensors on the device, refused in one line unless they fit this run's generator."""
        import numpy as np

        want = self._G(nets).synthesis.noise_shapes(1)
        maps = [n.detach().cpu().numpy() if isinstance(n, Tensor) else np.asarray(n) for n in noise]
        got = [tuple(m.shape) for m in maps]
        if got != want:
            raise ConfigError(f"the noise maps have shapes {got}, this run's are {want}; pass the noise.npz "
                              f"that ganforge project wrote on this run next to the latent")
        if any(m.dtype.kind != "f" or not np.isfinite(m).all() for m in maps):
            raise ConfigError("the noise maps hold NaN, infinite or non-float values; pass the noise.npz that "
                              "ganforge project wrote next to the latent, or project again")
        return [torch.as_tensor(m, dtype=torch.float32).to(self.device) for m in maps]

    @torch.no_grad()
    def edit(self, *, attribute, strengths: Sequence[float], seed: int = 0, latent=None, noise=None,
             n_train: int = 2000, classify=None, class_names: Sequence[str] | None = None, nets=None,
             labels=None) -> dict:
        """InterFaceGAN editing (objectives._stylegan2_edit): the image of ``seed`` (or of
        ``latent``, ws [L, D] from ganforge project, when ``seed`` is unused) moved along the W
        direction of class ``attribute`` by each strength (in standard deviations of w along
        it). The direction is fitted on the latents of EDIT_DIRECTION_SEED, whatever ``seed``
        is, so every image of a run moves along the same one. ``noise``: the per-layer noise
        maps project fitted with the latent, without which strength 0 is not its reconstruction
        (the fixed ``const`` noise draws other fine detail). ``labels``: a conditional run's class
        of the ``seed`` image (int64 [1] or one class; None: the default, the first class), as
        ``mix`` and ``interpolate`` take it."""
        from ..labels import resolve_class
        from ._stylegan2_edit import find_direction

        G = self._G(nets)
        ws = None if latent is None else self.check_latent(latent, nets=nets)  # before any fitting
        maps = None if noise is None else self.check_noise(noise, nets=nets)
        if classify is None:
            classify, class_names = self.dataset_classifier()
        k = resolve_class(attribute, list(class_names))
        gen = torch.Generator().manual_seed(EDIT_DIRECTION_SEED)  # the training latents, not the edited one's
        z = self._z(n_train, gen)
        y = self.balanced_labels(min(n_train, 250))  # each chunk of 250 (find_direction's) balanced

        def mapping(c):
            return G.mapping(c, None if y is None else y[:len(c)])

        def synth(w):
            return self.synthesize(w.to(self.device).unsqueeze(1).repeat(1, G.num_ws, 1), nets=nets, noise="const")

        info, _ = find_direction(synth, mapping, classify, z, k)
        if info["normal"] is None:
            raise ConfigError(f"{info['n_positive']} of {n_train} generated images are classified as "
                              f"{class_names[k]}: too few on one side to fit a direction; raise --n-train, train "
                              f"the run longer or choose another attribute")
        if ws is None:
            ws = self.latents(1, torch.Generator().manual_seed(seed), labels, nets=nets)[0]
        step = info["normal"].to(self.device) * info["sigma"]
        edited = torch.cat([ws + float(s) * step for s in strengths])
        images = self.synthesize(edited, nets=nets, noise="const" if maps is None else
                                 [m.expand(len(edited), -1, -1, -1) for m in maps])
        prob = torch.softmax(classify(images).float(), 1)[:, k]
        return {"images": images.cpu(), "strengths": [float(s) for s in strengths], "attribute": class_names[k],
                "probability": prob.cpu().tolist(), "val_balanced_accuracy": info["val_balanced_accuracy"],
                "positive_share": info["positive_share"], "n_train": n_train, "sigma": info["sigma"],
                "n_heldout": info["n_heldout"], "n_heldout_positive": info["n_heldout_positive"],
                "direction_seed": EDIT_DIRECTION_SEED}


@register_objective("stylegan2_conditional")
class StyleGAN2Conditional(StyleGAN2):
    """Class-conditional StyleGAN2: a label embedding joined to z before the mapping network,
    a projection discriminator (StyleGAN2-ADA's conditioning). Classes come from the dataset
    and are saved with every checkpoint, as in objective=conditional."""

    capabilities = frozenset({"sample", "sample_labels", "truncation", "mix", "interpolate", "project", "edit"})
    conditional = True

    def _classes(self, cfg, data_info) -> int:
        self.class_names = dataset_classes(cfg, data_info, otherwise="stylegan2")
        return len(self.class_names)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        raw = super().example_config(workdir)
        folder = write_image_folder(workdir / "labeled", n=4, size=8, channels=1, classes=("a", "b"))
        raw["data"]["name"] = f"folder:{folder}"
        return raw

    def _labels(self, batch: Mapping[str, Any], n: int) -> Tensor:
        labels = batch.get("labels")
        if labels is None:
            raise ConfigError(f"objective={self.name} got a batch without labels; use a labeled dataset")
        return labels

    def sample_labels_for(self, n: int, labels, generator: torch.Generator) -> Tensor:
        return ConditionalGAN.labels_for(self, n, labels)  # the grid layout of objective=conditional

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "num_classes": self.num_classes,
                "class_names": list(self.class_names)}
