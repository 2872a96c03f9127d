"""Paired image-to-image translation: Pix2Pix (Isola, Zhu, Zhou & Efros 2017, "Image-to-Image
Translation with Conditional Adversarial Networks").

G: U-Net A -> B (ganforge.models.unet); D: PatchGAN on the pair (A, B) stacked along channels
(ganforge.models.patchgan), one score per patch. Losses, with ``loss.name`` from
ganforge.losses (default nonsaturating, the paper's):

    D: 1/2 (d_loss(D(a, b), D(a, G(a))))            the paper halves D's objective (sec. 3.3)
    G: g_loss(D(a, G(a))) + lambda_l1 |G(a) - b|_1   lambda_l1 = translate.lambda_l1 = 100

Phases: "G" on a fresh batch, then "D" on the same batch with G's output of that step
(detached), the order of the reference implementation's single forward pass: one G forward per
step instead of two. Batches are ``{"a", "b"}`` from ganforge.data.pairs.

``sample`` returns strips input | output | target of fixed held-out pairs (the preview the data
hands over at build time) for the Trainer's sample grids; ``translate`` maps any-size inputs
with G in eval mode (padded to G's stride and cropped back). For colorization G predicts only
the chroma and keeps the input's luma (``LumaChroma``; translate.chroma=false: plain RGB).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..data import pairs as pairdata
from ..data.pairs import a_channels, check_config
from ..errors import ConfigError, DataError
from ..models import spectral_norm_
from ..models.patchgan import PatchDiscriminator, check_input_size
from ..models.unet import build_unet
from .base import Objective, Phase, counted, refuse_unused_sections, register_objective
from .unconditional import TINY_TRAIN, gan_optimizers, write_image_folder


# ----------------------------------------------------------------------------- config


@dataclass
class TranslateConfig:
    """Image-to-image translation (objective=pix2pix | cyclegan; ganforge.data.pairs,
    ganforge.objectives.pix2pix / cyclegan). data.channels is the output (B) side's."""

    task: str = "paired"  # colorize | sketch | denoise (made from data.name) | paired | unpaired (folder:PATH)
    direction: str = "AtoB"  # AtoB | BtoA: which side of a paired folder is the input
    a_channels: int | None = None  # input channels; None: 1 for colorize/sketch, else data.channels
    load_size: int | None = None  # resize to this, then random-crop data.resolution (None: no crop)
    flip: bool = True  # random horizontal flip, the same for both sides of a pair
    patch_stride: int = 0  # photos: stride between cut patches (0: half of data.resolution)
    holdout: float = 0.1  # share of a folder held out for evaluation when it has no test split
    noise: str = "gaussian"  # denoise: gaussian | saltpepper
    noise_level: float = 0.2  # gaussian std or salt-and-pepper share, on a [0, 1] intensity scale
    lambda_l1: float = 100.0  # Pix2Pix L1 weight (Isola et al. 2017)
    lambda_cycle: float = 10.0  # CycleGAN cycle-consistency weight (Zhu et al. 2017)
    lambda_identity: float = 0.5  # CycleGAN identity weight, times lambda_cycle; 0 off
    pool_size: int = 50  # CycleGAN history of generated images shown to D; 0 off
    depth: int | None = None  # U-Net levels; None: down to a 1x1 bottleneck
    n_blocks: int = 9  # CycleGAN residual blocks (6 at 128 px, 9 at 256 px in the paper)
    d_layers: int = 3  # PatchGAN stride-2 layers: 3 -> 70x70 receptive field
    norm: str | None = None  # batch | instance | none; None: batch (pix2pix), instance (cyclegan)
    dropout: float = 0.5  # U-Net decoder dropout (off in eval mode)
    chroma: bool = True  # colorize: G predicts only chroma (Cb, Cr) and keeps the input's luma


# ----------------------------------------------------------------------------- shared helpers


# Sides are padded to at least this (a multiple of the stride): a CycleGAN ResNet generator's 7x7
# reflection padding and the instance norm at its 4x-downsampled bottleneck fail on smaller inputs
MIN_SIDE = 8


@torch.no_grad()
def run_padded(G: nn.Module, x: Tensor, stride: int, batch_size: int = 64) -> Tensor:
    """G(x) for any H, W: pad bottom/right to a multiple of ``stride``, and to at least MIN_SIDE
    (reflect where the image is large enough, else replicate), run G in eval mode, crop back to
    H, W. x: [N, C, H, W]."""
    h, w = x.shape[-2:]
    least = -(-MIN_SIDE // stride) * stride
    ph, pw = max(-h % stride, least - h), max(-w % stride, least - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    was_training = G.training
    G.eval()  # dropout off, batch norm on its running statistics
    try:
        out = torch.cat([G(chunk) for chunk in x.split(batch_size)])
    finally:
        G.train(was_training)
    return out[..., :h, :w].float()


def check_tile(tile: int | None, stride: int) -> None:
    """A tile must be a multiple of the stride, whatever the image's size: a folder is refused
    before its first output is written, not at its first image larger than the tile."""
    if tile is not None and (tile % stride or tile < stride):
        near = max(stride, tile // stride * stride)
        raise ConfigError(f"--tile {tile} (tile= in Python) must be a multiple of the network's stride "
                          f"{stride} (e.g. {near} or {near + stride})")


@torch.no_grad()
def run_tiled(G: nn.Module, x: Tensor, stride: int, tile: int | None = None,
              batch_size: int = 64) -> Tensor:
    """G(x) computed on ``tile`` x ``tile`` windows (half-overlapping, blended with a tent
    window), so that a network trained on small crops sees inputs of its training size, with
    the context it was trained with; None or an image no larger than the tile: ``run_padded``.
    x: [N, C, H, W] -> [N, C', H, W]."""
    check_tile(tile, stride)
    h, w = x.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return run_padded(G, x, stride, batch_size)
    ph, pw = max(0, tile - h), max(0, tile - w)  # an image thinner than a tile is padded first
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    H, W = x.shape[-2:]
    step = tile // 2
    tops = sorted(set(list(range(0, H - tile, step)) + [H - tile]))
    lefts = sorted(set(list(range(0, W - tile, step)) + [W - tile]))
    ramp = 1 - torch.linspace(-1, 1, tile, device=x.device).abs() + 1e-3  # tent, never 0
    weight = (ramp[:, None] * ramp[None, :])[None, None]
    out = norm = None
    for t in tops:
        for l in lefts:
            y = run_padded(G, x[..., t:t + tile, l:l + tile], stride, batch_size)
            if out is None:
                out = y.new_zeros(y.shape[0], y.shape[1], H, W)
                norm = y.new_zeros(1, 1, H, W)
            out[..., t:t + tile, l:l + tile] += y * weight
            norm[..., t:t + tile, l:l + tile] += weight
    return (out / norm)[..., :h, :w]


def to_rgb(x: Tensor, channels: int) -> Tensor:
    """Replicate a 1-channel image to ``channels`` for side-by-side display."""
    return x.expand(-1, channels, -1, -1) if x.shape[1] < channels else x


def strip(*panels: Tensor) -> Tensor:
    """Panels [N, C_i, H, W] side by side -> [N, max C, H, W * len(panels)]."""
    c = max(p.shape[1] for p in panels)
    return torch.cat([to_rgb(p.float(), c) for p in panels], dim=3)


def preview_inputs(info: Mapping[str, Any], n: int) -> tuple[Tensor, Tensor]:
    """Up to n fixed held-out (a, b) pairs as float [-1, 1]: as many as the larger side has
    (the smaller one cycling, unpaired). Cycled to n, 8 held-out pairs had filled a grid of 16 as
    two identical halves, read as 16 inputs."""
    a, b = info.get("preview_a"), info.get("preview_b")
    if a is None or b is None:
        raise ConfigError("translation runs have no samples from noise; translate images "
                          "instead: ganforge translate RUN INPUT --out OUT")
    n = min(n, max(len(a), len(b)))
    ia, ib = torch.arange(n) % len(a), torch.arange(n) % len(b)
    return a[ia].float() / 127.5 - 1, b[ib].float() / 127.5 - 1


def check_input(x: Tensor, channels: int) -> Tensor:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ConfigError(f"this run translates images of {channels} channel(s) [N, {channels}, "
                          f"H, W], got shape {tuple(x.shape)}; convert the input "
                          f"({'grayscale' if channels == 1 else 'RGB'})")
    return x


class LumaChroma(nn.Module):
    """Colorization that keeps the input's luma: the inner net predicts chroma (Cb, Cr) from the
    luma Y and the output is the RGB image of (Y, Cb, Cr) (ITU-R BT.601, the luma the colorize
    pair maker computes). The reference Pix2Pix code's colorization mode does the same in Lab
    (L in, ab out); YCbCr is linear, so the composition is exact and cheap. The trivial
    baseline (the gray input as RGB) is this net with zero chroma.

    [N, 1, H, W] in [-1, 1] -> [N, 3, H, W] in [-1, 1]; the inner net maps [N, 1] -> [N, 2].
    """

    # RGB = Y + M (Cb, Cr) with chroma in [-1, 1] on the [-1, 1] scale (twice BT.601's +-0.5).
    MIX = ((0.0, 1.402), (-0.344136, -0.714136), (1.772, 0.0))

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.stride = getattr(inner, "stride", 1)
        self.register_buffer("mix", torch.tensor(self.MIX).view(3, 2, 1, 1), persistent=False)

    def forward(self, y: Tensor) -> Tensor:
        chroma = self.inner(y)  # [N, 2, H, W]
        return (y + F.conv2d(chroma, self.mix.to(chroma.dtype))).clamp(-1, 1)


class TranslationFamily(Objective):
    """What Pix2Pix and CycleGAN share: the ``translate`` section, image pairs for data
    (ganforge.data.pairs), strips of held-out pairs as the Trainer's sample grids."""

    sections = {"translate": TranslateConfig}
    capabilities = frozenset({"translate"})
    g_adversarial_key = "g_adv"  # g_loss adds L1 (Pix2Pix) or cycle and identity terms (CycleGAN)
    # its losses are the translate section's; D sees no augmentation, and one pair at a time
    unsupported_advice = ("reg.", "augment.", "model.pac", "model.mbstd_group")
    evaluated_by = "ganforge translate-eval RUN"
    # the report shows these apart: the networks are the translate section's (model.* gives only
    # their widths and D's spectral norm), reg.* and augment.* are refused
    unused_settings = ("reg.", "augment.", *(f"model.{k}" for k in (
        "name", "z_dim", "g_depth", "d_depth", "g_head", "d_head", "init", "d_norm", "g_spectral_norm",
        "mbstd_group", "pac")))

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        cls.check_sizes(cfg)  # before the data is read: a too-small crop had failed at step 1
        if new:  # a run trained with them before this check still loads and resumes
            refuse_unused_sections(cfg)

    @classmethod
    def check_sizes(cls, cfg) -> None:
        """A one-line ConfigError when the networks cannot take data.resolution crops (the
        discriminator's here; each family adds its generator's)."""
        if cfg.translate.d_layers >= 1:  # others: check_positive names them
            check_input_size(cfg.data.resolution, cfg.translate.d_layers)

    @classmethod
    def load_data(cls, cfg):
        return pairdata.load_pairs(cfg)

    @classmethod
    def describe_data(cls, dataset) -> str | None:
        """'400 image pairs', or of unpaired domains '400 + 380 images (A + B)'."""
        a, b = getattr(dataset, "a", None), getattr(dataset, "b", None)
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return super().describe_data(dataset)
        if dataset.paired:
            return counted(len(dataset), "image pairs")
        return f"{len(a)} + {counted(len(b), 'images')} (A + B)"

    @classmethod
    def data_info(cls, cfg, dataset) -> dict[str, Any]:
        a, b = dataset.preview()  # fixed held-out inputs for the sample strips
        return {"name": dataset.name, "preview_a": a, "preview_b": b}

    def make_batches(self, dataset, cfg, device: torch.device):
        bs = cfg.train.batch_size
        if len(dataset) < bs:
            raise DataError(f"{dataset.name} has {len(dataset)} image pairs, fewer than one "
                            f"batch (train.batch_size={bs}); add images or lower train.batch_size")
        return dataset.make_batches(cfg, device)

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        raise ConfigError("translation runs have no samples from noise; translate images "
                          "instead: ganforge translate RUN INPUT --out OUT")

    # the direction translate takes when none is given: a Pix2Pix run's own (translate.direction)
    default_direction = "AtoB"

    def input_channels(self, direction: str | None = None) -> int:
        """Channels of the images ``translate`` takes in ``direction`` (None: the default one)."""
        return self.in_channels if (direction or self.default_direction) == self.default_direction \
            else self.out_channels


# ----------------------------------------------------------------------------- Pix2Pix


@register_objective("pix2pix")
class Pix2Pix(TranslationFamily):
    unused_settings = (*TranslationFamily.unused_settings,  # CycleGAN's keys of the shared section
                       "translate.lambda_cycle", "translate.lambda_identity", "translate.pool_size",
                       "translate.n_blocks")
    preview_legend = "left to right: input | output (the generator's translation) | target"  # preview's strip
    ema = ["G"]

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        check_config(cfg)
        t, m = cfg.translate, cfg.model
        if t.lambda_l1 < 0:
            raise ConfigError(f"translate.lambda_l1 must be >= 0, got {t.lambda_l1}")
        self.check_sizes(cfg)
        self.in_channels, self.out_channels = a_channels(cfg), cfg.data.channels
        # its one way: trained with translate.direction=BtoA, it translates B to A (and had said
        # "AtoB", and refused --direction BtoA advising the setting it was trained with)
        self.default_direction = t.direction
        norm = t.norm or "batch"
        chroma = t.task == "colorize" and t.chroma and self.in_channels == 1
        G = build_unet(in_channels=self.in_channels, out_channels=2 if chroma else self.out_channels,
                       resolution=cfg.data.resolution, width=m.g_width, depth=t.depth, norm=norm,
                       dropout=t.dropout)
        if chroma:
            G = LumaChroma(G)
        D = PatchDiscriminator(channels=self.in_channels + self.out_channels, width=m.d_width,
                               n_layers=t.d_layers, norm=norm)
        if m.d_spectral_norm:
            spectral_norm_(D)
        self.stride = G.stride
        self.nets = {"G": G, "D": D}
        self.optimizers = gan_optimizers(cfg)
        self.phases = [Phase("G", optimizer="G"),
                       Phase("D", optimizer="D", repeat=cfg.train.n_critic, fresh_batch=False)]
        self.adv = losses.get_loss(cfg.loss.name)
        self.lambda_l1 = t.lambda_l1
        self.info = dict(data_info)
        self._fake: Tensor | None = None  # G's output of this step, for D's phase

    @classmethod
    def check_sizes(cls, cfg) -> None:
        super().check_sizes(cfg)
        # the U-Net's own checks (depth, divisibility), on a one-channel net of width 1: cheap
        build_unet(in_channels=1, out_channels=1, resolution=cfg.data.resolution, width=1,
                   depth=cfg.translate.depth, dropout=0.0)

    def _scores(self, d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
        d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
        acc_real, acc_fake = losses.d_accuracy(self.adv, real=d_real, fake=d_fake)
        out = {"d_acc_real": acc_real, "d_acc_fake": acc_fake}
        if losses.is_probabilistic(self.adv):
            d_real, d_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
        return {"d_real": d_real.mean(), "d_fake": d_fake.mean(), **out}

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        a, b = batch["a"], batch["b"]  # [N, Ca, H, W], [N, Cb, H, W] in [-1, 1]
        G, D = self.nets["G"], self.nets["D"]
        if phase == "G":
            fake = G(a)
            self._fake = fake.detach()
            d_fake = D(torch.cat([a, fake], 1))  # patch scores [N, 1, h, w]
            d_real = D(torch.cat([a, b], 1)) if losses.g_needs_real(self.adv) else None
            adv = self.adv.g(fake=d_fake, real=d_real)
            l1 = (fake.float() - b.float()).abs().mean()
            loss = adv + self.lambda_l1 * l1
            return {"loss": loss, "g_loss": loss.detach(), "g_adv": adv.detach(), "l1": l1.detach()}
        if phase == "D":
            fake = self._fake
            if fake is None or fake.shape[0] != a.shape[0]:
                with torch.no_grad():
                    fake = G(a)
            d_real, d_fake = D(torch.cat([a, b], 1)), D(torch.cat([a, fake], 1))
            loss = 0.5 * self.adv.d(real=d_real, fake=d_fake)
            return {"loss": loss, "d_loss": loss.detach(), **self._scores(d_real, d_fake)}
        raise ValueError(f"unknown phase {phase}")

    def after_step(self, phase: str) -> None:
        if phase == "D":
            self._fake = None

    @torch.no_grad()
    def translate(self, x: Tensor, *, direction: str | None = None,
                  nets: Mapping[str, nn.Module] | None = None, tile: int | None = None) -> Tensor:
        """G(x) for x float [N, Ca, H, W] in [-1, 1], any H, W -> [N, Cb, H, W], in the run's one
        ``direction`` (translate.direction; None: that one); ``tile``: see run_tiled."""
        own = self.default_direction
        if (direction or own) != own:
            raise ConfigError(f"this pix2pix run translates {own} only (it trained with translate.direction="
                              f"{own}); drop the direction (--direction), or for {direction} train a run "
                              f"with translate.direction={direction}")
        G = (nets or {}).get("G", self.nets["G"])
        x = check_input(x, self.in_channels).to(self.device)
        return run_tiled(G, x, self.stride, tile).clamp(-1, 1)

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """Strips input | output | target of n fixed held-out pairs: [n, Cb, H, 3 W]."""
        a, b = preview_inputs(self.info, n)
        fake = self.translate(a, nets=nets)
        return strip(a.to(fake.device), fake, b.to(fake.device))

    def translate_eval(self, run, *, ema: bool = True, limit: int | None = None,
                       **_: Any) -> dict[str, Any]:
        """PSNR / SSIM on the held-out pairs next to the task's trivial baseline."""
        from ..metrics.paired import BASELINES, evaluate_translation

        t = run.config.translate
        a, b = pairdata.load_test_pairs(run.config)
        result = evaluate_translation(run, a, b, ema=ema, limit=limit,
                                      baseline_is=BASELINES.get(t.task, "the input"))
        return {"task": t.task, **result}

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "photos", n=12, size=8, channels=3)
        return {"objective": cls.name,
                "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 3},
                "model": {"g_width": 2, "d_width": 2},
                "translate": {"task": "denoise", "d_layers": 1, "holdout": 0.25},
                "train": dict(TINY_TRAIN)}
