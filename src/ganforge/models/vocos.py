"""A Fourier-domain GAN vocoder generator after Vocos (Siuzdak 2023, "Vocos: Closing the gap between
time-domain and Fourier-based neural vocoders for high-quality audio synthesis").

Where HiFi-GAN upsamples the mel frames to the sample rate with transposed convolutions, this
generator stays at the frame rate: a 7-wide input convolution to ``dim`` channels, layer norm,
``layers`` ConvNeXt blocks (Liu et al. 2022, 1-D: a depthwise 7-wide convolution, layer norm, a
``mult`` x wide pointwise MLP with GELU, a per-channel layer scale initialised to 1 / layers, a
skip), a final layer norm and a linear head that gives, per frame, a log-magnitude and a phase for
each of the n_fft / 2 + 1 STFT bins. The spectrum mag * (cos p + i sin p) is turned into the
waveform by an inverse STFT that is the exact inverse of the front end's framing
(ganforge.data.mel: reflect padding of (n_fft - hop) / 2 on both sides, uncentred frames), so T
frames give T * hop samples, as HiFi-GAN's generator does.

Why it is here: on a CPU budget HiFi-GAN's sample-rate convolutions learn the spectral envelope but
not the harmonics (BENCHMARKS.md, issue 18); predicting the magnitude directly makes the envelope
nearly a per-frame regression and leaves the adversarial losses the phase. The discriminators and
losses stay HiFi-GAN's (ganforge.objectives.vocoder); Vocos itself pairs the multi-period
discriminator with a multi-resolution spectrogram one and the hinge loss.

The mel prior (``mel_basis``, vocoder.mel_prior): the head's log-magnitude is added to the log of
pinv(mel basis) exp(mel), the least-squares magnitude under the mel, so a fresh generator already
has the right spectral envelope. Measured on held-out speech, that magnitude with the signal's own
phase gives MCD 0.44 dB and PESQ 4.05, with random phase 1.76 and 1.43 (benchmarks/vocoder_phase.py):
what the mel leaves out is the phase, and with the prior the network spends its steps on it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MAX_LOG_MAGNITUDE = 7.0  # exp(7) ~ 1100: above a full-scale sine's |STFT| peak at n_fft 1024
MAGNITUDE_FLOOR = 1e-5  # the mel prior's floor, as the front end's (ganforge.data.mel.LOG_FLOOR)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, mult: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, mult * dim)
        self.pw2 = nn.Linear(mult * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # [B, dim, T]
        y = self.dwconv(x).transpose(1, 2)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


def istft_same(spec: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """complex [B, n_fft // 2 + 1, T] -> waveform [B, T * hop]: windowed overlap-add of the frames'
    inverse FFTs, normalised by the summed squared window, trimmed by (n_fft - hop) / 2 on each side
    (the inverse of LogMel.magnitude's framing; torch.istft has no uncentred mode that is
    invertible at the edges)."""
    b, _, t = spec.shape
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # [B, n_fft, T]
    length = (t - 1) * hop + n_fft
    fold = dict(output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
    y = F.fold(frames, **fold)[:, 0, 0]
    envelope = F.fold(window.square()[None, :, None].expand(1, n_fft, t), **fold)[0, 0, 0]
    pad = (n_fft - hop) // 2
    return y[:, pad:length - pad] / envelope[pad:length - pad].clamp(min=1e-8)


class VocosGenerator(nn.Module):
    """log-mel [B, n_mels, T] -> waveform [B, 1, T * hop] (not squashed: vocode clamps to [-1, 1])."""

    def __init__(self, *, n_mels: int = 80, n_fft: int = 1024, hop: int = 256, dim: int = 512,
                 layers: int = 8, mult: int = 3, mel_basis: Tensor | None = None,
                 correct_magnitude: bool = True, phase: bool = True):
        """``mel_basis``: the front end's filter bank [n_mels, n_fft // 2 + 1]; given, the head's
        log-magnitude is a correction to log(pinv(mel_basis) exp(mel)), the least-squares
        magnitude under the mel, instead of the whole log-magnitude; with ``correct_magnitude``
        False that magnitude is used as it is and the network predicts only the phase. With
        ``phase`` False the head predicts only the magnitude and ``forward`` needs the phase
        (ganforge.models.phase retrieves one from the magnitude)."""
        super().__init__()
        self.n_fft, self.hop, self.correct_magnitude = n_fft, hop, correct_magnitude
        self.has_phase = phase
        self.embed = nn.Conv1d(n_mels, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, mult, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, (n_fft // 2 + 1) * (2 if phase else 1))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        inverse = None if mel_basis is None else torch.linalg.pinv(mel_basis.double()).float()
        self.register_buffer("mel_inverse", inverse, persistent=False)

    def spectrum(self, mel: Tensor) -> tuple[Tensor, Tensor | None]:
        """log-mel [B, n_mels, T] -> (magnitude, phase), each [B, n_fft // 2 + 1, T]; the phase
        is None when the head has none."""
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.final_norm(x.transpose(1, 2))).float().transpose(1, 2)
        log_mag, phase = out.chunk(2, dim=1) if self.has_phase else (out, None)
        if self.mel_inverse is not None:
            prior = torch.matmul(self.mel_inverse, mel.float().exp()).clamp(min=MAGNITUDE_FLOOR)
            log_mag = log_mag + prior.log() if self.correct_magnitude else prior.log()
        return torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE)), phase

    def forward(self, mel: Tensor, phase: Tensor | None = None) -> Tensor:
        """The waveform of the predicted spectrum; ``phase`` [B, n_fft // 2 + 1, T], when given,
        replaces the head's (and is required when the head has none)."""
        mag, own = self.spectrum(mel)
        phase = own if phase is None else phase
        if phase is None:
            raise ValueError("this generator predicts only the magnitude; pass the phase")
        return self.waveform(mag, phase)

    def waveform(self, magnitude: Tensor, phase: Tensor) -> Tensor:
        """magnitude, phase [B, n_fft // 2 + 1, T] -> waveform [B, 1, T * hop]."""
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return istft_same(spec, self.n_fft, self.hop, self.window)[:, None]
