"""CIFAR-10 (Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images"), read from
the official python version: pickled batches inside cifar-10-python.tar.gz.

We extract only the seven known batch files, never the whole archive (no path tricks), and
unpickle them with an unpickler that can build numpy arrays and nothing else, because a pickle
from a modified archive could otherwise run arbitrary code.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_json, normal_mode
from ..errors import DataError, StorageError
from .base import DATASETS, ImageDataset, LoadRequest, adapt_images
from .download import cache_root, download, file_digest
from .named import CHECKSUMS, MIRRORS, check_split, obtain

NAME = "cifar10"
ARCHIVE = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
KNOWN_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"] + [META]
# Beside the batches extracted from an archive found elsewhere: which archive (path, size, mtime),
# so the next load uses them instead of hashing 170 MB and writing 180 MB again.
SOURCE_MARKER = ".extracted-from.json"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _ArraysOnly(pickle.Unpickler):
    """Resolves only the numpy callables that rebuild arrays and dtypes."""

    _NAMES = {"_reconstruct", "_frombuffer", "ndarray", "dtype", "scalar"}
    _MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric"}

    def find_class(self, module, name):
        if module in self._MODULES and name in self._NAMES:
            if module.startswith("numpy.core.") and hasattr(np, "_core"):
                module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 warns on the old path
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # latin1: the official batches are Python 2 pickles of numpy arrays.
            obj = _ArraysOnly(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read CIFAR-10 batch {path} ({exc}); delete it and fetch cifar10 again") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 batch {path} does not hold a dict; delete it and fetch cifar10 again")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batches_in(d: Path) -> Path | None:
    for candidate in (d / BATCH_DIR, d):
        if all((candidate / f).is_file() for f in KNOWN_FILES):
            return candidate
    return None


def _extract(archive: Path, dest: Path) -> Path:
    """Extract the known batch files of `archive` into `dest`; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {f"{BATCH_DIR}/{f}": f for f in KNOWN_FILES}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./") in wanted:
                    fd, tmp = tempfile.mkstemp(prefix=".extract.", dir=dest)
                    with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                        out.write(src.read())
                    normal_mode(Path(tmp))  # mkstemp's 0600 hid a shared cache from its other users
                    os.replace(tmp, dest / wanted[member.name.lstrip("./")])
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot extract {archive} ({exc}); delete it and fetch cifar10 again") from exc
    missing = [f for f in KNOWN_FILES if not (dest / f).is_file()]
    if missing:
        raise DataError(f"{archive} lacks {', '.join(missing)}; it is not cifar-10-python.tar.gz, "
                        f"delete it and fetch cifar10 again")
    return dest


def _identity(archive: Path) -> dict:
    """What tells an archive from another without reading it: path, size and modification time."""
    st = archive.stat()
    return {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


class CifarSource:
    def _has(self, d: Path) -> bool:
        return _batches_in(d) is not None or (d / ARCHIVE).is_file()

    def _fetch_into(self, cache: Path) -> str:
        url = download([m + ARCHIVE for m in MIRRORS[NAME]], cache / ARCHIVE, CHECKSUMS[NAME][ARCHIVE])
        _extract(cache / ARCHIVE, cache / BATCH_DIR)
        (cache / ARCHIVE).unlink()  # 170 MB we no longer need
        return url

    def _batch_dir(self, data_dir, download_ok: bool) -> tuple[Path, str]:
        folder, message = obtain(NAME, data_dir=data_dir, download_ok=download_ok, has=self._has,
                                 fetch_into=self._fetch_into, manual=ARCHIVE)
        batches = _batches_in(folder)
        if batches is None:  # only the archive was found: verify it, then unpack into the cache
            archive = folder / ARCHIVE
            target, marker = cache_root() / NAME / BATCH_DIR, cache_root() / NAME / SOURCE_MARKER
            if _read_marker(marker) == _identity(archive) and _batches_in(target) == target:
                return target, message + f", extracted before to {target}"
            algorithm, _, expected = CHECKSUMS[NAME][ARCHIVE].partition(":")
            if file_digest(archive, algorithm) != expected:
                raise DataError(f"{archive} does not match the known {algorithm} checksum of {ARCHIVE}; "
                                "delete it and download it again")
            marker.unlink(missing_ok=True)  # half-extracted batches must not pass for this archive's
            batches = _extract(archive, target)
            with contextlib.suppress(OSError, StorageError):  # without it, the next load extracts again
                atomic_write_json(marker, _identity(archive))
            message += f", extracted to {batches}"
        return batches, message

    @staticmethod
    def _read_split(batches: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(images [N, 3, 32, 32], labels [N], class names) of a split, checked: a DataError
        names a damaged batch file."""
        meta = _unpickle(batches / META)
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
        images, labels = [], []
        for fname in SPLIT_FILES[split]:
            batch = _unpickle(batches / fname)
            data = np.asarray(batch.get("data"), dtype=np.uint8)
            batch_labels = np.asarray(batch.get("labels"), dtype=np.int64)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or batch_labels.shape != (len(data),):
                raise DataError(f"CIFAR-10 batch {batches / fname} has data {data.shape} and labels "
                                f"{batch_labels.shape}, "
                                "expected [N, 3072] and [N]; delete it and fetch cifar10 again")
            images.append(data.reshape(-1, 3, 32, 32))  # stored channel-planar, row-major
            labels.append(batch_labels)
        labels_np = np.concatenate(labels)
        if len(class_names) == 0 or labels_np.min() < 0 or labels_np.max() >= len(class_names):
            raise DataError(f"CIFAR-10 labels in {batches} do not match the {len(class_names)} class names "
                            f"in {META}; delete the folder and fetch cifar10 again")
        return np.concatenate(images), labels_np, class_names

    def load(self, req: LoadRequest) -> ImageDataset:
        check_split(req.split)
        batches, _ = self._batch_dir(req.data_dir, req.download)
        images, labels_np, class_names = self._read_split(batches, req.split)
        images_t = adapt_images(torch.from_numpy(images), req.resolution, req.channels)
        return ImageDataset(images=images_t, labels=torch.from_numpy(labels_np), class_names=class_names,
                            source=str(batches), name=NAME)

    def fetch(self, arg, *, data_dir) -> str:
        """Where the batches came from, once each reads as training reads it (see IdxSource.fetch)."""
        batches, message = self._batch_dir(data_dir, True)
        for split in SPLIT_FILES:
            self._read_split(batches, split)
        return message

    def info(self, arg) -> dict:
        return {"resolution": 32, "channels": 3, "num_classes": 10, "class_names": list(CLASS_NAMES)}


DATASETS.register(NAME)(CifarSource())
