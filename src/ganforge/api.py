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
from .config import Config
from .errors import CheckpointError, ConfigError, DataError
from .objectives import Objective, build_objective
from .training import checkpoint as ckpt
from .training.batches import InMemoryBatches, StreamingBatches
from .training.trainer import FitResult, Hook, Trainer, resolve_device


TRANSLATION_OBJECTIVES = ("pix2pix", "cyclegan")  # read image pairs (ganforge.data.pairs)


def load_data(cfg: Config):
    from . import data

    if cfg.objective in TRANSLATION_OBJECTIVES:
        from .data import pairs

        return pairs.load_pairs(cfg)
    return data.load_dataset(cfg.data.name, split=cfg.data.split, resolution=cfg.data.resolution,
                             channels=cfg.data.channels, data_dir=cfg.data.data_dir,
                             seed=cfg.train.seed)


def data_info(dataset) -> dict[str, Any]:
    labels = getattr(dataset, "labels", None)
    names = getattr(dataset, "class_names", None)
    info = {"name": dataset.name, "num_classes": len(names) if names else 0,
            "class_names": list(names) if names else None, "has_labels": labels is not None}
    points = getattr(dataset, "points", None)
    if points is not None:  # toy mixtures: samples are [N, point_dim], not images
        info["point_dim"] = int(points.shape[1])
    if hasattr(dataset, "objective_info"):  # e.g. held-out pairs for translation sample strips
        info.update(dataset.objective_info())
    return info


def make_batches(dataset, cfg: Config, device: torch.device):
    if cfg.objective == "superres":  # random crops of a few large images (ganforge.data.superres)
        from .data.superres import make_pair_batches

        return make_pair_batches(dataset, cfg, device)
    bs = cfg.train.batch_size
    if len(dataset) < bs:
        raise DataError(f"{dataset.name} has {len(dataset)} images, fewer than one batch "
                        f"(train.batch_size={bs}); add images or lower train.batch_size")
    from .data import StreamingFolderDataset, ToyDataset

    if hasattr(dataset, "make_batches"):  # data with its own batch source (translation pairs)
        return dataset.make_batches(cfg, device)
    if isinstance(dataset, StreamingFolderDataset):  # too large for memory: decoded by workers
        return StreamingBatches(dataset.torch_dataset(), bs, cfg.train.seed, device,
                                cfg.data.num_workers, has_labels=dataset.labels is not None)
    tensor = dataset.points if isinstance(dataset, ToyDataset) else dataset.images
    return InMemoryBatches(tensor, dataset.labels, bs, cfg.train.seed, device)


def build(cfg: Config, dataset=None, device: torch.device | None = None):
    """(objective, dataset) for a config; the nets are initialised from ``train.seed``."""
    if cfg.objective == "superres":  # HR images at native size, VGG19, PSNR-stage init (issue 8)
        from .objectives import superres

        return superres.build(cfg, dataset)
    if dataset is None:
        dataset = load_data(cfg)
    from .data import ToyDataset

    if isinstance(dataset, ToyDataset) and cfg.objective != "unconditional":
        # Only the unconditional objective has point models (model.name=mlp on [N, 2] points).
        raise ConfigError(f"{cfg.data.name} holds 2-D points, which only objective=unconditional "
                          f"with model.name=mlp trains (presets toy-ring8, toy-grid25)")
    torch.manual_seed(cfg.train.seed)
    return build_objective(cfg, data_info(dataset)), dataset


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
    ckpt.atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())


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
    batches = make_batches(dataset, cfg, device)
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
        ckpt.atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
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
        classes = state.get("objective", {})  # conditional runs save their classes here
        info = {"name": self.config.data.name, "num_classes": int(classes.get("num_classes") or 0),
                "class_names": classes.get("class_names"),
                "has_labels": bool(classes.get("num_classes"))}
        self.objective: Objective = build_objective(self.config, info)
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
    def class_names(self) -> list[str] | None:
        """The classes of a conditional run (index order), None for an unconditional one."""
        names = getattr(self.objective, "class_names", None)
        return list(names) if names else None

    def sample_labels(self, n: int, labels=None) -> torch.Tensor | None:
        """The int64 labels [n] that ``sample(n, labels=labels)`` generates (None: unconditional).

        ``labels``: one class or a sequence of n classes, each an index or a class name; None
        gives one class per row of a square grid (rows cycle through the classes)."""
        names = self.class_names
        if names is None:
            if labels is not None:
                raise ConfigError(f"run {self.run_dir} is unconditional (objective="
                                  f"{self.config.objective}); it cannot generate a requested class. "
                                  f"Train a conditional preset (e.g. cgan-fashion-mnist)")
            return None
        from .objectives.conditional import grid_labels, resolve_class

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
               labels=None) -> torch.Tensor:
        """n samples as float [N, C, H, W] in [-1, 1] on the CPU, reproducible for a seed.
        ``labels`` (conditional runs): see ``sample_labels``."""
        gen = torch.Generator().manual_seed(seed)
        nets = self.ema_nets if ema else {}
        y = self.sample_labels(n, labels)
        chunks = []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            kwargs = {} if y is None else {"labels": y[start:start + size]}
            chunks.append(self.objective.sample(size, generator=gen, nets=nets, **kwargs).cpu())
        return torch.cat(chunks)

    def sample_uint8(self, n: int, **kwargs) -> np.ndarray:
        """n samples as uint8 [N, H, W, C], the file-boundary format (samples.npz)."""
        return to_uint8_hwc(self.sample(n, **kwargs))

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, direction: str = "AtoB", ema: bool = True,
                  tile: int | None = None) -> torch.Tensor:
        """Image-to-image runs (pix2pix, cyclegan): float [N, C, H, W] in [-1, 1] of any H, W ->
        the translations [N, C', H, W] on the CPU, networks in eval mode (issue 7). ``tile``:
        translate in overlapping windows of that size (e.g. the training crop) and blend."""
        if not hasattr(self.objective, "translate"):
            raise ConfigError(f"run {self.run_dir} is a {self.config.objective} run, which does "
                              f"not translate images; use sample, or a pix2pix/cyclegan run")
        nets = self.ema_nets if ema else {}
        return self.objective.translate(images.float(), direction=direction, nets=nets,
                                        tile=tile).cpu()

    def upscale(self, image: np.ndarray, *, tile: int = 256, overlap: int | None = None,
                interp: float | None = None, ema: bool = True) -> np.ndarray:
        """Super-resolution runs: uint8 [h, w, 3] of any size -> uint8 [s*h, s*w, 3]; tiled
        (``tile`` LR pixels, 0: whole image) with ``overlap`` pixels of context; ``interp``
        blends towards the PSNR-stage weights (ESRGAN network interpolation, 1 = this run)."""
        from .objectives.superres import upscale_run

        return upscale_run(self, image, tile=tile, overlap=overlap, interp=interp, ema=ema)


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def load(run_dir: Path | str, *, checkpoint: str = "latest", device: str = "cpu") -> LoadedRun:
    return LoadedRun(run_dir, checkpoint=checkpoint, device=device)
