"""A trained run or model folder, ready for inference from Python: ``ganforge.load(RUN)`` returns
a ``LoadedRun`` (sample, interpolate, translate, upscale, vocode, ... as its family declares),
and the checks its methods and the commands share (capabilities, seeds, truncation, input
tensors, memory of a sample). Nothing here trains; ``api`` re-exports ``load`` and ``LoadedRun``.
"""
from __future__ import annotations

import contextlib
import json
import copy
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import config as config_mod
from . import losses
from .atomic import check_readable
from .config import Config
from .errors import CheckpointError, ConfigError, DataError, GanforgeError, shell_arg
from .labels import interleaved_labels, resolve_class
from .objectives import AUDIO_CAPABILITIES, CAPABILITIES, Objective, family
from .rng import keeps_random_state
from .runfiles import MODEL_CONFIG, MODEL_WEIGHTS, damaged_model_folder, is_model_folder, naming_plugins, saved_config
from .training import checkpoint as ckpt
from .training.precision import resolve_device


class LoadedRun:
    """A trained run, rebuilt from its directory alone: ``ganforge.load(RUN_DIR)``."""

    # where its checkpoint was trained (Trainer.environment: torch, device, precision, CPU threads);
    # None for a checkpoint or model folder of a version before 2026-12-07
    environment: dict[str, Any] | None = None

    @keeps_random_state  # building the networks draws from torch's global generator
    def __init__(self, run_dir: Path | str, *, checkpoint: str = "latest", device: str = "cpu",
                 require: str | None = None):
        if not isinstance(run_dir, (str, os.PathLike)):  # had been pathlib's TypeError
            raise ConfigError(f"run_dir must be a path (str or pathlib.Path) of a run directory or a model "
                              f"folder, got {run_dir!r} ({type(run_dir).__name__})")
        if not isinstance(checkpoint, str):
            raise CheckpointError(f"checkpoint must be 'latest', 'best' or a step_XXXXXXX name, got {checkpoint!r}")
        # a checkpoint folder (train()'s .checkpoint) is its run with that checkpoint
        self.run_dir, checkpoint = ckpt.run_of_checkpoint(run_dir, checkpoint)
        with naming_plugins(self.run_dir):
            self._open(checkpoint, device, require)

    def _open(self, checkpoint: str, device: str, require: str | None) -> None:
        if not self.run_dir.is_dir():
            what = "is a file, not a run directory" if self.run_dir.exists() else "does not exist"
            raise CheckpointError(f"{self.run_dir} {what}; pass the directory a training run wrote (its --out)")
        missing = damaged_model_folder(self.run_dir)
        if missing:  # read as a run directory, it was "no checkpoint ...; train first"
            raise CheckpointError(f"model folder {self.run_dir} lacks {missing}; export it again (ganforge export "
                                  f"RUN --format folder --out {shell_arg(self.run_dir)} --force)")
        if require is not None:
            if require not in CAPABILITIES:
                raise ConfigError(f"unknown capability {require!r}; valid: {', '.join(sorted(CAPABILITIES))}")
            check_capability(self.run_dir, require)  # before any weights are read
        try:
            self.device = resolve_device(device)
        except ConfigError as exc:  # named as the commands' --device and this device=, not the config key
            text = str(exc).replace("train.device=auto", "--device auto (device='auto')")
            text = re.sub(r"train\.device ('[^']*')", r"--device \1 (device= in Python)", text, count=1)
            raise ConfigError(text.replace("train.device", "--device")) from None
        self.is_model_folder = is_model_folder(self.run_dir)
        if self.is_model_folder:  # `ganforge export --format folder` output
            if checkpoint != "latest":
                raise CheckpointError(f"{self.run_dir} is a model folder: it holds one set of weights and no "
                                      f"checkpoints; checkpoint={checkpoint!r} applies to run directories")
            self._load_model_folder()
            if require is not None:  # check_capability lets an unreadable config through: checked on what loaded
                self.require(require)
            return
        # a folder with neither (".", a folder of images) had been "no checkpoint in DIR/checkpoints"
        if not ((self.run_dir / "checkpoints").is_dir() or (self.run_dir / "config.yaml").is_file()):
            raise CheckpointError(f"'{self.run_dir}' is not a run directory or a model folder: a run directory "
                                  f"holds config.yaml and checkpoints/ (what ganforge train --out writes), a "
                                  f"model folder config.json and model.safetensors (ganforge export --format "
                                  f"folder); pass one of those")
        self.checkpoint = ckpt.find(self.run_dir, checkpoint)
        weights, state = ckpt.load(self.checkpoint)
        self.config = config_mod.from_dict(state["config"])
        self.saved_config = state["config"]  # as the version that trained it wrote it (provenance)
        self.environment = ckpt.environment(state)  # with the processes it trained on, for the model card
        self.step = int(state["step"])
        fam = family(self.config)
        with losses.for_inference():  # a loss the training script registered is not needed here
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
                                  f"({ckpt.mismatch(exc)}); the networks' code changed since it was saved "
                                  f"(a plugin's, or another ganforge version's)") from None
        self.objective.bind(device=self.device, rng=torch.Generator(self.device))
        if require is not None:
            self.require(require)

    def _load_model_folder(self) -> None:
        """A model folder holds config.json (the resolved config, the step, the family's
        JSON-able extra state) and model.safetensors (the inference weights, EMA where kept);
        the nets it does not hold (discriminators) stay untrained and unused."""
        import json

        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = self.run_dir
        try:
            meta = json.loads((folder / MODEL_CONFIG).read_text())
            self.config = config_mod.from_dict(meta["config"])
            self.saved_config = meta["config"]
            # the hash of the run it was exported from (provenance.run_config_hash); None in a
            # folder exported before it was recorded
            self.saved_config_hash = meta.get("config_hash") if isinstance(meta.get("config_hash"), str) else None
            self.step = int(meta["step"])
            self.environment = meta.get("environment") if isinstance(meta.get("environment"), dict) else None
            check_readable(folder / MODEL_WEIGHTS, "the model folder's weights")
            weights = load_file(folder / MODEL_WEIGHTS)
            # tensors the family keeps beside its weights (Objective.inference_files), handed back
            # as a checkpoint's loader hands them: under RUN_FILES of the extra state
            files = {str(name): load_file(folder / f"{Path(str(name)).name}.safetensors")
                     for name in meta.get("files") or ()}
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise CheckpointError(f"model folder {folder} is unreadable ({str(exc).splitlines()[0][:100]}); "
                                  f"export it again with ganforge export RUN --format folder") from None
        self.checkpoint = folder
        fam = family(self.config)
        state = dict(meta.get("objective_state") or {})
        if files:
            state[ckpt.RUN_FILES] = files
        with losses.for_inference():
            self.objective = fam(self.config, fam.info_from_state(self.config, state))
        nets = ckpt.unflatten_weights(weights)
        try:
            for name, sd in nets.items():
                self.objective.nets[name].load_state_dict(sd)
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"model folder {folder} does not match its config.json "
                                  f"({ckpt.mismatch(exc)}); export it again") from None
        for net in self.objective.nets.values():
            net.to(self.device).eval().requires_grad_(False)
        self.ema_nets = {name: self.objective.nets[name] for name in nets}  # already the EMA weights
        # whether they are EMA weights: config.json says (export_folder); a folder exported before
        # it did holds them where the run kept EMA (train.ema_decay > 0), its raw weights otherwise
        self._folder_ema = bool(meta.get("ema", self.config.train.ema_decay > 0))
        self.objective.bind(device=self.device, rng=torch.Generator(self.device))

    def _nets(self, ema: bool) -> dict:
        """The nets that replace the objective's for inference: the EMA copies (``ema``), else none."""
        if not ema and self.is_model_folder:
            raise ConfigError(f"model folder {self.run_dir} holds one set of weights (the EMA ones where the "
                              f"run kept them); ema=False needs the run directory")
        return self.ema_nets if ema else {}

    @property
    def ema_weights(self) -> bool:
        """Whether inference uses EMA weights: a run directory's EMA copies where its checkpoint
        holds them; a model folder's one set of weights where its config.json says they are EMA
        ones (a folder of a run without EMA had been labelled "EMA weights")."""
        return self._folder_ema if self.is_model_folder else bool(self.ema_nets)

    @property
    def capabilities(self) -> frozenset[str]:
        """What this run can do: a subset of ganforge.objectives.CAPABILITIES."""
        return self.objective.capabilities

    @property
    def point_dim(self) -> int | None:
        """2 for a run on 2-D points (the toy mixtures): ``sample`` gives float [N, 2], not
        images; None for image runs."""
        return getattr(self.objective, "point_dim", None)

    def require(self, capability: str) -> None:
        """A one-line ConfigError when this run lacks ``capability``."""
        _require(self.run_dir, self.config.objective, self.capabilities, capability)

    @property
    def class_names(self) -> list[str] | None:
        """The classes of a conditional run (index order), None for an unconditional one."""
        names = getattr(self.objective, "class_names", None)
        return list(names) if names else None

    def sample_labels(self, n: int, labels=None) -> torch.Tensor | None:
        """The int64 labels [n] that ``sample(n, labels=labels)`` generates (None: unconditional).

        ``labels``: one class or a sequence of n classes, each an index or a class name; None
        gives balanced classes (image i is class i % K). It had given one class per row of a
        square grid, so ``sample(10)`` of a 10-class run drew 4 classes and ``sample(64)`` 8:
        ``labels.grid_labels`` is that layout, which ``ganforge sample``'s and the server's PNG
        grids pass."""
        names = self.class_names
        if names is None or "sample_labels" not in self.capabilities:
            if labels is not None:
                raise ConfigError(f"run {self.run_dir} is unconditional (objective="
                                  f"{self.config.objective}); it cannot generate a requested class. "
                                  f"Train a conditional preset (e.g. cgan-fashion-mnist)")
            return None
        if labels is None:
            return interleaved_labels(n, len(names))
        if isinstance(labels, (torch.Tensor, np.ndarray, np.generic)):
            labels = labels.tolist()  # a 0-d tensor or a numpy scalar becomes one int or str
        if isinstance(labels, (str, int)) and not isinstance(labels, bool):
            return torch.full((n,), resolve_class(labels, names), dtype=torch.int64)
        if hasattr(labels, "__iter__") and not isinstance(labels, (str, bytes, dict)):
            labels = [v.item() if isinstance(v, (np.generic, torch.Tensor)) else v for v in labels]
        if not isinstance(labels, list) or any(
                isinstance(v, (bool, float)) or not isinstance(v, (str, int)) for v in labels):
            raise ConfigError(f"labels must be one class (an index or a name) or a sequence of them, got "
                              f"{labels!r:.60}")
        out = torch.tensor([resolve_class(v, names) for v in labels], dtype=torch.int64)
        if len(out) != n:
            raise ConfigError(f"{len(out)} labels for {n} samples; give one class or exactly n")
        return out

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, ema: bool = True, batch_size: int = 500,
               labels=None, truncation: float | None = None,
               return_levels: bool = False, truncation_cutoff: int | None = None,
               on_batch: Callable[[int], None] | None = None) -> torch.Tensor | list[torch.Tensor]:
        """n samples as float [N, C, H, W] in [-1, 1] on the CPU, reproducible for a seed and
        ``batch_size`` (the latents are drawn batch by batch, so another batch_size gives other
        samples; the CLI and the server use the default, 500).
        ``labels`` (conditional runs): see ``sample_labels``. ``truncation``: families with the
        "truncation" capability (its meaning and range are the family's); ``truncation_cutoff``:
        truncate only layers below it (style-based generators). ``return_levels``: families
        with the "levels" capability (LAPGAN) return every level's images, coarse to fine, as a
        list of [N, C, r_k, r_k]. ``on_batch(done)``: called after each batch with the number of
        samples drawn so far (progress for a large n)."""
        self.require("sample")
        n, batch_size = _check_int("n", n, minimum=0), _check_int("batch_size", batch_size, minimum=1)
        seed = _check_int("seed", seed, minimum=0, maximum=SEED_MAX)
        check_sample_memory(self, n, f"n={n}")
        extra: dict[str, Any] = {}
        truncation = _check_truncation(truncation)
        if truncation is not None:
            self.require("truncation")
            extra["truncation"] = truncation
        if return_levels:
            self.require("levels")
            extra["return_levels"] = True
        if truncation_cutoff is not None:
            if "mix" not in self.capabilities:  # per-layer styles: what a cutoff selects from
                raise ConfigError(f"run {self.run_dir} (objective={self.config.objective}) has one latent for "
                                  f"all its layers: a truncation cutoff needs a style-based run "
                                  f"(StyleGAN2); drop truncation_cutoff (--truncation-cutoff)")
            if truncation is None:
                raise ConfigError(f"truncation_cutoff={truncation_cutoff} limits a truncation to the layers "
                                  f"below it, and no truncation was given; pass truncation (--truncation) "
                                  f"as well")
            extra["truncation_cutoff"] = truncation_cutoff
        if n == 0:  # the shapes of one sample, with no rows (labels for none: checked, then unused)
            if labels is not None:
                self.sample_labels(0, labels)
            out = self.sample(1, seed=seed, ema=ema, labels=None,
                              truncation=truncation, return_levels=return_levels, truncation_cutoff=truncation_cutoff)
            return [level[:0] for level in out] if return_levels else out[:0]
        gen = torch.Generator().manual_seed(seed)
        nets = self._nets(ema)
        y = self.sample_labels(n, labels)
        chunks = []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            kwargs = dict(extra) if y is None else {"labels": y[start:start + size], **extra}
            out = self.objective.sample(size, generator=gen, nets=nets, **kwargs)
            chunks.append([x.cpu() for x in out] if return_levels else out.cpu())
            if on_batch is not None:
                on_batch(start + size)
        if return_levels:
            return [torch.cat(level) for level in zip(*chunks)]
        return torch.cat(chunks)

    def mix(self, rows, cols, layers="0-3", *, ema: bool = True, truncation: float | None = None,
            labels=None) -> torch.Tensor:
        """Style mixing (style-based runs): the grid [(1 + R) * (1 + C), C, H, W] in [-1, 1], one
        row per row seed, one column per column seed, ``layers`` ('0-3', or a list of layer
        indices) of each image taken from its column seed; the first row and column show the
        seeds' own images (top-left blank). Lay out with nrow = 1 + len(cols)."""
        self.require("mix")
        nets = self._nets(ema)
        rows, cols = _seed_list("rows", rows), _seed_list("cols", cols)
        if not rows or not cols:
            raise ConfigError(f"mix needs at least one row seed and one column seed, got {len(rows)} and {len(cols)}")
        check_sample_memory(self, (1 + len(rows)) * (1 + len(cols)), f"a mix grid of {len(rows)} x {len(cols)} seeds")
        if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
            layers = str(int(layers))  # one layer
        elif not isinstance(layers, str):  # a list of indices: checked as the text form is
            if not hasattr(layers, "__iter__"):
                raise ConfigError(f"layers must be '0-3', a layer index or a list of them, got {layers!r:.40}")
            layers = ",".join(str(v) for v in layers)
        layers = self.objective.parse_layers(layers, nets=nets)
        y = self.sample_labels(1, labels)
        return self.objective.mix(rows, cols, list(layers), nets=nets,
                                  truncation=truncation, labels=None if y is None else y[:1]).cpu()

    def interpolate(self, seeds, frames: int = 60, *, space: str | None = None, ema: bool = True,
                    truncation: float | None = None, labels=None) -> torch.Tensor:
        """A looping latent walk through ``seeds``: ``frames`` images [frames, C, H, W] in
        [-1, 1] (``space`` w: linear in W, style-based runs' default; z: slerp in Z, the only
        space of plain GANs); frame round(k * frames / len(seeds)) is seed k's own sample (of a
        style-based run: with the walk's fixed per-layer noise, so it differs slightly from
        ``sample(1, seed=k)``, whose noise is random)."""
        self.require("interpolate")
        seeds = _seed_list("seeds", seeds)
        frames = _check_int("frames", frames, minimum=2)
        if len(seeds) < 2:
            first = seeds[0] if seeds else 0
            raise ConfigError(f"interpolate walks between seeds and needs at least 2, got {seeds}; add "
                              f"another, e.g. seeds=[{first}, {(first + 1) % (SEED_MAX + 1)}]")
        if frames < len(seeds):
            raise ConfigError(f"interpolate draws a frame per seed at least: frames={frames} for {len(seeds)} "
                              f"seeds; use frames >= {len(seeds)}")
        y = self.sample_labels(1, labels)
        kwargs = {} if space is None else {"space": space}
        return self.objective.interpolate(list(seeds), frames, truncation=truncation, **kwargs,
                                          nets=self._nets(ema),
                                          labels=None if y is None else y[:1]).cpu()

    @torch.no_grad()
    def path_pairs(self, n: int, *, space: str = "w", eps: float = 1e-4, seed: int = 0,
                   ema: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Image pairs for perceptual path length: (G(l(0)), G(l(eps))) for n random latent
        paths l (linear in W, slerp in Z), the same noise in both; float [n, C, H, W] on the CPU."""
        self.require("mix")  # style-based runs: PPL in W and Z
        a, b = self.objective.path_pairs(n, space=space, eps=eps, generator=torch.Generator().manual_seed(seed),
                                         nets=self._nets(ema))
        return a.cpu(), b.cpu()

    @keeps_random_state
    def project(self, image, *, space: str = "w", steps: int = 1000, seed: int = 0, ema: bool = True,
                log=None) -> dict:
        """GAN inversion (style-based runs): ``image`` uint8 [H, W, C] (converted and resized to
        the run's channels and resolution; ``notes`` says how) -> {"ws" [L, D], "image" and
        "target" float [1, C, H, W], "progress" [K, C, H, W], "psnr", "ssim", "perceptual", ...}.
        Ctrl-C or SIGTERM stops it with ``ProjectionInterrupted`` (a KeyboardInterrupt) whose
        ``result`` is this dict for the steps done so far."""
        self.require("project")
        steps, seed = _check_int("steps", steps, minimum=1), _check_int("seed", seed, minimum=0, maximum=SEED_MAX)
        shape = getattr(image, "shape", None)
        if shape is not None and (len(shape) not in (2, 3) or 0 in tuple(shape)[:2]):
            raise DataError(f"project takes an image [H, W] or [H, W, C] with H, W >= 1, got {list(shape)}")
        nets = self._nets(ema)
        return self.objective.project(image, space=space, steps=steps, seed=seed, nets=nets, log=log)

    def edit(self, attribute, strengths=(-3, -2, -1, 0, 1, 2, 3), *, seed: int | None = None, latent=None, noise=None,
             n_train: int = 2000, classify=None, class_names=None, ema: bool = True, labels=None) -> dict:
        """InterFaceGAN latent editing (style-based runs): the image of ``seed`` (or ``latent``,
        ws [L, D] from ``project``) moved along the W direction of class ``attribute`` (index or
        name of the dataset classifier's classes, or of ``class_names`` with your own
        ``classify(float images) -> logits``); {"images" [K, C, H, W], "probability", ...}.
        ``noise``: the noise maps ``project`` returned with the latent (``result["noise"]``), so
        that strength 0 is its reconstruction. ``seed`` (default 0) picks a generated image and
        ``latent`` gives one: pass one of them. Every edit of a run along an attribute moves along
        the same direction, fitted on ``n_train`` latents of a fixed seed. ``labels``: a conditional
        run's class of the ``seed`` image (index or name; default the first class), as in ``mix``."""
        self.require("edit")
        if seed is not None and latent is not None:  # the seed would pick nothing: it had been ignored
            raise ConfigError("edit: seed picks a generated image and latent gives the image itself; pass one "
                              "of them, not both")
        if labels is not None and latent is not None:
            raise ConfigError("edit: labels picks the class of a generated image and latent gives the image "
                              "itself; pass one of them, not both")
        labels = None if latent is not None else self.sample_labels(1, labels)
        seed = 0 if seed is None else seed
        if isinstance(strengths, (str, bytes)) or not hasattr(strengths, "__len__") or not len(strengths):
            raise ConfigError(f"strengths must be a non-empty list of numbers, got {strengths!r:.40}")
        if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                   and math.isfinite(v) for v in strengths):
            raise ConfigError(f"strengths must be finite numbers, got {list(strengths)!r:.60}")
        seed, n_train = _check_int("seed", seed, minimum=0, maximum=SEED_MAX), _check_int("n_train", n_train, minimum=2)
        return self.objective.edit(attribute=attribute, strengths=list(strengths), seed=seed, latent=latent,
                                   noise=noise, n_train=n_train, classify=classify, class_names=class_names,
                                   nets=self._nets(ema), labels=labels)

    def sample_uint8(self, n: int, **kwargs) -> np.ndarray | list[np.ndarray]:
        """n samples as uint8 [N, H, W, C], the file-boundary format (samples.npz); with
        ``return_levels`` (LAPGAN), one such array per level."""
        if self.point_dim is not None:
            raise ConfigError(f"run {self.run_dir} generates {self.point_dim}-D points, not images; use "
                              f"sample(), which gives float [N, {self.point_dim}]")
        if kwargs.get("return_levels"):
            return [to_uint8_hwc(level) for level in self.sample(n, **kwargs)]
        return to_uint8_hwc(self.sample(n, **kwargs))

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, direction: str | None = None, ema: bool = True,
                  tile: int | None = None) -> torch.Tensor:
        """Image-to-image runs: float [N, C, H, W] in [-1, 1] of any H, W -> the translations
        [N, C', H, W] on the CPU, networks in eval mode. ``direction``: AtoB or BtoA (None: a
        Pix2Pix run's one direction, translate.direction; a CycleGAN run's AtoB). ``tile``:
        translate in overlapping windows of that size (e.g. the training crop) and blend."""
        self.require("translate")
        if direction not in (None, "AtoB", "BtoA"):  # a one-way (pix2pix) run had answered "translates one way"
            raise ConfigError(f"translate: unknown direction={direction!r}; valid: 'AtoB' and 'BtoA' (a "
                              f"pix2pix run translates the way it trained, translate.direction; a "
                              f"CycleGAN run both), or None for the run's default")
        if tile is not None:
            tile = _check_int("tile", tile, minimum=1)
        nets = self._nets(ema)
        x = _float_tensor(images, "translate", "images [N, C, H, W] in [-1, 1]", images=True)
        return self.objective.translate(x, direction=direction, nets=nets, tile=tile).cpu()

    def upscale(self, image: np.ndarray, *, tile: int = 256, overlap: int | None = None,
                interp: float | None = None, ema: bool = True,
                on_tile: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Super-resolution runs: uint8 [h, w, 3] of any size -> uint8 [s*h, s*w, 3]; tiled
        (``tile`` LR pixels, 0: whole image) with ``overlap`` pixels of context; ``interp``
        blends towards the PSNR-stage weights (ESRGAN network interpolation, 1 = this run);
        ``on_tile(done, total)``: progress, after each tile."""
        self.require("upscale")
        if isinstance(image, (str, bytes, os.PathLike)):  # had been "got <U5 []"
            raise ConfigError(f"upscale takes an image's pixels, not a file name ({os.fsdecode(image)!r:.60}): pass "
                              f"PIL.Image.open(path) or a uint8 array [h, w, 3], or use ganforge upscale for files")
        if interp is not None:  # a string had failed deep inside with a TypeError
            if isinstance(interp, bool) or not isinstance(interp, (int, float, np.integer, np.floating)):
                raise ConfigError(f"interp must be a number in [0, 1] (0: the PSNR-stage weights, 1: this "
                                  f"run's), got {interp!r:.40}")
            interp = float(interp)
        shape = getattr(image, "shape", None)  # numpy and torch; a PIL image is checked where it is read
        if shape is not None and (len(shape) not in (2, 3) or 0 in tuple(shape)[:2]):
            raise DataError(f"upscale takes an image [h, w, 3] (or [h, w]) with h, w >= 1, got {list(shape)}")
        tile = _check_int("tile", tile, minimum=0)  # 0: the whole image
        if overlap is not None:
            overlap = _check_int("overlap", overlap, minimum=0)
        return self.objective.upscale(image, tile=tile, overlap=overlap, interp=interp,
                                      nets=self._nets(ema), on_tile=on_tile)

    def vocode(self, mel: torch.Tensor, *, ema: bool = True) -> torch.Tensor:
        """Vocoder runs: log-mel float [B, n_mels, T] (or [n_mels, T]) of the run's front end
        (``analyze``) -> waveform float [B, T * hop] in [-1, 1] on the CPU."""
        self.require("vocode")
        mel = _float_tensor(mel, "vocode", "log-mel [B, n_mels, T]", kind="mel")
        with _short_input("vocode", mel):
            return self.objective.vocode(mel, nets=self._nets(ema)).cpu()

    def convert(self, mel: torch.Tensor, *, direction: str = "AtoB", ema: bool = True) -> torch.Tensor:
        """Voice-conversion runs: log-mel [B, n_mels, T] (or [n_mels, T]) of one voice -> the
        other voice's log-mel [B, n_mels, T] on the CPU (``direction`` AtoB or BtoA)."""
        self.require("convert")
        mel = _float_tensor(mel, "convert", "log-mel [B, n_mels, T]", kind="mel")
        with _short_input("convert", mel):
            return self.objective.convert(mel, direction=direction, nets=self._nets(ema)).cpu()

    def analyze(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio runs: waveform float [L] or [B, L] at the run's audio.rate -> its log-mel
        [B, n_mels, ceil(L / hop)], the front end the run was trained with."""
        if not self.capabilities & AUDIO_CAPABILITIES:
            self.require("vocode")
        wave = _float_tensor(wave, "analyze", "a waveform [L] or [B, L] in [-1, 1]", kind="audio")
        if wave.dim() == 2 and wave.shape[1] <= 8 < wave.shape[0]:  # soundfile.read's [L, channels]
            raise ConfigError(f"analyze takes a mono waveform [L] or a batch [B, L]; got {list(wave.shape)}, which "
                              f"looks like [L, channels]: mix it down first (wave.mean(1))")
        return self.objective.analyze(wave).cpu()

    def translate_eval(self, *, ema: bool = True, limit: int | None = None,
                       **options) -> dict[str, Any]:
        """The family's held-out evaluation of a translation run (PSNR/SSIM of paired runs,
        FID/KID of unpaired ones); ``options``: extractor, inception_weights."""
        self.require("translate")
        if limit is not None:
            limit = _check_int("limit", limit, minimum=1)
        unknown = set(options) - {"extractor", "inception_weights"}
        if unknown:
            raise ConfigError(f"translate_eval takes the options extractor and inception_weights, not "
                              f"{', '.join(sorted(unknown))}")
        return self.objective.translate_eval(self, ema=ema, limit=limit, **options)


def _require(run_dir: Path, objective: str, capabilities: frozenset[str], capability: str) -> None:
    if capability not in CAPABILITIES:  # a typo: had been a bare KeyError
        raise ConfigError(f"unknown capability {capability!r}; valid: {', '.join(sorted(CAPABILITIES))}")
    if capability not in capabilities:
        points = _point_run(run_dir)
        if points is not None:  # check_capability passes the family's, more than a point run offers
            capabilities = capabilities & points[1]
        can = "; ".join(_capability_text(c, points is not None) for c in sorted(capabilities)) or "nothing"
        action = CAPABILITIES[capability].split(" (")[0]
        presets, what = presets_that_can(capability), "a preset"
        if points is not None and capability in family(points[0]).capabilities:
            # the family can, a run of it on points cannot (a walk of points draws no image): the
            # reason is the data, not the objective, and the fix an image preset
            cfg = points[0]
            presets, what = [p for p in presets if not _point_preset(p)], "an image preset"
            why = (f"run {run_dir} draws 2-D points (data.name={cfg.data.name}, model.name={cfg.model.name}), "
                   f"not images, so it cannot {action}")
        else:
            why = f"run {run_dir} (objective={objective}) cannot {action}"
        fix = (f"train {what} that can, e.g. {', '.join(presets[:3])} (ganforge presets lists them); "
               if presets else "")
        raise ConfigError(f"{why}; {fix}this run can: {can}")


def _capability_text(capability: str, points: bool) -> str:
    """What ``capability`` does, said of a run that draws 2-D points when ``points``."""
    text = CAPABILITIES[capability]
    return text.replace("images", "2-D points") if points else text


def _point_run(run_dir) -> tuple[Config, frozenset[str]] | None:
    """(saved config, capabilities) of a run on 2-D points (a toy mixture), its objective built
    as ``load`` builds it; None for an image run or a config that cannot be read."""
    from .data.toy import toy_mixture

    try:
        run_dir = Path(run_dir)
        if is_model_folder(run_dir):
            raw = json.loads((run_dir / MODEL_CONFIG).read_text())["config"]
        else:
            raw = saved_config(run_dir)
        cfg = config_mod.from_dict(raw)
        if toy_mixture(cfg.data.name) is None:
            return None
        fam = family(cfg)
        with losses.for_inference(), torch.random.fork_rng(devices=[]):  # a refusal draws no user's random numbers
            return cfg, frozenset(fam(cfg, fam.info_from_state(cfg, {})).capabilities)
    except (GanforgeError, OSError, ValueError, KeyError, TypeError):
        return None


def _point_preset(name: str) -> bool:
    """Whether preset ``name`` trains on 2-D points (a toy mixture)."""
    from .data.toy import toy_mixture

    try:
        return toy_mixture(config_mod.load_config(name, [])[1].data.name) is not None
    except GanforgeError:
        return False


def presets_that_can(capability: str) -> list[str]:
    """The presets whose family has ``capability``, the CPU-sized Fashion-MNIST ones first:
    what a refusal offers instead (asked of the families, so a new one is offered by itself)."""
    found = []
    for name in config_mod.list_presets():
        try:
            if capability in family(config_mod.load_config(name, [])[1]).capabilities:
                found.append(name)
        except GanforgeError:  # a preset this machine cannot take (memory): not an example
            continue
    return sorted(found, key=lambda n: (not n.endswith("-fashion-mnist"), n))


def check_capability(run_dir: Path | str, capability: str) -> None:
    """Refuse, from the saved config alone (a run's config.yaml, a model folder's config.json;
    no weights read), a command the run's family cannot do. A config that cannot be read is left
    to ``load`` to report."""
    try:
        if is_model_folder(run_dir):  # it has no config.yaml: had been let through unchecked
            raw = json.loads((Path(run_dir) / MODEL_CONFIG).read_text())["config"]
        else:
            raw = saved_config(Path(run_dir))
        cfg = config_mod.from_dict(raw)
    except (GanforgeError, OSError, ValueError, KeyError, TypeError):
        return
    _require(Path(run_dir), cfg.objective, family(cfg).capabilities, capability)


SHORT_FRAMES = 16  # log-mel frames below which a network's own size error is reported as "too short"


@contextlib.contextmanager
def _short_input(method: str, mel: torch.Tensor):
    """Turn the convolutions' shape errors on a log-mel of a handful of frames into one line."""
    try:
        yield
    except (RuntimeError, ValueError):
        if mel.shape[-1] < SHORT_FRAMES:
            raise DataError(f"{method}: the log-mel has {mel.shape[-1]} frames, too few for this network; "
                            f"give a longer input") from None
        raise


# How integer data of each kind is put on the scale a method takes (the hint of its refusal)
_INTEGER_HINTS = {"images": "uint8 images: x.float() / 127.5 - 1", "audio": "int16 audio: x.float() / 32768",
                  "mel": "log-mels are floats: compute them with run.analyze(wave)"}


def _float_tensor(x, method: str, what: str, *, images: bool = False, kind: str | None = None) -> torch.Tensor:
    """``x`` (a float tensor or numpy array) as a float tensor; integer data (uint8 images, int16
    audio) is refused rather than read on the wrong scale, with the hint of its ``kind`` (images,
    audio, mel)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{method} takes {what} as a float tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        kind = kind or ("images" if images else None)
        hint = _INTEGER_HINTS[kind] if kind else f"{_INTEGER_HINTS['images']}; {_INTEGER_HINTS['audio']}"
        raise ConfigError(f"{method} takes {what} as floats, got {x.dtype}; scale it first ({hint})"
                          if kind != "mel" else f"{method} takes {what} as floats, got {x.dtype}; {hint}")
    if not torch.isfinite(x).all():  # it had come back as all-NaN output
        raise ConfigError(f"{method} takes {what} with finite values; this one has NaN or inf")
    if images and x.numel() and float(x.abs().max()) > 1.001:  # 0..255 floats had been translated silently
        raise ConfigError(f"{method} takes {what}; this one reaches {float(x.abs().max()):.4g}: scale "
                          f"0..255 images as x / 127.5 - 1")
    return x.float()


def _check_int(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int; a one-line ConfigError unless it is an integer (a numpy one counts, a
    bool does not) of at least ``minimum`` (and at most ``maximum``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r:.40}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be an integer from {minimum} to {maximum}, got {value!r:.40}")
    return int(value)


SEED_MAX = config_mod.SEED_MAX  # torch generators take a signed 64-bit seed


def _seed_list(name: str, seeds) -> list[int]:
    """``seeds`` as a list of ints in 0..SEED_MAX; a string is not a list of seeds ('12' had been
    seeds 1 and 2), and 1.5 is not seed 1."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__"):
        raise ConfigError(f"{name} must be a list of integers, got {seeds!r:.40}")
    return [_check_int(f"{name}[{i}]", s, minimum=0, maximum=SEED_MAX) for i, s in enumerate(seeds)]


def _check_truncation(value) -> float | None:
    """A truncation as a number (its range is the family's): True or '0.5' had gone through or
    failed deep inside."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"truncation must be a number, got {value!r:.40} ({type(value).__name__})")
    return float(value)


# A count whose samples need at most this much is not checked against the memory left: the
# server draws a few images per request, and any machine that runs torch has this to spare
SMALL_SAMPLE_BYTES = 64 * 2**20


def check_sample_memory(run, n: int, what: str) -> None:
    """Refuse, before drawing, a count whose samples (float32, about twice over while they are
    written) would not fit in the memory left (``what``: how the caller named the count; --n
    100000000 ran for minutes, then failed, and sample(10**9) from Python ran until killed)."""
    from .config import _bytes, available_memory

    c = run.config.data
    need = 2 * 4 * n * (run.point_dim or c.channels * c.resolution ** 2)
    if need <= SMALL_SAMPLE_BYTES:  # reading /proc/meminfo cost a served request about 0.1 ms
        return
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(f"{what} needs about {_bytes(need)} of memory for the samples, more than the "
                          f"{_bytes(free)} available; draw fewer, in several parts with different seeds")


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def load(run_dir: Path | str, *, checkpoint: str = "latest", device: str = "cpu",
         require: str | None = None) -> LoadedRun:
    """A trained run (its directory) or an exported model folder, ready for inference;
    ``require``: a capability checked (from a run's config.yaml) before any weights are read."""
    return LoadedRun(run_dir, checkpoint=checkpoint, device=device, require=require)
