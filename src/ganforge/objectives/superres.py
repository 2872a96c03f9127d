"""Single-image super-resolution: G(LR) -> SR, trained in two stages.

PSNR stage (sr.adv_weight = 0): G alone minimizes the pixel L1 between SR and HR (SRResNet,
Ledig et al. 2017; ESRGAN, Wang et al. 2018, sec. 4.1, pre-trains with L1 too).
GAN stage (sr.adv_weight > 0): G starts from a PSNR run's weights (sr.init_from) and minimizes

    L_G = pixel_weight * L1 + perceptual_weight * L_percep + adv_weight * L_adv

with L_percep the L1 distance of VGG19 features before the activation (ESRGAN sec. 3.3) and
L_adv the generator half of loss.name (ESRGAN: ragan, the relativistic average GAN of
Jolicoeur-Martineau 2019, ESRGAN sec. 3.2; SRGAN: nonsaturating). D is trained with the other
half. ESRGAN's weights (sec. 4.1): pixel 1e-2, perceptual 1, adversarial 5e-3. Losses are taken
on [0, 1] intensities, the papers' scale.

Network interpolation (ESRGAN sec. 3.4): theta = (1 - alpha) theta_PSNR + alpha theta_GAN,
applied at inference by :func:`interpolated_generator` (``ganforge upscale --interp ALPHA``).
theta_PSNR is the generator the GAN stage started from, saved in its own run
(checkpoints/sr_start_G.safetensors, with the source run, checkpoint and step in every
checkpoint's state): the PSNR run may train on, be replaced or be deleted afterwards.

VGG19 weights cannot be downloaded by ganforge: torchvision's ImageNet weights are used when they
sit in the torch hub cache; otherwise a perceptual weight > 0 is a one-line ConfigError.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .. import losses
from .. import imageio
from ..data import superres as srdata
from ..errors import CheckpointError, ConfigError, GanforgeError, warn
from ..models.sr_discriminators import build_sr_discriminator
from ..models.srresnet import bicubic_up, build_sr_generator
from ..training import checkpoint as ckpt
from .base import Objective, Phase, counted, refuse_unused_sections, register_objective
from .unconditional import TINY_TRAIN, gan_optimizers, write_image_folder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREVIEW_SIZE = 128  # HR side of the sample strips (bicubic | SR | HR)
START = "sr_start"  # extra state: {"run", "checkpoint", "step"} of the weights the GAN stage started from
START_FILE = "sr_start_G"  # those weights: RUN/checkpoints/sr_start_G.safetensors (ckpt.RUN_FILES)


# ----------------------------------------------------------------------------- config


@dataclass
class SRConfig:
    """Super-resolution (objective=superres; ganforge.objectives.superres, ganforge.data.superres).
    adv_weight=0 is the PSNR stage (pixel loss only); > 0 adds D and the GAN losses."""

    scale: int = 4  # 2 | 4
    arch: str = "srresnet"  # srresnet (Ledig et al. 2017) | rrdb (ESRGAN, Wang et al. 2018)
    width: int = 64  # feature channels of the generator
    blocks: int = 16  # residual blocks (srresnet) or RRDBs (rrdb; the paper uses 23)
    growth: int = 32  # rrdb: dense-block growth channels
    bicubic_skip: bool = False  # G predicts the residual over bicubic upsampling (VDSR's skip)
    disc: str = "vgg"  # vgg (SRGAN/ESRGAN) | unet (Real-ESRGAN, spectral norm)
    crop: int = 96  # HR training crop; the LR input is crop / scale
    pixel_weight: float = 1.0  # L1 between SR and HR
    perceptual_weight: float = 0.0  # L1 between VGG19 features (needs torchvision's weights)
    perceptual_layer: str = "conv5_4"  # VGG19 layer, before its ReLU (ESRGAN)
    adv_weight: float = 0.0  # adversarial weight (loss.name); 0: PSNR stage, no D
    init_from: str = ""  # run directory of a PSNR-stage run: G starts from its weights
    blur: float = 0.0  # degradation: Gaussian blur sigma up to this (HR pixels); 0 off
    noise: float = 0.0  # degradation: Gaussian noise std up to this (0-255 levels); 0 off
    jpeg: int = 0  # degradation: JPEG quality drawn in [jpeg, 95]; 0 off


# ----------------------------------------------------------------------------- perceptual loss


def vgg19_layer_index(layer: str) -> int:
    """'conv5_4' -> its index in torchvision's vgg19().features (34)."""
    from torchvision.models import vgg19

    block, conv, names = 1, 0, {}
    for i, module in enumerate(vgg19().features):
        if isinstance(module, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = i
        elif isinstance(module, nn.MaxPool2d):
            block, conv = block + 1, 0
    if layer not in names:
        raise ConfigError(f"sr.perceptual_layer '{layer}' is not a VGG19 conv layer; use one of "
                          f"{', '.join(names)} (ESRGAN: conv5_4)")
    return names[layer]


def vgg19_weights_path() -> Path:
    from torchvision.models import VGG19_Weights

    name = VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def load_vgg19_features(layer: str, *, pretrained: bool = True) -> nn.Module:
    """VGG19 features up to ``layer`` (before its ReLU), frozen, in eval mode. ``pretrained``
    False gives random weights (for tests, where no weights may be downloaded)."""
    from torchvision.models import vgg19

    index = vgg19_layer_index(layer)
    net = vgg19()
    if pretrained:
        path = vgg19_weights_path()
        if not path.is_file():
            raise ConfigError(f"the perceptual loss needs torchvision's VGG19 weights at {path} "
                              f"(not found, and ganforge does not download them); copy "
                              f"{path.name} there or set sr.perceptual_weight=0")
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated or foreign file
            raise ConfigError(f"cannot load VGG19 weights from {path} ({type(exc).__name__}); "
                              f"replace the file or set sr.perceptual_weight=0") from None
    features = net.features[:index + 1].eval().requires_grad_(False)
    return features


class PerceptualLoss(nn.Module):
    """Mean L1 distance between VGG19 features of SR and HR (images in [-1, 1])."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def _f(self, x: Tensor) -> Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            target = self._f(hr)
        return F.l1_loss(self._f(sr).float(), target.float())

    def train(self, mode: bool = True):  # the feature net stays in eval mode
        return super().train(False)


# ----------------------------------------------------------------------------- objective


def validate(cfg) -> None:
    s = cfg.sr
    if s.scale not in (2, 4):
        raise ConfigError(f"sr.scale must be 2 or 4, got {s.scale}; set sr.scale=2 or sr.scale=4")
    # The LR crop is crop / scale pixels; the U-Net D halves its input three times.
    step = 8 if s.disc == "unet" and s.adv_weight > 0 else s.scale
    if s.crop < 16 or s.crop % step or s.crop % s.scale:
        raise ConfigError(f"sr.crop={s.crop} must be >= 16 and a multiple of {max(step, s.scale)}"
                          f"; try sr.crop=96 or 128")
    for key in ("pixel_weight", "perceptual_weight", "adv_weight", "blur", "noise"):
        if getattr(s, key) < 0:
            raise ConfigError(f"sr.{key} must be >= 0, got {getattr(s, key)}")
    if not 0 <= s.jpeg <= 95:
        raise ConfigError(f"sr.jpeg must be a JPEG quality in [1, 95] or 0 (off), got {s.jpeg}")
    if s.pixel_weight == 0 and s.perceptual_weight == 0 and s.adv_weight == 0:
        raise ConfigError("every sr loss weight is 0; set sr.pixel_weight=1 for the PSNR stage")
    if cfg.eval.every > 0:
        raise ConfigError(f"eval.every measures FID of random samples, which a super-resolution "
                          f"model does not make; set eval.every=0 and after training run "
                          f"{SuperResolution.evaluated_by} (or --data DIR of HR images)")
    if cfg.data.channels != 3:
        raise ConfigError("super-resolution trains on RGB images; set data.channels=3")


def _scores(adv: losses.LossPair, d_real: Tensor, d_fake: Tensor) -> dict[str, Tensor]:
    """Logged D outputs: for the logistic losses a probability (for the relativistic one, that a
    real image is more real than the average fake), raw means otherwise; D's accuracy is
    ``losses.d_accuracy`` (relativistic for wasserstein, ragan and rahinge)."""
    d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
    acc_real, acc_fake = losses.d_accuracy(adv, real=d_real, fake=d_fake)
    if adv.d is losses.d_loss_ragan:
        d_real, d_fake = torch.sigmoid(d_real - d_fake.mean()), torch.sigmoid(d_fake - d_real.mean())
    elif losses.is_probabilistic(adv):
        d_real, d_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
    return {"d_real": d_real.mean(), "d_fake": d_fake.mean(), "d_acc_real": acc_real, "d_acc_fake": acc_fake}


@register_objective("superres")
class SuperResolution(Objective):
    ema = ["G"]
    sections = {"sr": SRConfig}
    capabilities = frozenset({"upscale"})
    # sr.* sizes the generator; of model.*, only the discriminator's width and spectral norm are read
    unused_settings = tuple(f"model.{k}" for k in ("z_dim", "g_width", "g_depth", "d_depth", "g_head", "d_head",
                                                   "init", "d_norm", "g_spectral_norm", "mbstd_group", "pac"))
    unsupported_advice = ("reg.", "augment.", "model.pac", "model.mbstd_group")  # the sr section's losses
    g_adversarial_key = "adv"  # g_loss adds pixel and perceptual terms; none before the GAN stage
    evaluated_by = "ganforge eval-sr RUN --data photos:test"
    preview_legend = ("left to right: the low-resolution input, upscaled by bicubic | the model's "
                      "super-resolved output | the original high-resolution crop")  # preview's strip

    @classmethod
    def logs_d_probabilities(cls, config: Mapping[str, Any]) -> bool | None:
        """As the base, and the relativistic ragan's outputs as probabilities too: ``_scores`` logs
        sigmoid(d_real - mean d_fake), that a real crop is more real than the average fake."""
        loss = config.get("loss")
        if isinstance(loss, Mapping) and loss.get("name") in losses.LOSSES \
                and losses.LOSSES[loss["name"]].d is losses.d_loss_ragan:
            return True
        return super().logs_d_probabilities(config)

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        if new:  # a run trained with them before this check still loads and resumes
            refuse_unused_sections(cfg)

    @classmethod
    def load_data(cls, cfg):
        """HR images at their native size (photos, photos:test or folder:PATH)."""
        return srdata.load_hr(cfg)

    @classmethod
    def describe_data(cls, dataset) -> str | None:
        """The high-resolution images, which training crops (sr.crop) and downscales."""
        images = getattr(dataset, "images", None)
        return counted(len(images), "HR images") if isinstance(images, list) else super().describe_data(dataset)

    @classmethod
    def data_info(cls, cfg, dataset) -> dict[str, Any]:
        return {"name": dataset.name}

    @classmethod
    def info_from_state(cls, cfg, extra_state: Mapping[str, Any]) -> dict[str, Any]:
        """Also the record of the weights a GAN-stage run started from, and those weights
        (read back by ckpt.load; absent from a model folder, whose state is JSON)."""
        return {**super().info_from_state(cfg, extra_state), **_start_of(extra_state)}

    def make_batches(self, dataset, cfg, device: torch.device):
        return srdata.make_pair_batches(dataset, cfg, device)

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_image_folder(workdir / "hr", n=2, size=20, channels=3)
        return {"objective": cls.name, "data": {"name": f"folder:{folder}", "channels": 3},
                "sr": {"scale": 2, "arch": "srresnet", "width": 2, "blocks": 1, "crop": 16,
                       "bicubic_skip": True},  # as srresnet-x4
                "train": dict(TINY_TRAIN)}

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        validate(cfg)
        self.cfg, s = cfg, cfg.sr
        self.scale = s.scale
        G = build_sr_generator(s.arch, scale=s.scale, channels=3, width=s.width, blocks=s.blocks,
                               growth=s.growth, bicubic_skip=s.bicubic_skip)
        self.nets = {"G": G}
        self.optimizers = gan_optimizers(cfg)
        self.gan = s.adv_weight > 0
        if self.gan:
            sn = True if s.disc == "unet" else cfg.model.d_spectral_norm
            self.nets["D"] = build_sr_discriminator(s.disc, channels=3, width=cfg.model.d_width,
                                                    spectral_norm=sn)
            self.adv = losses.get_loss(cfg.loss.name)
            self.phases = [Phase("D", optimizer="D", repeat=cfg.train.n_critic),
                           Phase("G", optimizer="G", fresh_batch=False)]
        else:
            del self.optimizers["D"]  # the PSNR stage trains G alone
            self.phases = [Phase("G", optimizer="G")]
        self._interpolated: dict[tuple, nn.Module] = {}  # ESRGAN interpolation, by (G, alpha)
        # The generator weights the GAN stage started from ({"run", "checkpoint", "step"} and
        # the weights; None for a PSNR-stage run, or a run trained before they were saved)
        self.start: dict[str, Any] | None = data_info.get("start")
        self.start_weights: dict[str, Tensor] | None = data_info.get("start_weights")
        self._psnr: dict[str, Tensor] | None = None  # what --interp blends with, once found
        self.perceptual: PerceptualLoss | None = None  # set by prepare_training
        self.preview_hr: Tensor | None = None  # HR uint8 [n, 3, S, S] for the sample strips

    def prepare_training(self, dataset: srdata.HRImages | None, *,
                         vgg: nn.Module | None = None) -> None:
        """What only training needs: the VGG19 features (or ``vgg``), the PSNR-stage weights of
        sr.init_from, and the preview crops. Not called when a run is loaded for inference."""
        s = self.cfg.sr
        if s.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(vgg if vgg is not None
                                             else load_vgg19_features(s.perceptual_layer))
        if s.init_from:
            # absolute from here on (config.yaml, checkpoints, model folders): --interp reads it
            # again later, from wherever the run is then loaded
            s.init_from = str(Path(s.init_from).expanduser().resolve())
        if s.init_from and not self.resuming:  # a resume's checkpoint holds G and the start record
            weights, self.start = psnr_start(s.init_from, self.cfg)
            self.nets["G"].load_state_dict(weights)
            # kept in this run (ckpt.save writes them once): --interp blends with them, not with
            # whatever the PSNR run holds later; a resume replaces both by the checkpoint's
            self.start_weights = {k: v.detach().cpu().clone() for k, v in self.nets["G"].state_dict().items()}
        if dataset is not None:
            n = min(self.cfg.train.n_sample_grid, 8)
            size = max(s.crop, min(PREVIEW_SIZE, dataset.preview_side(n)))
            size -= size % s.scale
            self.preview_hr = dataset.preview(n, size)

    def extra_state(self) -> dict[str, Any]:
        out = super().extra_state()
        if self.start is None:
            return out
        out[START] = dict(self.start)
        if self.start_weights is not None:
            out[ckpt.RUN_FILES] = {START_FILE: self.start_weights}
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        # a resumed run keeps what its first start loaded, not the PSNR run's weights of today
        # (None for a run trained before they were saved: it stays such a run)
        found = _start_of(state)
        self.start, self.start_weights = found["start"], found["start_weights"]

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        super().bind(device=device, rng=rng)
        if self.perceptual is not None:
            self.perceptual.to(device)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        lr, hr = batch["lr"], batch["real"]  # [N, 3, h, w], [N, 3, s*h, s*w] in [-1, 1]
        G, s = self.nets["G"], self.cfg.sr
        if phase == "D":
            D = self.nets["D"]
            with torch.no_grad():
                sr = G(lr)
            d_real, d_fake = D(hr), D(sr)
            loss = self.adv.d(real=d_real, fake=d_fake)
            return {"loss": loss, "d_loss": loss.detach(), **_scores(self.adv, d_real, d_fake)}
        if phase != "G":
            raise ValueError(f"unknown phase {phase}")
        sr = G(lr)
        pixel = (sr.float() - hr).abs().mean() / 2  # L1 on [0, 1] intensities
        loss = s.pixel_weight * pixel
        out = {"pixel": pixel.detach(),
               "psnr": 10 * torch.log10(4 / F.mse_loss(sr.detach().float().clamp(-1, 1), hr))}
        if self.perceptual is not None:
            out["perceptual"] = self.perceptual(sr, hr)
            loss = loss + s.perceptual_weight * out["perceptual"]
        if self.gan:
            D = self.nets["D"]
            d_fake = D(sr)
            d_real = D(hr).detach() if losses.g_needs_real(self.adv) else None
            out["adv"] = self.adv.g(fake=d_fake, real=d_real)
            loss = loss + s.adv_weight * out["adv"]
        return {"loss": loss, "g_loss": loss.detach(), **{k: v.detach() for k, v in out.items()}}

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        raise GanforgeError("a super-resolution model has no random samples; upscale images "
                            "with: ganforge upscale RUN INPUT --out OUT")

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """Strips bicubic | SR | HR of fixed preview crops: [min(n, 8), 3, S, 3 S] in [-1, 1]."""
        if self.preview_hr is None or len(self.preview_hr) == 0:
            return self.sample(n, generator=generator, nets=nets)
        G = (nets or {}).get("G", self.nets["G"])
        hr = self.preview_hr[:n].to(self.device)
        lr = srdata.to_float(srdata.degrade(hr, self.scale))
        sr = G(lr).float().clamp(-1, 1)
        bicubic = bicubic_up(lr, self.scale).clamp(-1, 1)
        return torch.cat([bicubic, sr, srdata.to_float(hr)], dim=3)

    def upscale(self, image: np.ndarray, *, tile: int = 256, overlap: int | None = None,
                interp: float | None = None, nets: Mapping[str, nn.Module] | None = None,
                on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """uint8 [h, w, 3] of any size -> uint8 [s*h, s*w, 3], tiled (``upscale_array``);
        ``interp`` blends towards the PSNR-stage weights (ESRGAN network interpolation);
        ``on_tile(done, total)``: progress, after each tile."""
        G = (nets or {}).get("G", self.nets["G"])
        if interp is not None:
            key = (id(G), interp)
            if key not in self._interpolated:
                check_alpha(interp)
                if self._psnr is None:
                    self._psnr = start_weights(self.cfg, self.start, self.start_weights)
                self._interpolated[key] = interpolate_generator(G, self.cfg, interp,
                                                                psnr=self._psnr).to(self.device)
            G = self._interpolated[key]
        return upscale_image(G, image, self.scale, tile=tile, overlap=overlap, device=self.device,
                             on_tile=on_tile)


# ----------------------------------------------------------------------------- weights


def _g_weights(run_dir: Path, *, ema: bool = True,
               checkpoint: str = "latest") -> tuple[dict[str, Tensor], dict, Path]:
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist; point sr.init_from at the "
                              f"--out directory of a PSNR-stage run (preset srresnet-x4)")
    path = ckpt.find(run_dir, checkpoint)
    weights, state = ckpt.load(path)
    prefix = "ema.G." if ema and any(k.startswith("ema.G.") for k in weights) else "G."
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}, state, path


def psnr_start(run_dir: str | Path, cfg, *, checkpoint: str = "latest") -> tuple[dict[str, Tensor], dict]:
    """(generator weights (EMA when kept), {"run", "checkpoint", "step"}) of checkpoint
    ``checkpoint`` of the PSNR-stage run ``run_dir``, checked against ``cfg``'s generator."""
    weights, state, path = _g_weights(Path(run_dir), checkpoint=checkpoint)
    objective = state["config"].get("objective", "unconditional")
    if objective != SuperResolution.name:  # a pix2pix G has layers of other names: a traceback
        raise ConfigError(f"sr.init_from={run_dir} is a {objective} run, not a super-resolution "
                          f"PSNR-stage run (train one with preset srresnet-x4)")
    theirs, ours = state["config"].get("sr", {}), cfg.sr
    for key in ("scale", "arch", "width", "blocks", "growth", "bicubic_skip"):
        if key in theirs and theirs[key] != getattr(ours, key):
            raise ConfigError(f"sr.init_from={run_dir} was trained with sr.{key}={theirs[key]}, "
                              f"this run has sr.{key}={getattr(ours, key)}; make them equal")
    return weights, {"run": str(run_dir), "checkpoint": path.name, "step": int(state["step"])}


def psnr_weights(run_dir: str | Path, cfg) -> dict[str, Tensor]:
    """The generator weights (EMA when kept) of the PSNR-stage run ``run_dir``'s latest
    checkpoint, checked against ``cfg``'s generator settings."""
    return psnr_start(run_dir, cfg)[0]


def _start_of(extra_state: Mapping[str, Any]) -> dict[str, Any]:
    """{"start": record or None, "start_weights": weights or None} of a checkpoint's (or model
    folder's) extra state; ckpt.load has read the weights back from the run's file."""
    record = extra_state.get(START)
    files = extra_state.get(ckpt.RUN_FILES)
    weights = files.get(START_FILE) if isinstance(files, Mapping) else None
    return {"start": dict(record) if isinstance(record, Mapping) else None,
            "start_weights": dict(weights) if isinstance(weights, Mapping) else None}


def start_weights(cfg, start: Mapping[str, Any] | None,
                  weights: Mapping[str, Tensor] | None) -> Mapping[str, Tensor]:
    """The PSNR-stage weights --interp blends with: those the GAN-stage run of ``cfg`` started
    from, saved in it (``weights``); without them (a model folder, a removed file) the PSNR
    run's checkpoint ``start`` records, if it still holds them; for a run trained before the
    record was kept, the PSNR run's latest checkpoint, with a warning."""
    if weights is not None:
        return weights
    source = cfg.sr.init_from
    if not source:
        raise ConfigError("--interp needs a GAN-stage run initialised from a PSNR run; this run "
                          "has no sr.init_from")
    saved = f"checkpoints/{START_FILE}.safetensors"
    if not Path(source).expanduser().is_dir():
        where = (f"and this copy lacks the weights it started from ({saved} of the GAN run "
                 f"directory); use the run directory, " if start is not None else "which is not here; ")
        raise CheckpointError(f"--interp blends with the PSNR-stage run this run started from, {source}, "
                              f"{where}or run without --interp")
    if start is not None:
        name, step = str(start.get("checkpoint")), start.get("step")
        try:
            psnr, found = psnr_start(source, cfg, checkpoint=name)
        except CheckpointError:
            found = None
        if found is None or found["step"] != step:
            raise CheckpointError(f"--interp blends with the weights this run started from ({name} of "
                                  f"{source}, step {step}), which this copy does not hold and that run no "
                                  f"longer has; use the GAN run directory (its {saved}), or run without --interp")
        return psnr
    psnr, found = psnr_start(source, cfg)
    warn(f"--interp: this run does not record the weights it started from (trained before "
                  f"ganforge kept them); blending with the latest checkpoint of {source} "
                  f"({found['checkpoint']}), which may have trained on since")
    return psnr


def interpolate_weights(psnr: Mapping[str, Tensor], gan: Mapping[str, Tensor],
                        alpha: float) -> dict[str, Tensor]:
    """ESRGAN's network interpolation: (1 - alpha) * psnr + alpha * gan, entry by entry."""
    if set(psnr) != set(gan):
        raise CheckpointError("the PSNR and GAN generators have different layers; interpolate "
                              "only a GAN run with the PSNR run it was initialised from")
    return {k: torch.lerp(psnr[k].to(gan[k].device).float(), gan[k].float(), alpha).to(gan[k].dtype)
            if gan[k].is_floating_point() else gan[k] for k in gan}


def check_alpha(alpha: float) -> None:
    if not 0 <= alpha <= 1:
        raise ConfigError(f"--interp must be in [0, 1] (0: PSNR model, 1: GAN model), got {alpha}")


def interpolate_generator(G: nn.Module, cfg, alpha: float, *,
                          psnr: Mapping[str, Tensor] | None = None) -> nn.Module:
    """A copy of the GAN-stage generator ``G`` of config ``cfg`` with ESRGAN's interpolation
    towards ``psnr`` (default: ``start_weights(cfg, None, None)``, the PSNR run's latest
    checkpoint; a loaded run passes the weights it started from). alpha 0: PSNR, 1: GAN."""
    check_alpha(alpha)
    psnr = start_weights(cfg, None, None) if psnr is None else psnr
    out = copy.deepcopy(G)
    out.load_state_dict(interpolate_weights(psnr, G.state_dict(), alpha))
    return out.eval()


def interpolated_generator(run, alpha: float) -> nn.Module:
    """``interpolate_generator`` for a loaded run's EMA generator, towards the weights the run
    started from."""
    check_alpha(alpha)
    objective = run.objective
    psnr = start_weights(run.config, objective.start, objective.start_weights)
    return interpolate_generator(run.ema_nets.get("G", objective.nets["G"]), run.config, alpha, psnr=psnr)


# ----------------------------------------------------------------------------- inference


def receptive_radius(G: nn.Module) -> int:
    """LR pixels on each side that can influence an output pixel (the generator's bound)."""
    return int(G.receptive_radius()) if hasattr(G, "receptive_radius") else 32


def _tiles(G: nn.Module, lr: Tensor, scale: int, tile: int, overlap: int | None):
    """(top, bottom, left, right) of each output piece, in SR pixels, and G's float output for
    it: lr cut into tile x tile LR pieces, each run with ``overlap`` extra LR pixels of context
    on every side and only its centre kept. The pieces do not overlap, so no blending is needed;
    tile <= 0 (or an image within one tile) is one piece, the whole image."""
    h, w = lr.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        yield 0, h * scale, 0, w * scale, G(lr).float()
        return
    o = min(receptive_radius(G), 32) if overlap is None else overlap
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - o, 0), max(left - o, 0)
            t1, l1 = min(bottom + o, h), min(right + o, w)
            y = G(lr[..., t0:t1, l0:l1]).float()
            yield top * scale, bottom * scale, left * scale, right * scale, y[
                ..., (top - t0) * scale:(bottom - t0) * scale, (left - l0) * scale:(right - l0) * scale]


def tile_count(lr_shape: tuple[int, ...], tile: int) -> int:
    """How many pieces ``_tiles`` cuts an LR image of shape [..., h, w] into."""
    h, w = lr_shape[-2:]
    return 1 if tile <= 0 or (h <= tile and w <= tile) else -(-h // tile) * -(-w // tile)


@torch.no_grad()
def upscale_tensor(G: nn.Module, lr: Tensor, scale: int, *, tile: int = 256,
                   overlap: int | None = None) -> Tensor:
    """SR of lr [N, 3, h, w] in [-1, 1] -> [N, 3, s*h, s*w], clamped to [-1, 1].

    With ``tile`` > 0 the LR image is cut into tile x tile pieces, each run with ``overlap``
    extra LR pixels of context on every side (default: the receptive radius, at most 32) and
    only its centre kept, so the network's memory is bounded by (tile + 2 overlap)^2 and the
    result equals the whole-image result wherever the overlap covers the receptive field. The
    float result itself is 4 bytes per output value: for images of any size use
    ``upscale_array``, which keeps 1 byte."""
    h, w = lr.shape[-2:]
    out = None
    for top, bottom, left, right, y in _tiles(G, lr, scale, tile, overlap):
        if tile_count(lr.shape, tile) == 1:
            return y.clamp(-1, 1)
        if out is None:
            out = lr.new_zeros(lr.shape[0], y.shape[1], h * scale, w * scale, dtype=torch.float32)
        out[..., top:bottom, left:right] = y
    return out.clamp(-1, 1)


def to_uint8(x: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255], same shape."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def upscale_array(G: nn.Module, image: np.ndarray, scale: int, *, tile: int = 256,
                  overlap: int | None = None, device: torch.device | str = "cpu",
                  on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [s*h, s*w, 3], built piece by piece (``upscale_tensor``'s
    tiling and values, bit for bit): memory is the pieces' plus 1 byte per output value, where
    a float result would be 4 and its conversion several more (a 24 MP photo at x4 needed
    ~18 GB). ``on_tile(done, total)`` is called after each piece (progress for large images)."""
    lr = srdata.to_float(torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None])
    h, w = lr.shape[-2:]
    total = tile_count(lr.shape, tile)
    out = None
    for done, (top, bottom, left, right, y) in enumerate(_tiles(G, lr.to(device), scale, tile, overlap), 1):
        if out is None:
            out = torch.empty(h * scale, w * scale, y.shape[1], dtype=torch.uint8)
        out[top:bottom, left:right] = to_uint8(y)[0].permute(1, 2, 0).cpu()
        if on_tile is not None:
            on_tile(done, total)
    return out.numpy()


def upscale_image(G: nn.Module, image: np.ndarray, scale: int, *, tile: int = 256,
                  overlap: int | None = None, device: torch.device | str = "cpu",
                  on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
    """uint8 [h, w, 3] (or [h, w] gray, or RGBA), or a PIL image of any mode -> uint8
    [s*h, s*w, 3]. A PIL image and an RGBA array are read as the upscale command reads a file
    (ganforge.imageio.normalize: palette colours, not their indices; transparency on
    white, not the colours hidden under it; EXIF orientation applied)."""
    if isinstance(image, Image.Image):
        image = imageio.normalize(image, "RGB")
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ConfigError(f"upscale takes a uint8 RGB image [h, w, 3], got {image.dtype} "
                          f"{list(image.shape)}")
    if image.shape[2] == 4:
        image = np.asarray(imageio.normalize(Image.fromarray(image, "RGBA"), "RGB"))
    return upscale_array(G, image, scale, tile=tile, overlap=overlap, device=device, on_tile=on_tile)
