"""The log-mel front end of the audio families: an STFT in torch and librosa's mel filter bank.

    mel = LogMel.from_config(cfg.audio)          # a module; buffers follow .to(device)
    m = mel(wave)                                # [B, L] -> [B, n_mels, L // hop]

The waveform is reflect-padded by (n_fft - hop) / 2 on both sides and framed without centring,
so a signal of L samples (L a multiple of hop) gives exactly L / hop frames and a vocoder that
upsamples each frame by hop returns L samples again (the framing of HiFi-GAN, Kong et al. 2020).
Magnitudes (power 1) go through the Slaney-normalised filter bank of ``librosa.filters.mel`` and
a natural log floored at 1e-5. The parameters are the ``audio`` config section, which every
run saves in config.yaml and in each checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

LOG_FLOOR = 1e-5  # the mel floor before the log: silence is log(1e-5) = -11.5
IMAGE_RANGE = (math.log(LOG_FLOOR), 2.5)  # log-mel values mapped to [-1, 1] in sample images


@dataclass
class AudioConfig:
    """The audio front end (ganforge.data.mel) and reader (ganforge.data.audio) of the audio
    families; saved with the run, so analysis at inference matches training."""

    rate: int = 22050  # sample rate, Hz; files at other rates are resampled to it
    n_fft: int = 1024
    hop: int = 256  # samples per mel frame (the vocoder's total upsampling)
    win: int = 1024  # Hann window length, <= n_fft
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0  # top of the filter bank; <= rate / 2
    min_seconds: float = 0.25  # shorter files are refused by the reader


def check_audio_config(a: AudioConfig) -> None:
    """One-line ConfigErrors for front-end values that cannot work."""
    for key in ("rate", "n_fft", "hop", "win", "n_mels"):
        if getattr(a, key) <= 0:
            raise ConfigError(f"audio.{key} must be > 0, got {getattr(a, key)}")
    if a.win > a.n_fft:
        raise ConfigError(f"audio.win={a.win} must be <= audio.n_fft={a.n_fft}")
    if a.hop > a.win or (a.n_fft - a.hop) % 2:
        raise ConfigError(f"audio.hop={a.hop} must be <= audio.win and n_fft - hop even (the "
                          f"front end pads (n_fft - hop) / 2 on each side); try audio.hop={a.n_fft // 4}")
    if not 0 <= a.fmin < a.fmax <= a.rate / 2:
        raise ConfigError(f"audio.fmin={a.fmin:g} and audio.fmax={a.fmax:g} must satisfy 0 <= fmin < "
                          f"fmax <= rate / 2 = {a.rate / 2:g}")
    if a.min_seconds < 0:
        raise ConfigError(f"audio.min_seconds must be >= 0, got {a.min_seconds}")


def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> Tensor:
    """librosa's Slaney mel filter bank as float32 [n_mels, n_fft // 2 + 1]."""
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                                fmax=fmax)).float()


class LogMel(nn.Module):
    """wave [B, L] (or [B, 1, L], or [L]) float -> log-mel [B, n_mels, L // hop]."""

    def __init__(self, rate: int, n_fft: int, hop: int, win: int, n_mels: int, fmin: float,
                 fmax: float | None):
        super().__init__()
        self.rate, self.n_fft, self.hop, self.win, self.n_mels = rate, n_fft, hop, win, n_mels
        self.register_buffer("fb", mel_filterbank(rate, n_fft, n_mels, fmin, fmax), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    @classmethod
    def from_config(cls, a: AudioConfig, *, full_band: bool = False) -> LogMel:
        """The front end of ``a``; ``full_band``: up to rate / 2 (the vocoder's loss)."""
        return cls(a.rate, a.n_fft, a.hop, a.win, a.n_mels, a.fmin, None if full_band else a.fmax)

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop) // 2

    def stft(self, wave: Tensor) -> Tensor:
        """Complex STFT [B, n_fft // 2 + 1, L // hop] of the padded, uncentred framing."""
        if wave.dim() == 1:
            wave = wave[None]
        elif wave.dim() == 3:
            wave = wave.squeeze(1)
        x = F.pad(wave.float()[:, None], (self.pad, self.pad), mode="reflect")[:, 0]
        return torch.stft(x, self.n_fft, self.hop, self.win, self.window, center=False,
                          return_complex=True)

    def magnitude(self, wave: Tensor) -> Tensor:
        """|STFT| [B, n_fft // 2 + 1, frames] of the padded, uncentred framing."""
        spec = self.stft(wave)
        return torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)

    def forward(self, wave: Tensor) -> Tensor:
        return torch.log(torch.clamp(self.fb @ self.magnitude(wave), min=LOG_FLOOR))


def mel_image(log_mel: Tensor) -> Tensor:
    """log-mel [n_mels, T] -> a grey image [1, n_mels, T] in [-1, 1], low frequencies at the
    bottom, on a fixed value range so images of different steps compare."""
    lo, hi = IMAGE_RANGE
    x = (log_mel.float().clamp(lo, hi) - lo) / (hi - lo) * 2 - 1
    return x.flip(0)[None]
