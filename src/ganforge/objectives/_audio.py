"""What the audio families (vocoder, cyclegan-vc) share: the ``audio`` config section, reading
``data.name=audio:PATH``, the tiny example front end, and training previews that are
mel-spectrogram images plus WAV files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.audio import load_audio, parse_audio_name, write_wav
from ..data.mel import AudioConfig, LogMel, check_audio_config, mel_image
from ..errors import ConfigError, DataError
from .base import Objective, counted, refuse_unused_sections

# The front end of the example configs: 8 kHz, 16 mels, hop 64 (tiny networks, fast tests).
TINY_AUDIO = {"rate": 8000, "n_fft": 256, "hop": 64, "win": 256, "n_mels": 16, "fmax": 4000.0,
              "min_seconds": 0.1}


def check_common(cfg) -> None:
    check_audio_config(cfg.audio)
    if cfg.eval.every > 0:
        raise ConfigError(f"eval.every measures FID of random images, which an audio model does not "
                          f"make; set eval.every=0 and run {AudioFamily.evaluated_by}")


class AudioFamily(Objective):
    """Base of the audio families: reads audio folders; previews write WAVs beside the grid."""

    # their networks and losses are their own sections' (vocoder, vc)
    unsupported_advice = ("model.", "reg.", "augment.")
    evaluated_by = "ganforge eval-audio RUN --data DIR"
    unused_settings = ("data.resolution", "data.channels", "model.", "reg.", "augment.")
    g_adversarial_key = "g_adv"  # g_loss adds mel (vocoder) or cycle and identity (voice conversion) terms
    # the networks map this front end's mels (audio.n_mels also changes a shape)
    resume_fixed = {f"audio.{key}": "the networks were trained on the mels of the run's audio front end"
                    for key in ("rate", "n_fft", "hop", "win", "fmin", "fmax")}

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        if new:  # a run trained with them before this check still loads and resumes
            refuse_unused_sections(cfg)

    @classmethod
    def load_data(cls, cfg, voices=None):
        a = cfg.audio
        check_audio_config(a)
        return load_audio(parse_audio_name(cfg.data.name), rate=a.rate, min_seconds=a.min_seconds,
                          split=cfg.data.split, voices=voices)

    @classmethod
    def describe_data(cls, dataset) -> str | None:
        """'600 clips, 21.4 min' (a voice pair's: voice A's + voice B's)."""
        sides = [getattr(dataset, k, None) for k in ("a", "b")] if hasattr(dataset, "a") else [dataset]
        if not all(hasattr(s, "waves") and hasattr(s, "seconds") for s in sides):
            return None
        minutes = sum(s.seconds for s in sides) / 60
        clips = counted(len(sides[0]), "clips") if len(sides) == 1 else f"{len(sides[0])} + {len(sides[1])} clips"
        return f"{clips}, {minutes:.1f} min"

    @classmethod
    def data_info(cls, cfg, dataset) -> dict[str, Any]:
        return {"name": dataset.name}

    _preview_audio: dict[str, Tensor] = {}
    mel: LogMel  # the run's front end, set by the family
    hop: int
    min_frames = 1  # the fewest log-mel frames the family's network takes

    def min_samples(self, *, network: bool = True) -> int:
        """The fewest samples (at audio.rate) of a waveform that ``analyze`` takes - its reflect
        padding needs more than mel.pad - and, with ``network``, that give the network
        ``min_frames`` frames (analyze makes ceil(L / hop))."""
        front = self.mel.pad + 1
        return max(front, (self.min_frames - 1) * self.hop + 1) if network else front

    def check_length(self, samples: int, label: str, *, network: bool = True) -> None:
        """A one-line DataError, naming ``label`` (a file, or the method), for a waveform of
        ``samples`` samples that is too short; it says the least length in samples and seconds."""
        need = self.min_samples(network=network)
        if samples < need:
            rate = self.cfg.audio.rate
            have = f"{label} has {samples} samples ({samples / rate:.3g} s at {rate} Hz)"
            if network:
                raise DataError(f"{have}; this run needs at least {need} samples ({need / rate:.3g} s): give "
                                f"a longer recording")
            raise DataError(f"{have}; the front end needs more than {self.mel.pad}: give at least {need} "
                            f"samples ({need / rate:.3g} s)")

    @torch.no_grad()
    def analyze(self, wave: Tensor) -> Tensor:
        """waveform [L] or [B, L] -> the run's log-mel [B, n_mels, ceil(L / hop)] (zero-padded to
        a multiple of hop)."""
        wave = wave[None] if wave.dim() == 1 else wave
        self.check_length(wave.shape[-1], "analyze: the audio", network=False)
        wave = F.pad(wave.float(), (0, -wave.shape[-1] % self.hop))
        return self.mel(wave.to(self.device))

    def preview_files(self, folder: Path, stem: str) -> list[Path]:
        """The WAVs of the last preview, ``<stem>_<name>.wav``."""
        return [write_wav(folder / f"{stem}_{name}.wav", wave, self.cfg.audio.rate)
                for name, wave in self._preview_audio.items()]


def mel_strip(*mels: Tensor) -> Tensor:
    """log-mels [n_mels, T] stacked top to bottom with a white line between them: one grey image
    [1, k n_mels + k - 1, T] in [-1, 1]."""
    rows = []
    for i, m in enumerate(mels):
        if i:
            rows.append(torch.ones(1, 1, m.shape[-1], device=m.device))
        rows.append(mel_image(m))
    return torch.cat(rows, 1)


__all__ = ["AudioConfig", "AudioFamily", "TINY_AUDIO", "check_common", "mel_strip"]
