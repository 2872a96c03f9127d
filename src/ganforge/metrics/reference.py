"""Features of real data, computed once and cached on disk.

The cache key is a SHA-256 of everything that changes the numbers: dataset name, split, the
number of images n and how they are chosen (the first n of a seed-0 permutation), the
resolution and channel count the images are adapted to, the extractor's name, weights hash and
resize mode, and a hash of the selected images' bytes (so an edited folder is never served stale
features). Files live in ``$GANFORGE_CACHE/eval/`` (default ``~/.cache/ganforge/eval/``).
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import StorageError, warn
from .errors import EvalError
from .features import Extractor, Features

CACHE_VERSION = 1
SUBSET_RULE = "first n of a seed-0 permutation (all images when n >= split size)"
# What np.load and reading its arrays raise for a truncated or overwritten .npz: a zip without its
# directory, a member whose CRC or deflate stream is wrong, a member the directory names but lacks.
DAMAGED_NPZ = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
_warned_unwritable: set[Path] = set()  # cache folders already warned about, once per process


def cache_dir() -> Path:
    from ..data.download import cache_root

    return cache_root() / "eval"


@dataclass
class Reference:
    features: Features
    labels: np.ndarray | None  # int64 [N], when the dataset has labels
    class_names: list[str] | None
    info: dict  # dataset, split, n, resolution, channels, cache key, cache hit


def load_images(dataset: str, *, split: str, n: int | None, resolution: int | None,
                channels: int | None, data_dir=None) -> tuple[torch.Tensor, np.ndarray | None, list | None]:
    """(uint8 images [n, C, H, W], labels or None, class names or None) of a dataset's subset."""
    from ..data import StreamingFolderDataset, ToyDataset, load_dataset
    from ..data.folder import load_for_eval

    if dataset.startswith("folder:"):  # sized from all its files, warnings in eval's words
        ds = load_for_eval(dataset.removeprefix("folder:"), resolution=resolution, channels=channels)
    else:
        ds = load_dataset(dataset, split=split, resolution=resolution, channels=channels, data_dir=data_dir)
    if isinstance(ds, ToyDataset):
        raise EvalError(f"{dataset} holds 2-D points, not images; evaluate against an image dataset")
    total = len(ds)
    take = total if n is None or n >= total else n
    index = torch.randperm(total, generator=torch.Generator().manual_seed(0))[:take] if take < total \
        else torch.arange(total)
    labels = None
    if isinstance(ds, StreamingFolderDataset):
        tds = ds.torch_dataset()
        pairs = [tds[int(i)] for i in index]
        images = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        if ds.labels is not None:
            labels = ds.labels[index].numpy()
    else:
        images = ds.images[index]
        if ds.labels is not None:
            labels = ds.labels[index].numpy()
    return images.contiguous(), labels, ds.class_names


def _key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[-40:]


def save_npz(path: Path, **arrays) -> None:
    """Atomic: a reader never sees half a file."""
    with atomic_path(path) as tmp:
        np.savez(tmp, **{k: v for k, v in arrays.items() if v is not None})


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None: missing (silently) or damaged (with a warning), the caller
    recomputes them and overwrites the file, as the README promises for the eval cache."""
    if not path.is_file():
        return None
    try:
        # our own file object: np.load leaves the one it opens unclosed when the zip is bad
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except DAMAGED_NPZ as exc:
        reason = " ".join(str(exc).split())[:80] or type(exc).__name__
        warn(f"cache file {path} is damaged ({reason}); recomputing it")
        return None


def _can_create(folder: Path) -> bool:
    """Whether files can be made in ``folder``: it, or the nearest folder above it that exists, is
    a writable directory (access(2) also says no for a read-only mount)."""
    for place in (folder, *folder.parents):
        if place.exists():
            return place.is_dir() and os.access(place, os.W_OK | os.X_OK)
    return False


def store_npz(path: Path, **arrays) -> None:
    """save_npz for the cache, which is optional: a cache folder that cannot be written costs the
    next run the recomputation, not this run its computed result (one warning per folder)."""
    try:
        save_npz(path, **arrays)
    except (StorageError, OSError) as exc:
        if path.parent not in _warned_unwritable:
            _warned_unwritable.add(path.parent)
            reason = " ".join(str(exc).split()).split("; ")[0].removeprefix(f"cannot write {path}: ")
            warn(f"cannot cache features in {path.parent}: {reason}; set GANFORGE_CACHE to a "
                          f"writable folder")


PROGRESS_MIN_IMAGES = 10_000  # a features pass this long is followed in tenths (60,000 train
# images through Inception on a CPU take many minutes, which had passed with one line)


def _progress(log: Callable[[str], None], total: int) -> Callable[[int], None] | None:
    """A progress callback for an extractor: a line per tenth of a long pass, with the time."""
    import time

    from ..progress import Tenths

    if total < PROGRESS_MIN_IMAGES:
        return None
    start = time.perf_counter()
    return Tenths(log, total, lambda done: f"  features: {done}/{total} images ({100 * done // total}%) in "
                                            f"{time.perf_counter() - start:.0f} s", seconds=30.0)


def reference_features(dataset: str, extractor: Extractor, *, split: str = "test", n: int | None = None,
                       resolution: int | None = None, channels: int | None = None, data_dir=None,
                       cache: bool = True, log: Callable[[str], None] | None = None) -> Reference:
    """Extractor features (and logits) of ``n`` images of ``dataset``/``split`` adapted to
    ``resolution`` x ``resolution`` with ``channels`` channels (None: native), cached."""
    images, labels, class_names = load_images(dataset, split=split, n=n, resolution=resolution,
                                              channels=channels, data_dir=data_dir)
    fields = {"v": CACHE_VERSION, "dataset": dataset, "split": split, "n": len(images),
              "subset": SUBSET_RULE, "resolution": int(images.shape[-1]), "channels": int(images.shape[1]),
              **extractor.describe(),
              "data_sha256": hashlib.sha256(images.numpy().tobytes()).hexdigest()}
    key = _key(fields)
    path = cache_dir() / f"{_slug(dataset)}-{split}-{len(images)}-{key[:16]}.npz"
    info = {"dataset": dataset, "split": split, "n": len(images), "resolution": fields["resolution"],
            "channels": fields["channels"], "cache_key": key}
    data = load_npz(path) if cache else None
    if data is not None and "features" in data:
        feats = Features(data["features"], data.get("logits"))
        return Reference(feats, labels, class_names, {**info, "cache": str(path), "cache_hit": True})
    if log:  # the cache folder named only where the features can go (a file or a read-only folder
        # as GANFORGE_CACHE had been announced as the cache, then warned about)
        where = f" (cached for next time in {path.parent})" if cache and _can_create(path.parent) else ""
        log(f"computing {extractor.name} features of {len(images)} {dataset}/{split} images{where}")
    progress = _progress(log, len(images)) if log else None
    feats = extractor(images, progress=progress) if progress else extractor(images)
    if cache:
        store_npz(path, features=feats.features, logits=feats.logits)
    return Reference(feats, labels, class_names, {**info, "cache": str(path) if cache else None,
                                                  "cache_hit": False})


def cached_value(fields: dict, compute: Callable[[], float], *, cache: bool = True) -> float:
    """A scalar derived from reference data (e.g. the memorization threshold), cached by key."""
    key = _key({"v": CACHE_VERSION, **fields})
    path = cache_dir() / f"value-{key[:24]}.npz"
    data = load_npz(path) if cache else None
    if data is not None and "value" in data:
        return float(data["value"])
    value = compute()
    if cache:
        store_npz(path, value=np.array(value, dtype=np.float64))
    return value
