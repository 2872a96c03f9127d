"""A small denoising diffusion baseline for ``ganforge bench gan-vs-diffusion``: DDPM (Ho et al.
2020, "Denoising Diffusion Probabilistic Models") trained with the epsilon-prediction loss, sampled
with DDPM's 1000 ancestral steps or DDIM's deterministic few-step sampler (Song et al. 2021,
"Denoising Diffusion Implicit Models", eta = 0).

The network and both samplers are the well-kept ``diffusers`` library's (UNet2DModel,
DDPMScheduler, DDIMScheduler; ``pip install 'ganforge[diffusion]'``); only the training loop is
ours. It is CPU-sized (about 1.8M parameters at the defaults, linear beta schedule 1e-4..0.02 as
in the DDPM paper, Adam 2e-4, an EMA of the weights) and a baseline to measure GAN claims against,
not a ganforge family: it has no config section, preset, resume or monitor.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

SAMPLERS = ("ddpm", "ddim")


def require_diffusers():
    try:
        import diffusers
    except ImportError:
        raise ConfigError("the diffusion baseline needs the diffusers library: pip install "
                          "'ganforge[diffusion]' (or pip install diffusers)") from None
    return diffusers


@dataclass
class DiffusionConfig:
    resolution: int = 28  # a multiple of 2 ** (len(widths) - 1)
    channels: int = 1
    widths: tuple[int, ...] = (32, 64, 96)  # UNet levels; self-attention at the lowest one
    layers_per_block: int = 1
    norm_groups: int = 8
    timesteps: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    ema_decay: float = 0.999
    seed: int = 0

    def check(self) -> None:
        down = 2 ** (len(self.widths) - 1)
        if self.resolution % down:
            raise ConfigError(f"diffusion resolution {self.resolution} must be a multiple of {down} "
                              f"({len(self.widths)} UNet levels); pick other widths or a resolution")
        if any(w % self.norm_groups for w in self.widths):
            raise ConfigError(f"diffusion widths {self.widths} must be multiples of norm_groups={self.norm_groups}")


def build_unet(cfg: DiffusionConfig):
    """diffusers' UNet2DModel: its constructor arguments are its config (save_pretrained)."""
    diffusers = require_diffusers()
    cfg.check()
    n = len(cfg.widths)
    return diffusers.UNet2DModel(
        sample_size=cfg.resolution, in_channels=cfg.channels, out_channels=cfg.channels,
        block_out_channels=tuple(cfg.widths), layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1), norm_num_groups=cfg.norm_groups)


def make_scheduler(kind: str, timesteps: int = 1000):
    diffusers = require_diffusers()
    if kind not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{kind}'; valid: {', '.join(SAMPLERS)}")
    ddpm = diffusers.DDPMScheduler(num_train_timesteps=timesteps, beta_schedule="linear",
                                   beta_start=1e-4, beta_end=0.02, clip_sample=True)
    return ddpm if kind == "ddpm" else diffusers.DDIMScheduler.from_config(ddpm.config)


def train(images: torch.Tensor, cfg: DiffusionConfig, *, seconds: float | None = None,
          steps: int | None = None, log: Callable[[str], None] | None = None, log_every: int = 200):
    """Train on uint8 [N, C, H, W] ``images`` until ``seconds`` have passed (counted from this
    call) or ``steps`` steps are done, whichever comes first. Returns (EMA model in eval mode,
    stats: steps, seconds, final loss, parameters)."""
    if seconds is None and steps is None:
        raise ValueError("give seconds or steps")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_unet(cfg)
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay))
    sched = make_scheduler("ddpm", cfg.timesteps)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    data = images.float().div(127.5).sub(1)  # [N, C, H, W] in [-1, 1]
    if tuple(data.shape[1:]) != (cfg.channels, cfg.resolution, cfg.resolution):
        raise ConfigError(f"diffusion baseline configured for {cfg.resolution}x{cfg.resolution}x"
                          f"{cfg.channels}, data is {tuple(data.shape[1:])}")
    step, losses = 0, []
    model.train()
    while (steps is None or step < steps) and (seconds is None or time.perf_counter() - t0 < seconds):
        x0 = data[torch.randint(len(data), (cfg.batch_size,), generator=gen)]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, cfg.timesteps, (cfg.batch_size,), generator=gen)
        pred = model(sched.add_noise(x0, noise, t), t).sample
        loss = F.mse_loss(pred, noise)  # the "simple" epsilon objective of Ho et al.
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update_parameters(model)
        step += 1
        losses.append(loss.item())
        if log is not None and step % log_every == 0:
            log(f"  diffusion step {step}: loss {sum(losses[-log_every:]) / log_every:.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
    net = ema.module.eval().requires_grad_(False)
    stats = {"steps": step, "seconds": round(time.perf_counter() - t0, 2),
             "final_loss": round(sum(losses[-100:]) / max(1, len(losses[-100:])), 5),
             "parameters": sum(p.numel() for p in net.parameters())}
    return net, stats


@torch.no_grad()
def sample(model, n: int, *, sampler: str = "ddim", steps: int = 50, seed: int = 0, batch_size: int = 250,
           timesteps: int = 1000) -> torch.Tensor:
    """n images float [N, C, H, W] in [-1, 1]: ``sampler`` "ddpm" (ancestral; ``steps`` is normally
    the 1000 training steps) or "ddim" (eta 0, ``steps`` evenly spaced)."""
    sched = make_scheduler(sampler, timesteps)
    sched.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    c, r = model.config.in_channels, model.config.sample_size
    out = []
    for start in range(0, n, batch_size):
        x = torch.randn(min(batch_size, n - start), c, r, r, generator=gen)
        for t in sched.timesteps:
            eps = model(x, t).sample
            x = sched.step(eps, t, x, generator=gen).prev_sample
        out.append(x.clamp(-1, 1))
    return torch.cat(out) if out else torch.zeros(0, c, r, r)


def save(model, folder: Path, cfg: DiffusionConfig, stats: dict) -> None:
    """diffusers' save_pretrained (config.json + safetensors) and our training settings."""
    from ..atomic import atomic_path

    if folder.exists():
        raise ConfigError(f"{folder} already exists; choose another folder")
    with atomic_path(folder) as tmp:  # the folder appears complete or not at all
        model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "baseline.json").write_text(json.dumps({"config": asdict(cfg), "stats": stats}, indent=2) + "\n")


def load(folder: Path):
    diffusers = require_diffusers()
    return diffusers.UNet2DModel.from_pretrained(str(folder), low_cpu_mem_usage=False).eval().requires_grad_(False)
