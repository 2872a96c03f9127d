"""The generic training loop. It schedules an objective's phases, owns the optimizers, the EMA
copies, precision and device, reports scalars, draws sample grids, writes checkpoints and calls
evaluation hooks. It never names an architecture or a loss.

Under torchrun (ganforge.training.distributed) each rank trains on its share of the global batch
with the nets an optimizer updates wrapped in DistributedDataParallel; only rank 0 writes files or
shows progress, and it decides (divergence, rollback) for all ranks. Evaluation during training
is shared: every rank samples and extracts features of its part, rank 0 computes and logs the
metrics (ganforge.metrics.hook).
"""
from __future__ import annotations

import contextlib
import errno
import inspect
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from .. import provenance
from ..atomic import FULL_ERRNOS, STORAGE_ERRNOS, atomic_path, is_temporary_name
from ..config import best_metric
from ..errors import (CheckpointError, ConfigError, DistributedError, GanforgeError, StorageError, TrainingDiverged,
                      shell_arg, warn)
from ..grid import make_grid
from ..labels import class_kwargs, grid_columns, grid_labels, labeled_grid
from ..models.layers import accumulating_bn_stats, batch_norms
from ..registry import Registry
from ..rundir import nproc_flag, resume_command
from ..signals import REPEAT_SECONDS
from . import checkpoint as ckpt
from . import display, distributed
from .ema import EMA
from .logger import MetricsLogger
from .monitor import Monitor, format_event, non_finite_advice, resume_rates
from .precision import WARNING, autocast_context, resolve_precision
from .probe import DiversityProbe

Hook = Callable[["Trainer", int], dict[str, float]]


HOOK_SIGNATURE = "hook(trainer, step) -> {name: number}"


def _hook_name(hook) -> str:
    return getattr(hook, "__name__", None) or type(hook).__name__


def check_hook(hook) -> None:
    """A hook the caller passed is a callable taking (trainer, step), checked before training:
    one that was not had trained to the first evaluation, then failed there with a bare
    TypeError. A callable whose signature cannot be read (some builtins) passes."""
    if not callable(hook):
        shown = repr(hook) if len(repr(hook)) <= 40 else type(hook).__name__
        raise ConfigError(f"hooks: {shown} is not callable; a hook is a function {HOOK_SIGNATURE}")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, 0)
    except TypeError:
        raise ConfigError(f"hook {_hook_name(hook)}{signature} cannot be called with (trainer, step); "
                          f"a hook is a function {HOOK_SIGNATURE}") from None


def hook_values(hook, values) -> dict[str, float | None]:
    """A hook's return value as JSON-able numbers: None logs nothing; 0-d tensors and numpy
    scalars become floats (they had failed at the write, "Object of type Tensor is not JSON
    serializable"); anything else is refused in one line naming the hook and the key."""
    if values is None:
        return {}
    name = _hook_name(hook)
    if not isinstance(values, Mapping):
        raise ConfigError(f"hook {name} returned {type(values).__name__}; a hook returns a dict "
                          f"{{name: number}} (or None to log nothing)")
    out: dict[str, float | None] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
            value = value.item()
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            value = value.item()
        if not isinstance(key, str) or not (value is None or isinstance(value, (int, float))):
            shown = (f"tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                     else type(value).__name__)
            raise ConfigError(f"hook {name} returned {key!r}: {shown}; a hook's values are numbers "
                              f"(float, int, a 0-d tensor or numpy scalar) under str names")
        out[key] = value
    return out


def set_tf32(enabled: bool) -> Callable[[], None]:
    """TF32 matmuls and convolutions on (``enabled``; train.tf32 on CUDA) for training; returns
    the function that puts the caller's values back. They are process-wide switches: a notebook's
    float32 work after fit() had kept running at TF32 precision."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    if enabled:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True

    def restore() -> None:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]
    return restore


OPTIMIZERS: Registry = Registry(
    "optimizer", check=callable,
    expects="a function (params, *, lr, betas, device) -> torch.optim.Optimizer "
            "(CONTRIBUTING.md, 'Other extension points')")


@OPTIMIZERS.register("adam")
def _adam(params, *, lr, betas, device):
    # The fused kernel updates all parameters in one op (CPU and CUDA).
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=device.type in ("cpu", "cuda"))


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, *, lr, betas, device):  # the original WGAN recipe (Arjovsky et al. 2017)
    return torch.optim.RMSprop(params, lr=lr)


def _ignore_sigterm() -> None:
    """SIGTERM ignored from now on (main thread only): for a rank that is about to exit anyway."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _captioned(grid: torch.Tensor, caption: str):
    """A PIL image of ``grid`` (float [3, H, W] in [0, 1]) with one line of text under it."""
    from PIL import Image, ImageDraw

    pixels = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    top = Image.fromarray(pixels)
    out = Image.new("RGB", (max(top.width, 6 * len(caption) + 8), top.height + 16), "white")
    out.paste(top, (0, 0))
    ImageDraw.Draw(out).text((4, top.height + 3), caption, fill="black")
    return out


@dataclass
class FitResult:
    step: int
    run_dir: Path | None
    checkpoint: Path | None
    interrupted: str | None = None  # name of the signal that stopped training early
    start: int = 0  # the step fit() started from (a resumed run's checkpoint step)
    # stopped before train.steps by eval.patience or a hook's trainer.request_stop (no signal):
    # the end record's fields ("reason", and for eval.patience "metric", "best", "best_step")
    stopped: dict | None = None


class Trainer:
    def __init__(self, cfg, objective, batches, *, run_dir: Path | None,
                 device: torch.device, hooks: Iterable[Hook] = (), progress: bool = True,
                 given_data: bool = False, given_name: str | None = None):
        self.cfg, self.objective, self.batches = cfg, objective, batches
        # trained on a dataset passed from Python (api.train's dataset=): a resume must pass it again;
        # given_name: that dataset's name
        self.given_data = given_data
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = device
        self.world = distributed.current_world()
        self.rank, self.is_main = self.world.rank, self.world.is_main
        self.hooks = list(hooks)
        self.progress = progress and self.is_main
        t = cfg.train
        # The objective checks, once, what a family defined outside ganforge declares (a phase
        # naming an undeclared optimizer had been KeyError: 'disc' at the first step) and the first
        # loss result of each phase (_loss_checked: the phases done; ganforge's own pass at once)
        check = getattr(objective, "check_contract", None)
        if check is not None:
            check(training=True)
        self._loss_checked: set[str] | None = set() if hasattr(objective, "check_loss_result") else None
        # d_real / d_fake as the family logs them: raw scores where it says they are not
        # probabilities (a critic's; LAPGAN's at any loss), which the progress line then says
        says = getattr(objective, "logs_d_probabilities", None)
        self._d_raw = callable(says) and says(cfg.to_dict()) is False

        distributed.local_batch(t.batch_size, self.world, cfg.model.pac)  # one line if it does not divide
        for name, net in objective.nets.items():
            net.to(device).train()
            if t.channels_last:
                net.to(memory_format=torch.channels_last)
                # a convolution of one input channel: both layouts are the same bytes, and
                # backward makes a contiguous gradient, which DDP's bucket (laid out as the
                # weight) must match; a transposed one's [in, 1, k, k] gets a channels_last one
                for m in net.modules():
                    for p in m.parameters(recurse=False) if isinstance(m, torch.nn.Conv2d) else ():
                        if p.dim() == 4 and p.shape[1] == 1:
                            p.data = p.data.clone(memory_format=torch.contiguous_format)
            if t.sync_bn and self.world.enabled:
                if device.type != "cuda":
                    raise ConfigError("train.sync_bn needs CUDA GPUs (SyncBatchNorm has no CPU "
                                      "kernel); drop it, or train on GPUs")
                objective.nets[name] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.precision, note = resolve_precision(t.precision, device)
        if note and self.is_main:
            if note.startswith(WARNING):  # a GanforgeWarning, which a caller can filter; the CLI prints it so
                warn(note[len(WARNING):])
            else:
                print(note, flush=True)
        self.autocast = autocast_context(device, self.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        # The objective declares its optimizers (nets, learning rates, betas, per-prefix
        # multipliers); the learning rate of each group is kept to scale it later (rollbacks,
        # schedules) without drifting.
        make_optimizer = OPTIMIZERS.get(cfg.optim.name)
        self.optimizers, self._base_lrs = {}, {}
        for name, spec in objective.optimizers.items():
            groups = spec.param_groups(objective.nets)
            betas = tuple(spec.betas or cfg.optim.betas)
            self.optimizers[name] = make_optimizer(groups, lr=spec.lr, betas=betas, device=device)
            self._base_lrs[name] = [g["lr"] for g in groups]
        self.ema = {n: EMA(objective.nets[n]) for n in objective.ema} if t.ema_decay > 0 else {}
        self.noise_rng = torch.Generator(device=device).manual_seed(t.seed + 1)
        objective.bind(device=device, rng=self.noise_rng)
        # a plugin family's sample() shape, once, before compiling (its eval-mode graph is not
        # compiled for it); random states restored, so training draws the same numbers
        check = getattr(objective, "check_sample", None)
        if check is not None:
            check(cfg)
        if t.compile:
            for net in objective.nets.values():
                net.compile()  # in place: state_dict keys stay unchanged
        self.dp = None
        if self.world.enabled:
            owned = {n for spec in objective.optimizers.values() for n in spec.nets}
            self.dp = distributed.DataParallel(objective, owned, device)  # rank 0's weights everywhere
            for name, net in objective.nets.items():
                if name not in owned:
                    distributed.broadcast_module(net, self.world)
            for e in self.ema.values():
                distributed.broadcast_module(e.net, self.world)
            self.batches = distributed.shard_batches(batches, self.world)
        self.step = 0
        self._standing_step: int | None = None  # the step whose EMA BatchNorm statistics are current
        self.elapsed = 0.0  # training seconds, summed over resumes
        self.rollbacks = 0
        self.lr_scale = 1.0  # learning-rate multiplier after divergence rollbacks
        # the last step the monitor judged free of divergence (or the start): a rollback goes to a
        # checkpoint at or before it, and pruning keeps one; a checkpoint saved between two log
        # records has not been judged, and one had already been diverging when it was chosen
        self.healthy_step = 0
        self.best_score: float | None = None  # of eval.best, lower is better
        # eval.patience: evaluations of eval.best since its best, and that best's value and step
        self.evals_since_best, self.best_value, self.best_step = 0, None, None
        self._stop_reason: dict | None = None  # set by eval.patience or request_stop: ends fit
        self._best_key_checked = False  # the first evaluation with values says when eval.best is not one
        self._bar = None
        self.monitor = Monitor.from_config(cfg) if cfg.monitor.enabled else None
        if self.monitor is not None:
            points = getattr(objective, "point_dim", None) is not None  # no image augmentation for points
            self.monitor.unsupported = tuple(objective.unsupported_advice) + (("augment.",) if points else ())
            self.monitor.g_adversarial = objective.g_adversarial_key
            self.monitor.d_raw = self._d_raw
        # images passed from Python under data.name's own name (a subset of fashion-mnist) are that
        # dataset, which its classifier probes; under another name they are not
        other_data = given_data and given_name != cfg.data.name
        self.probe = (DiversityProbe(cfg, device, warn=self.warn, given_data=other_data)
                      if self.monitor is not None else None)
        if self.is_main and self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MetricsLogger(self.run_dir, enabled=self.is_main, warn=self.warn)
        self._stop_signal: str | None = None
        self.last_checkpoint: Path | None = None
        self._saved_step: int | None = None  # the step whose state last_checkpoint holds
        self._apply_lr_scale()  # the objective's factor for where it starts (a growing stage)

    # ------------------------------------------------------------------ state

    def weights(self) -> dict[str, torch.Tensor]:
        flat = ckpt.flatten_weights(self.objective.nets)
        flat.update(ckpt.flatten_weights({n: e.net for n, e in self.ema.items()}, prefix="ema."))
        return flat

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "noise": self.noise_rng.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
            # a checkpoint saved while the records were unhealthy must not become a rollback
            # target on resume (a resumed broken checkpoint had been taken as good)
            "healthy_step": self.healthy_step,
            "best_score": self.best_score,
            "best_measure": self._best_measure(),
            "evals_since_best": self.evals_since_best,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "batches": self.batches.state_dict(),
            "objective": self.objective.extra_state(),
            "monitor": self.monitor.state_dict() if self.monitor is not None else {},
            "config": self.cfg.to_dict(),
            "metrics_bytes": self.logger.size(),  # what metrics.jsonl held: a resume cuts it back to this
            "world_size": self.world.size,  # processes it trained on (a resume on another count is not bit-exact)
            "environment": self.environment(),  # what else a bit-exact resume or rerun needs the same
        }

    def environment(self) -> dict[str, Any]:
        """What the numbers of this training depend on beyond its config and seed: torch's version,
        the device, the resolved precision (``train.precision=auto`` resolves per machine) and, on a
        CPU, torch's thread count (another count sums in another order). Saved in every checkpoint,
        compared on resume (``_note_environment``) and shown by ``LoadedRun.environment``."""
        from ..version import __version__

        # str(): torch.__version__ is a TorchVersion, which a weights_only load refuses
        env: dict[str, Any] = {"ganforge": __version__, "torch": str(torch.__version__),
                               "device": self.device.type, "precision": self.precision}
        if self.device.type == "cpu":
            env["threads"] = torch.get_num_threads()
        elif self.device.type == "cuda":
            env["device_name"] = torch.cuda.get_device_name(self.device)
        return env

    def _note_environment(self, saved: dict[str, Any] | None, source: Path) -> None:
        """One note when a resume runs where the checkpoint's training did not: another torch
        version, device, resolved precision or CPU thread count. Training continues (each is a
        legitimate choice), but the result is not bit-exact with an uninterrupted run."""
        if not isinstance(saved, dict):  # a checkpoint of a version before 2026-12-07 records none
            return
        now = self.environment()
        what = {"torch": "torch {}", "device": "device {}", "device_name": "GPU {}",
                "precision": "precision {}", "threads": "torch threads {}"}
        keys = [k for k in what if k in saved and k in now and saved[k] != now[k]]
        if not keys:
            return
        fix = f"; OMP_NUM_THREADS={saved['threads']} matches it" if keys == ["threads"] else ""
        self.warn(f"ganforge: note: {source.name} was trained with "
                  f"{', '.join(what[k].format(saved[k]) for k in keys)}, this resume has "
                  f"{', '.join(what[k].format(now[k]) for k in keys)}: training continues, but not "
                  f"bit-exact with an uninterrupted run{fix}")

    def load(self, weights: dict[str, torch.Tensor], state: dict[str, Any], *,
             source: Path | None = None) -> None:
        """Restore nets, EMA, optimizers, RNG streams, data order and counters. ``source`` names
        the checkpoint they came from: the run's result names it until a newer one is written
        (a resumed run with no step left to train still reports what it resumed from)."""
        if source is not None:
            self.last_checkpoint = source
            self._saved_step = int(state["step"])  # what it holds is what is loaded
            self._note_stretched_schedule(state)
        else:
            self._saved_step = None  # a rollback: its scaled learning rates are not saved yet
        # TensorBoard drops what it has of the steps after it: a resume or a rollback redoes them
        # (a resume cuts metrics.jsonl back to the checkpoint for the same reason; a rollback's
        # steps had been drawn again over the old ones); the step itself was logged before its
        # checkpoint was written
        self.logger.purge_from(int(state["step"]) + 1)
        nets = ckpt.unflatten_weights({k: v for k, v in weights.items() if not k.startswith("ema.")})
        ema = ckpt.unflatten_weights(weights, prefix="ema.")
        try:
            for name, net in self.objective.nets.items():
                net.load_state_dict(nets[name])
            for name, e in self.ema.items():
                e.net.load_state_dict(ema[name] if name in ema else nets[name])
        except (KeyError, RuntimeError) as exc:  # had been a traceback of load_state_dict's
            raise CheckpointError(
                f"checkpoint {source or 'to roll back to'} does not match the networks this config builds "
                f"({ckpt.mismatch(exc)}): the code of model.name={self.cfg.model.name} (a plugin's, or "
                f"another ganforge version's) or a setting that shapes the networks changed since it was "
                f"saved; resume with the code and settings it was trained with") from None
        self._standing_step = None
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.scaler.load_state_dict(state["scaler"])
        # ckpt.load maps the state onto the run's device; generator states are CPU byte tensors
        # whatever the generator's device (set_state rejects a CUDA tensor)
        rng_state = {k: ([t.cpu() for t in v] if isinstance(v, (list, tuple)) else v.cpu())
                     for k, v in state["rng"].items()}
        torch.set_rng_state(rng_state["torch"])
        noise = rng_state["noise"]
        if noise.numel() == self.noise_rng.get_state().numel():
            self.noise_rng.set_state(noise)
        else:  # saved on another kind of device (a CUDA generator's state is not a CPU one's)
            self.noise_rng.manual_seed(self.cfg.train.seed + 1 + int(state["step"]))
            self.warn(f"ganforge: the checkpoint's noise generator was saved on another kind of "
                       f"device; resuming on {self.noise_rng.device.type} with a fresh noise "
                       f"stream (training continues; it is not bit-exact with an uninterrupted run)")
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng_state["cuda"])
        self.batches.load_state_dict(state["batches"])
        self.objective.load_extra_state(state.get("objective", {}))
        if self.monitor is not None and state.get("monitor"):
            self.monitor.load_state_dict(state["monitor"])
        self.step = int(state["step"])
        # a checkpoint of an older version has none: taken as judged healthy, as before
        self.healthy_step = min(int(state.get("healthy_step", self.step)), self.step)
        self.elapsed = float(state.get("elapsed", 0.0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        if source is not None:
            self._resume_rollback_scale(state)
        self.best_score = state.get("best_score")
        self.evals_since_best = int(state.get("evals_since_best", 0))
        self.best_value, self.best_step = state.get("best_value"), state.get("best_step")
        measure = state.get("best_measure")  # None: a checkpoint from before it was recorded
        if self.best_score is not None and measure is not None and list(measure) != self._best_measure():
            # another eval.best, eval.n or eval.metrics: the old best score does not compare (the
            # 'best' pointer had stayed on a density-best checkpoint while FID was the key)
            self.best_score = None
            self.evals_since_best, self.best_value, self.best_step = 0, None, None
            self.warn(f"ganforge: eval settings changed on resume ({measure[0]} at n={measure[1]} -> "
                       f"{self.cfg.eval.best} at n={self.cfg.eval.n}): the next evaluation starts a new "
                       f"'best' checkpoint")
        self._apply_lr_scale()
        if source is not None:
            self._note_environment(state.get("environment"), source)
        size = state.get("world_size")
        if size is not None and int(size) != self.world.size:
            self.warn(f"ganforge: the checkpoint was written by a run on {size} process"
                       f"{'es' if int(size) > 1 else ''}, this one has {self.world.size}: training "
                       f"continues with the same global batch and data order, but not bit-exact "
                       f"with a run that kept {size}")

    def _note_stretched_schedule(self, state: dict[str, Any]) -> None:
        """One note when a resume changes train.steps of a run whose learning rates follow a
        schedule over train.steps (optim.lr_decay): the schedule is stretched to the new length
        from here on, so the result differs from a run trained that long from the start."""
        saved = (state.get("config") or {}).get("train", {}).get("steps")
        if self.cfg.optim.lr_decay == "none" or saved is None or int(saved) == self.cfg.train.steps:
            return
        self.warn(f"ganforge: note: optim.lr_decay={self.cfg.optim.lr_decay} runs over train.steps, "
                  f"which this resume changes ({saved} -> {self.cfg.train.steps}): the learning-rate "
                  f"schedule is {'stretched' if self.cfg.train.steps > int(saved) else 'compressed'} to the "
                  f"new length from step {int(state['step'])} on, so the "
                  f"result differs from a run trained {self.cfg.train.steps} steps from the start")

    def _resume_rollback_scale(self, state: dict[str, Any]) -> None:
        """A resume that sets optim.g_lr or optim.d_lr chooses the rates: the rollbacks' scale and
        count start over (a rate of 0.0002 set on resume after a rollback had run at 0.0001). A
        resume that keeps both rates keeps the scale, and says so in one line."""
        if self.lr_scale == 1.0 and not self.rollbacks:
            return
        saved = (state.get("config") or {}).get("optim", {})
        rates = {key: getattr(self.cfg.optim, key) for key in ("g_lr", "d_lr")}
        changed = [key for key, lr in rates.items() if key in saved and float(saved[key]) != float(lr)]
        if changed:
            kept = [f"optim.{key} runs at its {lr:g} again (not {lr * self.lr_scale:g})"
                    for key, lr in rates.items() if key not in changed and self.lr_scale != 1.0]
            if kept:
                self.warn(f"ganforge: note: the new learning rate ends the rollbacks' {self.lr_scale:g}x "
                          f"scale: {kept[0]}; set it too on this resume to choose it")
            self.lr_scale, self.rollbacks = 1.0, 0
        elif self.lr_scale != 1.0:
            self.warn(f"ganforge: note: the learning rates run at {self.lr_scale:g}x optim.g_lr and "
                      f"optim.d_lr, the scale of the run's {self.rollbacks} rollback"
                      f"{'s' if self.rollbacks != 1 else ''}; set them on this resume to choose them anew")

    def step_saved(self) -> bool:
        """Whether the checkpoint of this very step is already written (and holds this state)."""
        return self._saved_step == self.step and ckpt.is_saved(self.last_checkpoint, self.step)

    def save_checkpoint(self) -> Path | None:
        self.ema_standing_stats()
        if not self.is_main or self.run_dir is None:
            return None
        self._check_run_dir()
        if self.step_saved():  # e.g. a signal right after the periodic save: nothing new to write
            return self.last_checkpoint
        good = ckpt.newest_at_most(self.run_dir, self.healthy_step)
        self.last_checkpoint = ckpt.save(self.run_dir / "checkpoints", self.step, self.weights(),
                                         self.state(), keep=self.cfg.train.keep_checkpoints,
                                         protect=(good.name,) if good is not None else ())
        self._saved_step = self.step
        return self.last_checkpoint

    # ------------------------------------------------------------------ loop

    @staticmethod
    def _eager_if(on: bool):
        """Compiled nets run eagerly inside (torch.compile has no double backward); a no-op when
        ``on`` is false or this torch has no ``torch.compiler.set_stance`` (before 2.6)."""
        stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
        return stance("force_eager") if on and stance is not None else contextlib.nullcontext()

    def _check_loss(self, phase, out) -> None:
        """The first loss result of each phase, checked by the objective (a plugin family's dict
        without "loss", or a loss of shape [4], is one line naming it, not a backward() traceback)."""
        if self._loss_checked is not None and phase.name not in self._loss_checked:
            self.objective.check_loss_result(phase.name, out)
            self._loss_checked.add(phase.name)

    def _phase_backward(self, batches, phase, owned) -> None:
        """Forward and backward of each micro-batch of ``phase``, gradients summed."""
        for i, batch in enumerate(batches):
            if self.dp is None:
                with self.autocast():
                    out = self.objective.loss(phase.name, batch)
                self._check_loss(phase, out)
                self.scaler.scale(out["loss"] / len(batches)).backward()
            else:  # gradients all-reduced on the last micro-batch only
                sync = i == len(batches) - 1
                with self.dp.phase(owned, sync=sync):
                    with self.autocast():
                        out = self.objective.loss(phase.name, batch)
                    self._check_loss(phase, out)
                    self.dp.backward(self.scaler.scale(out["loss"] / len(batches)), owned, sync=sync)
            self.logger.accumulate(out)

    def _run_phase(self, phase, batches):
        """One optimizer step of ``phase`` over its micro-batches (``train.accumulate`` of them):
        the gradients of each micro-batch's loss / N are summed before the step, so N batches of
        B update like one batch of N*B for networks without batch statistics (BatchNorm still
        normalizes each micro-batch on its own)."""
        nets = self.objective.nets
        owned = set(self.objective.optimizers[phase.optimizer].nets)
        for name, net in nets.items():  # gradients only for the nets this phase updates
            net.requires_grad_(name in owned)
        opt = self.optimizers[phase.optimizer]
        opt.zero_grad(set_to_none=True)
        with self._eager_if(self.cfg.train.compile and self.objective.double_backward(phase.name)):
            self._phase_backward(batches, phase, owned)
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if grads and self.monitor is not None:  # stays on the device: no host sync per step
            self.scaler.unscale_(opt)
            self.logger.accumulate({f"{phase.name.lower()}_grad_norm": torch.linalg.vector_norm(
                torch.stack(torch._foreach_norm(grads)).float())})
        self.scaler.step(opt)
        self.scaler.update()
        self.objective.after_step(phase.name)
        for name in owned & set(self.ema):
            distributed.average_buffers(nets[name], self.world)  # identical EMA on every rank
            self.ema[name].update(nets[name], self.ema_decay())

    def ema_decay(self) -> float:
        """The configured decay, ramped up from 0 so early (bad) weights wash out quickly
        (the num_updates schedule of TensorFlow's ExponentialMovingAverage)."""
        t = self.cfg.train
        if self.step < t.ema_start:
            return 0.0
        own = self.objective.ema_beta(self.step - t.ema_start)
        if own is not None:
            return own
        n = self.step - t.ema_start
        return min(t.ema_decay, (1 + n) / (10 + n))

    def train_step(self) -> None:
        """One iteration: every phase due at this step, each repeated as it asks."""
        if self.cfg.optim.lr_decay != "none":
            self._apply_lr_scale()
        if self.world.enabled:  # this rank's noise at this step: no stream state to carry
            seed = distributed.step_seed(self.cfg.train.seed, self.rank, self.step)
            self.noise_rng.manual_seed(seed)
            torch.manual_seed(seed)
        batch = None
        for phase in self.objective.phases:
            if self.step % phase.every:
                continue
            for _ in range(phase.repeat):
                if phase.fresh_batch or batch is None:  # train.accumulate micro-batches per step
                    batch = [next(self.batches) for _ in range(self.cfg.train.accumulate)]
                self._run_phase(phase, batch)
        self.step += 1
        for event in self.objective.pop_events():
            self._known_event(event)

    def _known_event(self, event: dict[str, Any]) -> None:
        """An event the objective reports (a stage boundary of progressive growing): written to
        metrics.jsonl, told to the monitor (a fade-in's loss jump is then expected), and its
        learning rates applied."""
        event = {**event, "step": self.step}
        self.logger.write(event)
        if self.monitor is not None:
            self.monitor.note(event)
        self._apply_lr_scale()
        self.warn(f"ganforge: step {self.step}: {event.get('message', event['event'])}")

    def fit(self) -> FitResult:
        t = self.cfg.train
        start, bar = self.step, None
        streams = sys.stdout, sys.stderr
        if threading.current_thread() is threading.main_thread():  # as the signal handlers
            sys.stdout, sys.stderr = (display.ReaderGone(stream, self._reader_gone) for stream in streams)
        if self.progress and not display.is_terminal(sys.stderr):
            bar = display.LineProgress(t.steps, self.step)
        elif self.progress:
            from tqdm import tqdm

            bar = tqdm(total=t.steps, initial=self.step, unit="step", dynamic_ncols=True,
                       desc=self.run_dir.name if self.run_dir else "train")
        self._bar = bar
        restore = self._install_signal_handlers()
        restore_tf32 = set_tf32(t.tf32 and self.device.type == "cuda")
        try:
            if self.run_dir is not None and not any((self.run_dir / "checkpoints").glob("step_*")):
                self.save_checkpoint()  # something to roll back to, and to load, from step 0
            distributed.barrier(self.world)  # no rank reads the run directory before it exists
            self._window_start, self._window_steps, self._window_saving = time.perf_counter(), 0, 0.0
            while self.step < t.steps and self._stop_reason is None and not self._stopping():
                self.train_step()
                self._window_steps += 1
                if self.step % t.log_every == 0 or self.step == t.steps:
                    if not self._log_interval():
                        continue  # rolled back: the step counter moved
                if bar is not None:  # after the step's record: a plain line shows its numbers
                    bar.update(self.step - bar.n)
                saving = time.perf_counter()  # evaluation and saves: not training
                # the grid first: drawing it can move a live G's BatchNorm statistics (no EMA), and
                # a 'best' checkpoint saved by the evaluation must hold what was scored, which the
                # step's regular checkpoint then writes again unchanged
                if self.step % t.sample_every == 0 or self.step == t.steps:
                    self.save_samples()
                if self.cfg.eval.every and self.step % self.cfg.eval.every == 0:
                    self._run_hooks(self.step)
                    # rank 0 decides (eval.patience, a hook's request_stop): every rank stops there
                    self._stop_reason = distributed.broadcast(self._stop_reason, self.world)
                if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                    distributed.barrier(self.world)
                    if self._weights_finite():
                        self.save_checkpoint()
                    else:
                        self._diverged(self._divergence_event({"nonfinite_weights": True}))
                self._window_saving += time.perf_counter() - saving  # kept out of img/s
            if self._stop_signal is not None and self._window_steps and not self.step_saved():
                # the interrupted interval's statistics and time, not dropped; not judged: a stop
                # must not roll back or end in a divergence error (the resumed run judges on). At
                # a step already saved, a record past its checkpoint would be dropped by the resume
                self._log_interval(judge=False)
            if self._stop_signal is not None and self.step < t.steps:
                # before the save, so that the checkpoint's metrics_bytes holds it: a resume
                # keeps it (the report reads only an end record that nothing follows)
                saving = self._weights_finite() and self.run_dir is not None
                self._log_end("interrupted", signal=self._stop_signal,
                              **({"checkpoint": f"step_{self.step:07d}"} if saving else {}))
            if self._stop_signal is not None and self._weights_finite():
                self.save_checkpoint()  # none when this step's checkpoint is already written
                if self.step < t.steps and self.step % t.sample_every:
                    # what the stopped run draws (a run stopped before its first grid had none to
                    # show); after the checkpoint, which drawing cannot change
                    self.save_samples()
            stopped = self._stop_signal is None and self._stop_reason is not None and self.step < t.steps
            if stopped:  # eval.patience or a hook: this step's training is kept, and the run can go on
                saving = self._weights_finite() and self.run_dir is not None
                self._log_end("stopped", **self._stop_reason,
                              **({"checkpoint": f"step_{self.step:07d}"} if saving else {}))
                if self._weights_finite():
                    self.save_checkpoint()  # none when this step's checkpoint is already written
                    if self.step % t.sample_every:
                        self.save_samples()
            elif self._stop_signal is None or self.step >= t.steps:
                self._log_end("done")
            self.logger.close()  # TensorBoard's last events: a full disk here is the run's error too
        except (OSError, StorageError) as exc:  # metrics.jsonl, a sample grid, TensorBoard, a pointer
            if isinstance(exc, OSError) and exc.errno not in STORAGE_ERRNOS and not self._run_file_gone(exc):
                self._tell_peers(exc)
                raise
            self._tell_peers(exc)
            raise self._storage_error(exc) from None
        except Exception as exc:
            try:
                self._tell_peers(exc)
            except DistributedError:
                # torchrun's agent SIGTERMs the surviving ranks as soon as it sees one die: keep
                # that from killing this process before the CLI prints the one-line reason. The
                # ignore outlives fit (the process is on its way out; torchrun SIGKILLs it after
                # its grace period should a script catch the error and carry on)
                restore = _ignore_sigterm
                raise
            raise
        finally:
            restore()
            restore_tf32()
            if bar is not None:
                bar.close()
            self.logger.close(quiet=True)  # never in place of the error on its way out
            sys.stdout, sys.stderr = streams
        return FitResult(self.step, self.run_dir, self.last_checkpoint, self._stop_signal, start,
                         self._stop_reason if self._stop_signal is None and self.step < t.steps else None)

    def _storage_error(self, exc: OSError | StorageError) -> StorageError:
        """The one line for a file of the run that could not be written (a full or read-only
        disk): what failed, the checkpoint that is intact and how to continue. A checkpoint's
        own StorageError already says all that and is kept; another file's (atomic_path's
        "choose another path") is rewritten, a path being no choice here."""
        if isinstance(exc, StorageError) and "train --resume" in str(exc):
            return exc
        if isinstance(exc, OSError) and self._run_file_gone(exc):
            return self._removed_error(exc)
        cause = exc if isinstance(exc, OSError) else exc.__context__  # atomic_path's OSError
        code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(exc, OSError):
            where = exc.filename or self.run_dir
            what = f"cannot write {where} at step {self.step} ({exc.strerror or exc})"
        else:  # "cannot write PATH: REASON; fix ..." -> its first part
            what = f"{str(exc).split(';')[0]} (at step {self.step})"
        full = code in FULL_ERRNOS or (code is None and "No space left" in str(exc))
        fix = "free some space" if full else "make it writable"
        kept = f"the last checkpoint {self.last_checkpoint.name} is intact; " if self.last_checkpoint else ""
        return StorageError(f"{what}; {kept}{fix} and continue with: ganforge train --resume "
                            f"--out {shell_arg(self.run_dir)}")

    def _check_run_dir(self) -> None:
        """ENOENT naming the run folder where it was removed while training (the Trainer made it):
        a checkpoint or a grid written now makes its parents again, and the run had trained on
        into a new folder holding only that."""
        if not self.run_dir.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.run_dir))

    def _run_file_gone(self, exc: OSError) -> bool:
        """Whether ``exc`` is a file of the run folder (or the folder) not found: its folder was
        removed while training. Not any ENOENT: another file's (a dataset's) is a traceback."""
        if exc.errno != errno.ENOENT or self.run_dir is None or not exc.filename:
            return False
        run, path = os.path.abspath(self.run_dir), os.path.abspath(os.fsdecode(exc.filename))
        return path == run or path.startswith(run + os.sep)

    def _removed_error(self, exc: OSError) -> StorageError:
        """The one line for a run folder (or a folder of it) removed while training: a resume
        needs a checkpoint, which went with the run folder, and may be left where only a folder
        of it went."""
        run = shell_arg(self.run_dir)
        if self.run_dir.is_dir():
            path = Path(os.fsdecode(exc.filename))
            path = path.with_name(is_temporary_name(path.name) or path.name)  # atomic_path's: its file
            what = f"cannot write {path} at step {self.step}: its folder was removed while training"
            name = self._checkpoint_on_disk()
        else:
            what, name = f"the run folder {self.run_dir} was removed while training (at step {self.step})", None
        if name is not None:
            return StorageError(f"{what}; the last checkpoint {name} is intact; continue with: "
                                f"ganforge train --resume --out {run}{nproc_flag()}")
        return StorageError(f"{what}; no checkpoint is left to resume from: start the training again "
                            f"(ganforge train ... --out {run})")

    def _reader_gone(self) -> None:
        """The reader of our output went away: stop at the end of this step, as on SIGPIPE's
        default action, but with a checkpoint (``FitResult.interrupted`` "SIGPIPE")."""
        if self._stop_signal is None:
            self._stop_signal = "SIGPIPE"

    def _stopping(self) -> bool:
        """Whether a signal asks to stop; under torchrun, a signal on any rank stops every rank
        at the same step (one host-side flag all-reduced per step)."""
        if not self.world.enabled:
            return self._stop_signal is not None
        codes = {None: 0, "SIGINT": 2, "SIGTERM": 15}
        code = distributed.max_over_ranks(codes.get(self._stop_signal, 15), self.world)
        if code and self._stop_signal is None:
            self._stop_signal = signal.Signals(code).name
        return code > 0

    def _tell_peers(self, exc: BaseException) -> None:
        """Under torchrun: record why this rank stops, or, when a collective failed because
        another rank stopped, raise one line naming that rank (or KeyboardInterrupt, when that
        rank stopped at once on a second Ctrl-C: this one stops as it did)."""
        if not self.world.enabled or isinstance(exc, GanforgeError):
            if self.world.enabled:
                distributed.record_failure(self.world, str(exc))
            return
        if distributed.is_peer_failure(exc, self.world):
            if distributed.stopped_at_once(self.world):  # a second Ctrl-C, which this rank missed
                raise KeyboardInterrupt from None
            ckpt_name = self.last_checkpoint.name if self.last_checkpoint else self._checkpoint_on_disk()
            kept = f"the last checkpoint {ckpt_name} is intact; " if ckpt_name else ""
            hint = f"{kept}continue with: ganforge train --resume --out {shell_arg(self.run_dir)}{nproc_flag()}"
            raise distributed.peer_failure(self.world, exc, self.step, hint) from None
        distributed.record_failure(self.world, f"{type(exc).__name__}: {exc}")

    def _checkpoint_on_disk(self) -> str | None:
        """The newest complete checkpoint in the run directory: what a rank that saves none (all
        but rank 0) names when rank 0 is gone; None where it cannot see one."""
        if self.run_dir is None:
            return None
        try:
            return ckpt.find(self.run_dir).name
        except (GanforgeError, OSError):
            return None

    def _log_interval(self, *, judge: bool = True) -> bool:
        """Write the interval's means; False when a divergence made the loop roll back.
        ``judge``: hand the record to the monitor (and act on its events)."""
        dt = time.perf_counter() - self._window_start
        self.elapsed += dt
        t = self.cfg.train
        images_per_step = t.batch_size * t.accumulate * sum(p.repeat for p in self.objective.phases
                                                            if p.fresh_batch)
        means = distributed.all_reduce_mean(self.logger.flush_means(), self.world)
        record = {"step": self.step, **means, **(self._probe() if self.is_main else {}),
                  "img_per_s": images_per_step * self._window_steps / max(dt - self._window_saving, 1e-9),
                  "time": round(self.elapsed, 3)}
        self.logger.write(record)
        if self._bar is not None:
            self._bar.set_postfix_str(self._bar_postfix(record), refresh=True)
        events = []
        if judge and self.monitor is not None:
            if self.is_main:
                events = self.monitor.update(record)
        elif judge:  # without the monitor, still catch non-finite values
            bad = sorted(k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))
            events = [self._divergence_event({"nonfinite": bad})] if bad else []
        events = distributed.broadcast(events, self.world)  # rank 0 decides for every rank
        diverged = None
        for event in events:
            if event["event"] == "divergence":
                diverged = event
            else:
                self.logger.write(event)
                self.warn(format_event(event))
        self._window_start, self._window_steps, self._window_saving = time.perf_counter(), 0, 0.0
        # a record to roll back to: finite and judged bad by no detector (Monitor.healthy); one
        # that is merely not divergent may already be broken (d_loss 574, no G gradient)
        if judge and diverged is None and (self.monitor is None or self.monitor.healthy):
            self.healthy_step = self.step
        return self._diverged(diverged) if diverged is not None else True

    def _probe(self) -> dict[str, float]:
        if self.probe is None or not hasattr(self.batches, "probe"):
            return {}
        return self.probe(self.batches, self.objective, self.sample_nets())

    # ------------------------------------------------------------------ divergence

    def _weights_finite(self) -> bool:
        params = [p.detach() for net in self.objective.nets.values() for p in net.parameters()]
        return bool(torch.stack([torch.isfinite(p).all() for p in params]).all())

    def warn(self, text: str) -> None:
        """One line for the user, from the main rank only, above the progress bar when there is one."""
        if not self.is_main:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def _divergence_event(self, evidence: dict[str, Any]) -> dict[str, Any]:
        return {"event": "divergence", "step": self.step, "message": "non-finite values",
                "evidence": evidence,
                "suggestion": non_finite_advice(self.cfg, self.lr_scale)}

    def _diverged(self, event: dict[str, Any]) -> bool:
        """Handle a divergence event per train.on_divergence; False when the loop rolled back."""
        t = self.cfg.train
        self.logger.write(event)
        self.warn(format_event(event))
        if t.on_divergence == "warn":
            return True
        last = self.last_good_checkpoint()
        if t.on_divergence == "stop" or self.rollbacks >= t.max_rollbacks or last is None:
            why = ("train.on_divergence=stop" if t.on_divergence == "stop" else
                   "no checkpoint to roll back to" if last is None else
                   f"{self.rollbacks} rollbacks (train.max_rollbacks={t.max_rollbacks})")
            advice = event["suggestion"]
            if last is None:
                self._log_end("diverged", rollbacks=self.rollbacks, reason=why, checkpoint=None)
                raise TrainingDiverged(f"training diverged at step {self.step} after {why}; {advice}")
            # what a rollback would restore is what the run keeps: a resume (and sample, export,
            # the report) starts from it, not from the newest checkpoint, saved while diverging
            self._point_latest(last)
            rates, advice = self._resume_rates(advice)
            self._log_end("diverged", rollbacks=self.rollbacks, reason=why, checkpoint=last.name,
                          resume_with=rates)
            command = resume_command(self.run_dir, rates)  # from Python for a run given hooks= or dataset=
            raise TrainingDiverged(f"training diverged at step {self.step} after {why}; the last good "
                                   f"checkpoint is {last}; continue from it with lower learning rates: "
                                   f"{command}" + (f" (also worth trying: {advice})" if advice else ""))
        self.rollback(last)
        return False

    def _point_latest(self, path: Path) -> None:
        """Point checkpoints/latest at ``path``, a checkpoint the run goes back to (a rollback, a
        diverged end); the newer ones stay on disk until the next save removes them."""
        if self.is_main:
            ckpt.point_latest(path.parent, path.name)

    def _resume_rates(self, suggestion: str) -> tuple[str, str]:
        """(the learning-rate overrides for the resume from the last good checkpoint, the parts
        of ``suggestion`` that are not about them). The rates are the ones the divergence's
        advice names (monitor.resume_rates: the same choice), so the command and the advice agree."""
        rates = resume_rates(self.cfg, self.lr_scale)
        rest = [part for part in (suggestion.split("; ") if suggestion else [])
                if not any(key in part for key in rates)]
        return " ".join(f"{k}={v:g}" for k, v in rates.items()), "; ".join(rest)

    def _log_end(self, how: str, **info: Any) -> None:
        """The run's last record in metrics.jsonl: how training ended ("done", "interrupted" by a
        signal, "stopped" by eval.patience or a hook, "diverged"), for the report. Not written for a crash by a bug."""
        if not self.is_main:
            return
        info.setdefault("checkpoint", self.last_checkpoint.name if self.last_checkpoint else None)
        self.logger.write({"event": "end", "step": self.step, "how": how, "steps": self.cfg.train.steps,
                           **info})

    def last_good_checkpoint(self) -> Path | None:
        path = None
        if self.run_dir is not None and self.is_main:
            path = ckpt.newest_at_most(self.run_dir, self.healthy_step)
        return distributed.broadcast(path, self.world)  # the same choice on every rank

    def rollback(self, path: Path) -> None:
        """Restore ``path`` and continue with learning rates scaled down."""
        from_step = self.step
        weights, state = ckpt.load(path, map_location=self.device)
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * self.cfg.train.rollback_lr_factor
        self.load(weights, state)
        self.healthy_step = self.step  # chosen at or before the last healthy record
        self._point_latest(path)  # a resume before the next save starts here too
        self.rollbacks, self.lr_scale = rollbacks, lr_scale
        self._apply_lr_scale()
        if self.monitor is not None:
            self.monitor.after_rollback()
        self.logger.flush_means()  # drop the bad interval's partial sums
        self.logger.write({"event": "rollback", "step": from_step,
                           "evidence": {"to_step": self.step, "checkpoint": path.name,
                                        "lr_scale": lr_scale, "rollbacks": rollbacks},
                           "suggestion": "training continues with lower learning rates"})
        self.warn(f"ganforge: rolled back from step {from_step} to {path.name}; learning rates "
                   f"scaled to {lr_scale:g}x (rollback {rollbacks}/{self.cfg.train.max_rollbacks})")
        if self._bar is not None:
            self._bar.n = self.step
            # the diverged record's numbers go: the next progress line had shown them as "logged at
            # step 1" (D=1.2e9 after the rollback to step 0); the next record brings new ones
            self._bar.set_postfix_str("", refresh=False)
            if isinstance(self._bar, display.LineProgress):
                self._bar.forget_postfix()
        self._window_start, self._window_steps, self._window_saving = time.perf_counter(), 0, 0.0

    def lr_factor(self) -> float:
        """Rollback scale times the schedule: optim.lr_decay=linear falls to 0 from
        lr_decay_start x train.steps on (the CycleGAN schedule)."""
        o, total = self.cfg.optim, self.cfg.train.steps
        decay = 1.0
        if o.lr_decay == "linear":
            start = o.lr_decay_start * total
            if self.step > start:
                decay = max(0.0, 1.0 - (self.step - start) / max(total - start, 1))
        return self.lr_scale * decay

    def _apply_lr_scale(self) -> None:
        if self.monitor is not None:  # its suggestions start from the rates in effect
            self.monitor.lr_scale = self.lr_scale
        factor = self.lr_factor()
        for name, opt in self.optimizers.items():
            mult = self.objective.lr_factor(name)
            for group, base in zip(opt.param_groups, self._base_lrs[name]):
                group["lr"] = base * factor * mult


    def _bar_postfix(self, record: dict[str, Any]) -> str:
        """The record's numbers as the bar shows them (display.fit_postfix)."""
        rate = getattr(self.objective, "rate_unit", "img/s")
        return display.fit_postfix(display.postfix_parts(record, rate, raw=self._d_raw), self._bar)

    def _run_hooks(self, step: int) -> None:
        """Evaluation hooks; a new best value of ``eval.best`` saves and marks a checkpoint.

        Called on every rank. A hook with ``all_ranks = True`` (the metrics hook) runs on every
        rank, shares its work through ``gather_rows`` and returns its values on rank 0; any other
        hook runs on rank 0 alone while the others go on to their next collective. Rank 0 logs."""
        record: dict[str, Any] = {"step": step}
        self.ema_standing_stats()
        if self.world.enabled:  # every rank samples from rank 0's EMA BatchNorm statistics
            for net in self.sample_nets().values():
                distributed.broadcast_buffers(net, self.world)
        protocol = None
        for hook in self.hooks:
            if self.is_main or getattr(hook, "all_ranks", False):
                try:
                    record.update(hook_values(hook, hook(self, step)))
                except Exception as exc:
                    self._hook_failed(hook, step, exc)
                    raise
                protocol = getattr(hook, "protocol", protocol)
        if len(record) == 1 or not self.is_main:
            return
        key, direction = best_metric(self.cfg.eval.best)
        if not self._best_key_checked and key not in record:  # a typo had trained to the end without 'best'
            returned = ", ".join(k for k in record if k != "step")
            self.warn(f"ganforge: eval.best={key} is not among the values the evaluation returned ({returned}), "
                      f"so no 'best' checkpoint is marked while it is missing; set eval.best to one of them")
        self._best_key_checked = True
        if protocol:  # what the numbers were measured with (the report names it; not plotted)
            record["protocol"] = protocol
        self.logger.write(record)
        if key not in record:
            return
        value = record[key]
        if not isinstance(value, (int, float)) or not math.isfinite(value):  # NaN (logged as null): no better
            self._no_better(key)
            return
        # a hook's own metric declares its direction (api refuses one that does not); a built-in
        # one's is known, and its spread (kid_std) has long counted as lower is better
        sign = {"lower": 1.0, "higher": -1.0}.get(direction or self.better(key), 0.0)
        score = sign * value if sign else abs(value - 1.0)  # "1": closest to 1 is best
        if self.best_score is not None and score >= self.best_score:
            self._no_better(key)
        if self.best_score is None or score < self.best_score:
            self.best_score, self.evals_since_best = score, 0
            self.best_value, self.best_step = float(value), step
            if self._weights_finite():
                path = self.save_checkpoint()
                if path is not None:
                    ckpt.mark_best(path.parent, path.name)
                    self.warn(f"ganforge: new best {key}={value:.4g} at step {step} "
                               f"({path.name})")

    def _no_better(self, key: str) -> None:
        """An evaluation that brought no better eval.best (a worse, equal or non-finite value):
        counted, and with eval.patience=N the N-th in a row stops training after this step."""
        self.evals_since_best += 1
        patience, n = self.cfg.eval.patience, self.evals_since_best
        if not patience or n < patience or self._stop_reason is not None:
            return
        if self.best_step is not None:
            best = f"the best, {self.best_value:.4g}, was at step {self.best_step}"
        elif self.best_score is not None:  # a checkpoint of an older version: its step was not kept
            best = "the 'best' checkpoint holds the best"
        else:
            best = "none of them was a finite number"
        self._stop_reason = {
            "reason": f"no better {key} in {n} evaluation{'' if n == 1 else 's'} (eval.patience={patience}); {best}",
            "metric": key, "best": self.best_value, "best_step": self.best_step}

    def request_stop(self, reason: str) -> None:
        """From a hook: end training after this step, with its checkpoint saved, and ``reason``
        in the run's end record (the report and ``FitResult.stopped`` show it). The run can be
        resumed later, as one stopped by Ctrl-C. The first request of a step is kept."""
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"request_stop needs the reason as a non-empty string (the report shows it), "
                              f"got {reason!r}")
        if self._stop_reason is None:
            self._stop_reason = {"reason": reason.strip()}

    def _hook_failed(self, hook, step: int, exc: Exception) -> None:
        """A hook raised at ``step``: the step's training is saved first (the hooks run before its
        checkpoint, and the interval had been lost), and the error is told what was saved and how
        to continue: a resume from Python for the caller's hooks (only Python passes them), the
        CLI's for the built-in metrics hook. ``exc`` keeps its type and traceback (the hook's bug)."""
        path = self.save_checkpoint() if self._weights_finite() else None
        if not self.is_main or self.run_dir is None:
            return
        if getattr(hook, "all_ranks", False):  # the built-in metrics hook, also run by the CLI
            resume = f"ganforge train --resume --out {shell_arg(self.run_dir)}{nproc_flag()}"
        else:
            given = ", dataset=..." if self.given_data else ""
            resume = f"api.train(cfg, {str(self.run_dir)!r}, resume=True, hooks=...{given})"
        if path is not None:
            kept = f"step {step}'s training is saved in {path}"
        else:
            kept = (f"the weights are not finite, so step {step} is not saved (the last checkpoint is "
                    f"{self.last_checkpoint.name if self.last_checkpoint else 'none'})")
        text = f"ganforge: hook {_hook_name(hook)} raised at step {step}; {kept}; fix it and continue with {resume}"
        if hasattr(exc, "add_note"):  # Python 3.11+: shown under the hook's own traceback
            exc.add_note(text)
        else:
            self.warn(text)

    def _best_measure(self) -> list:
        """What a best score is measured by: a score of another key, n, metric set or extractor
        does not compare (the extractor only when named: the measure of runs from before it)."""
        e = self.cfg.eval
        return [e.best, e.n, sorted(e.metrics or [])] + ([e.extractor] if e.extractor else [])

    @staticmethod
    def better(key: str) -> str:
        try:
            from ..metrics.evaluation import better
        except ImportError:
            return "lower"
        return better(key) or "lower"

    def gather_rows(self, rows):
        """Every rank's rows (float [n_r, D] or None) concatenated in rank order on rank 0, None
        elsewhere; the rows themselves in one process (distributed.gather_rows)."""
        return distributed.gather_rows(rows, self.world)

    # ------------------------------------------------------------------ samples

    def sample_nets(self) -> dict[str, torch.nn.Module]:
        return {n: e.net for n, e in self.ema.items()}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0, **kwargs) -> torch.Tensor:
        """n samples of the weights as they are now (the EMA nets, where the run keeps them) as
        float [n, C, H, W] in [-1, 1] on the CPU, for an evaluation hook: ganforge.load(run_dir)
        inside a hook loads the previous checkpoint, one interval behind. For n up to 500 they
        are the samples ganforge.load(...).sample(n, seed=seed) draws from this step's
        checkpoint. ``kwargs``: the objective's own (``labels=`` of a conditional run)."""
        self.ema_standing_stats()
        gen = torch.Generator().manual_seed(seed)
        return self.objective.sample(n, generator=gen, nets=self.sample_nets(), **kwargs).cpu()

    @torch.no_grad()
    def ema_standing_stats(self) -> None:
        """The EMA nets' BatchNorm statistics, recomputed from ``train.ema_bn_samples`` of their
        own samples (a fixed noise stream, so every rank and a resumed run get the same): the
        EMA copies the live G's statistics, which belong to other weights. Once per step; the
        next EMA update copies the live statistics again, so training is unaffected."""
        n, nets = self.cfg.train.ema_bn_samples, self.sample_nets()
        if (n <= 0 or self._standing_step == self.step or not self.objective.ema_standing_stats
                or "sample" not in self.objective.capabilities
                or not any(batch_norms(net) for net in nets.values())):
            return
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 7919)
        with contextlib.ExitStack() as stack:
            for net in nets.values():
                stack.enter_context(accumulating_bn_stats(net))
            for start in range(0, n, 256):  # conditional: every class equally often
                m = min(256, n - start)
                self.objective.sample(m, generator=gen, nets=nets, **class_kwargs(self.objective, m, start))
        self._standing_step = self.step

    def save_samples(self) -> Path | None:
        """A grid from a fixed latent batch (same every time: progress is comparable); for
        samples that are not images, the picture the objective draws of them (a scatter plot)."""
        self.ema_standing_stats()
        if not self.is_main or self.run_dir is None:
            return None
        self._check_run_dir()
        gen = torch.Generator().manual_seed(self.cfg.train.seed + 12345)
        images = self.objective.preview(self.cfg.train.n_sample_grid, generator=gen,
                                        nets=self.sample_nets())
        out = self.run_dir / "samples" / f"step_{self.step:07d}.png"
        meta = None
        if self.cfg.train.provenance:
            meta = provenance.record(operation="training-preview", config=self.cfg, step=self.step,
                                     seed=self.cfg.train.seed)
        if images.dim() != 4:  # not images (2-D toy points): the objective's picture of them, if any
            picture = self.objective.preview_picture(images.cpu(), step=self.step)
            if picture is None:
                return None
            with atomic_path(out) as tmp:
                provenance.save(picture, tmp, meta)
            rgb = torch.from_numpy(np.asarray(picture.convert("RGB")).copy()).permute(2, 0, 1)  # uint8 [3, H, W]
            self.logger.add_image("samples", rgb, self.step)
            return out
        nrow = grid_columns(images.shape[0])  # grid_labels' rows
        grid = make_grid(images.cpu(), nrow=nrow, value_range=(-1, 1))
        caption = self.objective.preview_caption()
        names = getattr(self.objective, "class_names", None)
        with atomic_path(out) as tmp:
            if caption:
                provenance.save(_captioned(grid, caption), tmp, meta)
            elif names and "sample_labels" in self.objective.capabilities:
                # a conditional preview is one class per row (labels_tensor's layout): name the rows
                labels = grid_labels(images.shape[0], len(names), nrow)
                provenance.save(labeled_grid(images, labels, list(names), nrow), tmp, meta)
            else:
                provenance.save_grid(images, tmp, meta, nrow=nrow)
        self.objective.preview_files(out.parent, out.stem)  # e.g. an audio preview's WAVs
        self.logger.add_image("samples", grid, self.step)
        return out

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}
        first = [0.0]  # when the stop signal came

        def handler(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                if time.monotonic() - first[0] < REPEAT_SECONDS and self._stop_signal == "SIGINT":
                    return  # the same Ctrl-C twice at once (GNU timeout sends it twice): one stop
                distributed.record_stopped_at_once(self.world)  # the other ranks stop as this one
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            self._stop_signal = signal.Signals(signum).name
            first[0] = time.monotonic()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)

        def restore():
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore
