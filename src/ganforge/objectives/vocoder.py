"""A GAN vocoder (mel -> waveform): HiFi-GAN (Kong, Kim & Bae 2020), objective ``vocoder``.

Training draws random ``vocoder.segment``-sample crops of the training waveforms; the generator
sees their log-mel (ganforge.data.mel) and must return the crop. With the multi-period and
multi-scale sub-discriminators D_k (ganforge.models.hifigan), the losses are the paper's (eq. 1-6):

    L_D = sum_k E[(D_k(x) - 1)^2 + D_k(G(s))^2]                         least squares (LSGAN)
    L_G = sum_k [adv_weight E(D_k(G(s)) - 1)^2 + fm_weight L_FM(G; D_k)] + mel_weight L_mel
    L_FM = sum_i mean |D_k^i(x) - D_k^i(G(s))|   over the feature maps i of D_k
    L_mel = mean |phi(x) - phi(G(s))|            phi: the log-mel, here over the full band

with adv_weight 1, fm_weight 2 and mel_weight 45. The adversarial loss is fixed (loss.name is not read). Each
step runs G (caching G(s)) and then D on the same crops, so G runs forward once per step.

``vocoder.generator`` picks G: ``hifigan`` (the paper's, sizes v1/v2/v3/small) or ``vocos``, a
Fourier-domain generator after Siuzdak (2023) that predicts each frame's STFT magnitude and phase
and inverts them (ganforge.models.vocos); the discriminators and the losses above stay the same.

``vocoder.phase=pghi`` (vocos only) drops the phase head: G predicts the magnitude, during training
its waveform is that magnitude with the crop's own (analysed) phase, so every loss judges the
magnitude; when vocoding, the phase is retrieved from the magnitude by phase gradient heap
integration and ``vocoder.phase_steps`` fast Griffin-Lim steps (ganforge.models.phase). Why: on a
CPU budget the learned phase is what loses to Griffin-Lim (BENCHMARKS.md, issue 18), while the
magnitude is learned in minutes. ``vocoder.magnitude_weight`` adds

    L_mag = mean |log(|S_G| + 0.1) - log(|STFT(x)| + 0.1)|   S_G: G's magnitude (vocos) or STFT(G(s))

and ``vocoder.adv_weight`` scales the adversarial term; 0 trains G alone on its mel and magnitude
losses with no discriminator (as super-resolution's PSNR stage does), which vocos-pghi-speech does.
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
from ..models.phase import retrieve
from ..models.vocos import VocosGenerator
from ._audio import TINY_AUDIO, AudioFamily, check_common, mel_strip
from .base import OptimizerSpec, Phase, register_objective
from .unconditional import TINY_TRAIN


PIECE_FRAMES = 1024  # mel frames a generator takes at once (about 12 s at 22,050 Hz and hop 256)
PIECE_CONTEXT = 64  # frames of context on each side of a piece, more than a generator's reach


def in_pieces(net, mel: Tensor, scale: int) -> Tensor:
    """``net`` (log-mel [B, n_mels, t] -> [..., t * scale] along the last axis) over a long
    ``mel`` in pieces of PIECE_FRAMES frames, each with PIECE_CONTEXT frames of context on both
    sides, cut off again: the generators are convolutions that see a few frames around each
    one, so the result is the whole input's (to float rounding) in memory bounded by a piece.
    A 30-minute recording had needed about 12 GB at once."""
    frames = mel.shape[-1]
    if frames <= PIECE_FRAMES + 2 * PIECE_CONTEXT:
        return net(mel)
    pieces = []
    for start in range(0, frames, PIECE_FRAMES):
        end = min(start + PIECE_FRAMES, frames)
        a, b = max(0, start - PIECE_CONTEXT), min(frames, end + PIECE_CONTEXT)
        out = net(mel[..., a:b])
        pieces.append(out[..., (start - a) * scale:(end - a) * scale])
    return torch.cat(pieces, -1)


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
    phase: str = "learned"  # vocos: learned (the head's) | pghi (retrieved from the magnitude)
    phase_steps: int = 8  # phase=pghi: fast Griffin-Lim steps after PGHI when vocoding
    d_crops: int = 0  # crops of each batch the discriminators see (their cost); 0: all
    d_width: int = 32  # discriminator base channels; 32 is the paper's (MPD 32..1024)
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])  # multi-period D
    scales: int = 3  # multi-scale D: raw, 2x and 4x pooled
    segment: int = 8192  # training crop, samples (a multiple of audio.hop)
    adv_weight: float = 1.0  # 0: no discriminator, G alone on the mel and magnitude losses
    mel_weight: float = 45.0
    fm_weight: float = 2.0
    magnitude_weight: float = 0.0  # L1 between log(|STFT| + 0.1) of G's spectrum and the crop's
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
PHASES = ("learned", "pghi")
MAGNITUDE_LOSS_OFFSET = 0.1  # |STFT| + 0.1 before the log: the noise floor does not dominate


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
        if v.phase not in PHASES:
            raise ConfigError(f"vocoder.phase '{v.phase}' is not one of {', '.join(PHASES)}")
        if v.phase_steps < 0:
            raise ConfigError(f"vocoder.phase_steps={v.phase_steps} must be >= 0 (fast Griffin-Lim "
                              f"steps after PGHI; 8 is the default)")
        layout = dict(n_fft=a.n_fft, hop=a.hop, dim=v.vocos_dim, layers=v.vocos_layers,
                      phase=v.phase == "learned")
    else:
        if v.phase not in PHASES:  # "vocoder.phase=pghi retrieves ..." had answered phase=foo
            raise ConfigError(f"vocoder.phase '{v.phase}' is not one of {', '.join(PHASES)}")
        if v.phase != "learned":
            raise ConfigError("vocoder.phase=pghi retrieves the phase of a predicted STFT magnitude; "
                              "set vocoder.generator=vocos or vocoder.phase=learned")
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
    if v.d_crops < 0:
        raise ConfigError(f"vocoder.d_crops={v.d_crops} must be >= 0 (0: the whole batch)")
    if v.d_width < 1 or v.scales < 0 or any(p < 2 for p in v.periods) or not (v.periods or v.scales):
        raise ConfigError("vocoder.d_width must be >= 1, vocoder.periods >= 2 each and at least one "
                          "period or scale; the paper uses periods [2,3,5,7,11] and 3 scales")
    if min(v.adv_weight, v.mel_weight, v.fm_weight, v.magnitude_weight) < 0 or v.preview_seconds <= 0:
        raise ConfigError("vocoder.adv_weight, mel_weight, fm_weight and magnitude_weight must be "
                          ">= 0, preview_seconds > 0")
    if v.adv_weight == 0 and v.fm_weight > 0:
        raise ConfigError("vocoder.adv_weight=0 trains without a discriminator, so there are no "
                          "features to match; set vocoder.fm_weight=0")
    if v.adv_weight == 0 and v.mel_weight == 0 and v.magnitude_weight == 0:
        raise ConfigError("vocoder.adv_weight, mel_weight and magnitude_weight are all 0: nothing "
                          "to train on; set vocoder.mel_weight=45")
    return layout


@register_objective("vocoder")
class Vocoder(AudioFamily):
    ema = ["G"]
    sections = {"audio": AudioConfig, "vocoder": VocoderConfig}
    capabilities = frozenset({"vocode"})
    unused_settings = (*AudioFamily.unused_settings, "loss.")  # its adversarial loss is fixed (LSGAN)

    @classmethod
    def logs_d_probabilities(cls, config: Mapping[str, Any]) -> bool | None:
        """d_real / d_fake are the discriminators' raw least-squares scores (target 1 and 0)."""
        return False

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        layout = check_config(cfg)
        self.cfg, v, a = cfg, cfg.vocoder, cfg.audio
        generator = VocosGenerator if v.generator == "vocos" else HiFiGANGenerator
        self.mel = LogMel.from_config(a)
        if v.generator == "vocos" and v.mel_prior:
            layout = dict(layout, mel_basis=self.mel.fb, correct_magnitude=v.magnitude_correction)
        self.nets = {"G": generator(n_mels=a.n_mels, **layout)}
        self.optimizers = {"G": OptimizerSpec(["G"], lr=cfg.optim.g_lr)}
        self.phases = [Phase("G", optimizer="G")]
        if v.adv_weight > 0:  # 0: G alone on its mel and magnitude losses
            self.nets["D"] = MultiDiscriminator(width=v.d_width, periods=v.periods, scales=v.scales)
            self.optimizers["D"] = OptimizerSpec(["D"], lr=cfg.optim.d_lr)
            self.phases.append(Phase("D", optimizer="D", repeat=cfg.train.n_critic, fresh_batch=False))
        self.hop = a.hop
        self.mel_loss = LogMel.from_config(a, full_band=True)
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
        G, D = self.nets["G"], self.nets.get("D")
        if phase == "G":
            v = self.cfg.vocoder
            fake, magnitude = self._generate(G, wave)
            mel_l1 = F.l1_loss(self.mel_loss(fake), self.mel_loss(wave))
            loss, out = v.mel_weight * mel_l1, {"mel_l1": mel_l1.detach()}
            if D is not None:
                n = v.d_crops or len(wave)
                self._fake = fake[:n].detach()
                fake_scores, fake_feats = D(fake[:n])
                with torch.no_grad():
                    _, real_feats = D(wave[:n])
                adv = lsgan_g(fake_scores)
                fm = feature_matching(real_feats, fake_feats)
                loss = loss + v.adv_weight * adv + v.fm_weight * fm
                out.update(g_adv=adv.detach(), feature_matching=fm.detach())
            if v.magnitude_weight:
                if magnitude is None:
                    magnitude = self.mel.stft(fake).abs()
                with torch.no_grad():
                    target = (self.mel.stft(wave).abs() + MAGNITUDE_LOSS_OFFSET).log()
                mag_l1 = F.l1_loss((magnitude + MAGNITUDE_LOSS_OFFSET).log(), target)
                loss = loss + v.magnitude_weight * mag_l1
                out["magnitude_l1"] = mag_l1.detach()
            return {"loss": loss, "g_loss": loss.detach(), **out}
        if phase == "D":
            wave, fake = wave[:self.cfg.vocoder.d_crops or len(wave)], self._fake  # G's is cut alike
            if fake is None:
                with torch.no_grad():
                    fake, _ = self._generate(G, wave)
            real_scores, _ = D(wave)
            fake_scores, _ = D(fake)
            loss = lsgan_d(real_scores, fake_scores)
            return {"loss": loss, "d_loss": loss.detach(),
                    "d_real": torch.stack([s.detach().float().mean() for s in real_scores]).mean(),
                    "d_fake": torch.stack([s.detach().float().mean() for s in fake_scores]).mean()}
        raise ValueError(f"unknown phase {phase}")

    def _generate(self, G: nn.Module, wave: Tensor) -> tuple[Tensor, Tensor | None]:
        """(G's waveform [B, 1, L] for the crops, its predicted magnitude or None). With
        vocoder.phase=pghi the waveform is G's magnitude with the crops' analysed phase: the
        discriminators and losses judge the magnitude, which is all such a G predicts."""
        mel = self.mel(wave)
        if self.cfg.vocoder.generator != "vocos":
            return G(mel), None
        magnitude, own = G.spectrum(mel)
        if own is None:
            with torch.no_grad():
                own = torch.angle(self.mel.stft(wave))
        return G.waveform(magnitude, own), magnitude

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
        mel = mel.float().to(self.device)
        v = self.cfg.vocoder
        if v.generator == "vocos" and v.phase == "pghi":
            magnitude = in_pieces(lambda m: G.spectrum(m)[0], mel, 1)
            wave = retrieve(magnitude, stft=self.mel.stft, n_fft=self.mel.n_fft, hop=self.hop,
                            win=self.mel.win, window=G.window, steps=v.phase_steps)
            return wave.float().clamp(-1, 1)
        return in_pieces(lambda m: G(m)[:, 0], mel, self.hop).float().clamp(-1, 1)

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
