"""Where ``ganforge detect`` gets its images and how it knows them again: the real side (a dataset
split or a folder, its seeded draw), the generated sources (a run's samples, a samples .npz, a
folder of images; labelled ones drawn class by class), their sizes, and the identities eval uses
to leave out what training drew: a run's draw (config hash, step, seed), a .npz's or folder's
draw by its provenance records (not its path), and the generators behind them.
(Split from ganforge.commands.detect, which keeps the commands and their checks.)"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, DataError


def log(message: str) -> None:
    print(message, flush=True)


SPLITS = ("train", "test")


# fake_draw["selection"] of a detector that drew labelled .npz/folder images classes in turn (older
# detectors, without it, drew the first --n in file order; eval leaves out whichever they drew)
INTERLEAVED = "class_interleaved"


# what identifies the samples a run drew for training (fake_draw["runs"]) in a provenance record
DRAW_KEYS = ("config_hash", "step", "seed")


# what a provenance record says of one image, not of the draw that made it (augment's PNGs carry
# their class and index, its .npz one record for all) or what does not change the pixels: the rest
# of a record (operation, config hash, checkpoint, step, seed, ema, truncation, ...) is the draw
PER_IMAGE_KEYS = ("index", "class", "generated_by", "version")


# what identifies a generator (a run's state): other draws of it are "the same generator"
GENERATOR_KEYS = ("config_hash", "step")


def real_images(spec: str, *, n: int, seed: int, default_split: str, size=None, trained: dict | None = None):
    """(uint8 [<=n, C, H, W] real images from ``spec`` at ``size`` (resolution, channels) or
    native, the source's name, how they were drawn). ``trained``: the draw a detector trained on;
    when it came from this same source, its images are left out (an evaluation on them would
    measure memory, not detection)."""
    import torch

    from ..data import StreamingFolderDataset, load_dataset
    from ..data.base import adapt_images

    path = Path(spec).expanduser()
    if spec.startswith("folder:") or (path.is_dir() and ":" not in spec):
        name, split = (spec if spec.startswith("folder:") else f"folder:{path}"), "train"
    else:
        name, _, split = spec.partition(":")
        split = split or default_split
        if split not in SPLITS:
            raise ConfigError(f"--real {spec}: unknown split '{split}'; use {name}:train or {name}:test")
    from ..data.folder import folder_fix

    with folder_fix("pass a folder of images to --real"):  # not training's data.name advice
        ds = load_dataset(name, split=split)
    if isinstance(ds, StreamingFolderDataset) or not hasattr(ds, "images") or ds.images.dim() != 4:
        raise DataError(f"--real {spec}: not an image dataset that fits in memory; pass a named image "
                        f"dataset (fashion-mnist:test) or a folder of at most a few 100k images")
    images = ds.images
    source = f"folder:{source_key(name.removeprefix('folder:'))}" if name.startswith("folder:") else f"{name}:{split}"
    pool = torch.arange(len(images))
    if trained and trained.get("source") == source and trained.get("size") == len(images):
        used = draw_indices(len(images), trained["seed"], trained["n"])
        keep = torch.ones(len(images), dtype=torch.bool)
        keep[used] = False
        pool = pool[keep]
        if not len(pool):
            raise DataError(f"--real {spec}: all {len(images)} images were drawn by the detector's training (its "
                            f"validation hold-out included); pass "
                            f"held-out real images (another folder, or a dataset's test split)")
        log(f"ganforge: note: {spec}: leaving out the {len(used)} images the detector trained on "
             f"({len(pool)} left)")
    draw = {"source": source, "size": len(images), "seed": seed, "n": min(n, len(pool))}
    if len(pool) < n:
        log(f"ganforge: warning: --real {spec} has {len(pool)} images{' left' if trained else ''}, fewer than "
             f"the {n} asked for; using {len(pool)}")
    images = images[pool[draw_indices(len(pool), seed, n)]]
    if size is not None and tuple(images.shape[1:]) != (size[1], size[0], size[0]):  # (C, H, W)
        log(f"ganforge: note: resizing {spec} from {images.shape[2]}x{images.shape[3]}x{images.shape[1]} to the "
             f"detector's {size[0]}x{size[0]}x{size[1]} (resampling leaves traces a detector may learn)")
        images = adapt_images(images, size[0], size[1])
    return images, f"{name}:{split}" if not name.startswith("folder:") else name, draw


def draw_indices(total: int, seed: int, n: int):
    """Indices of the ``n`` images drawn from ``total`` with ``seed`` (a seeded permutation)."""
    import torch

    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def fake_images(spec: str, *, n: int, seed: int, size=None, skip: int = 0, skip_interleaved: bool = True,
                 runs: dict | None = None, totals: dict | None = None):
    """(uint8 [<=n, C, H, W] generated images from a run, a .npz or a folder (see module doc), its
    kind); of a .npz or folder, not the ``skip`` a detector trained on (its selection of ``skip``
    images; ``skip_interleaved`` False: the first ``skip``, as older detectors drew them).
    ``runs``: where given, what identifies a run's draw (``run_draw``) is added to it; ``totals``:
    where given, how many images a .npz or folder holds in all.
    A folder is read at ``size`` (resolution, channels), with a note when that resizes it."""
    from ..detect.detector import check_size
    from ..metrics.targets import is_run_dir, load_npz_samples

    path = Path(spec).expanduser()
    if is_run_dir(path):
        from .. import api
        from ..metrics.targets import run_samples

        run = api.load(path)
        if run.point_dim is not None:  # before sampling: [N, 2] points are no images
            raise DataError(f"--fake {spec} samples {run.point_dim}-D points ({run.config.data.name}); a "
                            f"detector needs a run that generates images")
        images, _, _ = run_samples(run, n=n, seed=seed)
        kind = "run"
        if runs is not None:
            runs[source_key(spec)] = run_draw(run, seed)
    elif path.is_file() and path.suffix.lower() == ".npz":
        images, labels = load_npz_samples(path, None)
        if totals is not None:
            totals[source_key(spec)] = len(images)
        images = select(images, labels, n, skip, skip_interleaved, spec)
        kind = "npz"
    elif path.is_dir():
        ds = load_folder(path, "--fake", spec, resolution=size[0] if size else None, channels=size[1] if size else None)
        if size is not None:
            resize_note(path, f"--fake {spec}", size)
        labels = ds.labels if getattr(ds, "class_names", None) else None  # one subfolder per class
        if totals is not None:
            totals[source_key(spec)] = len(ds.images)
        return select(ds.images, labels, n, skip, skip_interleaved, spec), "folder"
    elif not path.exists():  # had been told it is "not a ganforge run directory..."
        raise DataError(f"--fake {spec} does not exist; pass a run directory (the --out of ganforge train), "
                        f"a samples .npz or a folder of images")
    else:
        raise DataError(f"--fake {spec}: not a ganforge run directory, a samples .npz or a folder of "
                        f"images; pass one of those (e.g. the --out of ganforge train)")
    if size is not None:
        check_size(images, size[0], size[1], what=f"--fake {spec}: images")
    return images, kind


def image_files(path: Path) -> list[Path]:
    """A folder's visible image files (recursive), sorted."""
    from ..imageio import EXTENSIONS

    return sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def folder_shapes(path: Path) -> tuple[set, int]:
    """(the (width, height) of a folder's images, 1 if all are grayscale else 3), from their headers."""
    from PIL import Image

    sizes, gray = set(), True
    for file in image_files(path):
        try:
            with Image.open(file) as img:
                sizes.add(img.size)
                gray = gray and img.mode in ("1", "L", "LA", "I", "I;16", "F")
        except (OSError, ValueError):  # the loader skips it with its own warning
            continue
    return sizes, 1 if gray else 3


def resize_note(path: Path, what: str, size) -> None:
    """A note when the folder's images (``what``: the flag and folder) are read at another ``size``
    (resolution, channels) than their own: resampling leaves traces a detector may learn."""
    sizes, channels = folder_shapes(path)
    r, c = size
    if not sizes or (sizes == {(r, r)} and channels == c):
        return
    shown = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
    native = (f"{shown[0][0]}x{shown[0][1]}x{channels}" if len(shown) == 1 else
              f"sizes {shown[0][0]}x{shown[0][1]} to {shown[-1][0]}x{shown[-1][1]} (x{channels})")
    log(f"ganforge: note: resizing {what} from {native} to {r}x{r}x{c} (resampling leaves traces a detector "
         f"may learn)")


def load_folder(path: Path, flag: str, spec: str, **size):
    """A folder of images held in memory, for ``flag`` (--fake); the loader's training hint
    (set data.name=...) replaced by what to pass here."""
    from ..data import StreamingFolderDataset, load_dataset
    from ..data.folder import folder_fix

    try:
        with folder_fix(f"pass a folder of images to {flag}"):  # its warnings then name no data.* setting
            ds = load_dataset(f"folder:{path}", **size)
    except DataError as exc:
        raise folder_error(exc, flag, spec) from None
    if isinstance(ds, StreamingFolderDataset):
        raise DataError(f"{flag} {spec}: folder too large to hold in memory; pass a samples .npz")
    return ds


def folder_error(exc: DataError, flag: str, spec: str) -> DataError:
    """The folder loader's error with its training hint (set data.name=...) replaced by what to
    pass to ``flag``."""
    from ..data.folder import TRAIN_FIX

    text = str(exc)
    hint = next((h for h in (TRAIN_FIX, f"pass a folder of images to {flag}") if text.endswith(h)), None)
    if hint is None:
        return exc
    return DataError(f"{flag} {spec}: {text[:-len(hint)]}pass a folder of images to {flag}")


def train_size(fixed: dict, folders: list[str]) -> tuple[int, int]:
    """detect train's (resolution, channels), whatever the order of --fake: that of its runs and
    .npz files (``fixed``: spec -> uint8 [N, C, H, W] images; they must agree, they are not
    resized), else the largest of its folders' (each at the size training would read it)."""
    from ..data import dataset_info
    from ..detect.detector import check_size

    if fixed:  # the first run or .npz sets it; one of another size is refused (in either order)
        first = next(iter(fixed.values()))
        size = (first.shape[2], first.shape[1])
        for spec, images in fixed.items():
            check_size(images, size[0], size[1], what=f"--fake {spec}: images")
        return size
    infos = []
    for spec in folders:
        try:
            infos.append(dataset_info(f"folder:{Path(spec).expanduser()}"))
        except DataError as exc:
            raise folder_error(exc, "--fake", spec) from None
    return max(i["resolution"] for i in infos), max(i["channels"] for i in infos)


def run_draw(run, seed: int) -> dict:
    """What identifies the samples a run draws with ``seed``: its config hash, checkpoint and step,
    as a provenance record (ganforge sample's .npz) carries them."""
    from .. import provenance

    return {"config_hash": provenance.run_config_hash(run), "checkpoint": run.checkpoint.name,
            "step": run.step, "seed": seed}


def select(images, labels, n: int, skip: int, skip_interleaved: bool, spec: str):
    """``n`` of ``images`` (of a .npz or folder; ``labels`` [N] or None), not the ``skip`` a
    detector trained on: the first ones, or with labels the first of each class in turn
    (class_interleaved), which the first n of a class-sorted source were not (only its first
    classes)."""
    import numpy as np
    import torch

    from ..metrics.targets import class_interleaved

    labels = None if labels is None else np.asarray(labels, np.int64)
    keep = np.ones(len(images), dtype=bool)
    if skip:
        if skip >= len(images):
            raise DataError(f"--fake {spec}: all {len(images)} images were drawn by the detector's training (its "
                            f"validation hold-out included); pass "
                            f"generated images it has not seen (a run directory draws new ones)")
        if labels is not None and skip_interleaved:
            keep[class_interleaved(labels, skip)] = False
            log(f"ganforge: note: {spec}: leaving out the {skip} images the detector trained on (the first "
                 f"of each class in turn)")
        else:
            keep[:skip] = False
            log(f"ganforge: note: {spec}: leaving out the first {skip} images (the detector trained on them)")
    rest = np.flatnonzero(keep)
    if len(rest) < n:
        log(f"ganforge: warning: --fake {spec} has {len(rest)} images{' left' if skip else ''}, fewer than "
             f"--n {n}; using {len(rest)}")
    pick = rest[:n] if labels is None else rest[class_interleaved(labels[rest], n)]
    return images[torch.from_numpy(pick)]


def generators_of(records) -> list[dict]:
    """The generators (config hash and step, GENERATOR_KEYS) that provenance records or run
    draws name, each once; records without them (--no-provenance, a folder of photos) name none."""
    found: dict = {}
    for r in records:
        if all(r.get(k) is not None for k in GENERATOR_KEYS):
            g = {k: r[k] for k in GENERATOR_KEYS}
            found[json.dumps(g, sort_keys=True)] = g
    return list(found.values())


def trained_generators_of(sources: dict) -> set:
    """(config hash, step) of every generator a detector trained on: its runs, and the ones the
    provenance records of its .npz/folder sources name (older detectors: their runs only)."""
    runs = list(sources.get("fake_draw", {}).get("runs", {}).values())
    named = [g for gens in sources.get("generators", {}).values() for g in gens]
    return {tuple(g[k] for k in GENERATOR_KEYS) for g in generators_of(runs + named)}


def source_key(spec: str) -> str:
    """A source's identity whichever way its path is spelt (seen in training or not)."""
    return str(Path(spec).expanduser().resolve())


def same_draw(record: dict, drawn: dict) -> bool:
    """Whether a provenance record is of the samples detect train drew (``drawn``): ganforge
    sample's images of the same run state and seed, from the EMA nets and untruncated, as detect
    draws them (an augment output or a truncated grid of seed 0 holds other images)."""
    return (record.get("operation") == "sample" and record.get("ema", True) is not False
            and record.get("truncation") is None and all(record.get(k) == drawn[k] for k in DRAW_KEYS))


def draw_of(records: list[dict], path: Path, kind: str) -> dict | None:
    """What identifies the images of a .npz or folder (``kind``) by their provenance ``records``
    (None where none has one): the draws they name (each record less PER_IMAGE_KEYS, once, sorted),
    how many images it holds and whether each carries a record (a .npz's one record covers all).
    Two sources alike in all three hold the same images in the same order (a copy)."""
    import numpy as np

    if not records:
        return None
    draws = {json.dumps({k: v for k, v in r.items() if k not in PER_IMAGE_KEYS}, sort_keys=True) for r in records}
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                count = len(data["images"])
        except (OSError, ValueError, KeyError):
            return None
    else:
        count = len(image_files(path))
    return {"records": [json.loads(d) for d in sorted(draws)], "images": count,
            "complete": kind == "npz" or len(records) >= count}


def describe_draw(draw: dict) -> str:
    """A draw's provenance in words: "augment of config HASH, step 30, seed 0"."""
    r = draw["records"][0]
    return f"{r.get('operation', '?')} of config {r.get('config_hash', '?')}, step {r.get('step', '?')}, " \
           f"seed {r.get('seed', '?')}"


def records_of(path: Path) -> list[dict]:
    """The provenance records of a samples .npz or of a folder's images (those that carry one)."""
    from .. import provenance

    if path.is_dir():
        files = image_files(path)
    else:
        files = [path] if path.is_file() else []
    return [r for r in (record_of(provenance, f) for f in files) if r]


def record_of(provenance, path: Path) -> dict | None:
    """The provenance record of an image or .npz, None where it has none or cannot be read."""
    try:
        return provenance.read(path)
    except (OSError, ValueError):
        return None
