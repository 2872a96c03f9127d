"""The Python API: build a run from a config, train it, load it back.

Data flows one way: config -> build(objective, dataset) -> Trainer.fit -> run directory ->
load / sample. Nothing here knows an architecture or a loss.
"""
from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import yaml

from . import config as config_mod
from .atomic import atomic_write_text
from .config import Config, load_config  # noqa: F401  (ganforge.load_config, families registered)
from .errors import CheckpointError, ConfigError
from .labels import grid_labels, resolve_class
from .objectives import CAPABILITIES, Objective, family
from .training import checkpoint as ckpt
from .training.trainer import FitResult, Hook, Trainer, resolve_device


def load_data(cfg: Config):
    """The training data ``cfg`` names, read the way its family reads it."""
    return family(cfg).load_data(cfg)


def build(cfg: Config, dataset=None, device: torch.device | None = None):
    """(objective, dataset) for a config, ready to train: the family named by ``cfg.objective``
    loads its data (unless ``dataset`` is given), sizes its networks from it (initialised from
    ``train.seed``) and prepares what only training needs."""
    fam = family(cfg)
    if dataset is None:
        dataset = fam.load_data(cfg)
    info = fam.data_info(cfg, dataset)
    torch.manual_seed(cfg.train.seed)
    objective = fam(cfg, info)
    objective.prepare_training(dataset)
    return objective, dataset


def capabilities(cfg: Config) -> frozenset[str]:
    """What a run of ``cfg`` will offer once trained (``sample``, ``translate``, ...)."""
    return family(cfg).capabilities


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _has_run(path: Path) -> bool:
    return path.exists() and any(path.iterdir())


def prepare_run_dir(run_dir: Path, cfg: Config, *, resume: bool, force: bool) -> None:
    """Create ``run_dir`` for a new run; never overwrite one unless ``force``."""
    if resume:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a directory; choose another --out")
    if _has_run(run_dir):
        if not force:
            raise ConfigError(f"run directory {run_dir} already exists; pass --resume to continue "
                              f"it, --force to start over (deletes it), or choose another --out")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The saved config of ``run_dir`` with ``overrides`` applied (e.g. more train.steps)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} not found; is {run_dir} a ganforge run "
                              f"directory? Start a new run without --resume")
    raw = yaml.safe_load(path.read_text())
    return config_mod.from_dict(config_mod.apply_overrides(raw, overrides))


def train(cfg: Config, run_dir: Path | str | None = None, *, name: str = "run",
          resume: bool = False, force: bool = False, progress: bool = True,
          hooks: Iterable[Hook] = (), dataset=None) -> FitResult:
    """Train ``cfg`` into ``run_dir`` (default runs/<name>-<timestamp>)."""
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(name)
    device = resolve_device(cfg.train.device)
    objective, dataset = build(cfg, dataset)
    batches = objective.make_batches(dataset, cfg, device)
    hooks = list(hooks)
    if cfg.eval.every > 0 and not hooks:
        from .metrics import training_hook  # built before training: a missing extractor fails now

        hooks.append(training_hook(cfg, metrics=cfg.eval.metrics or ["fid", "kid"], n=cfg.eval.n))
    prepare_run_dir(run_dir, cfg, resume=resume, force=force)
    trainer = Trainer(cfg, objective, batches, run_dir=run_dir, device=device, hooks=hooks,
                      progress=progress)
    if resume and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*")):
        weights, state = ckpt.load(ckpt.find(run_dir), map_location=device)
        trainer.load(weights, state)
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    return trainer.fit()


class LoadedRun:
    """A trained run, rebuilt from its directory alone: ``ganforge.load(RUN_DIR)``."""

    def __init__(self, run_dir: Path | str, *, checkpoint: str = "latest", device: str = "cpu"):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise CheckpointError(f"run directory {self.run_dir} does not exist; pass the --out "
                                  f"directory of a training run")
        self.checkpoint = ckpt.find(self.run_dir, checkpoint)
        self.device = torch.device(device)
        weights, state = ckpt.load(self.checkpoint)
        self.config = config_mod.from_dict(state["config"])
        self.step = int(state["step"])
        fam = family(self.config)
        self.objective: Objective = fam(self.config,
                                        fam.info_from_state(self.config, state.get("objective", {})))
        nets = ckpt.unflatten_weights({k: v for k, v in weights.items() if not k.startswith("ema.")})
        ema = ckpt.unflatten_weights(weights, prefix="ema.")
        try:
            for name, net in self.objective.nets.items():
                net.load_state_dict(nets[name])
                net.to(self.device).eval()
            self.ema_nets = {}
            for name, sd in ema.items():
                net = copy.deepcopy(self.objective.nets[name])
                net.load_state_dict(sd)
                self.ema_nets[name] = net.to(self.device).eval().requires_grad_(False)
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {self.checkpoint} does not match its config "
                                  f"({str(exc).splitlines()[0][:100]}); it may come from another "
                                  f"ganforge version") from None
        self.objective.bind(device=self.device, rng=torch.Generator(self.device))

    @property
    def capabilities(self) -> frozenset[str]:
        """What this run can do: a subset of ganforge.objectives.CAPABILITIES."""
        return type(self.objective).capabilities

    def require(self, capability: str) -> None:
        """A one-line ConfigError when this run lacks ``capability``."""
        if capability not in self.capabilities:
            can = "; ".join(CAPABILITIES[c] for c in sorted(self.capabilities)) or "nothing"
            raise ConfigError(f"run {self.run_dir} (objective={self.config.objective}) cannot "
                              f"{CAPABILITIES[capability].split(' (')[0]}; it can: {can}")

    @property
    def class_names(self) -> list[str] | None:
        """The classes of a conditional run (index order), None for an unconditional one."""
        names = getattr(self.objective, "class_names", None)
        return list(names) if names else None

    def sample_labels(self, n: int, labels=None) -> torch.Tensor | None:
        """The int64 labels [n] that ``sample(n, labels=labels)`` generates (None: unconditional).

        ``labels``: one class or a sequence of n classes, each an index or a class name; None
        gives one class per row of a square grid (rows cycle through the classes)."""
        names = self.class_names
        if names is None or "sample_labels" not in self.capabilities:
            if labels is not None:
                raise ConfigError(f"run {self.run_dir} is unconditional (objective="
                                  f"{self.config.objective}); it cannot generate a requested class. "
                                  f"Train a conditional preset (e.g. cgan-fashion-mnist)")
            return None
        if labels is None:
            return grid_labels(n, len(names))
        if isinstance(labels, (str, int)) and not isinstance(labels, bool):
            return torch.full((n,), resolve_class(labels, names), dtype=torch.int64)
        if isinstance(labels, torch.Tensor):
            labels = labels.tolist()
        out = torch.tensor([resolve_class(v, names) for v in labels], dtype=torch.int64)
        if len(out) != n:
            raise ConfigError(f"{len(out)} labels for {n} samples; give one class or exactly n")
        return out

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, ema: bool = True, batch_size: int = 500,
               labels=None, truncation: float | None = None,
               truncation_cutoff: int | None = None) -> torch.Tensor:
        """n samples as float [N, C, H, W] in [-1, 1] on the CPU, reproducible for a seed.
        ``labels`` (conditional runs): see ``sample_labels``. ``truncation``: families with the
        "truncation" capability (its meaning and range are the family's); ``truncation_cutoff``:
        truncate only layers below it (style-based generators)."""
        self.require("sample")
        extra = {}
        if truncation is not None:
            self.require("truncation")
            extra["truncation"] = truncation
        if truncation_cutoff is not None:
            self.require("mix")  # per-layer styles
            extra["truncation_cutoff"] = truncation_cutoff
        gen = torch.Generator().manual_seed(seed)
        nets = self.ema_nets if ema else {}
        y = self.sample_labels(n, labels)
        chunks = []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            kwargs = dict(extra) if y is None else {"labels": y[start:start + size], **extra}
            chunks.append(self.objective.sample(size, generator=gen, nets=nets, **kwargs).cpu())
        return torch.cat(chunks)

    def mix(self, rows, cols, layers="0-3", *, ema: bool = True, truncation: float | None = None,
            labels=None) -> torch.Tensor:
        """Style mixing (style-based runs): the grid [(1 + R) * (1 + C), C, H, W] in [-1, 1], one
        row per row seed, one column per column seed, ``layers`` ('0-3', or a list of layer
        indices) of each image taken from its column seed; the first row and column show the
        seeds' own images (top-left blank). Lay out with nrow = 1 + len(cols)."""
        self.require("mix")
        nets = self.ema_nets if ema else {}
        if isinstance(layers, str):
            layers = self.objective.parse_layers(layers, nets=nets)
        y = self.sample_labels(1, labels)
        return self.objective.mix(list(rows), list(cols), list(layers), nets=nets,
                                  truncation=truncation, labels=None if y is None else y[:1]).cpu()

    def interpolate(self, seeds, frames: int = 60, *, space: str = "w", ema: bool = True,
                    truncation: float | None = None, labels=None) -> torch.Tensor:
        """A looping latent walk through ``seeds``: ``frames`` images [frames, C, H, W] in
        [-1, 1] (``space`` w: linear in W; z: slerp in Z)."""
        self.require("interpolate")
        if len(seeds) < 2 or frames < 2:
            raise ConfigError(f"interpolate needs at least 2 seeds and 2 frames, got {len(seeds)} and {frames}")
        y = self.sample_labels(1, labels)
        return self.objective.interpolate(list(seeds), frames, space=space, truncation=truncation,
                                          nets=self.ema_nets if ema else {},
                                          labels=None if y is None else y[:1]).cpu()

    @torch.no_grad()
    def path_pairs(self, n: int, *, space: str = "w", eps: float = 1e-4, seed: int = 0,
                   ema: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Image pairs for perceptual path length: (G(l(0)), G(l(eps))) for n random latent
        paths l (linear in W, slerp in Z), the same noise in both; float [n, C, H, W] on the CPU."""
        self.require("interpolate")
        a, b = self.objective.path_pairs(n, space=space, eps=eps, generator=torch.Generator().manual_seed(seed),
                                         nets=self.ema_nets if ema else {})
        return a.cpu(), b.cpu()

    def project(self, image, *, space: str = "w", steps: int = 1000, seed: int = 0, ema: bool = True,
                log=None) -> dict:
        """GAN inversion (style-based runs): ``image`` uint8 [H, W, C] (converted and resized to
        the run's channels and resolution; ``notes`` says how) -> {"ws" [L, D], "image" and
        "target" float [1, C, H, W], "progress" [K, C, H, W], "psnr", "ssim", "perceptual", ...}."""
        self.require("project")
        nets = self.ema_nets if ema else {}
        return self.objective.project(image, space=space, steps=steps, seed=seed, nets=nets, log=log)

    def edit(self, attribute, strengths=(-3, -2, -1, 0, 1, 2, 3), *, seed: int = 0, latent=None,
             n_train: int = 2000, classify=None, class_names=None, ema: bool = True) -> dict:
        """InterFaceGAN latent editing (style-based runs): the image of ``seed`` (or ``latent``,
        ws [L, D] from ``project``) moved along the W direction of class ``attribute`` (index or
        name of the dataset classifier's classes, or of ``class_names`` with your own
        ``classify(float images) -> logits``); {"images" [K, C, H, W], "probability", ...}."""
        self.require("edit")
        return self.objective.edit(attribute=attribute, strengths=list(strengths), seed=seed, latent=latent,
                                   n_train=n_train, classify=classify, class_names=class_names,
                                   nets=self.ema_nets if ema else {})

    def sample_uint8(self, n: int, **kwargs) -> np.ndarray:
        """n samples as uint8 [N, H, W, C], the file-boundary format (samples.npz)."""
        return to_uint8_hwc(self.sample(n, **kwargs))

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, direction: str = "AtoB", ema: bool = True,
                  tile: int | None = None) -> torch.Tensor:
        """Image-to-image runs: float [N, C, H, W] in [-1, 1] of any H, W -> the translations
        [N, C', H, W] on the CPU, networks in eval mode. ``tile``: translate in overlapping
        windows of that size (e.g. the training crop) and blend."""
        self.require("translate")
        nets = self.ema_nets if ema else {}
        return self.objective.translate(images.float(), direction=direction, nets=nets,
                                        tile=tile).cpu()

    def upscale(self, image: np.ndarray, *, tile: int = 256, overlap: int | None = None,
                interp: float | None = None, ema: bool = True) -> np.ndarray:
        """Super-resolution runs: uint8 [h, w, 3] of any size -> uint8 [s*h, s*w, 3]; tiled
        (``tile`` LR pixels, 0: whole image) with ``overlap`` pixels of context; ``interp``
        blends towards the PSNR-stage weights (ESRGAN network interpolation, 1 = this run)."""
        self.require("upscale")
        return self.objective.upscale(image, tile=tile, overlap=overlap, interp=interp,
                                      nets=self.ema_nets if ema else {})

    def translate_eval(self, *, ema: bool = True, limit: int | None = None,
                       **options) -> dict[str, Any]:
        """The family's held-out evaluation of a translation run (PSNR/SSIM of paired runs,
        FID/KID of unpaired ones); ``options``: extractor, inception_weights."""
        self.require("translate")
        return self.objective.translate_eval(self, ema=ema, limit=limit, **options)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def load(run_dir: Path | str, *, checkpoint: str = "latest", device: str = "cpu") -> LoadedRun:
    return LoadedRun(run_dir, checkpoint=checkpoint, device=device)
