"""Typed run configuration: dataclasses, YAML presets and dotted ``key=value`` overrides.

The resolved config is a plain nested dict of YAML-safe values at every file boundary (run
directory, checkpoint), so a run can be rebuilt from its directory with no other input.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .registry import closest


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # fashion-mnist | mnist | cifar10 | folder:PATH | toy:ring8 | toy:grid25
    split: str = "train"
    resolution: int = 28
    channels: int = 1
    data_dir: str | None = None  # overrides GANFORGE_DATA and the default lookup
    num_workers: int = 2  # only for folders too large to hold in memory


@dataclass
class ModelConfig:
    name: str = "dcgan"  # an entry of ganforge.models.ARCHITECTURES
    z_dim: int = 100
    g_width: int = 64  # base channels (conv) or hidden units (mlp) of the generator
    d_width: int = 64
    g_depth: int | None = None  # hidden layers of an mlp generator (None: the architecture's 1)
    d_depth: int | None = None  # hidden layers of an mlp discriminator (None: 1)
    d_norm: str | None = None  # dcgan D normalization: batch (default) | layer | none
    d_spectral_norm: bool = False  # spectral normalization of D's layers (Miyato et al. 2018)
    g_spectral_norm: bool = False  # ... and of G's (Zhang et al. 2019, SAGAN)
    mbstd_group: int = 0  # minibatch standard-deviation layer in D, group size (StyleGAN: 4); 0 off
    pac: int = 1  # PacGAN packing: D scores `pac` samples stacked along channels (Lin et al. 2018)


@dataclass
class LossConfig:
    name: str = "nonsaturating"  # an entry of ganforge.losses.LOSSES
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (Salimans et al. 2016 use 0.1)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | rmsprop (the original WGAN recipe)
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    lr_decay: str = "none"  # none | linear: after lr_decay_start x train.steps, lrs fall linearly to 0
    lr_decay_start: float = 0.5  # fraction of train.steps (the CycleGAN schedule is 0.5)


@dataclass
class TrainConfig:
    steps: int = 5000  # generator steps
    batch_size: int = 64
    n_critic: int = 1  # discriminator steps per generator step
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 only on CUDA, with a grad scaler)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    compile: bool = False  # torch.compile the networks
    ema_decay: float = 0.999  # 0 disables the EMA generator
    ema_start: int = 0  # copy G into the EMA until this step, then average
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    n_sample_grid: int = 64
    on_divergence: str = "rollback"  # rollback | stop | warn, on non-finite losses/weights
    max_rollbacks: int = 3  # then stop with a message
    rollback_lr_factor: float = 0.5  # learning rates are scaled by this at each rollback


@dataclass
class EvalConfig:
    every: int = 0  # 0: no evaluation during training
    n: int = 5000
    metrics: list[str] = field(default_factory=list)  # empty: fid and kid
    best: str = "fid"  # metric that picks the `best` checkpoint (its better direction is known)


@dataclass
class MonitorConfig:
    """Live diagnostics (ganforge.training.monitor): thresholds documented there."""

    enabled: bool = True
    probe_size: int = 64  # fixed latent batch whose diversity is measured every log interval
    window: int = 16  # log records looked back on
    patience: int = 3  # consecutive bad records before an event fires (and clean ones to re-arm)
    warmup_steps: int = 1000  # diversity is judged from here on (or once it was healthy)
    collapse_ratio: float = 0.3  # mode_collapse: diversity below this share of real diversity
    explode_factor: float = 100.0  # divergence: grad norm above this times its recent median
    osc_amplitude: float = 0.3  # oscillation: swing at least this share of the loss level


@dataclass
class RegConfig:
    """Discriminator regularizers (ganforge.regularizers); every weight 0 means off."""

    clip: float = 0.0  # WGAN weight clipping to [-clip, clip] after each D step (paper: 0.01)
    gp: float = 0.0  # WGAN-GP weight lambda (Gulrajani et al. 2017: 10)
    dragan: float = 0.0  # DRAGAN weight lambda (Kodali et al. 2017: 10)
    r1: float = 0.0  # R1 gamma: gamma/2 E||grad D(real)||^2 (Mescheder et al. 2018)
    r2: float = 0.0  # R2 gamma: the same on fakes
    r_interval: int = 1  # lazy R1/R2: a separate "Dreg" step every k steps, scaled by k (StyleGAN2: 16)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs (Sonderby et al. 2017)
    instance_noise_anneal: int = 0  # generator steps over which that std decays linearly to 0; 0 keeps it


@dataclass
class AugmentConfig:
    """Augmentations of everything D sees, real and fake alike (ganforge.augment; images only)."""

    diffaugment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" (Zhao et al. 2020)
    ada: bool = False  # adaptive augmentation (Karras et al. 2020)
    ada_target: float = 0.6  # target of the overfitting heuristic r_t = E[sign(D(real))]
    ada_interval: int = 4  # D steps between updates of p
    ada_kimg: float = 500.0  # thousands of real images for p to move by 1
    ada_p: float = 0.0  # initial augmentation probability


@dataclass
class Config:
    description: str = ""
    objective: str = "unconditional"  # an entry of ganforge.objectives.OBJECTIVES
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    # The sections of the objective's family (``cfg.sr``, ``cfg.translate``, ...), typed by the
    # dataclasses the families register (register_section); reached as attributes.
    sections: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        if name in SECTIONS and not name.startswith("_"):
            owners = ", ".join(sorted(SECTIONS[name].objectives))
            raise AttributeError(f"config section '{name}' belongs to objective {owners}, "
                                 f"not {self.__dict__.get('objective')}")
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: dataclasses.asdict(getattr(self, f.name)) if dataclasses.is_dataclass(
            getattr(self, f.name)) else getattr(self, f.name)
            for f in dataclasses.fields(self) if f.name != "sections"}
        out.update({name: dataclasses.asdict(value) for name, value in self.sections.items()})
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- family sections


@dataclass
class _Section:
    cls: type
    objectives: set[str]


# Section name -> its dataclass and the objectives that read it; filled by the families
# (ganforge.objectives registers each family's ``sections`` when the family is registered).
SECTIONS: dict[str, _Section] = {}


def register_section(name: str, cls: type, *, objective: str) -> None:
    """Declare that ``objective`` reads the config section ``name`` typed by dataclass ``cls``.
    Several objectives may share a section (pix2pix and cyclegan read ``translate``)."""
    if name in _field_types(Config):
        raise ValueError(f"config section '{name}' is a common section; choose another name")
    entry = SECTIONS.setdefault(name, _Section(cls, set()))
    if entry.cls is not cls:
        raise ValueError(f"config section '{name}' registered twice with different classes")
    entry.objectives.add(objective)


def section_names() -> list[str]:
    """The common sections, then the families' (in registration order)."""
    return [n for n, tp in _field_types(Config).items() if dataclasses.is_dataclass(tp)] + list(SECTIONS)


# ----------------------------------------------------------------------------- validation


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every dotted key of the config (family sections included), for 'did you mean' hints."""
    keys = []
    for name, tp in _field_types(cls).items():
        if cls is Config and name == "sections":
            continue
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    if cls is Config:
        for name, section in SECTIONS.items():
            keys += all_keys(section.cls, f"{prefix}{name}.")
    return keys


def _unknown_key(dotted: str) -> ConfigError:
    head = dotted.split(".", 1)[0]
    if head not in all_keys() and head not in section_names() and not SECTIONS:  # a slip
        return ConfigError(f"unknown config key '{dotted}': no family has registered its "
                           f"sections yet; import ganforge.objectives (or use "
                           f"ganforge.load_config) before parsing configs")
    if head not in section_names() and head not in _field_types(Config):
        top = [n for n in _field_types(Config) if n != "sections" and n not in section_names()]
        what = f"section '{head}' in '{dotted}'" if "." in dotted else f"key '{head}'"
        return ConfigError(f"unknown config {what}"
                           f"{closest(head, section_names() + top)}; valid sections: "
                           f"{', '.join(section_names())} (and the keys {', '.join(top)})")
    return ConfigError(f"unknown config key '{dotted}'{closest(dotted, all_keys())}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints widen to floats, nothing else converts."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {_type_name(args[0])}, got {value!r}; "
                              f"write it as {key}=[a,b]")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a path or name that YAML read as a number
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp in (int, float, str) and (not isinstance(value, tp) or isinstance(value, bool)):
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls, data: dict[str, Any], prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a mapping of keys to values")
    types = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in types or (cls is Config and key == "sections"):
            raise _unknown_key(dotted)
        tp = types[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{dotted}.")
        else:
            kwargs[key] = _coerce(value, tp, dotted)
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> Config:
    """A typed, validated Config from plain data (a preset, config.yaml, a checkpoint's config).

    Family sections (``sr:``, ``translate:``, ...) are typed by the dataclass their family
    registered; the objective's own sections are filled with defaults when absent. A section of
    another family is dropped when it holds only defaults (run directories written before
    families declared their sections carry every section) and refused otherwise."""
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of sections to values")
    common = {k: v for k, v in data.items() if k not in SECTIONS}
    cfg = _build(Config, common)
    for name, entry in SECTIONS.items():
        if name not in data and cfg.objective not in entry.objectives:
            continue
        section = _build(entry.cls, data.get(name) or {}, f"{name}.")
        if cfg.objective in entry.objectives:
            cfg.sections[name] = section
        elif section != entry.cls():
            raise ConfigError(f"section '{name}' configures objective "
                              f"{' / '.join(sorted(entry.objectives))}, but this config trains "
                              f"objective={cfg.objective}; remove the {name} section or change "
                              f"the objective")
    validate(cfg)
    return cfg


def available_memory() -> int | None:
    """Bytes of memory this process can still use (MemAvailable on Linux), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _non_finite(obj, prefix: str = "") -> str | None:
    """The dotted key of the first NaN or infinite float in a config section, or None."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return f"{prefix}{f.name}"
    return None


def _validate_sizes(cfg: Config) -> None:
    """Finite numbers, learning rates a GAN can train with, and one float32 training batch
    that fits in memory (a lower bound of what training needs, so it never refuses a run that
    would fit)."""
    named = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if dataclasses.is_dataclass(getattr(cfg, f.name))}
    for name, section in {**named, **cfg.sections}.items():
        bad = _non_finite(section, f"{name}.")
        if bad is not None:
            raise ConfigError(f"{bad} must be a finite number, got {_get_dotted(cfg, bad)}")
    for key, value in {"optim.g_lr": cfg.optim.g_lr, "optim.d_lr": cfg.optim.d_lr}.items():
        # 10 still allowed: a deliberate divergence (tests/test_diagnostics_runs.py) uses it.
        if value > 10:
            raise ConfigError(f"{key}={value:g} is far above any learning rate a GAN trains with "
                              f"(typical: 1e-4 to 1e-3); use a value <= 10")
    res, batch, ch = cfg.data.resolution, cfg.train.batch_size, cfg.data.channels
    need = batch * ch * res * res * 4
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(f"data.resolution={res} with train.batch_size={batch} needs at least "
                          f"{_bytes(need)} for one float32 batch, more than the {_bytes(have)} of "
                          f"memory available; lower data.resolution or train.batch_size")


def _get_dotted(cfg: Config, key: str):
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: Config) -> None:
    """Value checks that types cannot express."""
    _validate_sizes(cfg)
    positive = {
        "train.steps": cfg.train.steps, "train.batch_size": cfg.train.batch_size,
        "train.n_critic": cfg.train.n_critic, "train.log_every": cfg.train.log_every,
        "train.sample_every": cfg.train.sample_every,
        "train.checkpoint_every": cfg.train.checkpoint_every,
        "train.keep_checkpoints": cfg.train.keep_checkpoints,
        "monitor.probe_size": cfg.monitor.probe_size, "monitor.patience": cfg.monitor.patience,
        "data.resolution": cfg.data.resolution, "model.z_dim": cfg.model.z_dim,
        "model.g_width": cfg.model.g_width, "model.d_width": cfg.model.d_width,
        "optim.g_lr": cfg.optim.g_lr, "optim.d_lr": cfg.optim.d_lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    if cfg.train.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"train.precision must be fp32, bf16 or fp16, got '{cfg.train.precision}'")
    if cfg.data.channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3, got {cfg.data.channels}")
    if len(cfg.optim.betas) != 2 or not all(0 <= b < 1 for b in cfg.optim.betas):
        raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {cfg.optim.betas}")
    if cfg.train.on_divergence not in ("rollback", "stop", "warn"):
        raise ConfigError(f"train.on_divergence must be rollback, stop or warn, "
                          f"got '{cfg.train.on_divergence}'")
    if not 0 < cfg.train.rollback_lr_factor <= 1:
        raise ConfigError(f"train.rollback_lr_factor must be in (0, 1], "
                          f"got {cfg.train.rollback_lr_factor}")
    if cfg.monitor.window < 4:
        raise ConfigError(f"monitor.window must be >= 4, got {cfg.monitor.window}")
    if not 0 <= cfg.train.ema_decay < 1:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {cfg.train.ema_decay}")
    _validate_stability(cfg)


def _validate_stability(cfg: Config) -> None:
    """Checks of the model / loss / reg / augment switches (issue 3)."""
    m, r, a = cfg.model, cfg.reg, cfg.augment
    for key, value in {"model.g_depth": m.g_depth, "model.d_depth": m.d_depth,
                       "model.pac": m.pac, "reg.r_interval": r.r_interval,
                       "augment.ada_interval": a.ada_interval, "augment.ada_kimg": a.ada_kimg}.items():
        if value is not None and value <= 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    for key, value in {"model.mbstd_group": m.mbstd_group, "reg.clip": r.clip, "reg.gp": r.gp,
                       "reg.dragan": r.dragan, "reg.r1": r.r1, "reg.r2": r.r2,
                       "reg.instance_noise": r.instance_noise,
                       "reg.instance_noise_anneal": r.instance_noise_anneal}.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if cfg.train.batch_size % m.pac:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is not divisible by "
                          f"model.pac={m.pac}; PacGAN packs pac samples per D input, so choose a "
                          f"batch size that is a multiple of {m.pac}")
    if cfg.optim.lr_decay not in ("none", "linear"):
        raise ConfigError(f"optim.lr_decay must be none or linear, got '{cfg.optim.lr_decay}'")
    if not 0 <= cfg.optim.lr_decay_start < 1:
        raise ConfigError(f"optim.lr_decay_start must be in [0, 1), got {cfg.optim.lr_decay_start}")
    if not 0 <= cfg.loss.label_smoothing < 1:
        raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {cfg.loss.label_smoothing}")
    if not (0 <= a.ada_p <= 1 and 0 < a.ada_target < 1):
        raise ConfigError(f"augment.ada_p must be in [0, 1] and augment.ada_target in (0, 1), "
                          f"got {a.ada_p} and {a.ada_target}")
    if a.ada and a.diffaugment:
        raise ConfigError("augment.ada and augment.diffaugment are alternatives; turn one off "
                          "(augment.diffaugment='' or augment.ada=false)")


# ----------------------------------------------------------------------------- overrides


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'train.steps=500' -> ('train.steps', 500); values are read as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value; write it like train.steps=500")
    key, raw = text.split("=", 1)
    key = key.strip()
    if key not in all_keys():
        raise _unknown_key(key)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # a plain string such as a path with odd characters
    if isinstance(value, dict) and not raw.strip().startswith("{"):
        value = raw  # "folder:" or "folder:a: b" is text that YAML read as a mapping
    return key, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain data
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return data


# ----------------------------------------------------------------------------- presets


def _preset_dir():
    return resources.files("ganforge") / "presets"


def list_presets() -> dict[str, str]:
    """Preset name -> one-line description."""
    out = {}
    for entry in sorted(_preset_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text()) or {}
            out[entry.name[:-5]] = str(data.get("description", "")).strip()
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the file or start from a preset "
                          f"(ganforge presets)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections, got {type(data).__name__}")
    return data


def load_raw(preset_or_file: str) -> tuple[str, dict[str, Any]]:
    """Return (run name, raw dict) for a preset name or a YAML file path."""
    path = Path(preset_or_file)
    if preset_or_file.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass a preset name "
                              f"(ganforge presets) or an existing YAML file")
        return path.stem, _read_yaml(path)
    presets = list_presets()
    if preset_or_file not in presets:
        raise ConfigError(f"unknown preset '{preset_or_file}'{closest(preset_or_file, presets)}; "
                          f"run 'ganforge presets' to list them")
    text = (_preset_dir() / f"{preset_or_file}.yaml").read_text()
    return preset_or_file, yaml.safe_load(text)


def load_config(preset_or_file: str, overrides: list[str] | None = None) -> tuple[str, Config]:
    name, raw = load_raw(preset_or_file)
    return name, from_dict(apply_overrides(raw, overrides or []))
