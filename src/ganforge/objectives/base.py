"""What a GAN family declares, and the registry that holds the families.

An objective (a family) owns its networks and says how each phase computes its loss; it also
declares everything else that is specific to it, so that the Trainer, ``ganforge.load``, the CLI
and the registry-driven tests pick a new family up without naming it:

- ``sections``: its config sections, ``{"sr": SRConfig}`` (registered with ganforge.config when
  the family is registered; ``cfg.sr`` then holds the typed, validated section);
- ``load_data`` / ``data_info`` / ``make_batches`` / ``prepare_training``: how its data is read,
  what the networks need to know of it, and how batches are drawn;
- ``optimizers``: name -> :class:`OptimizerSpec` (nets, learning rate, betas, per-prefix
  learning-rate multipliers); the Trainer builds the optimizers from it;
- ``capabilities``: which of :data:`CAPABILITIES` a loaded run offers;
- ``preview``: the Trainer's sample grids (strips for translation and SR, class rows, ...);
- ``example_config``: a tiny config (and its data) on which the registry-driven tests train.

The Trainer only schedules phases and steps optimizers; it never names an architecture or a loss.
A phase names the optimizer it steps, how often it repeats (n_critic) and how often it runs at all
(lazy regularization, as in StyleGAN2's "Dreg" every 16 steps).
"""
from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from ..config import register_section
from ..errors import ConfigError, DataError, warn
from ..registry import Registry
from ..training.checkpoint import RUN_FILES

# What a loaded run can do; LoadedRun, the CLI (and later the server) dispatch on these names.
CAPABILITIES = {
    "sample": "draw images from noise (ganforge sample)",
    "sample_labels": "draw images of a requested class (ganforge sample --class, augment)",
    "translate": "map an input image to an output image (ganforge translate, translate-eval)",
    "upscale": "super-resolve an image (ganforge upscale, eval-sr)",
    # sample(..., truncation=T): the family defines T (StyleGAN's psi toward the mean w,
    # BigGAN's threshold for resampling z) and checks its range with a one-line ConfigError.
    "truncation": "sample with truncation (ganforge sample --truncation, bench truncation)",
    # sample(..., return_levels=True): the images of each level, coarse to fine (LAPGAN's chain)
    "levels": "show each level of a multi-resolution sample (ganforge sample --pyramid)",
    # Style-based generators (StyleGAN2): ws per layer that can be swapped and walked through.
    "mix": "mix coarse/middle/fine styles of two latents (ganforge mix)",
    "interpolate": "walk through latent space between seeds (ganforge interpolate)",
    "project": "find the latent of a real image, GAN inversion (ganforge project)",
    "edit": "move a latent along an attribute direction (ganforge edit)",
    # Audio: vocode(log-mel [B, n_mels, T]) -> waveform [B, T * hop]; convert(log-mel, direction)
    # -> the other voice's log-mel of the same length (voice conversion).
    "vocode": "turn mel-spectrograms into speech (ganforge vocode, eval-audio)",
    "convert": "convert speech to another voice (ganforge convert, eval-audio)",
}
AUDIO_CAPABILITIES = frozenset({"vocode", "convert"})  # a run with one of these has an audio front end


@dataclass(frozen=True)
class Phase:
    name: str  # "D", "G", "Dreg", ...; passed back to Objective.loss
    optimizer: str  # key of Objective.optimizers whose parameters this phase updates
    repeat: int = 1  # consecutive repetitions per iteration (n_critic for a critic phase)
    every: int = 1  # run only on iterations where step % every == 0 (lazy regularization)
    fresh_batch: bool = True  # draw a new batch; False reuses the batch of the phase before


@dataclass
class OptimizerSpec:
    """One optimizer: the nets it updates, its learning rate, optionally its own betas, and
    learning-rate multipliers by parameter-name prefix, e.g. ``{"G.mapping.": 0.01}`` for a
    mapping network at 0.01x (the prefix is ``<net>.<parameter name>``)."""

    nets: list[str]
    lr: float
    betas: tuple[float, float] | None = None  # None: optim.betas
    lr_mult: dict[str, float] = field(default_factory=dict)

    def param_groups(self, nets: Mapping[str, nn.Module]) -> list[dict[str, Any]]:
        """Parameter groups, one per distinct multiplier, each with its ``lr``."""
        groups: dict[float, list[nn.Parameter]] = {}
        for net_name in self.nets:
            if net_name not in nets:  # a family's slip: one line, not KeyError: 'D'
                raise ConfigError(f"OptimizerSpec(nets={list(self.nets)}) names net '{net_name}', which the "
                                  f"family's nets do not hold (they are {', '.join(nets) or 'none'}); add it to "
                                  f"self.nets or name one of those")
            for pname, p in nets[net_name].named_parameters():
                qualified = f"{net_name}.{pname}"
                mult = next((m for prefix, m in self.lr_mult.items()
                             if qualified.startswith(prefix)), 1.0)
                groups.setdefault(mult, []).append(p)
        return [{"params": ps, "lr": self.lr * mult} for mult, ps in groups.items()]


def cached_module(objective: Any, nets: tuple[nn.Module, ...], build: Callable[..., nn.Module]) -> nn.Module:
    """``build(*nets)``, made once per tuple of networks and kept on ``objective`` (a family's
    ``export_module``: the same instance on each call for the same networks, so
    ganforge.serve.graph can record it; a few sets at most, e.g. the live and the EMA ones)."""
    cache = objective.__dict__.setdefault("_export_modules", {})
    key = tuple(id(net) for net in nets)
    if key not in cache:
        if len(cache) > 4:
            cache.clear()
        cache[key] = build(*nets)
    return cache[key]


class Objective:
    """Base class: subclasses fill ``nets``, ``optimizers``, ``phases`` and implement ``loss``.

    ``optimizers`` maps an optimizer name to an :class:`OptimizerSpec`; a CycleGAN's "G" spec
    lists both generators. ``ema`` lists the nets the Trainer keeps an exponential moving
    average of. Batches are dicts of tensors already on the device (``real`` float NCHW in
    [-1, 1], ``labels`` int64 [N] or None).
    """

    name: ClassVar[str] = ""  # set by register_objective
    sections: ClassVar[dict[str, type]] = {}  # config sections this family owns
    capabilities: ClassVar[frozenset[str]] = frozenset({"sample"})

    @property
    def rate_unit(self) -> str:
        """What the progress bar calls the items per second: images, or an audio family's clips."""
        return "clips/s" if self.capabilities & AUDIO_CAPABILITIES else "img/s"

    # config keys (a trailing "." for a whole section) the family refuses: the monitor's advice
    # leaves them out (it had told LAPGAN runs to set model.pac and reg.r1)
    unsupported_advice: ClassVar[tuple[str, ...]] = ()
    # config keys (a trailing "." for a whole section) the family never reads, which config.yaml
    # holds at their defaults all the same: the report shows them apart (an audio run's table had
    # listed model: dcgan, z_dim 100 as if used). eval.* of a family with evaluated_by is implied.
    unused_settings: ClassVar[tuple[str, ...]] = ()
    # The record key of G's adversarial loss, which the monitor holds to monitor.d_loss_abs: a
    # family whose g_loss adds L1, cycle, mel or perceptual terms (a healthy vocoder's is up to
    # 300) names its adversarial part
    g_adversarial_key: ClassVar[str] = "g_loss"
    # families with the "truncation" capability: `bench truncation`'s default values (ending at
    # no truncation, or near it), and the server page's slider (min, max, default)
    truncation_sweep: ClassVar[tuple[float, ...]] = (0.3, 0.5, 0.7, 0.85, 1.0)
    truncation_range: ClassVar[tuple[float, float, float]] = (0.0, 1.0, 0.7)
    accepts_points: ClassVar[bool] = False  # 2-D toy mixtures (model.name=mlp)
    # config keys a resume may not change although no weight changes shape, because what the
    # networks learned is bound to them (key -> why); api.check_resume_changes refuses them
    resume_fixed: ClassVar[dict[str, str]] = {}
    # a family measured after training, not with eval.every (which it refuses): the command that
    # measures a run (RUN stands for it), for the refusal, the report and the model card
    evaluated_by: ClassVar[str | None] = None
    # The Trainer recomputes the EMA nets' BatchNorm statistics from their own samples before
    # each grid and checkpoint (train.ema_bn_samples); False for a family that does so itself.
    ema_standing_stats: ClassVar[bool] = True
    # Generator regularizers of the common ``reg`` section this family applies (reg.ortho); a
    # config that sets one the family does not apply is refused, not silently ignored.
    g_regularizers: ClassVar[frozenset[str]] = frozenset()
    # What the panels of each tile of ``preview``'s grid are, in their order, in a user's words
    # ("left to right: input | output | target"), which the report prints under the sample grids
    # as "In each tile, <legend>." (a CycleGAN strip's four panels had no names); None: a tile is
    # one sample.
    preview_legend: ClassVar[str | None] = None

    @classmethod
    def logs_d_probabilities(cls, config: Mapping[str, Any]) -> bool | None:
        """Whether the records' ``d_real`` / ``d_fake`` are probabilities (means of sigmoid(d))
        rather than raw scores, for a run's config as config.yaml holds it; None where unknown
        (a loss registered by a plugin that is not imported, a family whose ``unused_settings``
        name loss.name). The report draws them on [0, 1] as
        D(x) or on their own axis as a critic's raw scores (a weight-clipped WGAN's 0.005-0.09 had
        been drawn as D(x)). The default is the shared ``_scores``: sigmoid for the losses marked
        ``losses.is_probabilistic``, raw otherwise; a family that logs otherwise says so here."""
        from .. import losses

        loss = config.get("loss")
        name = loss.get("name") if isinstance(loss, Mapping) else None
        if not isinstance(name, str) or name not in losses.LOSSES or any(
                u in ("loss.", "loss.name") for u in cls.unused_settings):
            return None
        return losses.is_probabilistic(losses.LOSSES[name])
    # translate / upscale inputs are padded to a multiple of this (a U-Net's 2^depth); the
    # exported ONNX graph and the server pad the same way
    stride: int = 1

    nets: dict[str, nn.Module]
    optimizers: dict[str, OptimizerSpec]
    phases: list[Phase]
    ema: list[str] = []

    def __init_subclass__(cls, **kwargs):
        # A family's __init__ is followed by check_contract, once the outermost __init__ (the
        # family built, its subclasses' additions included) returns: a plugin's slip (a phase
        # naming an undeclared optimizer, no loss) is one line before anything is written.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_checks_contract", False):
            return

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if type(self).__init__ is __init__:
                self.check_contract()

        __init__._checks_contract = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    # ------------------------------------------------------------------ data (class level:
    # the data is read before the networks exist, and they are sized from it)

    @classmethod
    def check_run(cls, cfg, world_size: int, *, new: bool) -> None:
        """Checks of a config that hold for training it, not for loading a trained run: on
        ``world_size`` processes, and ``new`` (not a resume). ``api.train`` and ``ganforge train
        --nproc`` (before torchrun starts) call it; a run trained before a check existed still
        loads and resumes."""

    @classmethod
    def smaller_batch(cls, cfg) -> str:
        """The overrides that halve the batch, which api.train suggests when a training step ran
        out of memory (a family with per-stage batches halves those too)."""
        return f"train.batch_size={max(1, cfg.train.batch_size // 2)}"

    @classmethod
    def load_data(cls, cfg):
        """The training data of ``cfg``: by default the named image dataset (or toy mixture)."""
        from ..data import load_dataset

        return load_dataset(cfg.data.name, split=cfg.data.split, resolution=cfg.data.resolution,
                            channels=cfg.data.channels, data_dir=cfg.data.data_dir,
                            seed=cfg.train.seed)

    @classmethod
    def describe_data(cls, dataset) -> str | None:
        """What the run trains on, in words, for the start line ("ganforge: training NAME for N
        steps -> RUN (60000 images)"): images or a toy's points by default; None to say nothing."""
        record = data_record(dataset) or {}
        unit = next((u for u in ("images", "points") if u in record), None)
        return counted(record[unit], unit) if unit else None

    @classmethod
    def data_info(cls, cfg, dataset) -> dict[str, Any]:
        """What the networks need to know of the data: classes, point dimension."""
        names = getattr(dataset, "class_names", None)
        info = {"name": dataset.name, "num_classes": len(names) if names else 0,
                "class_names": list(names) if names else None,
                "has_labels": getattr(dataset, "labels", None) is not None}
        if "sample_labels" in cls.capabilities and info["has_labels"] and info["num_classes"] == 1:
            raise DataError(f"{dataset.name} has one class ('{names[0]}'); class-conditional "
                            f"training needs two or more (one subfolder per class), or train "
                            f"objective=unconditional")
        if "sample_labels" in cls.capabilities and info["has_labels"] and info["num_classes"] >= 2:
            _note_unbalanced(dataset.name, dataset.labels, names)
        points = getattr(dataset, "points", None)
        if points is not None:  # toy mixtures: samples are [N, point_dim], not images
            if not cls.accepts_points:
                raise ConfigError(f"{cfg.data.name} holds 2-D points, which only "
                                  f"objective=unconditional with model.name=mlp trains (presets "
                                  f"toy-ring8, toy-grid25)")
            info["point_dim"] = int(points.shape[1])
        return info

    @classmethod
    def info_from_state(cls, cfg, extra_state: Mapping[str, Any]) -> dict[str, Any]:
        """``data_info`` rebuilt from a checkpoint (a loaded run has no data): the classes that
        a conditional family saves in its extra state."""
        k = int(extra_state.get("num_classes") or 0)
        return {"name": cfg.data.name, "num_classes": k,
                "class_names": extra_state.get("class_names"), "has_labels": bool(k)}

    def make_batches(self, dataset, cfg, device: torch.device):
        """Endless batches for the Trainer: in-memory tensors on the device, or streamed."""
        from ..data import StreamingFolderDataset
        from ..training.batches import InMemoryBatches, StreamingBatches

        bs = cfg.train.batch_size
        if len(dataset) < bs:
            raise DataError(f"{dataset.name} has {len(dataset)} images, fewer than one batch "
                            f"(train.batch_size={bs}); add images or lower train.batch_size")
        if isinstance(dataset, StreamingFolderDataset):  # too large for memory: decoded by workers
            return StreamingBatches(dataset.torch_dataset(), bs, cfg.train.seed, device,
                                    cfg.data.num_workers, has_labels=dataset.labels is not None)
        points = getattr(dataset, "points", None)
        tensor = points if points is not None else dataset.images
        return InMemoryBatches(tensor, dataset.labels, bs, cfg.train.seed, device)

    # Set by api.build before prepare_training: a checkpoint's weights and state replace the
    # initial ones next, so initial weights read from elsewhere (sr.init_from) are not needed
    resuming: bool = False

    def prepare_training(self, dataset) -> None:
        """What only training needs beyond the networks (pretrained feature nets, initial
        weights, preview inputs). Not called when a run is loaded for inference."""

    # ------------------------------------------------------------------ the contract

    def _plugin_label(self) -> str | None:
        """"objective 'NAME' (module M)" for a family defined outside ganforge, whose contract
        mistakes are the user's to fix (one line); None for ganforge's own (tested) families."""
        cls = type(self)
        module = getattr(cls, "__module__", "") or "?"
        if module.split(".")[0] == "ganforge":
            return None
        return f"objective '{cls.name or cls.__name__}' (module {module})"

    def check_contract(self, *, training: bool = False) -> None:
        """A family defined outside ganforge declares what the Trainer relies on: nets (name ->
        nn.Module), optimizers whose nets it holds, phases that step declared optimizers, a
        ``loss`` and, with the "sample" capability (or the default ``preview``), a ``sample``.
        Checked when the family is built (what is set by then: optimizers and phases may come in
        prepare_training) and, ``training``, by the Trainer. These had been KeyError: 'disc',
        KeyError: 'D' and bare NotImplementedError tracebacks, one after step_0000000 was
        written. Attributes only: nothing is run, no random number drawn."""
        label = self._plugin_label()
        if label is None:
            return
        cls, missing = type(self), object()
        nets = getattr(self, "nets", missing)
        if not (isinstance(nets, Mapping) and nets and all(isinstance(n, nn.Module) for n in nets.values())):
            raise ConfigError(f"{label}: self.nets must be a dict of name -> torch.nn.Module set in __init__ "
                              f"(e.g. {{'G': G, 'D': D}}), got {_described(nets, missing)}")
        optimizers = getattr(self, "optimizers", missing)
        if optimizers is not missing or training:
            if not (isinstance(optimizers, Mapping) and optimizers
                    and all(isinstance(spec, OptimizerSpec) for spec in optimizers.values())):
                raise ConfigError(f"{label}: self.optimizers must be a dict of name -> OptimizerSpec (e.g. "
                                  f"{{'G': OptimizerSpec(['G'], lr=cfg.optim.g_lr)}}), got "
                                  f"{_described(optimizers, missing)}")
            for name, spec in optimizers.items():
                absent = [n for n in spec.nets if n not in nets]
                if absent:
                    raise ConfigError(f"{label}: optimizer '{name}' names net '{absent[0]}', which self.nets does "
                                      f"not hold (it holds {', '.join(nets)}); add the net to self.nets or name "
                                      f"one of those in OptimizerSpec(nets=...)")
        phases = getattr(self, "phases", missing)
        if phases is not missing or training:
            if not (isinstance(phases, (list, tuple)) and phases and all(isinstance(p, Phase) for p in phases)):
                raise ConfigError(f"{label}: self.phases must be a list of Phase (e.g. [Phase('D', optimizer='D'), "
                                  f"Phase('G', optimizer='G')]), got {_described(phases, missing)}")
            for phase in phases:
                if isinstance(optimizers, Mapping) and phase.optimizer not in optimizers:
                    raise ConfigError(f"{label}: phase '{phase.name}' steps optimizer '{phase.optimizer}', which "
                                      f"self.optimizers does not declare (it declares {', '.join(optimizers)}); "
                                      f"name one of those in Phase(optimizer=...) or declare it")
                for key in ("repeat", "every"):
                    value = getattr(phase, key)
                    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                        raise ConfigError(f"{label}: phase '{phase.name}' has {key}={value!r}; Phase.{key} is a "
                                          f"whole number >= 1")
        if cls.loss is Objective.loss:
            raise ConfigError(f"{label}: it does not define loss(phase, batch) (Objective.loss is abstract); "
                              f"define it to return {{'loss': a 0-d tensor to minimize, other named 0-d tensors to "
                              f"log}} for each of its phases")
        capabilities = set(getattr(self, "capabilities", ()))
        if cls.sample is Objective.sample and ("sample" in capabilities or cls.preview is Objective.preview):
            why = ("it declares the 'sample' capability" if "sample" in capabilities
                   else "the Trainer's sample grids call preview(), which by default calls sample()")
            raise ConfigError(f"{label}: it does not define sample(n, *, generator, nets=None), and {why}; "
                              f"define sample to return n images [n, C, H, W] in [-1, 1] (or override preview)")

    def check_loss_result(self, phase: str, out: Any) -> None:
        """The first ``loss(phase, batch)`` result of each phase of a family defined outside
        ganforge, before backward(): a dict whose "loss" is a 0-d tensor with a gradient and whose
        other values are 0-d tensors to log (a dict without "loss" had been KeyError: 'loss', a
        loss of shape [4] "grad can be implicitly created only for scalar outputs"). The
        Trainer calls it on the real first step's outputs: no extra work, no random number."""
        label = self._plugin_label()
        if label is None:
            return
        fix = ("loss(phase, batch) returns a dict: {'loss': a 0-d tensor to minimize (the batch's .mean()), "
               "other named 0-d tensors to log}")
        if not isinstance(out, Mapping):
            raise ConfigError(f"{label}: loss('{phase}', batch) returns {type(out).__name__}; {fix}")
        if "loss" not in out:
            raise ConfigError(f"{label}: loss('{phase}', batch) returns a dict without 'loss' (keys: "
                              f"{', '.join(map(str, out)) or 'none'}); {fix}")
        for key, value in out.items():
            if not (isinstance(value, Tensor) and value.dim() == 0):
                got = f"a tensor of shape {list(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ConfigError(f"{label}: loss('{phase}', batch) returns {got} under '{key}'; {fix}")
        if not out["loss"].requires_grad:
            raise ConfigError(f"{label}: loss('{phase}', batch) returns a 'loss' without a gradient (computed "
                              f"under torch.no_grad() or detached); compute it from the phase's networks")

    def check_sample(self, cfg) -> None:
        """A family defined outside ganforge with the "sample" capability: ``sample(2)`` gives
        images [2, data.channels, data.resolution, data.resolution] (points [2, point_dim] for a
        family that sets ``point_dim``), checked once before training. A [n, 64] sample had
        trained to "done" with no sample grid and no word, and `ganforge sample` then wrote a
        64x4 strip. Run in eval mode (no statistic moves) from its own generator, with every
        random state it could touch restored: training draws the same numbers as without it."""
        label = self._plugin_label()
        if label is None or "sample" not in set(getattr(self, "capabilities", ())):
            return
        point_dim = getattr(self, "point_dim", None)
        want = ([2, int(point_dim)] if point_dim else
                [2, cfg.data.channels, cfg.data.resolution, cfg.data.resolution])
        what = ("points [n, point_dim]" if point_dim else
                "images [n, data.channels, data.resolution, data.resolution]")
        modules = [m for net in self.nets.values() for m in net.modules()]
        modes = [m.training for m in modules]
        with _random_states_kept(getattr(self, "rng", None)):
            for m in modules:
                m.training = False
            try:
                with torch.no_grad():
                    out = self.sample(2, generator=torch.Generator().manual_seed(0))
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"{label}: its sample(2, generator=...) fails: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:160]}; sample(n, *, generator, nets=None) "
                                  f"returns n {what} in [-1, 1]") from exc
            finally:
                for m, mode in zip(modules, modes):
                    m.training = mode
        shape = list(out.shape) if isinstance(out, Tensor) else None
        if shape != want or not out.is_floating_point():
            got = f"a {str(out.dtype).removeprefix('torch.')} tensor of shape {shape}" if shape else type(out).__name__
            raise ConfigError(f"{label}: its sample(2, generator=...) returns {got}; this config needs {want}: "
                              f"{what} in [-1, 1]")

    # ------------------------------------------------------------------ training

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        """Called by the Trainer once: where tensors live and the generator all noise comes from."""
        self.device = device
        self.rng = rng

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Return {"loss": scalar to minimize, other named scalars to log}."""
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Called after each optimizer step of ``phase`` (e.g. WGAN weight clipping)."""

    def double_backward(self, phase: str) -> bool:
        """Whether ``phase`` differentiates a gradient (a gradient penalty, the path-length
        penalty). Under ``train.compile`` such a phase runs eagerly: torch.compile's autograd
        does not support double backward. By default the lazy regularization phases ("Dreg",
        "Greg"); a family whose other phases carry a penalty says so."""
        return phase.endswith("reg")

    def lr_factor(self, optimizer: str) -> float:
        """A factor on ``optimizer``'s learning rate now (a per-stage schedule); the Trainer
        reapplies it after every event the objective reports."""
        return 1.0

    def pop_events(self) -> list[dict[str, Any]]:
        """Known events since the last call (a progressive stage boundary), each a dict with
        "event", "message" and "evidence": the Trainer writes them to metrics.jsonl and passes
        them to the monitor, which then expects the change they bring."""
        return []

    def ema_beta(self, step: int) -> float | None:
        """The EMA decay at iteration ``step`` when the family schedules its own (StyleGAN2: a
        half-life in images); None: train.ema_decay with the Trainer's ramp."""
        return None

    # Set by api.build: data_record() of the data it trains on, which extra_state keeps so that
    # a resume on other data is told (None: a loaded run, or data of another kind)
    trained_on: dict[str, Any] | None = None
    data_words: str | None = None  # describe_data of the training data, for the start line

    def extra_state(self) -> dict[str, Any]:
        """State outside the nets that must survive resume (an augmentation probability, ...).
        A family returns {**super().extra_state(), ...}: the base keeps what the run trained on
        (DATA_STATE: data_record), which a resume compares."""
        return {DATA_STATE: self.trained_on} if self.trained_on else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def inference_state(self) -> dict[str, Any]:
        """What a model folder (``ganforge export --format folder``) keeps, as JSON, for
        info_from_state to rebuild the family without its data: by default the values of
        extra_state that are JSON already (class names and counts), not resume-only tensors."""
        def is_json(value) -> bool:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                return False
            return True

        return {k: v for k, v in self.extra_state().items() if is_json(v)}

    def inference_files(self) -> dict[str, dict[str, Tensor]]:
        """Tensors a model folder carries beside its weights, as NAME.safetensors ({name:
        tensors}); the folder's loader hands them back to info_from_state under the extra-state
        key RUN_FILES, as a checkpoint's loader does. By default extra_state's RUN_FILES (a GAN
        stage's start weights)."""
        files = self.extra_state().get(RUN_FILES)
        return dict(files) if isinstance(files, Mapping) else {}

    # ------------------------------------------------------------------ outputs

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """n outputs in [-1, 1]; ``nets`` replaces entries of self.nets (the EMA generator)."""
        raise NotImplementedError

    def preview(self, n: int, *, generator: torch.Generator,
                nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """The Trainer's sample grid: n images [n, C, H, W] (or points [n, D]) in [-1, 1]."""
        return self.sample(n, generator=generator, nets=nets)

    def preview_picture(self, samples: Tensor, *, step: int):
        """A picture (PIL image) of ``preview``'s samples when they are not images [n, C, H, W]
        (a point run's scatter plot), which the Trainer writes as the step's sample file; None:
        nothing to draw (the default)."""
        return None

    def preview_files(self, folder: Path, stem: str) -> list[Path]:
        """Files written beside each sample grid ``<folder>/<stem>.png`` from the last
        ``preview`` (an audio family's WAVs, ``<stem>_<name>.wav``); none by default."""
        return []

    def preview_caption(self) -> str | None:
        """A line the Trainer writes under each sample grid (the stage of a growing run)."""
        return None

    @classmethod
    def example_config(cls, workdir: Path) -> dict[str, Any]:
        """A tiny raw config of this family (channels 2-8, resolution 8-16, data written under
        ``workdir``) on which the registry-driven tests build, train, resume, load and call
        each capability. Every family provides one."""
        raise NotImplementedError(f"objective '{cls.name}' provides no example_config")


OBJECTIVES: Registry[type[Objective]] = Registry(
    "objective", loads=True, check=lambda obj: isinstance(obj, type) and issubclass(obj, Objective),
    expects="a class that subclasses ganforge.objectives.Objective (CONTRIBUTING.md, 'Adding a GAN family')")


def _described(value: Any, missing: object) -> str:
    """What a family set an attribute to, in a few words, for check_contract's messages."""
    if value is missing:
        return "nothing (it is not set)"
    if isinstance(value, Mapping):
        kinds = ", ".join(f"{k}: {type(v).__name__}" for k, v in list(value.items())[:4])
        return f"{{{kinds}}}" if value else "an empty dict"
    if isinstance(value, (list, tuple)) and not value:
        return f"an empty {type(value).__name__}"
    return type(value).__name__


@contextlib.contextmanager
def _random_states_kept(rng: Any):
    """Every random state a family's sample() could draw from, put back afterwards: torch's
    global CPU (and the current CUDA device's) generator, ``rng`` (the Trainer's noise), numpy's
    and Python's."""
    import random

    import numpy as np

    states = [torch.get_rng_state(), np.random.get_state(), random.getstate()]
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda_states = torch.cuda.get_rng_state_all() if cuda else None
    rng_state = rng.get_state() if isinstance(rng, torch.Generator) else None
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        if rng_state is not None:
            rng.set_state(rng_state)


# A class with fewer than this share of the largest class's images is named at training start
UNBALANCED_RATIO = 0.1


def _note_unbalanced(name: str, labels, names) -> None:
    """A one-line warning when a class-conditional run's classes are far from balanced (a folder
    of 500, 20 and 3 images a class had trained without a word): batches are drawn from the
    images, so the rarest class is seen, and learned, least."""
    counts = torch.bincount(torch.as_tensor(labels).reshape(-1).long(), minlength=len(names))
    rare, common = int(counts.argmin()), int(counts.argmax())
    if counts[rare] >= UNBALANCED_RATIO * counts[common]:
        return
    share = float(counts[rare]) / max(1, int(counts.sum()))
    warn(f"the classes of {name} are unbalanced: '{names[rare]}' has {int(counts[rare])} images against "
                  f"{int(counts[common])} of '{names[common]}' ({share:.1%} of the data), so a class-conditional "
                  f"generator sees it in about that share of its batches and learns it least; add images of the "
                  f"rare classes or leave some of the common ones out")


def refuse_unused_model_settings(cfg, used: set[str]) -> None:
    """One line for a ``model.*`` setting the family's networks never read (its own section sizes
    them): such a setting trained as if absent, and the monitor's advice named some of them."""
    from ..config import ModelConfig

    defaults = ModelConfig()
    for key in defaults.__dataclass_fields__:
        if key not in used and getattr(cfg.model, key) != getattr(defaults, key):
            raise ConfigError(f"model.{key} is not used by objective={cfg.objective} (its networks take "
                              f"model.{', model.'.join(sorted(used))} only); remove it")


def check_training(cfg, world_size: int, *, new: bool) -> None:
    """The checks of a config about to be trained (``api.train``; ``ganforge train --nproc``
    before torchrun starts): the family's ``check_run`` and, for a new run, a one-line refusal of
    a ``model.*`` or ``loss.*`` key its ``unused_settings`` names (a whole section as "model.")
    that is set away from its default (StyleGAN2 had trained with model.g_depth=4 as if absent).
    A resume of a run that set one still trains."""
    from ..config import LossConfig, ModelConfig

    cls = family(cfg)
    cls.check_run(cfg, world_size, new=new)
    if not new:
        return
    defaults = {"model": ModelConfig(), "loss": LossConfig()}
    for name in cls.unused_settings:
        section, _, key = name.partition(".")
        if section not in defaults:
            continue
        # "model." and "loss.": every key of the section (the audio families' model.g_width=8
        # and the vocoder's loss.name=foo had trained as if absent, recorded in config.yaml)
        if key == "":  # model.name stays a family's own choice; loss.name is a setting like the others
            keys = [k for k in defaults[section].__dataclass_fields__ if k != "name" or section == "loss"]
        else:
            keys = [key] if key != "name" and hasattr(defaults[section], key) else []
        for k in keys:
            value = getattr(getattr(cfg, section), k)
            if value != getattr(defaults[section], k):
                reader = "networks never read" if section == "model" else "training never reads"
                raise ConfigError(f"{section}.{k}={value} is not used by objective={cfg.objective} (its {reader} "
                                  f"it); remove it")


def refuse_unused_sections(cfg, sections: tuple[str, ...] = ("reg", "augment")) -> None:
    """One line for settings of the common ``reg``/``augment`` sections a family never applies (its
    losses and inputs are its own section's): such a setting trained as if absent, and was
    recorded in config.yaml as if it had been applied."""
    from ..config import AugmentConfig, RegConfig

    defaults = {"reg": RegConfig(), "augment": AugmentConfig()}
    for name in sections:
        current, default = getattr(cfg, name), defaults[name]
        changed = [f"{name}.{key}={getattr(current, key)}" for key in default.__dataclass_fields__
                   if getattr(current, key) != getattr(default, key)]
        if changed:
            raise ConfigError(f"{', '.join(changed)}: objective={cfg.objective} does not apply the "
                              f"{name}.* settings; remove {'it' if len(changed) == 1 else 'them'}")


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: register a family under ``name`` and its config sections."""

    def deco(cls: type[Objective]) -> type[Objective]:
        # Refused before its sections are registered: a refused duplicate had left its section
        # attached to the existing family, whose configs then accepted it.
        OBJECTIVES.refuse(name, cls)
        cls.name = name
        for section, section_cls in cls.sections.items():
            register_section(section, section_cls, objective=name)
        return OBJECTIVES.register(name)(cls)

    return deco


def family(cfg) -> type[Objective]:
    """The objective class named by ``cfg.objective`` (a ConfigError lists the valid ones)."""
    cls = OBJECTIVES.get(cfg.objective)
    for key in ("ortho",):
        if getattr(cfg.reg, key) and key not in cls.g_regularizers:
            which = sorted(n for n, c in OBJECTIVES.items() if key in c.g_regularizers)
            raise ConfigError(f"reg.{key} is applied by objective {' / '.join(which) or '(none)'} "
                              f"only, not by objective={cfg.objective}; set reg.{key}=0")
    return cls


# The key of Objective.extra_state that holds data_record(): api._check_resume_data compares it
DATA_STATE = "data"


def counted(n: int, unit: str) -> str:
    """'1 image', '40 images': ``unit`` is the plural."""
    return f"{n} {unit if n != 1 else unit[:-1]}"


def data_record(dataset) -> dict[str, Any] | None:
    """What a checkpoint keeps of the data it trains on, for a resume to compare and the start
    line to say: {"images": N} (or a toy's {"points": N}) and, for a folder, "files": its sorted
    file keys (data.folder.file_keys); for images in memory (a named dataset, one passed from
    Python) "fingerprint": images_fingerprint (other images of the same count had resumed
    unmentioned). A dataset with its own ``data_record()`` says it (a translation folder: its
    pairs and both splits' files). None for data of another kind (audio)."""
    from ..data import ImageDataset, StreamingFolderDataset

    own = getattr(dataset, "data_record", None)
    if callable(own):
        return own()
    points = getattr(dataset, "points", None)
    if points is not None:
        return {"points": len(points)}
    if not isinstance(dataset, (ImageDataset, StreamingFolderDataset)):
        return None
    keys = getattr(dataset, "file_keys", None)
    if isinstance(keys, bytes):
        return {"images": len(dataset), "files": keys}
    mark = images_fingerprint(dataset) if isinstance(dataset, ImageDataset) else None
    return {"images": len(dataset), **({"fingerprint": mark} if mark else {})}


# At most this many images, evenly strided, are hashed: a few MB at 64x64, milliseconds
FINGERPRINT_IMAGES = 1024


def images_fingerprint(dataset) -> str | None:
    """A cheap hex digest of an in-memory ImageDataset: its count, shape, labels and up to
    FINGERPRINT_IMAGES of its uint8 images, evenly strided. It reads the tensors only (no random
    draw, no copy kept), so training is unchanged. None when the images are no tensor."""
    import hashlib

    images, labels = getattr(dataset, "images", None), getattr(dataset, "labels", None)
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((tuple(images.shape), str(images.dtype))).encode())
    if len(images):
        stride = -(-len(images) // FINGERPRINT_IMAGES)  # ceil: at most FINGERPRINT_IMAGES of them
        digest.update(images[::stride].detach().cpu().contiguous().numpy().tobytes())
    if isinstance(labels, Tensor):
        digest.update(b"labels")
        digest.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_objective(cfg, data_info: Mapping[str, Any]) -> Objective:
    """Build the objective named by ``cfg.objective`` from the config and the dataset's properties."""
    return family(cfg)(cfg, data_info)
