"""Labeled synthetic data from a conditional run: class-balanced sampling, export as a dataset
(one folder per class, or one .npz) and sample grids with one labeled row per class.

The folder format names each class folder ``<index>_<name>`` with the index zero-padded, so the
sorted folder names keep the run's class order and ``folder:DIR`` reads the images back with the
same label indices (ganforge.data.folder sorts class folders by name).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ConfigError
from .progress import Tenths

FORMATS = ("folder", "npz")
PROGRESS_MIN = 1000  # exports of at least this many images say how far they are (10k took 17 s)


def balanced_labels(per_class: int, num_classes: int) -> torch.Tensor:
    """[K * per_class] int64: per_class zeros, then per_class ones, ... (one grid row per class)."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def index_width(num_classes: int) -> int:
    """Digits of the class index in folder and file names, so that they sort in index order."""
    return len(str(max(num_classes - 1, 0)))


def folder_name(index: int, name: str, num_classes: int) -> str:
    """A file-system-safe class folder name that sorts in index order: 3 'T-shirt/top' -> 03_T-shirt-top."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "class"
    return f"{index:0{index_width(num_classes)}d}_{safe}"


# What export writes in classes.json: a folder whose classes.json lacks any of these is not ours
EXPORT_KEYS = ("run", "checkpoint", "step", "seed", "ema", "per_class", "class_names", "folders")
IMAGE_NAME = re.compile(r"(\d+)_(\d{6,})\.png")  # <class index>_<image index>.png


def not_an_export(out: Path) -> str | None:
    """Why the folder ``out`` is not one that export wrote (None where it is), so that --force
    deletes only such a folder: a classes.json of augment's keys, its class folders of its PNGs,
    and nothing else. A classes.json alone had been taken as proof, and --force deleted a user's
    own dataset (cat/, dog/) that had one."""
    try:
        meta = json.loads((out / "classes.json").read_text())
    except OSError:
        return "no classes.json"
    except ValueError:
        return "its classes.json is not JSON"
    if not isinstance(meta, dict) or any(key not in meta for key in EXPORT_KEYS):
        return f"its classes.json lacks augment's keys {', '.join(EXPORT_KEYS)}"
    folders = meta["folders"]
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        return "its classes.json has no list of class folders"
    per_class = meta["per_class"]
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class <= 0:
        return "its classes.json has no count of images per class"
    # the names export gives: a user's own 1_000099.png in a folder of 5 per class fitted the
    # pattern, and --force deleted it
    count, width = per_class * len(folders), index_width(len(folders))
    for entry in sorted(out.iterdir()):
        if entry.name == "classes.json":
            continue
        if entry.name not in folders or not entry.is_dir() or entry.is_symlink():
            return f"{entry.name} is not one of the class folders its classes.json names"
        y = folders.index(entry.name)
        for file in entry.iterdir():
            match = IMAGE_NAME.fullmatch(file.name)
            index = int(match[2]) if match else -1
            # balanced_labels gives image i the class i // per_class
            if (not match or match[1] != f"{y:0{width}d}" or not 0 <= index < count or index // per_class != y
                    or not file.is_file() or file.is_symlink()):
                return f"{entry.name}/{file.name} is not an image augment wrote"
    return None


def require_conditional(run) -> list[str]:
    names = run.class_names
    if not names:
        raise ConfigError(f"run {run.run_dir} is unconditional (objective={run.config.objective}); "
                          f"labeled samples need a conditional run, e.g. ganforge train "
                          f"cgan-fashion-mnist")
    return names


def export(run, out: Path, *, per_class: int, fmt: str = "folder", seed: int = 0, ema: bool = True,
           force: bool = False, provenance: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Write ``per_class`` samples of every class of ``run`` to ``out``; returns what was written.

    folder: out/<index>_<name>/<index>_<i>.png plus out/classes.json; npz: ``images`` uint8
    [N, H, W, C], ``labels`` int64 [N], ``class_names`` (and ``provenance``, the JSON record of
    ganforge.provenance; each PNG carries its own, with its class and index). Written to a temporary path and renamed,
    so an interrupted export leaves nothing half-written under ``out`` (an old dataset that
    --force replaces is renamed aside and deleted only after). ``log``: progress lines
    of a large export (every 10% or 10 s).
    """
    from . import provenance as prov
    from .inference import check_sample_memory, to_uint8_hwc
    from .atomic import atomic_path, restore_replaced
    from .rundir import check_output_parent

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if per_class <= 0:
        raise ConfigError(f"--per-class must be positive, got {per_class}")
    if fmt == "npz" and out.suffix.lower() != ".npz":
        raise ConfigError(f"--out {out}: --format npz writes one file; give it a .npz name")
    if fmt == "folder" and out.suffix.lower() == ".npz":
        raise ConfigError(f"--out {out} looks like a file; --format folder writes a directory "
                          f"(or pass --format npz)")
    # before any work: a parent that is a file ("afile/x"), read-only or unmakeable, said as
    # train-classifier and the other commands say it (atomic_path's mkdir said only "File exists")
    check_output_parent(out)
    restore_replaced(out)  # a --force killed while it replaced out: put back or clean up first
    if out.exists() and (out.is_file() or any(out.iterdir())):
        # what --force would refuse is said first, without --force too: "pass --force" is no advice there
        if fmt == "folder" and out.is_file():  # a folder never replaces a file the user has
            raise ConfigError(f"--force refused: {out} is a file and --format folder writes a "
                              f"directory, so nothing was deleted; choose another --out" if force else
                              f"{out} already exists and is a file; --format folder writes a "
                              f"directory, so --force would not replace it; choose another --out")
        not_ours = not_an_export(out) if out.is_dir() else None
        if not_ours:  # --force deletes only our own
            raise ConfigError(f"--force refused: {out} is not a dataset written by ganforge augment "
                              f"({not_ours}); nothing was deleted; choose another --out" if force else
                              f"{out} already exists and is not a dataset written by ganforge augment "
                              f"({not_ours}), so --force would not replace it; choose another --out")
        if not force:
            raise ConfigError(f"{out} already exists; pass --force to replace it or choose another --out")
    names = require_conditional(run)
    k = len(names)
    check_sample_memory(run, per_class * k, f"--per-class {per_class} ({per_class * k} images)")
    labels = balanced_labels(per_class, k)
    say = log if log is not None and len(labels) >= PROGRESS_MIN else None
    if say:
        say(f"  sampling {len(labels)} images ...")
    drawn = Tenths(say, len(labels), lambda n: f"  sampled {n}/{len(labels)} images") if say else None
    images = to_uint8_hwc(run.sample(len(labels), seed=seed, ema=ema, labels=labels, on_batch=drawn))
    # absolute: classes.json travels with the dataset, and a relative path means nothing elsewhere
    meta = {"run": str(Path(run.run_dir).resolve()), "checkpoint": run.checkpoint.name, "step": run.step,
            "seed": seed, "ema": ema, "per_class": per_class, "class_names": names}
    record = prov.for_run(run, operation="augment", seed=seed, ema=ema) if provenance else None
    with atomic_path(out) as tmp:
        if fmt == "npz":
            extra = {} if record is None else {"provenance": np.array(json.dumps(record, sort_keys=True))}
            if say:
                say(f"  compressing {len(labels)} images into {out.name} ...")
            with open(tmp, "wb") as f:  # a path: numpy adds ".npz" to a name that ends ".NPZ"
                np.savez_compressed(f, images=images, labels=labels.numpy(), class_names=np.array(names), **extra)
        else:
            tmp.mkdir()
            folders = [folder_name(i, n, k) for i, n in enumerate(names)]
            for f in folders:
                (tmp / f).mkdir()
            progress = Tenths(say, len(labels), lambda n: f"  wrote {n}/{len(labels)} images") if say else None
            for i, (img, y) in enumerate(zip(images, labels.tolist())):
                file_meta = None if record is None else {**record, "class": names[y], "index": i}
                prov.save(img, tmp / folders[y] / f"{y:0{index_width(k)}d}_{i:06d}.png", file_meta)
                if progress:
                    progress(i + 1)
            meta["folders"] = folders
            (tmp / "classes.json").write_text(json.dumps(meta, indent=2) + "\n")
        if say and out.is_dir():  # renamed aside when this block ends, then deleted: a pause
            say(f"  removing the old {out} ...")
    return {**meta, "n": int(len(labels)), "out": str(out), "format": fmt}
