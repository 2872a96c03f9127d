"""The Python API: build a run from a config and train it; ``load`` (from ``inference``) brings
it back.

Data flows one way: config -> build(objective, dataset) -> Trainer.fit -> run directory ->
load / sample (``inference``). Nothing here knows an architecture or a loss.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import numpy as np
import torch

from . import config as config_mod
from . import progress as progress_lines
from . import rundir, signals
from .atomic import atomic_write_text
from .config import Config, load_config  # noqa: F401  (ganforge.load_config, families registered)
from .data import folder as folder_data
from .data.base import absolute_data_name
from .errors import (ConfigError, DataError, DistributedError, GanforgeError, TrainingInterrupted,
                     shell_arg, warn)
from .objectives import Objective, family
from .objectives.base import DATA_STATE, check_training, data_record
from .training import checkpoint as ckpt
from .training import distributed
from .training.precision import resolve_device, resolve_precision
from .training.trainer import OPTIMIZERS, FitResult, Hook, Trainer
# the inference side too, for ganforge.load / ganforge.LoadedRun and code written against api
from .inference import (LoadedRun, check_capability, check_sample_memory, load,  # noqa: F401
                        presets_that_can, to_uint8_hwc)
from .runfiles import MODEL_CONFIG, MODEL_WEIGHTS, PLUGINS_FILE, is_model_folder  # noqa: F401
from .runfiles import naming_plugins, record_plugins, saved_config


def load_data(cfg: Config):
    """The training data ``cfg`` names, read the way its family reads it."""
    return family(cfg).load_data(cfg)


def build(cfg: Config, dataset=None, device: torch.device | None = None, *, resuming: bool = False):
    """(objective, dataset) for a config, ready to train: the family named by ``cfg.objective``
    loads its data (unless ``dataset`` is given), sizes its networks from it (initialised from
    ``train.seed``) and prepares what only training needs (``resuming``: a checkpoint's weights
    and state replace the initial ones next, so initial weights from elsewhere are not read)."""
    fam = family(cfg)
    dataset = fam.load_data(cfg) if dataset is None else _given_dataset(cfg, dataset)
    info = fam.data_info(cfg, dataset)
    torch.manual_seed(cfg.train.seed)
    objective = fam(cfg, info)
    objective.resuming = resuming
    objective.trained_on = data_record(dataset)  # kept in its checkpoints for a resume to compare
    objective.data_words = fam.describe_data(dataset)  # the CLI's start line: "(60000 images)"
    objective.prepare_training(dataset)
    return objective, dataset


def _given_dataset(cfg: Config, dataset):
    """A dataset passed from Python, checked: raw arrays, tensors, paths and torch Datasets are
    refused in one line naming what is taken (they had failed deep inside with AttributeError);
    an ImageDataset of another resolution or channel count is adapted to ``data.resolution`` and
    ``data.channels`` as a folder is, with a warning (its images had reached D at their own size,
    or failed in the first step)."""
    from .data import ImageDataset
    from .data.base import adapt_images

    if isinstance(dataset, (torch.Tensor, np.ndarray, str, Path, list, tuple, dict)) or not hasattr(dataset, "name"):
        raise ConfigError(f"dataset must be a ganforge dataset, got {type(dataset).__name__}; wrap uint8 images "
                          f"[N, C, H, W] as ganforge.data.ImageDataset(images=..., labels=None, class_names=None, "
                          f"source='memory', name='mine'), or set data.name=folder:PATH")
    if not isinstance(dataset, ImageDataset):
        return dataset  # a family's own kind (pairs, audio, points, a streamed folder)
    images = dataset.images
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4
            and images.shape[1] in (1, 3)):
        raise ConfigError(f"dataset.images must be a uint8 tensor (or numpy array) [N, C, H, W] with C = 1 or 3, got "
                          f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    dataset = _checked_labels(dataset)
    want = (cfg.data.channels, cfg.data.resolution, cfg.data.resolution)
    if tuple(images.shape[1:]) != want:
        import dataclasses

        warn(f"dataset {dataset.name}: images {tuple(images.shape[1:])} adapted to data.channels="
                      f"{want[0]} and data.resolution={want[1]} ({want[0]}x{want[1]}x{want[2]}), as a folder is")
        dataset = dataclasses.replace(dataset, images=adapt_images(images, want[1], want[0]))
    return dataset


GIVEN_DATASET = rundir.GIVEN_DATASET  # RUN/dataset.json: the dataset passed from Python


def _record_given_dataset(run_dir: Path, dataset) -> None:
    """RUN/dataset.json names the dataset passed from Python that the run trains on, and its
    size (the report and the model card say "mine, passed from Python (256 images)")."""
    record = {"name": str(dataset.name)}
    try:
        record["images"] = len(dataset)
    except TypeError:  # a dataset without a length: its name alone
        pass
    atomic_write_text(run_dir / GIVEN_DATASET, json.dumps(record) + "\n")


def _check_given_dataset(run_dir: Path, dataset) -> None:
    """A resume without ``dataset=`` of a run trained on one passed from Python is refused: it
    had resumed on the config's data.name (the preset's dataset) and exited 0."""
    path = run_dir / GIVEN_DATASET
    if dataset is not None or not path.is_file():
        return
    try:
        name = json.loads(path.read_text())["name"]
    except (OSError, ValueError, KeyError, TypeError):  # a damaged record still says Python
        name = "?"
    raise ConfigError(f"{run_dir} was trained on the dataset '{name}' passed from Python; resume it with "
                      f"ganforge.train(cfg, {str(run_dir)!r}, resume=True, dataset=...)")


# In a run evaluated by the caller's hooks (train's hooks=): their names. A resume without them had
# evaluated on with the built-in FID/KID hook, its values in the same metrics.jsonl and 'best'.
GIVEN_HOOKS = rundir.GIVEN_HOOKS  # RUN/hooks.json: the hooks passed from Python


def _caller_hooks(hooks) -> list:
    """train's ``hooks`` as a list: one hook, not in a list (or no hook at all, which check_hook
    names), is one item; a generator is read once, here."""
    if callable(hooks) or isinstance(hooks, str) or not isinstance(hooks, Iterable):
        return [hooks]
    return list(hooks)


def _record_given_hooks(run_dir: Path, hooks: list) -> None:
    """RUN/hooks.json names the hooks passed from Python that evaluate the run."""
    from .training.trainer import _hook_name

    atomic_write_text(run_dir / GIVEN_HOOKS, json.dumps({"hooks": [_hook_name(h) for h in hooks]}) + "\n")


def _check_given_hooks(run_dir: Path, cfg: Config, hooks: list) -> None:
    """A resume without ``hooks=`` of a run evaluated by hooks passed from Python is refused while
    eval.every would run the built-in FID/KID hook in their place."""
    path = run_dir / GIVEN_HOOKS
    if hooks or cfg.eval.every <= 0 or not path.is_file():
        return
    try:
        names = ", ".join(str(n) for n in json.loads(path.read_text())["hooks"]) or "?"
    except (OSError, ValueError, KeyError, TypeError):  # a damaged record still says Python
        names = "?"
    raise ConfigError(f"{run_dir} was evaluated by your own hooks= ({names}), and a resume without them would "
                      f"score it with the built-in FID/KID from here on; resume it with ganforge.train(cfg, "
                      f"{str(run_dir)!r}, resume=True, hooks=...), or override eval.every=0 to train on without "
                      f"evaluation (to switch to the built-in metrics, delete {path})")


def _checked_labels(dataset):
    """An ImageDataset's labels, checked before training: an int64 tensor [N] (one per image) of
    classes 0..K-1, K = len(class_names) when given. Out-of-range, float or too few labels had
    failed deep in torch (an embedding's IndexError, a batch index past the end). Labels without
    class_names get the indices as names (``"0"``, ``"1"``, ...), as a folder without names would."""
    import dataclasses

    labels, names, n = dataset.labels, dataset.class_names, len(dataset.images)
    if labels is None:
        return dataset
    need = (f"dataset.labels must be integer class indices [N] = [{n}], one per image, in "
            f"0..K-1 (K = len(class_names))")
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))  # a reversed view has negative strides
    if not isinstance(labels, torch.Tensor):
        raise DataError(f"{need}; got {type(labels).__name__}: pass torch.as_tensor(labels, dtype=torch.int64)")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise DataError(f"{need}; got {labels.dtype}: pass labels.long() of whole class numbers")
    if tuple(labels.shape) != (n,):
        raise DataError(f"{need}; got shape {tuple(labels.shape)} for {n} images: give one label per image")
    labels = labels.to(torch.int64)
    if names is not None and len(names) == 0:
        raise DataError("dataset.class_names is empty; give one name per class, or None")
    k = len(names) if names is not None else None
    low, high = (int(labels.min()), int(labels.max())) if n else (0, -1)
    if low < 0 or (k is not None and high >= k):
        bad = low if low < 0 else high
        limit = f"0..{k - 1} (K = len(class_names) = {k})" if k is not None else "0 or more"
        raise DataError(f"dataset.labels hold class {bad}, outside {limit}; give labels in that range"
                        f"{' or one class name per class' if k is not None else ''}")
    if names is None:
        names = [str(i) for i in range(high + 1)]
    return dataclasses.replace(dataset, labels=labels, class_names=names)


def _absolute_data_paths(cfg: Config) -> None:
    """The data paths of ``cfg`` made absolute (~ expanded), against the current directory, where
    they are read from: data.name's folder:/audio: path and data.data_dir, so that the saved
    config finds the same data from any directory."""
    cfg.data.name = absolute_data_name(cfg.data.name)
    if cfg.data.data_dir:
        cfg.data.data_dir = os.path.abspath(os.path.expanduser(cfg.data.data_dir))


def capabilities(cfg: Config) -> frozenset[str]:
    """What a run of ``cfg`` will offer once trained (``sample``, ``translate``, ...)."""
    return family(cfg).capabilities


class DefaultRunDir(type(Path())):
    """A run directory no one chose (default_run_dir's): ``train`` takes the next free -2, -3,
    ... where it is taken (rundir.claim_default_run_dir); any other path that exists is refused."""


def default_run_dir(name: str) -> Path:
    """runs/NAME-TIMESTAMP, marked as the default (the CLI passes it to ``train`` without --out)."""
    return DefaultRunDir("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_run_dir(run_dir: Path, cfg: Config, *, resume: bool, force: bool) -> rundir.RunLock:
    """Lock ``run_dir`` for this process and, for a new run, create it (``force``: empty a
    directory that is recognisably a ganforge run no live process holds) and write config.yaml.
    Returns the held lock; the caller releases it when training ends."""
    if resume:
        return rundir.lock_existing_run(run_dir)
    lock, _created = rundir.claim_run_dir(run_dir, force=force)
    atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    return lock


def resume_config(run_dir: Path, overrides: list[str]) -> Config:
    """The saved config of ``run_dir`` with ``overrides`` applied (e.g. more train.steps). The
    description (the report's header, the model card) says what a resume changed: it had kept
    naming the overrides of the first start ("with train.steps=100" in a run of 40 steps)."""
    raw = saved_config(Path(run_dir))
    with naming_plugins(Path(run_dir), training=True):
        cfg = config_mod.from_dict(config_mod.apply_overrides(raw, overrides))
    # a relative data.name=folder:PATH repeated from the run's first directory is no change
    _absolute_data_paths(cfg)
    changes = config_changes(config_mod.from_dict(raw), cfg)
    if changes and cfg.description and not any(str(o).strip().startswith("description=") for o in overrides):
        cfg.description += "; resumed with " + " ".join(f"{k}={v[1]}" for k, v in changes.items())
    return cfg


# Keys whose saved training state cannot follow a change, though no weight changes shape.
_RESUME_FIXED = {"objective": "the checkpoint holds another family's networks",
                 "optim.name": "the checkpoint holds another optimizer's state"}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old value, new value) for every value that differs (the free-text
    description is no setting)."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if k != "description" and not _same_value(a.get(k), b.get(k))}


def _same_value(a: Any, b: Any) -> bool:
    """Equal, or two spellings of one existing path (a run saves sr.init_from absolute; the
    resume command may repeat it relative)."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and absolute_data_name(a) == absolute_data_name(b):
        return True  # data.name=folder:imgs of a run saved before data paths were made absolute
    if isinstance(a, str) and isinstance(b, str) and a and b:
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    return False


def _weight_shapes(cfg: Config, state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The weight shapes the networks of ``cfg`` have (built from the checkpoint's data
    properties, as ``ganforge.load`` does, without reading any data)."""
    fam = family(cfg)
    objective = fam(cfg, fam.info_from_state(cfg, state.get("objective", {})))
    return {k: tuple(v.shape) for k, v in ckpt.flatten_weights(objective.nets).items()}


def check_resume_changes(run_dir: Path, cfg: Config, weights: dict[str, torch.Tensor],
                         state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The config changes a resume makes to the checkpoint's config. One that changes the
    shape of a weight (or the family or optimizer) is refused in one line naming the key."""
    saved = config_mod.from_dict(state["config"])
    changes = config_changes(saved, cfg)
    for key, why in {**_RESUME_FIXED, **family(saved).resume_fixed}.items():
        if key in changes:
            raise ConfigError(f"cannot resume {run_dir} with {key}={changes[key][1]} (the run has "
                              f"{changes[key][0]}): {why}; drop the override (or undo the edit of "
                              f"{run_dir}/config.yaml) or start a new run with another {rundir.OUT}")
    if not changes:
        return changes
    have = {k: tuple(v.shape) for k, v in weights.items() if not k.startswith("ema.")}
    if _weight_shapes(saved, state) != have:  # a checkpoint of another layout: cannot attribute
        return changes
    if _weight_shapes(cfg, state) != have:
        culprits = []
        for key, (_old, value) in changes.items():  # which change alone alters a shape
            data = saved.to_dict()
            config_mod._set_dotted(data, key, value)
            try:
                one = config_mod.from_dict(data)
            except GanforgeError:
                continue
            if _weight_shapes(one, state) != have:
                culprits.append(key)
        keys = culprits or list(changes)  # none alone: together (or any of them)
        given = ", ".join(f"{k}={changes[k][1]}" for k in keys)
        had = ", ".join(f"{k}={changes[k][0]}" if len(keys) > 1 else str(changes[k][0]) for k in keys)
        it = "it changes" if len(keys) == 1 else "each changes" if culprits else "together they change"
        raise ConfigError(f"cannot resume {run_dir} with {given} (the run has {had}): {it} the shape of "
                          f"the networks' weights; drop {'the override' if len(keys) == 1 else 'them'} (or "
                          f"undo the edit of {run_dir}/config.yaml) or start a new run with another {rundir.OUT}")
    return changes


def _check_steps_left(run_dir: Path, cfg: Config, state: dict[str, Any], changes: dict[str, tuple[Any, Any]]) -> None:
    """A resume that changes settings but has no step left to train is refused: it would only
    rewrite the run's saved config and record (a mistyped --steps 10 of a run at step 100 had
    left "Steps 100 of 10" in its report)."""
    step = int(state.get("step", 0))
    if changes and cfg.train.steps <= step:  # nothing would train; the changes would only rewrite the record
        more = max(2 * step, step + 1000)
        raise ConfigError(f"cannot resume {run_dir} with {', '.join(f'{k}={v[1]}' for k, v in changes.items())}: "
                          f"the run is already at step {step}, so nothing would train and only its saved config "
                          f"would change; pass a larger train.steps (e.g. --steps {more}; it counts from the "
                          f"start of the run)")


def _check_resume_data(run_dir: Path, objective, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """The networks the data builds against the checkpoint's weights: a class folder with another
    number of classes resized the class embeddings, which loading would meet as a traceback. The
    same number of classes under other names trains on, with a warning."""
    saved = (state.get("objective") or {}).get("class_names")
    names = getattr(objective, "class_names", None)
    names = list(names) if names else None
    classes = (f" (the run has {len(saved or [])} classes, {_names(saved)}; the data has "
               f"{len(names or [])}, {_names(names)})") if saved != names else ""
    built = {k: tuple(v.shape) for k, v in ckpt.flatten_weights(objective.nets).items()}
    for key, shape in weights.items():
        if not key.startswith("ema.") and key in built and tuple(shape.shape) != built[key]:
            raise ConfigError(f"cannot resume {run_dir} on this data: the networks it builds differ from "
                              f"the checkpoint's ({key} {list(built[key])} against {list(shape.shape)})"
                              f"{classes}; train on the run's data, or start a new run with another {rundir.OUT}")
    if classes and saved and names:
        warn(f"resuming {run_dir} with other class names{classes}: each class index keeps "
                      f"what it learned under the old name")
    saved_data = (state.get("objective") or {}).get(DATA_STATE)
    changed = _data_change(saved_data, objective.trained_on, int(state.get("step", 0)))
    if changed:
        warn(f"resuming {run_dir} on other data: {changed}: the resume trains on the new set "
                      f"and is not bit-exact")
    elif isinstance(saved_data, dict) and isinstance(objective.trained_on, dict) and isinstance(
            saved_data.get("held_out"), bytes) and saved_data["held_out"] != objective.trained_on.get("held_out"):
        unit = "pairs" if "pairs" in objective.trained_on else "images"  # a test/ folder edited
        warn(f"resuming {run_dir} with other held-out {unit}: training goes on as before, but the sample "
             f"grids and translate-eval now show other {unit} than up to step {int(state.get('step', 0))}")


def _data_change(saved, now, step: int) -> str | None:
    """How the data of a resume differs from what the run trained on up to the checkpoint's
    ``step`` (data_record): 'the folder now holds 190 images, the run trained on 40 up to step 4
    (+160/-10)'; None when it is the same, or when either side has no record (a checkpoint from
    before it was kept, audio). Images in memory of the same count compare by their
    fingerprint when both sides have one (a checkpoint from before it was kept has none)."""
    if not isinstance(saved, dict) or not now:
        return None
    unit = next((u for u in ("images", "pairs", "points") if u in now), None)
    if unit is None or not isinstance(saved.get(unit), int):
        return None
    old, new = saved[unit], now[unit]
    files = (saved.get("files"), now.get("files"))
    if not all(isinstance(f, bytes) for f in files):  # in memory (named or from Python): count and fingerprint
        if old != new:
            return f"the data now has {new} {unit}, the run trained on {old} up to step {step}"
        marks = (saved.get("fingerprint"), now.get("fingerprint"))
        if all(isinstance(m, str) for m in marks) and marks[0] != marks[1]:
            return (f"the data now has other {unit} than the run trained on up to step {step} "
                    f"({new} both times, other content)")
        return None
    if files[0] == files[1]:
        return None
    held = _held_out_change(saved, now, unit)
    before, after = (np.frombuffer(f, dtype="<u8") for f in files)
    added, removed = len(np.setdiff1d(after, before)), len(np.setdiff1d(before, after))
    return (f"the folder now holds {new} {unit}, the run trained on {old} up to step {step} (+{added}/-{removed})"
            + (f"; its held-out {unit} {held}" if held else ""))


def _held_out_change(saved: dict, now: dict, unit: str) -> str:
    """What changed in a translation folder's held-out split (data_record's "held_out"), which
    translate-eval scores and the sample grids show: every k-th file is held out, so a file added
    or removed moves it, and pairs the run had trained on come to be scored as held out."""
    held = (saved.get("held_out"), now.get("held_out"))
    if not all(isinstance(h, bytes) for h in held) or held[0] == held[1]:
        return ""
    trained, held_now = np.frombuffer(saved["files"], dtype="<u8"), np.frombuffer(held[1], dtype="<u8")
    seen = len(np.intersect1d(held_now, trained))
    fixed = "a test/ folder" if unit == "pairs" else "testA/ and testB/ folders"
    return ("changed" + (f", and {seen} of the {len(held_now)} now held out were trained on, so "
                         f"translate-eval's scores of them are not held-out scores" if seen else "")
            + f" ({fixed} keep{'s' if unit == 'pairs' else ''} them fixed)")


def _names(names: list[str] | None) -> str:
    return "none" if not names else ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _record_changes(trainer: Trainer, changes: dict[str, tuple[Any, Any]]) -> None:
    """The one-line notice and the metrics.jsonl event of a resume that changes the config,
    also told to the monitor: a new loss, rate or regularizer sets a new scale of the losses and
    grad norms, which the saved windows must not judge (Monitor.note)."""
    text = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items())
    print(f"ganforge: resuming at step {trainer.step} with a changed config: {text}", flush=True)
    event = {"event": "config_change", "step": trainer.step, "message": f"config changed on resume: {text}",
             "evidence": {k: [old, new] for k, (old, new) in changes.items()}}
    trainer.logger.write(event)
    if trainer.monitor is not None:
        trainer.monitor.note(event)


def _check_data_dir(cfg: Config) -> None:
    d = cfg.data.data_dir
    if d is not None and not Path(d).expanduser().is_dir():
        raise DataError(f"data.data_dir (--data-dir) {d} does not exist or is not a directory; "
                        f"pass the folder that holds the dataset, or leave it out to use the "
                        f"usual places")


def _build_checked(cfg: Config, dataset, *, resuming: bool = False):
    """build(), with running out of memory (an absurd resolution, width or batch) as one line."""
    try:
        return build(cfg, dataset, resuming=resuming)
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise ConfigError(f"this config needs more memory than the machine has (data.resolution="
                          f"{cfg.data.resolution}, train.batch_size={cfg.train.batch_size}, model "
                          f"widths {cfg.model.g_width}/{cfg.model.d_width}); lower them") from None


def train(cfg: Config, run_dir: Path | str | None = None, *, name: str = "run",
          resume: bool = False, force: bool = False, progress: bool = True,
          hooks: Hook | Iterable[Hook] = (), dataset=None,
          on_start: Callable[..., None] | None = None) -> FitResult:
    """Train ``cfg`` into ``run_dir`` (default runs/<name>-<timestamp>, with -2, -3, ... added
    when another run took that name in the same second).

    Everything that can be checked is checked before anything is written: the run directory
    (see ganforge.rundir), the data, the networks and, on resume, the config changes against
    the checkpoint. The run directory is locked for this process while it trains; a new run
    that fails to start leaves nothing behind.

    ``hooks``: a callable ``hook(trainer, step) -> {name: number}`` or a list of them, run every
    ``eval.every`` steps in place of the built-in FID/KID hook (their values are logged and
    ``eval.best`` picks from them, its better direction declared as ``eval.best=NAME:higher``
    or ``NAME:lower``; 0-d tensors and numpy scalars count as numbers, None logs nothing);
    ``dataset``: a ``ganforge.data.ImageDataset`` to train on instead of ``data.name`` (the run
    records its name in RUN/dataset.json, and a resume without it is refused; the built-in FID/KID
    hook, which scores against data.name's dataset, is refused with it: pass ``hooks``);
    ``on_start(run_dir)``: called on the main rank once the checks have passed, the data is read
    and the run directory is locked for this process (a new one created), before config.yaml or
    anything else is written (the CLI says "training ..." there, not before a refusal);
    one that takes a ``data`` keyword gets what the run trains on in words ("40 images", or None),
    one that takes ``step`` the step a resume continues from (None for a start).

    Ctrl-C or SIGTERM while it trains saves a checkpoint and raises ``TrainingInterrupted`` (a
    KeyboardInterrupt, so a script or notebook cell stops; its ``result`` is the FitResult, its
    message says how to resume); a second Ctrl-C stops at once (a plain KeyboardInterrupt).

    Two train() calls at once in one process (threads) share torch's global random state, so
    neither is reproducible: train several runs in separate processes.

    Under torchrun (WORLD_SIZE > 1) every rank calls this: the process group is joined first,
    rank 0 alone claims, locks and writes the run directory, and the others read it (resume)
    after a barrier."""
    if resume and force:  # as the CLI refuses it: resuming had quietly won
        raise ConfigError(f"{rundir.RESUME} continues the run in {rundir.OUT} and {rundir.FORCE} "
                          f"replaces it; pass one of them")
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):  # had been pathlib's TypeError
        raise ConfigError(f"run_dir must be a path (str or pathlib.Path) of the run directory, got "
                          f"{run_dir!r} ({type(run_dir).__name__})")
    if resume and run_dir is None:  # a new timestamped name had been invented and found empty
        raise ConfigError("resume=True needs run_dir, the run directory to continue: "
                          "ganforge.train(cfg, 'runs/NAME', resume=True)")
    # A Config edited in Python (cfg.train.steps = -3, cfg.optim.lr = ...) has skipped the checks
    # overrides get: run them again, before anything is written
    cfg = config_mod.checked(cfg)
    hooks = _caller_hooks(hooks)  # read once: a generator's hooks are also those the run records
    _absolute_data_paths(cfg)  # saved so: resume and eval from anywhere
    owns_group = not torch.distributed.is_initialized()  # a caller's group stays theirs
    world, device = distributed.init(resolve_device(cfg.train.device))
    try:
        # training seeds torch's global generator (train.seed): the caller's stream is restored after
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _training_defaults():
            distributed.local_batch(cfg.train.batch_size, world, cfg.model.pac)
            with warnings.catch_warnings():
                if os.environ.get(distributed.CHECKED_BY_LAUNCHER) == "1":  # --nproc's launcher said them
                    warnings.simplefilter("ignore")
                check_training(cfg, world.size, new=not resume)
            run_dir = default_run_dir(name) if run_dir is None else run_dir
            default, run_dir = isinstance(run_dir, DefaultRunDir), Path(run_dir)  # a plain path from here on
            claimed = None  # the lock of a default run directory, claimed now under a free name
            if world.is_main and not resume and default:
                run_dir, claimed = rundir.claim_default_run_dir(run_dir)
            try:
                run_dir = Path(distributed.broadcast(str(run_dir), world))  # rank 0's name
            except BaseException:
                if claimed is not None:
                    rundir.undo_failed_start(run_dir, claimed, True)
                    claimed.release()
                raise
            try:
                if world.is_main:
                    with naming_plugins(run_dir, training=True) if resume else contextlib.nullcontext():
                        result = _train_main(cfg, run_dir, device, resume=resume, force=force, progress=progress,
                                             hooks=hooks, dataset=dataset, on_start=on_start, claimed=claimed)
                else:
                    result = _train_other(cfg, run_dir, device, resume=resume, hooks=hooks, dataset=dataset)
            except GanforgeError as exc:  # the other ranks, waiting in a collective, can name it
                if not isinstance(exc, DistributedError):  # that names another rank's failure
                    distributed.record_failure(world, str(exc))
                raise
            except Exception as exc:  # a collective before training met a rank that stopped
                if not distributed.is_peer_failure(exc, world):
                    raise
                raise distributed.peer_failure(world, exc, None, "fix that rank's error and start "
                                                                 "again") from None
    finally:
        if owns_group and world.enabled:
            distributed.shutdown()
    if result.interrupted:  # the checkpoint is saved: stop the caller's script as a Ctrl-C does
        given = (", hooks=..." if hooks else "") + (", dataset=..." if dataset is not None else "")
        raise TrainingInterrupted(result, f"Continue with: ganforge.train(cfg, {str(result.run_dir)!r}, "
                                          f"resume=True{given})")
    return result


@contextlib.contextmanager
def _training_defaults():
    """torch's process-wide settings that training needs, whatever the caller set, and the caller's
    back after: gradients on (a notebook's ``torch.no_grad()``, ``inference_mode`` or
    ``set_grad_enabled(False)`` had ended training in a traceback) and float32 as the default dtype
    (after ``torch.set_default_dtype(torch.float64)`` an image run had failed on float images against
    double weights, and a toy run had trained in float64 while its start line said fp32)."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.set_default_dtype(dtype)


def _eval_hooks(cfg: Config, hooks: Iterable[Hook], *, given_data: bool = False) -> list[Hook]:
    """The caller's hooks, else the metrics hook when ``eval.every`` asks for one (built before
    training, so a missing extractor fails now; on every rank, which share its work). The
    caller's hooks run every ``eval.every`` steps in its place: without it they would never run.
    ``given_data``: the run trains on a dataset passed from Python, which the metrics hook (it
    scores against the dataset data.name names) cannot take: refused."""
    from .training.trainer import check_hook

    hooks = _caller_hooks(hooks)
    for hook in hooks:  # now, not at the first evaluation eval.every steps into training
        check_hook(hook)
    if hooks and cfg.eval.every <= 0:
        raise ConfigError(f"hooks run every eval.every steps, and eval.every={cfg.eval.every} never runs "
                          f"them; set eval.every (e.g. cfg.eval.every = 500)")
    if hooks:
        _check_best_direction(cfg)
    if cfg.eval.every > 0 and not hooks:
        from .data.toy import toy_mixture
        from .metrics import training_hook

        names = cfg.eval.metrics or ["fid", "kid"]
        _check_training_metrics(cfg, names)
        if given_data:  # it had scored, and picked 'best', against the preset's dataset
            raise ConfigError(f"eval.every={cfg.eval.every} with dataset=: the built-in FID/KID hook scores "
                              f"against a named dataset, not images passed from Python; pass hooks= (your own "
                              f"scoring) or eval.every=0")
        if toy_mixture(cfg.data.name) is not None:  # it had asked for Inception weights
            raise ConfigError(f"eval.every={cfg.eval.every}: FID/KID score images, and {cfg.data.name} is "
                              f"2-D points; set eval.every=0 and measure modes captured with ganforge "
                              f"bench modes --data {cfg.data.name}")
        hooks.append(training_hook(cfg, metrics=names, n=cfg.eval.n, extractor=cfg.eval.extractor or None))
    return hooks


def _check_best_direction(cfg: Config) -> None:
    """eval.best of the caller's hooks has a known better direction: a built-in metric's, or one
    declared as NAME:higher / NAME:lower (a hook's accuracy had been taken as lower is better,
    marking the worst step 'best')."""
    from .metrics.evaluation import better

    key, direction = config_mod.best_metric(cfg.eval.best)
    if direction is None and not better(key):
        raise ConfigError(f"eval.best={key}: whether a higher or a lower {key} is better is unknown (it is no "
                          f"built-in metric); declare it: eval.best={key}:higher (or {key}:lower)")


def _check_training_metrics(cfg: Config, names: list[str]) -> None:
    """Before training: eval.best is one of the metrics computed (a typo, or one left out of
    eval.metrics, had trained to the end without a 'best' checkpoint), and each of eval.metrics
    applies to this family's training-time samples (one that did not failed at the first
    evaluation, naming the command's --metrics)."""
    from .metrics.evaluation import METRICS, better

    for name in names:
        needs = METRICS.get(name).needs  # an unknown name: the registry's one line
        if "labels" in needs and "sample_labels" not in family(cfg).capabilities:
            raise ConfigError(f"eval.metrics: '{name}' needs labelled samples, which objective={cfg.objective} does "
                              f"not draw; leave it out of eval.metrics")
        if "generator" in needs:
            raise ConfigError(f"eval.metrics: '{name}' needs the generator itself; measure it after training "
                              f"with ganforge eval RUN --metrics {name}, and leave it out of eval.metrics")
    best, direction = config_mod.best_metric(cfg.eval.best)
    try:
        METRICS.get(best.removesuffix("_std"))
    except ConfigError as exc:  # eval.best=fdi: did you mean fid
        if direction is not None:  # NAME:higher declares a value of the caller's hooks, not passed now
            raise ConfigError(f"eval.best={cfg.eval.best} names a value of your own hooks=; resume (or train) "
                              f"from Python with the same hooks, or override eval.every=0 (or eval.best=fid)"
                              ) from None
        raise ConfigError(f"eval.best: {exc}") from None
    if best not in names and best.removesuffix("_std") not in names:
        raise ConfigError(f"eval.best={best} is not among the metrics computed during training "
                          f"({', '.join(names)}); add it to eval.metrics or pick one of them")
    known = better(best)
    if direction is not None and known and direction != known:  # fid:higher would keep the worst
        way = "closer to 1" if known == "1" else known
        raise ConfigError(f"eval.best={cfg.eval.best}: {best} is better when it is {way}; drop ':{direction}' "
                          f"(a direction is for a metric of your own hook)")


def _train_other(cfg: Config, run_dir: Path, device: torch.device, *, resume: bool, hooks: Iterable[Hook],
                 dataset=None) -> FitResult:
    """A rank other than 0: it writes nothing; it waits until rank 0 has claimed the run
    directory, then reads the checkpoint to resume from (the directory must be on a file system
    every node sees). Of the hooks it runs those that share their work (``all_ranks``)."""
    resuming = resume and any((run_dir / "checkpoints").glob("step_*"))  # as rank 0 decides below
    given_data = dataset is not None
    objective, dataset = _build_checked(cfg, dataset, resuming=resuming)
    batches = objective.make_batches(dataset, cfg, device)
    hooks = _eval_hooks(cfg, hooks, given_data=given_data)
    world = distributed.current_world()
    distributed.barrier(world)  # rank 0 has claimed and checked the run dir
    source = ckpt.find(run_dir) if resume and any((run_dir / "checkpoints").glob("step_*")) else None
    distributed.same_on_all_ranks(_resume_point(source), world, "the checkpoint to resume from")
    trainer = Trainer(cfg, objective, batches, run_dir=run_dir, device=device, hooks=hooks, progress=False,
                      given_data=given_data, given_name=dataset.name if given_data else None)
    if source is not None:
        weights, state = ckpt.load(source, map_location=device)
        trainer.load(weights, state, source=source)
    try:
        return trainer.fit()
    except Exception as exc:  # rank 0 decides what the run directory keeps; this rank writes nothing
        if is_out_of_memory(exc):
            raise out_of_memory_error(cfg, trainer, run_dir, removed=False) from exc
        raise


def _call_on_start(on_start: Callable[..., None], run_dir: Path, objective: Objective,
                   step: int | None = None) -> None:
    """``on_start(run_dir)``, with ``data=`` what the run trains on in words ("40 images", or
    None) and ``step=`` the step a resume continues from (None when it starts), each when the
    callback takes that keyword, as the CLI's start line does."""
    try:
        takes = inspect.signature(on_start).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        takes = {}
    given = {"data": objective.data_words, "step": step}
    on_start(run_dir, **{key: value for key, value in given.items() if key in takes})


def _resume_point(source: Path | None) -> str:
    """What a rank resumes from, compared across ranks: the checkpoint's name and the size of its
    state file (a stale copy of the run directory on one node differs)."""
    if source is None:
        return "a new start"
    state = source / "state.pt"
    return f"{source.name} ({state.stat().st_size} bytes)" if state.exists() else source.name


def _train_main(cfg: Config, run_dir: Path, device: torch.device, *, resume: bool, force: bool,
                progress: bool, hooks: Iterable[Hook], dataset,
                on_start: Callable[..., None] | None = None,
                claimed: rundir.RunLock | None = None) -> FitResult:
    """Rank 0's training; ``claimed``: the lock of the new default run directory train() took."""
    lock, created = claimed, claimed is not None
    given_data = dataset is not None
    try:
        _check_data_dir(cfg)
        if resume:
            lock = rundir.lock_existing_run(run_dir)
        elif claimed is None:
            rundir.check_new_run_dir(run_dir, force=force)  # refused now, before data is read
        weights = state = None
        changes: dict[str, tuple[Any, Any]] = {}
        resumed_from = None
        if resume:  # first (the lock is ours): a step a kill left moved aside is put back, then found
            ckpt.clean_leftovers(run_dir / "checkpoints")
            rundir.check_checkpoints_left(run_dir)
        if resume and any((run_dir / "checkpoints").glob("step_*")):
            resumed_from = ckpt.find(run_dir)
            weights, state = ckpt.load(resumed_from, map_location=device)
            changes = check_resume_changes(run_dir, cfg, weights, state)
            _check_steps_left(run_dir, cfg, state, changes)
        if resume:
            _check_given_dataset(run_dir, dataset)
        try:
            with progress_lines.silenced(not progress):  # --quiet: no "read 53 of 523 images" lines
                objective, dataset = _build_checked(cfg, dataset, resuming=weights is not None)
        except DataError as exc:
            if not resume or folder_data.TRAIN_FIX not in str(exc):
                raise
            # a resumed run's folder moved: the fix is this run's resume with the new place, not
            # the new dcgan-folder run that training's advice shows
            raise DataError(str(exc).replace(folder_data.TRAIN_FIX, (
                f"if it moved, resume with its new place: ganforge train --resume --out "
                f"{shell_arg(run_dir)} data.name=folder:NEW_PATH"))) from None
        if weights is not None:
            _check_resume_data(run_dir, objective, weights, state)
        batches = objective.make_batches(dataset, cfg, device)
        given_hooks = _caller_hooks(hooks)
        hooks = _eval_hooks(cfg, given_hooks, given_data=given_data)
        if resume:  # after _eval_hooks, whose refusal of an eval.best naming a hook's value is more precise
            _check_given_hooks(run_dir, cfg, given_hooks)
        OPTIMIZERS.get(cfg.optim.name)  # an unknown optimizer, refused before "training ..." is said
        resolve_precision(cfg.train.precision, device)  # and fp16 off CUDA
        rundir.check_free_space(run_dir, _checkpoint_bytes(cfg, objective), "a checkpoint",
                                resume=resume, force=force)
        # Locked before on_start: of processes started together on one free --out, those the lock
        # refuses had said "training ..." before their refusal (and a parent that is a file too)
        if not resume and claimed is None:
            lock, created = rundir.claim_run_dir(run_dir, force=force)
        if on_start is not None:  # the data read, the networks built, the run locked: what can refuse the run has
            _call_on_start(on_start, run_dir, objective, None if state is None else int(state.get("step", 0)))
        if not resume:
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        elif weights is None:  # a resume from step 0 trains with its overrides: the next resume must too
            atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
        if given_data:  # config.yaml's data.name is not what it trains on: a resume must pass it again
            _record_given_dataset(run_dir, dataset)
        if given_hooks:  # the built-in FID/KID hook must not take their place on a resume
            _record_given_hooks(run_dir, given_hooks)
        record_plugins(run_dir, cfg)
        ckpt.clean_leftovers(run_dir / "checkpoints")  # ours to remove: we hold the lock
        distributed.barrier(distributed.current_world())  # the other ranks may now read it
        distributed.same_on_all_ranks(_resume_point(resumed_from), distributed.current_world(),
                                      "the checkpoint to resume from")
        signals.before_first_optimizer()
        history = (run_dir / "metrics.jsonl").is_file()  # before the trainer logs into a new one
        trainer = Trainer(cfg, objective, batches, run_dir=run_dir, device=device, hooks=hooks,
                          progress=progress, given_data=given_data,
                          given_name=dataset.name if given_data else None)
        if weights is not None:
            trainer.load(weights, state, source=resumed_from)
            # changed settings (beyond train.steps) replace the training after the checkpoint rather
            # than redo it: its events (a divergence, the rollbacks, how it ended) stay as history
            replaced = bool(set(changes) - {"train.steps"})
            if not history and trainer.step and trainer.logger.enabled:  # had resumed without a word
                trainer.warn(f"ganforge: warning: {run_dir / 'metrics.jsonl'} is missing: the run's history up to step "
                             f"{trainer.step} is lost (its curves, evaluations and events); a new metrics.jsonl "
                             f"starts at step {trainer.step}, and the report covers only what follows")
            dropped = trainer.logger.truncate_to(state.get("metrics_bytes"), trainer.step, keep_events=replaced)
            if dropped:
                why = ("training with the changed settings replaces it; the events logged after it, such "
                       "as a divergence, are kept" if replaced else "the training they describe is redone")
                trainer.warn(f"ganforge: resuming from {resumed_from.name}: dropped {dropped} line"
                              f"{'s' if dropped > 1 else ''} of metrics.jsonl logged after it ({why})")
            if changes:
                _record_changes(trainer, changes)
                atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    except BaseException:
        if lock is not None:
            if not resume:
                rundir.undo_failed_start(run_dir, lock, created)
            lock.release()
        raise
    try:
        return trainer.fit()
    except BaseException as exc:
        removed = False
        if not resume and not (trainer.step or any(p.name != "step_0000000" for p in
                                                   (run_dir / "checkpoints").glob("step_*"))):
            # nothing of value was written yet: at most the initial weights (a streamed folder that
            # failed on its first batch had left a run directory that blocked the retry)
            rundir.undo_failed_start(run_dir, lock, created)
            removed = True
        if is_out_of_memory(exc):
            raise out_of_memory_error(cfg, trainer, run_dir, removed=removed) from exc
        raise
    finally:
        lock.release()


def _checkpoint_bytes(cfg: Config, objective: Objective) -> int:
    """About the size of one checkpoint (ckpt.estimate_bytes) of the Trainer still to be built,
    from the objective alone: the networks, their EMA copies and what the optimizers will hold,
    known before the run is announced (a full disk had been refused after "training ...")."""
    weights = ckpt.flatten_weights(objective.nets)
    if cfg.train.ema_decay > 0:
        weights.update(ckpt.flatten_weights({n: objective.nets[n] for n in objective.ema}, prefix="ema."))
    optimizers = {name: SimpleNamespace(param_groups=spec.param_groups(objective.nets))
                  for name, spec in objective.optimizers.items()}
    return ckpt.estimate_bytes(weights, optimizers)


# What torch's allocators say when an allocation fails, where they raise a plain RuntimeError
OUT_OF_MEMORY_TEXTS = ("DefaultCPUAllocator: can't allocate memory", "CUDA out of memory",
                       "CUDA error: out of memory", "MPS backend out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: Python's MemoryError, torch's OutOfMemoryError (CUDA, MPS), or
    the CPU allocator's RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(exc, MemoryError):
        return True
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    text = str(exc)  # the allocators' own words only: other errors may mention memory
    return isinstance(exc, RuntimeError) and any(s in text for s in OUT_OF_MEMORY_TEXTS)


def out_of_memory_error(cfg: Config, trainer: Trainer, run_dir: Path, *, removed: bool) -> ConfigError:
    """The one line for a training step that ran out of memory (any family, CPU or GPU): the
    step, the sizes that set the memory, the fix, what the run directory keeps and how to go
    on (a killed-for-memory start had left a raw traceback, or nothing, and a run directory)."""
    t, res = cfg.train, cfg.data.resolution
    lower = family(cfg).smaller_batch(cfg)
    accumulate = f", train.accumulate={t.accumulate}" if t.accumulate > 1 else ""
    what = (f"training ran out of memory in step {trainer.step + 1} (data.resolution={res}, "
            f"train.batch_size={t.batch_size}{accumulate}, on {trainer.device}); lower the batch "
            f"(e.g. {lower}) or data.resolution")
    kept = None
    if not removed:
        try:
            kept = ckpt.find(run_dir)
        except GanforgeError:
            kept = None
    if removed:
        return ConfigError(f"{what}; no step had finished, so nothing is kept ({run_dir} was cleared): "
                           f"run the same command again with the lower value")
    if kept is None:
        return ConfigError(f"{what}; {run_dir} keeps no checkpoint: start over by adding --force and the "
                           f"lower value to the command")
    return ConfigError(f"{what}; {run_dir} keeps checkpoint {kept.name}: continue with a smaller batch: "
                       f"ganforge train --resume --out {shell_arg(run_dir)} {lower}, or start over "
                       f"with a lower data.resolution by adding --force to the command")
