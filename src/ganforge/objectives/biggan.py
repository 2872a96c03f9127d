"""BigGAN (Brock, Donahue & Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural
Image Synthesis"): class-conditional generation with the networks of ganforge.models.biggan.

The training recipe is the conditional objective's (hinge loss from ``loss.name``, several D
steps per G step from ``train.n_critic``, TTUR from ``optim.g_lr`` / ``optim.d_lr``, fakes drawn
for the labels of the real batch, EMA of G from ``train.ema_start``) plus what BigGAN adds:

- orthogonal regularization of G (sec. 3.1, eq. 3, the off-diagonal variant):
  ``reg.ortho * sum_W ||W W^T * (1 - I)||_F^2`` over every weight of G with two or more
  dimensions seen as a matrix [out, in*k*k], the shared class embedding excepted (as the
  authors' code). Applied to the weights before spectral normalization, as the authors' code
  does. Their code adds the gradient ``2 beta (W W^T * (1 - I)) W`` directly, which is the
  gradient of *half* this term: our reg.ortho = 1e-4 regularizes twice as strongly as their
  ``G_ortho`` = 1e-4 (we keep the paper's formula);
- optionally (``biggan.aux_weight`` > 0; not in the paper) an auxiliary class head on D's
  pooled features beside the projection, as in AC-GAN but trained on real images only, so that
  fakes are pushed toward what a classifier of the real data recognizes; Han et al. 2021
  ("Dual Projection GAN", P2GAN) combine projection and classification this way;
- truncation (sec. 3.1): ``sample(..., truncation=T)`` resamples every latent value with
  |z| > T; the resampled values are drawn from the normal restricted to [-T, T] by its inverse
  CDF, which is what resampling until a value falls inside converges to, in one pass for any T.
  Values inside the threshold are those of the untruncated sample with the same seed;
- "standing statistics": before a generator in eval mode samples (the EMA generator during
  training, any generator of a loaded run), its BatchNorm statistics are recomputed over
  ``biggan.standing_batches`` batches of its own samples (the authors' ``accumulate_stats``),
  drawn with the same truncation as the samples: statistics of untruncated latents would
  shrink the activations of a truncated sample (a run after 120 steps gave near-black images
  at T = 0.5 that way). The statistics of the last few truncations are kept, so a server that
  alternates between them copies them back instead of recomputing them.

``export_module`` is G's sampling pass (models.biggan.Sampler, inputs z and labels): the
statistics it runs with are those of the last truncation sampled, so ONNX export fixes a graph
to one truncation (``ganforge export --truncation T``) and the server batches one truncation per
forward pass.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..labels import dataset_classes
from ..latents import normal, slerp, walk_fractions
from ..models.biggan import BigGANDiscriminator, BigGANGenerator, Sampler
from ..models.layers import batch_norms, standing_stats_
from .base import cached_module, register_objective
from .conditional import ConditionalGAN
from .unconditional import TINY_TRAIN, gan_optimizers, write_image_folder


@dataclass
class BigGANConfig:
    """BigGAN (objective=biggan; ganforge.objectives.biggan). Widths, z and spectral norm come
    from the model section, the orthogonal regularization weight from reg.ortho."""

    shared_dim: int = 128  # size of the class embedding shared by all of G's batch norms (paper: 128)
    hier: bool = True  # hierarchical latent: z split into one chunk per G block (+1 for the first layer)
    attn_res: int = 64  # resolution of the self-attention block in G and D (paper at 128 px: 64); 0: none
    class_in_input: bool = False  # the class embedding also joins G's first layer (BigGAN-deep); false: BNs only
    standing_batches: int = 16  # batches of samples for the standing BN statistics; 0: off
    standing_batch_size: int = 64
    aux_weight: float = 0.0  # > 0: D class head on real images, its CE on fakes in G's loss


def ortho_penalty(module: nn.Module, *, skip: Sequence[nn.Parameter] = ()) -> Tensor:
    """sum over the weights W of ``module`` with ndim >= 2, as matrices [out, -1], of
    ||W W^T * (1 - I)||_F^2 (Brock et al. 2019, eq. 3); parameters in ``skip`` excepted."""
    skip_ids = {id(p) for p in skip}
    total = None
    for p in module.parameters():
        if p.ndim < 2 or id(p) in skip_ids:
            continue
        w = p.float().reshape(p.shape[0], -1)
        with torch.autocast(w.device.type, enabled=False):  # a bf16 Gram matrix is too coarse
            gram = w @ w.t()
        term = gram.square().sum() - torch.diagonal(gram).square().sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no weight matrix to regularize")
    return total


def truncated_z(shape: tuple[int, ...], threshold: float | None, generator: torch.Generator) -> Tensor:
    """z ~ N(0, 1) [shape] on the generator's device; with a threshold, every value beyond it
    resampled (drawn from the normal restricted to [-T, T]). Row i (shape[0] indexes the samples)
    is the same whatever the count, resampled values included."""
    # the resampling draws from a CPU generator seeded from the stream's state before z: drawn
    # after z from the stream itself, sample i's followed the count of normals before it (seed
    # 3's first image differed between `sample --n 1` and `--n 7`); CPU torch.rand draws element
    # by element, so its row i is the same at any count, on any device of the stream
    seed = None if threshold is None else hashlib.blake2b(
        generator.get_state().cpu().numpy().tobytes(), digest_size=8).digest()
    z = normal(shape, generator)
    # drawn with or without a threshold, so that the stream after it (the next batch's z, the
    # standing statistics' labels) is the same at every threshold: drawn only with one, it had
    # shifted every batch after the first, and bench truncation compared other latents
    torch.rand(shape, generator=generator, device=generator.device)
    if threshold is None:
        return z
    resample = torch.Generator().manual_seed(int.from_bytes(seed, "little"))
    u = torch.rand(shape, generator=resample, dtype=torch.float64)
    t = torch.tensor(float(threshold), dtype=torch.float64)
    lo, hi = torch.special.ndtr(-t), torch.special.ndtr(t)
    inside = torch.special.ndtri(lo + u * (hi - lo)).clamp(-t, t).float()
    return torch.where(z.abs() <= threshold, z, inside.to(z.device))


@register_objective("biggan")
class BigGAN(ConditionalGAN):
    sections = {"biggan": BigGANConfig}
    ema_standing_stats = False  # its sampler computes them for the truncation asked for
    capabilities = frozenset({"sample", "sample_labels", "truncation", "interpolate"})
    g_regularizers = frozenset({"ortho"})
    unsupported_advice = ("model.pac", "model.mbstd_group")
    # model.* its networks do not take (refused when set): the report shows them apart
    unused_settings = tuple(f"model.{k}" for k in ("g_depth", "d_depth", "d_norm", "g_head", "d_head", "init",
                                                     "mbstd_group", "pac"))
    # thresholds: T = 1 redraws a third of z's values, T = 3 0.3% (nearly no truncation)
    truncation_sweep = (0.5, 1.0, 1.5, 2.0, 3.0)
    truncation_range = (0.05, 3.0, 1.0)
    standing_kept = 8  # truncations whose standing statistics are kept for the current weights

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        m, b, self.reg = cfg.model, cfg.biggan, cfg.reg
        names = dataset_classes(cfg, data_info, otherwise="unconditional")
        k = len(names)
        if m.name != "biggan":
            raise ConfigError(f"objective=biggan builds its own networks; set model.name=biggan "
                              f"(got '{m.name}')")
        unused = {"model.g_depth": m.g_depth, "model.d_depth": m.d_depth, "model.d_norm": m.d_norm,
                  "model.g_head": m.g_head, "model.d_head": m.d_head, "model.init": m.init,
                  "model.mbstd_group": m.mbstd_group or None, "model.pac": m.pac if m.pac > 1 else None}
        for key, value in unused.items():
            if value is not None:
                raise ConfigError(f"{key} is not used by objective=biggan; remove it")
        if b.aux_weight < 0:
            raise ConfigError(f"biggan.aux_weight must be >= 0 (0: projection D only), got {b.aux_weight}")
        if b.standing_batches < 0 or b.standing_batch_size < 1:
            raise ConfigError(f"biggan.standing_batches must be >= 0 and biggan.standing_batch_size "
                              f">= 1, got {b.standing_batches} and {b.standing_batch_size}")
        self.num_classes, self.class_names = k, names
        self.z_dim, self.point_dim = m.z_dim, None
        # projection D; with biggan.aux_weight also a class head, trained on real images only
        self.aux_weight, self.aux_fake_in_d = b.aux_weight, False
        self.standing = (b.standing_batches, b.standing_batch_size)
        self._standing_key = None
        self._standing_saved: dict[tuple, list[tuple[Tensor, ...]]] = {}
        # the standing statistics live in G's BatchNorm buffers: one sampling thread at a time sets
        # them and samples (two threads asking for different truncations had mixed them)
        self._sampling = threading.Lock()
        res, ch = cfg.data.resolution, cfg.data.channels
        G = BigGANGenerator(resolution=res, channels=ch, z_dim=m.z_dim, width=m.g_width, num_classes=k,
                            shared_dim=b.shared_dim, hier=b.hier, attn_res=b.attn_res,
                            spectral_norm=m.g_spectral_norm, class_in_input=b.class_in_input)
        D = BigGANDiscriminator(resolution=res, channels=ch, width=m.d_width, num_classes=k,
                                attn_res=b.attn_res, spectral_norm=m.d_spectral_norm,
                                class_head=b.aux_weight > 0)
        self.nets = {"G": G, "D": D}
        self.optimizers = gan_optimizers(cfg)
        self.setup_training(cfg)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "labeled", n=4, size=16, channels=1, classes=("a", "b"))
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 16, "channels": 1},
                "model": {"name": "biggan", "z_dim": 6, "g_width": 2, "d_width": 2,
                          "g_spectral_norm": True, "d_spectral_norm": True},
                "biggan": {"shared_dim": 4, "attn_res": 8, "class_in_input": True, "standing_batches": 2,
                           "standing_batch_size": 4},
                "loss": {"name": "hinge"}, "reg": {"ortho": 1e-4},
                "train": {**TINY_TRAIN, "n_critic": 2}, "monitor": {"probe_size": 4}}

    # ------------------------------------------------------------------ phases

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        out = super().loss(phase, batch)
        if phase == "G" and self.reg.ortho > 0:
            G = self.nets["G"]
            ortho = ortho_penalty(G, skip=list(G.shared.parameters()))
            out = {**out, "loss": out["loss"] + self.reg.ortho * ortho, "g_ortho": ortho.detach()}
        return out

    # ------------------------------------------------------------------ sampling

    def _standing_stats(self, G: nn.Module, truncation: float | None) -> None:
        """Standing BN statistics of ``G`` over its own samples of uniform classes from a fixed
        seed, with the latent distribution it is about to sample from (truncated or not, as the
        authors' truncation curves recompute them per setting); recomputed only when that or
        G's weights changed since they were last computed (the EMA update, a checkpoint load and
        every in-place copy bump a tensor's version), else copied back from those kept."""
        batches, size = self.standing
        key = (id(G), truncation, tuple(p._version for p in G.parameters()))
        if not batches or key == self._standing_key:
            return
        bns = batch_norms(G)
        kept = self._standing_saved.get(key)
        if kept is not None:
            with torch.no_grad():
                for m, buffers in zip(bns, kept):
                    for mine, saved in zip((m.running_mean, m.running_var, m.num_batches_tracked), buffers):
                        mine.copy_(saved)
            self._standing_key = key
            return
        gen = torch.Generator().manual_seed(0)
        inputs = []
        for _ in range(batches):
            z = truncated_z((size, self.z_dim), truncation, gen).to(self.device)
            y = torch.randint(0, self.num_classes, (size,), generator=gen).to(self.device)
            inputs.append((z, y))
        standing_stats_(G, inputs)
        # other weights' statistics are stale; keep at most standing_kept truncations
        same = [k for k in self._standing_saved if k[0] == key[0] and k[2] == key[2]]
        self._standing_saved = {k: self._standing_saved[k] for k in same[max(0, len(same) - self.standing_kept + 1):]}
        self._standing_saved[key] = [(m.running_mean.clone(), m.running_var.clone(),
                                      m.num_batches_tracked.clone()) for m in bns]
        self._standing_key = key

    def export_module(self, nets: Mapping[str, nn.Module] | None = None) -> Sampler:
        """G's sampling pass as one module (models.biggan.Sampler), the same instance for the
        same G: ``sample`` runs through it after the standing statistics, and
        ganforge.serve.graph records its call for export and batching."""
        G = (nets or {}).get("G", self.nets["G"])
        return cached_module(self, (G,), Sampler)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None,
               labels: Tensor | Sequence[int] | int | None = None,
               truncation: float | None = None) -> Tensor:
        """n images [n, C, H, W] in [-1, 1] of the given classes (default: one class per grid row);
        ``truncation``: the threshold T > 0 beyond which latent values are resampled."""
        _check_threshold(truncation)
        y = self.labels_for(n, labels)
        z = truncated_z((n, self.z_dim), truncation, generator).to(self.device)
        return self._generate(z, y, nets, truncation)

    def _generate(self, z: Tensor, y: Tensor, nets, truncation: float | None) -> Tensor:
        """G(z [n, z_dim], y [n]) in [-1, 1], in eval mode with the standing statistics of
        ``truncation``."""
        sampler = self.export_module(nets)
        if sampler.G.training:  # the training loop's own samples: batch statistics, one thread
            return sampler(z, y)
        with self._sampling:
            self._standing_stats(sampler.G, truncation)
            return sampler(z, y)

    @torch.no_grad()
    def interpolate(self, seeds: Sequence[int], frames: int, *, space: str | None = None, nets=None,
                    truncation: float | None = None, labels=None) -> Tensor:
        """A looping walk through the seeds' z, one class (``labels``, default class 0): ``frames``
        images [frames, C, H, W], slerp between consecutive seeds. Each seed's z is that of
        ``sample(1, seed=seed, truncation=T)`` (truncated as it is) and G runs with the standing
        statistics of T, so frame round(k * frames / len(seeds)) is seed k's sample."""
        if space not in (None, "z"):
            raise ConfigError(f"objective={self.name} has one latent space, z (slerp), not {space!r} "
                              f"(--space {space}, space={space!r}); use --space z (space='z') or leave it out")
        _check_threshold(truncation)
        zs = torch.cat([truncated_z((1, self.z_dim), truncation, torch.Generator().manual_seed(int(s)))
                        for s in seeds])  # [S, z_dim], as sample draws them on the CPU
        a, b, frac = walk_fractions(len(seeds), frames)
        z = slerp(zs[a], zs[b], frac)  # [frames, z_dim]; not clamped: the server's graph walk is this slerp
        y = self.labels_for(frames, torch.as_tensor(0 if labels is None else labels).reshape(-1)[:1].expand(frames))
        return self._generate(z.to(self.device), y, nets, truncation)


def _check_threshold(truncation: float | None) -> None:
    if truncation is not None and not truncation > 0:
        raise ConfigError(f"truncation must be a threshold > 0 for BigGAN runs (latent values "
                          f"beyond it are resampled; smaller: less varied, cleaner samples), "
                          f"got {truncation}")
