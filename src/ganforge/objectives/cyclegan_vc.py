"""Unpaired voice conversion: CycleGAN-VC2 (Kaneko, Kameoka, Tanaka & Hojo 2019), objective
``cyclegan-vc``, on log-mel spectrograms of two voices (``vc.voice_a``, ``vc.voice_b``: folders of
``data.name=audio:PATH``, e.g. two voices of a make-speech corpus, whose training sentences differ).

Networks (ganforge.models.cyclegan_vc): 2-1-2D generators G_AB, G_BA and 2-D PatchGAN
discriminators D_A, D_B, plus D2_A, D2_B for the two-step adversarial loss (sec. 3.1) that also
judges the cycle-reconstructed spectrograms. Losses (eq. 1-4 of CycleGAN-VC, sec. 3.1 of VC2):

    G: adv(D_B(G_AB(a))) + adv(D_A(G_BA(b)))  [+ adv(D2_A(G_BA(G_AB(a)))) + adv(D2_B(G_AB(G_BA(b))))]
       + lambda_cycle (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
       + lambda_identity (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)      for the first identity_steps
    D: the discriminator half of loss.name (the paper: least squares) on each D's real/fake pair

lambda_cycle 10, lambda_identity 5, identity loss for the first 10^4 steps (the paper's values).
Training crops are ``vc.frames`` mel frames (the paper: 128), each voice normalized per mel band
by its training mean and standard deviation; those statistics are saved with the run, so a loaded
run converts with no data: ``convert`` normalizes with the source voice's, applies the generator
and de-normalizes with the target voice's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..data.audio import CropBatches, write_tone_folder
from ..data.mel import LOG_FLOOR, AudioConfig, LogMel
from ..errors import ConfigError, DataError
from ..models.cyclegan_vc import Generator212, PatchDiscriminator2d
from ._audio import TINY_AUDIO, AudioFamily, check_common, mel_strip
from .base import OptimizerSpec, Phase, register_objective
from .unconditional import TINY_TRAIN


@dataclass
class VCConfig:
    """CycleGAN-VC2 (objective=cyclegan-vc; ganforge.objectives.cyclegan_vc)."""

    voice_a: str = "en+m3"  # folder of voice A under data.name's audio folder
    voice_b: str = "en+f3"
    frames: int = 128  # training crop, mel frames (a multiple of 4)
    g_width: int = 128  # 2-D channels of the generator (the paper: 128)
    res_width: int = 256  # 1-D residual channels (the paper: 256)
    blocks: int = 6  # 1-D residual blocks
    d_width: int = 128  # first discriminator channels (the paper: 128)
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    identity_steps: int = 10000  # the identity loss applies for this many generator steps
    two_step: bool = True  # CycleGAN-VC2's second adversarial loss on cycle-converted mels
    preview_seconds: float = 2.0


class VoicePair:
    """The training audio of the two voices, and their log-mels (computed once)."""

    def __init__(self, a, b, mel: LogMel):
        self.a, self.b = a, b
        self.name = f"{a.name}:{b.name}"
        with torch.no_grad():
            self.mels = {k: [mel(torch.from_numpy(w))[0] for w in ds.waves] for k, ds in (("a", a), ("b", b))}

    def stats(self) -> dict[str, Tensor]:
        """Per-band mean and std [n_mels] of each voice's training frames."""
        out = {}
        for key, mels in self.mels.items():
            frames = torch.cat(mels, dim=1)
            out[f"{key}_mean"], out[f"{key}_std"] = frames.mean(1), frames.std(1).clamp_min(1e-3)
        return out


def _voices(direction: str, method: str) -> tuple[str, str]:
    """("a", "b") for AtoB, ("b", "a") for BtoA; anything else is refused in the Python API's terms
    (the CLI's --direction is checked by its parser)."""
    if direction == "AtoB":
        return "a", "b"
    if direction == "BtoA":
        return "b", "a"
    raise ConfigError(f"{method}: direction={direction!r} is not a direction; pass direction='AtoB' "
                      f"(voice A to voice B) or direction='BtoA'")


def check_config(cfg) -> None:
    check_common(cfg)
    v = cfg.vc
    if not v.voice_a or not v.voice_b or v.voice_a == v.voice_b:
        raise ConfigError(f"vc.voice_a and vc.voice_b must name two different voice folders, got "
                          f"'{v.voice_a}' and '{v.voice_b}'")
    if v.frames < 8 or v.frames % 4:
        raise ConfigError(f"vc.frames={v.frames} must be a multiple of 4 and >= 8 (the paper: 128)")
    for key in ("g_width", "res_width", "blocks", "d_width"):
        if getattr(v, key) < 1:
            raise ConfigError(f"vc.{key} must be >= 1, got {getattr(v, key)}")
    if v.lambda_cycle < 0 or v.lambda_identity < 0 or v.identity_steps < 0:
        raise ConfigError("vc.lambda_cycle, vc.lambda_identity and vc.identity_steps must be >= 0")


@register_objective("cyclegan-vc")
class CycleGANVC(AudioFamily):
    ema = ["G_AB", "G_BA"]
    sections = {"audio": AudioConfig, "vc": VCConfig}
    capabilities = frozenset({"convert"})
    preview_legend = ("top to bottom: a clip's mel-spectrogram | its conversion (the tiles: voice A's "
                      "clips converted to voice B first, then voice B's converted to A)")  # preview's tiles
    resume_fixed = {**AudioFamily.resume_fixed,
                    **{f"vc.voice_{side}": "its generators convert between the run's two voices (AtoB: "
                                           "voice_a to voice_b)" for side in "ab"}}
    # convert pads T up to a multiple of the generator's stride (4) and downsamples by it; the
    # 1-D instance norms then need 2 time steps: 8 padded frames, so 5 frames
    min_frames = Generator212.stride + 1

    @classmethod
    def logs_d_probabilities(cls, config: Mapping[str, Any]) -> bool | None:
        """d_real / d_fake are the means of the PatchGANs' raw outputs, whatever the loss."""
        return False

    @classmethod
    def load_data(cls, cfg):
        check_config(cfg)
        a = super().load_data(cfg, voices=[cfg.vc.voice_a])
        b = super().load_data(cfg, voices=[cfg.vc.voice_b])
        return VoicePair(a, b, LogMel.from_config(cfg.audio))

    @classmethod
    def data_info(cls, cfg, dataset: VoicePair) -> dict[str, Any]:
        return {"name": dataset.name, "stats": dataset.stats()}

    @classmethod
    def info_from_state(cls, cfg, extra_state: Mapping[str, Any]) -> dict[str, Any]:
        if not extra_state.get("stats"):  # a model folder exported before inference_state kept them
            raise ConfigError("this model has no per-voice mel statistics, without which it converts "
                              "wrongly; export it again from its run with ganforge export RUN --format folder")
        return {"name": cfg.data.name, "stats": extra_state.get("stats")}

    def __init__(self, cfg, data_info: Mapping[str, Any]):
        check_config(cfg)
        self.cfg, v, a = cfg, cfg.vc, cfg.audio
        gen = dict(n_mels=a.n_mels, width=v.g_width, res_width=v.res_width, blocks=v.blocks)
        self.nets = {"G_AB": Generator212(**gen), "G_BA": Generator212(**gen),
                     "D_A": PatchDiscriminator2d(width=v.d_width), "D_B": PatchDiscriminator2d(width=v.d_width)}
        if v.two_step:
            self.nets.update(D2_A=PatchDiscriminator2d(width=v.d_width), D2_B=PatchDiscriminator2d(width=v.d_width))
        self.optimizers = {"G": OptimizerSpec(["G_AB", "G_BA"], lr=cfg.optim.g_lr),
                           "D": OptimizerSpec([n for n in self.nets if n.startswith("D")], lr=cfg.optim.d_lr)}
        self.phases = [Phase("G", optimizer="G"),
                       Phase("D", optimizer="D", repeat=cfg.train.n_critic, fresh_batch=False)]
        self.adv = losses.get_loss(cfg.loss.name)
        stats = data_info.get("stats") or {}
        zeros, ones = torch.zeros(a.n_mels), torch.ones(a.n_mels)
        self.stats = {k: torch.as_tensor(stats.get(k, zeros if k.endswith("mean") else ones)).float()
                      for k in ("a_mean", "a_std", "b_mean", "b_std")}
        self.mel, self.hop = LogMel.from_config(a), a.hop
        self.g_steps = 0
        self._fakes: dict[str, Tensor] | None = None
        self.preview_mels: dict[str, list[Tensor]] = {}
        self._preview_audio = {}

    def make_batches(self, dataset: VoicePair, cfg, device: torch.device):
        norm = {k: [self._norm(m, k) for m in mels] for k, mels in dataset.mels.items()}
        pad = float(self._norm(torch.full((cfg.audio.n_mels, 1), torch.log(torch.tensor(LOG_FLOOR))), "a").mean())
        return CropBatches(norm, cfg.vc.frames, cfg.train.batch_size, cfg.train.seed, device, pad_value=pad)

    def prepare_training(self, dataset: VoicePair | None) -> None:
        if dataset is None:
            return
        frames = int(self.cfg.vc.preview_seconds * self.cfg.audio.rate / self.hop) // 4 * 4
        n = max(1, min(self.cfg.train.n_sample_grid // 2, 2))
        self.preview_mels = {k: [m[:, :frames] for m in mels[:n] if m.shape[1] >= 8]
                             for k, mels in dataset.mels.items()}

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        super().bind(device=device, rng=rng)
        self.mel.to(device)
        self.stats = {k: v.to(device) for k, v in self.stats.items()}

    def _norm(self, mel: Tensor, voice: str) -> Tensor:
        s = self.stats
        return (mel - s[f"{voice}_mean"].to(mel.device)[:, None]) / s[f"{voice}_std"].to(mel.device)[:, None]

    def _denorm(self, x: Tensor, voice: str) -> Tensor:
        s = self.stats
        return x * s[f"{voice}_std"].to(x.device)[:, None] + s[f"{voice}_mean"].to(x.device)[:, None]

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        a, b = batch["a"], batch["b"]  # normalized log-mels [B, n_mels, frames], unpaired
        n, v = self.nets, self.cfg.vc
        l1 = lambda x, y: (x.float() - y.float()).abs().mean()  # noqa: E731
        if phase == "G":
            fake_b, fake_a = n["G_AB"](a), n["G_BA"](b)
            cyc_a, cyc_b = n["G_BA"](fake_b), n["G_AB"](fake_a)
            self._fakes = {"a": fake_a.detach(), "b": fake_b.detach(), "cyc_a": cyc_a.detach(),
                           "cyc_b": cyc_b.detach()}
            adv = self.adv.g(fake=n["D_B"](fake_b)) + self.adv.g(fake=n["D_A"](fake_a))
            if v.two_step:
                adv = adv + self.adv.g(fake=n["D2_A"](cyc_a)) + self.adv.g(fake=n["D2_B"](cyc_b))
            cycle = l1(cyc_a, a) + l1(cyc_b, b)
            loss = adv + v.lambda_cycle * cycle
            out = {"g_adv": adv.detach(), "cycle": cycle.detach()}
            if v.lambda_identity > 0 and self.g_steps < v.identity_steps:
                idt = l1(n["G_AB"](b), b) + l1(n["G_BA"](a), a)
                loss = loss + v.lambda_identity * idt
                out["identity"] = idt.detach()
            return {"loss": loss, "g_loss": loss.detach(), **out}
        if phase == "D":
            f = self._fakes
            if f is None:
                with torch.no_grad():
                    fb, fa = n["G_AB"](a), n["G_BA"](b)
                    f = {"a": fa, "b": fb, "cyc_a": n["G_BA"](fb), "cyc_b": n["G_AB"](fa)}
            pairs = [("D_A", a, f["a"]), ("D_B", b, f["b"])]
            if v.two_step:
                pairs += [("D2_A", a, f["cyc_a"]), ("D2_B", b, f["cyc_b"])]
            scores = [(n[name](real), n[name](fake)) for name, real, fake in pairs]
            loss = sum(self.adv.d(real=r, fake=fk) for r, fk in scores)
            d_real = torch.cat([r.detach().float().flatten() for r, _ in scores])
            d_fake = torch.cat([fk.detach().float().flatten() for _, fk in scores])
            # per patch, on the loss's own decision rule: what the monitor's "D wins outright"
            # reads for raw scores (its D(G(z)) <= 0.05 means nothing for logits)
            right = [losses.d_decisions(self.adv, real=r, fake=fk) for r, fk in scores]
            return {"loss": loss, "d_loss": loss.detach(), "d_real": d_real.mean(), "d_fake": d_fake.mean(),
                    "d_acc_real": torch.cat([rr.flatten() for rr, _ in right]).float().mean(),
                    "d_acc_fake": torch.cat([rf.flatten() for _, rf in right]).float().mean()}
        raise ValueError(f"unknown phase {phase}")

    def after_step(self, phase: str) -> None:
        if phase == "G":
            self.g_steps += 1
        if phase == "D":
            self._fakes = None

    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "stats": {k: v.cpu() for k, v in self.stats.items()},
                "g_steps": self.g_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.g_steps = int(state.get("g_steps", 0))

    def inference_state(self) -> dict[str, Any]:
        # the per-voice mel statistics that convert normalizes with, as lists (float32 exactly)
        return {"stats": {k: v.cpu().tolist() for k, v in self.stats.items()}}

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def convert(self, mel: Tensor, *, direction: str = "AtoB",
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """log-mel [B, n_mels, T] (or [n_mels, T]) of the source voice -> the target voice's
        log-mel [B, n_mels, T]."""
        src, tgt = _voices(direction, "convert")
        mel = mel[None] if mel.dim() == 2 else mel
        if mel.dim() != 3 or mel.shape[1] != self.cfg.audio.n_mels:
            raise ConfigError(f"convert takes log-mels [B, {self.cfg.audio.n_mels}, T] (this run's "
                              f"audio.n_mels), got {list(mel.shape)}")
        if mel.shape[-1] < self.min_frames:
            need, rate = self.min_samples(), self.cfg.audio.rate
            raise DataError(f"convert: the log-mel has {mel.shape[-1]} frames; this network needs at least "
                            f"{self.min_frames} (audio of {need} samples, {need / rate:.3g} s at {rate} Hz): "
                            f"give a longer input")
        G = (nets or {}).get(f"G_{src.upper()}{tgt.upper()}", self.nets[f"G_{src.upper()}{tgt.upper()}"])
        t = mel.shape[-1]
        x = F.pad(self._norm(mel.float().to(self.device), src), (0, -t % Generator212.stride), mode="replicate")
        return self._denorm(G(x)[..., :t].float(), tgt)

    def match_statistics(self, mel: Tensor, *, direction: str = "AtoB") -> Tensor:
        """The baseline without the generator: the source voice's per-band mean and std of the
        log-mel [B, n_mels, T] replaced by the target voice's."""
        src, tgt = _voices(direction, "match_statistics")
        return self._denorm(self._norm(mel.float().to(self.device), src), tgt)

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        raise ConfigError("a voice-conversion model has no random samples; use ganforge convert RUN "
                          "in.wav --out out.wav --direction AtoB")

    @torch.no_grad()
    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """Per preview utterance, its mel above its conversion (A->B, then B->A), one image each;
        the conversions (through Griffin-Lim) are kept for ``preview_files``."""
        from ..metrics.audio import griffin_lim

        images, self._preview_audio = [], {}
        for src, direction in (("a", "AtoB"), ("b", "BtoA")):
            for i, mel in enumerate(self.preview_mels.get(src, [])):
                out = self.convert(mel, direction=direction, nets=nets)[0]
                images.append(mel_strip(mel.to(out.device), out))
                self._preview_audio[f"{direction}_{i}"] = torch.from_numpy(
                    griffin_lim(out.cpu().numpy(), self.cfg.audio, n_iter=16))
        if not images:
            return torch.zeros(1, 1, 2 * self.cfg.audio.n_mels + 1, 8)
        width = min(x.shape[-1] for x in images)
        return torch.stack([x[..., :width] for x in images])

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        root = workdir / "voices"
        write_tone_folder(root / "low", n=2, seconds=0.4, rate=TINY_AUDIO["rate"], seed=1)
        write_tone_folder(root / "high", n=2, seconds=0.4, rate=TINY_AUDIO["rate"], seed=2, pitch=2.0)
        return {"objective": cls.name, "loss": {"name": "lsgan"}, "data": {"name": f"audio:{root}"},
                "audio": dict(TINY_AUDIO),
                "vc": {"voice_a": "low", "voice_b": "high", "frames": 16, "g_width": 2, "res_width": 4,
                       "blocks": 1, "d_width": 2, "identity_steps": 2, "preview_seconds": 0.25},
                "train": {**TINY_TRAIN, "batch_size": 2}}
