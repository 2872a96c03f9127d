"""What ``ganforge eval TARGET`` evaluates: a loaded run (samples from its EMA generator,
``run_samples``), a ``samples.npz`` (``images`` uint8 [N, H, W, C] or [N, H, W], optional
``labels`` int [N]) or a folder of images (``load_target``). Everything becomes uint8
[N, C, H, W] (+ labels) and a description. Loading a run directory is the caller's (the eval
command's, through ganforge.api), so metrics never reach back up to the API."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..labels import interleaved_labels
from .errors import EvalError
from .features import to_uint8
from .reference import DAMAGED_NPZ


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "checkpoints").is_dir() or (path / "config.yaml").is_file())


def load_npz_samples(path: Path, n: int | None) -> tuple[torch.Tensor, np.ndarray | None]:
    import zipfile

    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would call it pickled data
        raise EvalError(f"{path} is not an .npz archive (not a zip file); write one with "
                        f"ganforge sample RUN --out samples.npz")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "images" not in data.files:
                raise EvalError(f"{path} has no 'images' array (has: {', '.join(data.files) or 'nothing'}); "
                                f"write it with ganforge sample RUN --out samples.npz")
            images = data["images"][:n]
            labels = data["labels"][:n] if "labels" in data.files else None
    except DAMAGED_NPZ as exc:  # truncated or overwritten: the zip or a member's CRC is bad
        raise EvalError(f"{path} is not a readable .npz ({str(exc).splitlines()[0][:80]}); "
                        f"write it with ganforge sample RUN --out samples.npz") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise EvalError(f"{path}: 'images' must be uint8 [N, H, W, C] with C = 1 or 3, got "
                        f"{images.dtype} {images.shape}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)
                               or not np.issubdtype(labels.dtype, np.integer)):
        raise EvalError(f"{path}: 'labels' must be integers [N] matching the {len(images)} images, got "
                        f"{labels.dtype} {labels.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous(), labels


def run_samples(run, *, n: int, seed: int = 0,
                truncation: float | None = None) -> tuple[torch.Tensor, np.ndarray | None, dict]:
    """(uint8 images [n, C, H, W], labels [n] or None, description) drawn from a loaded run
    (``ganforge.load``); conditional runs sample every class in turn. ``truncation``: for families
    with the "truncation" capability (BigGAN's threshold, StyleGAN2's psi); None: untruncated."""
    # every class equally often (None for unconditional runs); the grid layout's rows are uneven
    labels = interleaved_labels(n, len(run.class_names)) if run.class_names else None
    samples = run.sample(n, seed=seed, ema=bool(run.ema_nets), labels=labels, truncation=truncation)
    bad = int((~torch.isfinite(samples.flatten(1))).any(1).sum())
    if bad:  # uint8 conversion would turn NaN into black images and score them
        raise EvalError(f"{run.run_dir} ({run.checkpoint.name}) generates non-finite values (NaN or inf) in "
                        f"{bad} of {n} samples: its generator has diverged; evaluate an earlier checkpoint "
                        f"(--checkpoint step_...)")
    images = to_uint8(samples)
    desc = {"target": str(run.run_dir), "kind": "run", "checkpoint": run.checkpoint.name,
            "step": run.step, "ema": run.ema_weights, "seed": seed}
    if truncation is not None:
        desc["truncation"] = truncation
    if labels is not None:
        desc["class_names"] = list(run.class_names)
    stage = run.objective.preview_caption()  # a growing run: the stage its samples come from
    if stage:
        desc["stage"] = stage
    return images, (labels.numpy() if labels is not None else None), desc


def class_interleaved(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` of the labelled samples, classes taking turns (each class's first, then
    each class's second, ...), in file order: the first n of a --per-class npz or of a folder with
    one subfolder per class, both sorted by class, had held only its first classes (--n 150 of 30
    per class: classes 0-4 of 10)."""
    rank = np.zeros(len(labels), np.int64)
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    return np.sort(np.lexsort((labels, rank))[:n])


def _npz_class_names(path: Path) -> list[str] | None:
    """The ``class_names`` an npz of samples may carry (ganforge sample and augment write them)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "class_names" not in data.files or data["class_names"].ndim != 1:
                return None
            return [str(name) for name in data["class_names"]]
    except DAMAGED_NPZ as exc:
        raise EvalError(f"{path}: its 'class_names' are not readable ({str(exc).splitlines()[0][:80]}); "
                        f"write it again with ganforge sample RUN --out samples.npz") from None


def load_target(target: str | Path, *, n: int | None) -> tuple[torch.Tensor, np.ndarray | None, dict]:
    """(uint8 images [N, C, H, W], labels [N] or None, description) of a samples.npz or an image
    folder."""
    path = Path(target).expanduser()
    if path.is_file() and path.suffix.lower() == ".npz":
        images, labels = load_npz_samples(path, None)  # checked; all of it, to choose from
        if n is not None and n < len(images):
            if labels is None:
                images = images[:n]
            else:
                pick = class_interleaved(labels, n)
                images, labels = images[torch.from_numpy(pick)], labels[pick]
        desc = {"target": str(path), "kind": "npz"}
        names = _npz_class_names(path) if labels is not None else None
        if names:
            desc["class_names"] = names
        return images, labels, desc
    if path.is_dir():
        from ..data import StreamingFolderDataset
        from ..data.folder import load_for_eval

        ds = load_for_eval(path)  # at the largest short side among the files, not the first file's
        if isinstance(ds, StreamingFolderDataset):
            raise EvalError(f"folder {path} is too large to evaluate in memory; write a samples.npz of "
                            f"at most --n images instead")
        images = ds.images
        desc = {"target": str(path), "kind": "folder"}
        labels = getattr(ds, "labels", None)
        if labels is not None and ds.class_names:  # one subfolder per class (augment writes them)
            desc["class_names"] = list(ds.class_names)
            labels = np.asarray(labels, np.int64)
            if n is not None and n < len(images):  # read class by class: classes in turn, as an npz
                pick = class_interleaved(labels, n)
                images, labels = images[torch.from_numpy(pick)], labels[pick]
            return images, labels, desc
        return images[:n], None, desc
    if not path.exists():
        raise EvalError(f"{path} does not exist; pass a run directory, a samples.npz or a folder of images")
    if is_run_dir(path):
        raise EvalError(f"{path} is a run directory; load it with ganforge.load and use run_samples")
    hint = (" (one image, e.g. a sample grid, is not a set of samples to score)"
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff") else "")
    raise EvalError(f"{path} is neither a run directory, a .npz file nor a folder of images{hint}; pass the run "
                    f"directory, or write samples with: ganforge sample RUN --n 10000 --out samples.npz")
