"""A GAN vocoder (mel -> waveform): HiFi-GAN (Kong, Kim & Bae 2020), objective ``vocoder``.

Training draws random ``vocoder.segment``-sample crops of the training waveforms; the generator
sees their log-mel (ganforge.data.mel) and must return the crop. With the multi-period and
multi-scale sub-discriminators D_k (ganforge.models.hifigan), the losses are the paper's (eq. 1-6):

    L_D = sum_k E[(D_k(x) - 1)^2 + D_k(G(s))^2]                         least squares (LSGAN)
    L_G = sum_k [E(D_k(G(s)) - 1)^2 + fm_weight L_FM(G; D_k)] + mel_weight L_mel
    L_FM = sum_i mean |D_k^i(x) - D_k^i(G(s))|   over the feature maps i of D_k
    L_mel = mean |phi(x) - phi(G(s))|            phi: the log-mel, here over the full band

with fm_weight 2 and mel_weight 45. The adversarial loss is fixed (loss.name is not read). Each
step runs G (caching G(s)) and then D on the same crops, so G runs forward once per step.

``vocoder.generator`` picks G: ``hifigan`` (the paper's, sizes v1/v2/v3/small) or ``vocos``, a
Fourier-domain generator after Siuzdak (2023) that predicts each frame's STFT magnitude and phase
and inverts them (ganforge.models.vocos); the discriminators and the losses above stay the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.audio import CropBatches, write_tone_folder
from ..data.mel import AudioConfig, LogMel
from ..errors import ConfigError
from ..models.hifigan import HiFiGANGenerator, MultiDiscriminator, generator_layout
from ..models.vocos import VocosGenerator
from ._audio import TINY_AUDIO, AudioFamily, check_common, mel_strip
from .base import OptimizerSpec, Phase, register_objective
from .unconditional import TINY_TRAIN


@dataclass
class VocoderConfig:
    """HiFi-GAN (objective=vocoder; ganforge.objectives.vocoder, ganforge.models.hifigan)."""

    generator: str = "hifigan"  # hifigan (Kong et al. 2020) | vocos (STFT head, Siuzdak 2023)
    size: str = "small"  # hifigan: small (CPU) | v1 | v2 | v3 (Kong et al. 2020)
    g_width: int = 0  # generator input channels; 0: the size's (v1 512, v2 128, v3 256, small 64)
    upsample_rates: list[int] = field(default_factory=list)  # empty: the size's; product = audio.hop
    vocos_dim: int = 512  # vocos: ConvNeXt channels (the paper's 512)
    vocos_layers: int = 8  # vocos: ConvNeXt blocks (the paper's 8)
    mel_prior: bool = False  # vocos: predict the log-magnitude as a correction to pinv(mel basis) mel
    magnitude_correction: bool = True  # mel_prior: false keeps the least-squares magnitude as it is
    d_width: int = 32  # discriminator base channels; 32 is the paper's (MPD 32..1024)
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])  # multi-period D
    scales: int = 3  # multi-scale D: raw, 2x and 4x pooled
    segment: int = 8192  # training crop, samples (a multiple of audio.hop)
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    preview_seconds: float = 2.0  # length of each training preview utterance


def lsgan_d(real: Sequence[Tensor], fake: Sequence[Tensor]) -> Tensor:
    """sum_k mean (1 - D_k(x))^2 + mean D_k(G(s))^2 (HiFi-GAN eq. 1)."""
    return sum(((1 - r.float()) ** 2).mean() + (f.float() ** 2).mean() for r, f in zip(real, fake))


def lsgan_g(fake: Sequence[Tensor]) -> Tensor:
    """sum_k mean (1 - D_k(G(s)))^2."""
    return sum(((1 - f.float()) ** 2).mean() for f in fake)


def feature_matching(real: Sequence[Sequence[Tensor]], fake: Sequence[Sequence[Tensor]]) -> Tensor:
    """sum over sub-discriminators and their layers of mean |real - fake| (HiFi-GAN eq. 4)."""
    return sum((r.detach().float() - f.float()).abs().mean()
               for rs, fs in zip(real, fake) for r, f in zip(rs, fs))


GENERATORS = ("hifigan", "vocos")


def check_config(cfg) -> dict:
    """Validate the vocoder section; the generator's constructor arguments."""
    check_common(cfg)
    v, a = cfg.vocoder, cfg.audio
    if v.generator not in GENERATORS:
        raise ConfigError(f"vocoder.generator '{v.generator}' is not one of {', '.join(GENERATORS)}")
    if v.generator == "vocos":
        if a.win != a.n_fft:
            raise ConfigError(f"vocoder.generator=vocos inverts the STFT, so it needs audio.win = "
                              f"audio.n_fft (got win={a.win}, n_fft={a.n_fft}); set audio.win={a.n_fft}")
        if v.vocos_dim < 1 or v.vocos_layers < 1:
            raise ConfigError("vocoder.vocos_dim and vocoder.vocos_layers must be >= 1; the paper "
                              "uses 512 and 8")
        if not v.magnitude_correction and not v.mel_prior:
            raise ConfigError("vocoder.magnitude_correction=false keeps the mel prior's magnitude, "
                              "so it needs vocoder.mel_prior=true")
        layout = dict(n_fft=a.n_fft, hop=a.hop, dim=v.vocos_dim, layers=v.vocos_layers)
    else:
        if v.mel_prior:
            raise ConfigError("vocoder.mel_prior shapes a predicted STFT magnitude; set "
                              "vocoder.generator=vocos or vocoder.mel_prior=false")
        layout = generator_layout(v.size, width=v.g_width, rates=v.upsample_rates)
        hop = math.prod(layout["rates"])
        if hop != a.hop:
            raise ConfigError(f"the generator upsamples by {hop} (rates {list(layout['rates'])}) but "
                              f"audio.hop={a.hop}; set vocoder.upsample_rates to factors of {a.hop}")
    if v.segment < 4 * a.hop or v.segment % a.hop:
        raise ConfigError(f"vocoder.segment={v.segment} must be a multiple of audio.hop={a.hop} and "
                          f">= {4 * a.hop}; HiFi-GAN uses 8192")
    if v.d_width < 1 or v.scales < 0 or any(p < 2 for p in v.periods) or not (v.periods or v.scales):
        raise ConfigError("vocoder.d_width must be >= 1, vocoder.periods >= 2 each and at least one "
                          "period or scale; the paper uses periods [2,3,5,7,11] and 3 scales")
    if v.mel_weight < 0 or v.fm_weight < 0 or v.preview_seconds <= 0:
        raise ConfigError("vocoder.mel_weight and fm_weight must be >= 0, preview_seconds > 0")
    return layout


@register_objective("vocoder")
class Vocoder(AudioFamily):
    ema = ["G"]
    sections = {"audio": AudioConfig, "vocoder": VocoderConfig}
    capabilities = frozenset({"vocode"})

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        layout = check_config(cfg)
        self.cfg, v, a = cfg, cfg.vocoder, cfg.audio
        generator = VocosGenerator if v.generator == "vocos" else HiFiGANGenerator
        self.mel = LogMel.from_config(a)
        if v.generator == "vocos" and v.mel_prior:
            layout = dict(layout, mel_basis=self.mel.fb, correct_magnitude=v.magnitude_correction)
        self.nets = {"G": generator(n_mels=a.n_mels, **layout),
                     "D": MultiDiscriminator(width=v.d_width, periods=v.periods, scales=v.scales)}
        self.hop = a.hop
        self.mel_loss = LogMel.from_config(a, full_band=True)
        self.optimizers = {"G": OptimizerSpec(["G"], lr=cfg.optim.g_lr),
                           "D": OptimizerSpec(["D"], lr=cfg.optim.d_lr)}
        self.phases = [Phase("G", optimizer="G"),
                       Phase("D", optimizer="D", repeat=cfg.train.n_critic, fresh_batch=False)]
        self._fake: Tensor | None = None  # G(s) of this step, for the D phase
        self.preview_waves: list[Tensor] = []
        self._preview_audio = {}

    def make_batches(self, dataset, cfg, device: torch.device):
        return CropBatches({"wave": [torch.from_numpy(w) for w in dataset.waves]},
                           cfg.vocoder.segment, cfg.train.batch_size, cfg.train.seed, device)

    def prepare_training(self, dataset) -> None:
        if dataset is None:
            return
        n = min(self.cfg.train.n_sample_grid, 4)
        length = int(self.cfg.vocoder.preview_seconds * self.cfg.audio.rate) // self.hop * self.hop
        waves = [torch.from_numpy(w[:length]) for w in dataset.waves[:n]]
        self.preview_waves = [w[:len(w) // self.hop * self.hop] for w in waves if len(w) >= 4 * self.hop]

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        super().bind(device=device, rng=rng)
        self.mel.to(device)
        self.mel_loss.to(device)

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        wave = batch["wave"][:, None]  # [B, 1, segment] in [-1, 1]
        G, D = self.nets["G"], self.nets["D"]
        if phase == "G":
            fake = G(self.mel(wave))
            self._fake = fake.detach()
            fake_scores, fake_feats = D(fake)
            with torch.no_grad():
                _, real_feats = D(wave)
            adv = lsgan_g(fake_scores)
            fm = feature_matching(real_feats, fake_feats)
            mel_l1 = F.l1_loss(self.mel_loss(fake), self.mel_loss(wave))
            v = self.cfg.vocoder
            loss = adv + v.fm_weight * fm + v.mel_weight * mel_l1
            return {"loss": loss, "g_loss": loss.detach(), "g_adv": adv.detach(),
                    "feature_matching": fm.detach(), "mel_l1": mel_l1.detach()}
        if phase == "D":
            fake = self._fake
            if fake is None:
                with torch.no_grad():
                    fake = G(self.mel(wave))
            real_scores, _ = D(wave)
            fake_scores, _ = D(fake)
            loss = lsgan_d(real_scores, fake_scores)
            return {"loss": loss, "d_loss": loss.detach(),
                    "d_real": torch.stack([s.detach().float().mean() for s in real_scores]).mean(),
                    "d_fake": torch.stack([s.detach().float().mean() for s in fake_scores]).mean()}
        raise ValueError(f"unknown phase {phase}")

    def after_step(self, phase: str) -> None:
        if phase == "D":
            self._fake = None

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def vocode(self, mel: Tensor, *, nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """log-mel [B, n_mels, T] (or [n_mels, T]) -> waveform [B, T * hop] in [-1, 1]."""
        G = (nets or {}).get("G", self.nets["G"])
        mel = mel[None] if mel.dim() == 2 else mel
        if mel.dim() != 3 or mel.shape[1] != self.cfg.audio.n_mels:
            raise ConfigError(f"vocode takes log-mels [B, {self.cfg.audio.n_mels}, T] (this run's "
                              f"audio.n_mels), got {list(mel.shape)}")
        return G(mel.float().to(self.device))[:, 0].float().clamp(-1, 1)

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        raise ConfigError("a vocoder makes speech from mel-spectrograms, not random samples; use "
                          "ganforge vocode RUN in.wav --out out.wav")

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """Per preview utterance, its mel above the mel of its vocoded waveform, as one image
        [k, 1, 2 n_mels + 1, T]; the vocoded waveforms are kept for ``preview_files``."""
        images, self._preview_audio = [], {}
        for i, wave in enumerate(self.preview_waves[:n]):
            mel = self.analyze(wave)
            fake = self.vocode(mel, nets=nets)
            self._preview_audio[f"{i}"] = fake[0]
            images.append(mel_strip(mel[0], self.mel(fake)[0]))
        if not images:
            return torch.zeros(1, 1, 2 * self.cfg.audio.n_mels + 1, 8)
        width = min(x.shape[-1] for x in images)
        return torch.stack([x[..., :width] for x in images])

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        folder = write_tone_folder(workdir / "tones", n=2, seconds=0.5, rate=TINY_AUDIO["rate"])
        return {"objective": cls.name, "data": {"name": f"audio:{folder}"},
                "audio": dict(TINY_AUDIO),
                "vocoder": {"g_width": 8, "upsample_rates": [4, 4, 4], "d_width": 1,
                            "periods": [2, 3], "scales": 2, "segment": 256, "preview_seconds": 0.25},
                "train": {**TINY_TRAIN, "batch_size": 2, "ema_decay": 0.0}}
