"""A folder of images as a dataset ("folder:PATH").

Layout: if the top folder holds no images itself, only subfolders, each subfolder is a class
(sorted names -> labels 0..K-1, as torchvision's ImageFolder) and a class subfolder without a
readable image is an error; otherwise the images are unlabelled. Images are resized so the short
side equals the resolution and center-cropped.
A folder too large for memory becomes a StreamingFolderDataset that decodes in __getitem__.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError, warn
from .. import progress
from ..progress import Tenths
from .base import DATASETS, ImageDataset, LoadRequest, default_max_memory_bytes
from ..imageio import EXTENSIONS, normalize, too_large

# Smaller images are skipped (listed in the warning): a 1x1 "image" holds no picture to learn.
MIN_SIZE = 8
MAX_SUBSTITUTES = 16  # unreadable streamed files in a row before the run stops
# Default resolution is the first image's short side, capped: a folder of photos would
# otherwise ask for 4000x4000 training.
MAX_DEFAULT_RESOLUTION = 256
# Eval reads a folder at its largest short side up to this, the Inception extractor's input size:
# no detail the extractor could see is lost, and a folder of photos does not fill memory.
MAX_EVAL_RESOLUTION = 299
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# PIL decoders release the GIL, so threads give a real speed-up without process start-up costs.
_WORKERS = min(8, os.cpu_count() or 1)
# Decoding a folder says so from this many files (300 photos had taken 8 s in silence), with a
# count per tenth past PROGRESS_TENTHS files and otherwise every PROGRESS_SECONDS.
PROGRESS_FILES = 100
PROGRESS_TENTHS = 500
PROGRESS_SECONDS = 10.0


def _visible(path: Path, root: Path) -> bool:
    # Hidden files and folders (.DS_Store, ._x.png, .ipynb_checkpoints) are never data.
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _image_files(folder: Path) -> list[Path]:
    """The visible image files under ``folder``, symlinked subfolders followed (each real folder
    once: a link back up the tree is not a loop), sorted."""
    out, seen, top = [], set(), os.path.realpath(folder)

    def ancestor(path: str) -> bool:  # a link up the tree would pull in everything above the folder
        real = os.path.realpath(path)
        return top == real or top.startswith(real.rstrip(os.sep) + os.sep)

    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (os.path.islink(os.path.join(root, d)) and ancestor(os.path.join(root, d))))
        out += [Path(root) / n for n in names if not n.startswith(".") and Path(n).suffix.lower() in EXTENSIONS]
    # A broken link stays in: the scan lists it among the skipped files instead of losing it.
    return sorted(p for p in out if p.is_file() or (p.is_symlink() and not p.exists()))


@contextmanager
def quiet_bombs():
    """PIL's DecompressionBombWarning ignored: an image between its warning size (89 MP) and its
    limit (179 MP; a 102 MP camera photo, a 96 MP PNG of ~290 MB decoded) is read, as the local
    file the user chose (the warning is meant for untrusted uploads, and printed two raw lines
    with a site-packages path); larger ones are skipped by ``_header`` with the fix. Enter it in
    the calling thread around a whole thread pool: catch_warnings is not safe to enter in the
    workers themselves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _decode(path: Path, mode: str, resolution: int) -> np.ndarray:
    """uint8 [res, res] or [res, res, 3]: short side resized to resolution, then center crop."""
    with Image.open(path) as img:
        img.draft(None, (resolution, resolution))  # JPEG: let the decoder downscale (stays >= resolution)
        img = ImageOps.fit(normalize(img, mode), (resolution, resolution), method=Image.Resampling.BICUBIC)
        return np.asarray(img)


def too_small(width: int, height: int) -> str:
    """The reason a file under MIN_SIZE is skipped, in every reader's listing."""
    return f"{width}x{height} pixels, under {MIN_SIZE}x{MIN_SIZE}"


def _decode_all(folder: Path, n: int, job) -> list[str | None]:
    """``job(i)`` for i in range(n) on threads: each one's failure reason or None, with progress
    lines on stderr (as a download's) for a folder of PROGRESS_FILES files or more."""
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    tenths = None
    if n >= PROGRESS_FILES and progress.shown():
        say(f"ganforge: reading {n} images from {folder} ...")
        tenths = Tenths(say, n if n > PROGRESS_TENTHS else None,
                        lambda done: f"ganforge: read {done} of {n} images ({100 * done // n}%)",
                        seconds=PROGRESS_SECONDS)
    errors = []
    with quiet_bombs(), ThreadPoolExecutor(_WORKERS) as pool:
        for error in pool.map(lambda i: _try(job, i)[1], range(n)):
            errors.append(error)
            if tenths is not None:
                tenths(len(errors))
    return errors


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _FolderImages(torch.utils.data.Dataset):
    """(uint8 CHW tensor, label or -1); module-level so DataLoader workers can pickle it."""

    def __init__(self, files: list[Path], labels: torch.Tensor | None, resolution: int, channels: int):
        self.files, self.labels, self.resolution = files, labels, resolution
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        # A file whose header was fine at scan time but whose body is not (streamed folders are
        # decoded only now): the next readable one takes its place, with a warning, so one bad
        # file among thousands does not end a long run; the choice is deterministic (resume).
        for k in range(MAX_SUBSTITUTES + 1):
            j = (i + k) % len(self.files)
            try:
                with quiet_bombs():
                    array = _decode(self.files[j], self.mode, self.resolution)
                break
            except Exception as exc:
                if k == MAX_SUBSTITUTES:
                    raise DataError(f"cannot decode {self.files[i]} nor the {k} files after it (the last: "
                                    f"{_reason(exc)}); check the folder's files") from None
                # stacklevel 1: attributed to this file, so the CLI prints it as its own one-line
                # warning (2 named torch's DataLoader, and Python's two-line format followed)
                warn(f"cannot decode {self.files[j]} ({_reason(exc)}); the next file takes its "
                              f"place; delete or fix it")
        image = torch.from_numpy(array.copy()).view(self.resolution, self.resolution, -1).permute(2, 0, 1)
        return image, int(self.labels[j]) if self.labels is not None else -1


@dataclass
class StreamingFolderDataset:
    files: list[Path]
    labels: torch.Tensor | None  # int64 [N]
    class_names: list[str] | None
    resolution: int
    channels: int
    name: str
    source: str
    file_keys: bytes | None = None  # file_keys(): what a resume compares

    def __len__(self) -> int:
        return len(self.files)

    def torch_dataset(self) -> torch.utils.data.Dataset:
        return _FolderImages(self.files, self.labels, self.resolution, self.channels)


@dataclass
class _Scan:
    """What a header-only pass over the folder found."""

    files: list[Path]  # readable, sorted
    labels: np.ndarray | None  # int64 [N]
    class_names: list[str] | None  # the classes' names (augment's classes.json, else the folders')
    class_dirs: list[str] | None  # the class subfolders, in label order
    all_gray: bool
    first_short_side: int
    sizes: list[tuple[int, int]]  # (width, height) of each file, from its header
    skipped: list[tuple[Path, str]]


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    if path.is_symlink() and not path.exists():
        raise OSError(broken_link(path))
    try:
        with Image.open(path) as img:  # reads the header only
            return img.mode, img.size
    except Image.DecompressionBombError as exc:
        raise OSError(f"{too_large(exc)}; resize it") from None


def broken_link(path: Path) -> str:
    """'broken link to TARGET', the target's tail kept when long (the listing keeps 60 characters)."""
    target = os.readlink(path)
    return f"broken link to {target if len(target) <= 40 else '...' + target[-37:]}"


# How to name another folder, by who asked: training reads data.name (the CLI's key=value and the
# Python API's config alike; a preset's default folder:images is one the user never typed).
TRAIN_FIX = ("set data.name=folder:PATH to a folder of images (e.g. ganforge train dcgan-folder "
             "data.name=folder:/path/to/images)")
FETCH_FIX = "pass folder:PATH with a folder of images"
EVAL_FIX = "point it at a folder of images"
# What a command reading a folder through load_dataset says instead of TRAIN_FIX (folder_fix):
# `translate-eval --data folder:PATH` is not trained, so training's data.name advice is wrong there.
_CALLER_FIX: ContextVar[str | None] = ContextVar("ganforge_folder_fix", default=None)


@contextmanager
def folder_fix(fix: str):
    """Within it, a folder that load_dataset cannot read ends its error with ``fix`` (what the
    caller's user passes instead), not with training's data.name advice."""
    token = _CALLER_FIX.set(fix)
    try:
        yield
    finally:
        _CALLER_FIX.reset(token)


def _scan(folder: Path, fix: str) -> _Scan:
    if not folder.is_dir():
        raise DataError(f"folder {folder} does not exist or is not a directory; {fix}")
    files = _image_files(folder)
    top_level = [p for p in files if p.parent == folder]
    # Classes are the visible subfolders, empty ones included: a class without images is an error.
    class_dirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p, folder)) \
        if files and not top_level else None
    if class_dirs is not None:
        _refuse_aliased_classes(folder, class_dirs)
    with quiet_bombs(), ThreadPoolExecutor(_WORKERS) as pool:
        results = list(pool.map(lambda p: _try(_header, p), files))
    ok = [(p, r) for p, (r, err) in zip(files, results) if err is None and min(r[1]) >= MIN_SIZE]
    skipped = [(p, err if err is not None else too_small(*r[1]))
               for p, (r, err) in zip(files, results) if err is not None or min(r[1]) < MIN_SIZE]
    if not ok:
        if not files:
            what = f"no {'/'.join(sorted(EXTENSIONS))} files"
        elif any(err is None for _, err in results):
            small = next(p for p, (r, err) in zip(files, results) if err is None)
            what = (f"{_count_files(len(files))}, none of at least {MIN_SIZE}x{MIN_SIZE} pixels (e.g. "
                    f"{small.relative_to(folder)}: {dict(skipped)[small]})")
        else:
            what = f"{_count_files(len(files))}, none readable (e.g. {skipped_listing(folder, skipped, 1)})"
        raise DataError(f"folder {folder} has {what}; {fix}")
    labels = None
    if class_dirs is not None:
        index = {name: i for i, name in enumerate(class_dirs)}
        labels = np.array([index[p.relative_to(folder).parts[0]] for p, _ in ok], dtype=np.int64)
        _require_every_class(folder, class_dirs, labels)
    return _Scan(files=[p for p, _ in ok], labels=labels, class_names=_class_names(folder, class_dirs),
                 class_dirs=class_dirs,
                 all_gray=all(mode in _GRAY_MODES for _, (mode, _size) in ok),
                 first_short_side=min(ok[0][1][1]), sizes=[r[1] for _, r in ok], skipped=skipped)


def _refuse_aliased_classes(folder: Path, class_dirs: list[str]) -> None:
    """DataError naming a class subfolder that is a link to another class folder (or into one, or
    to a folder holding one, or to the folder itself or above it): the walk reads each real folder
    once, so such a class had been reported as having "no readable images". Reading its images
    under both labels instead would train on the same pictures as two classes, which a
    class-conditional model cannot tell apart, so the alias is refused with the fix."""
    top = os.path.realpath(folder)
    real = {d: os.path.realpath(folder / d) for d in class_dirs}

    def inside(a: str, b: str) -> bool:  # a is b or a folder under it
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)

    def link(d: str) -> str:
        return f"'{d}' (a link to {os.readlink(folder / d)})" if (folder / d).is_symlink() else f"'{d}'"

    for d in class_dirs:
        if inside(top, real[d]):
            raise DataError(f"class folder {link(d)} in {folder} points at the folder itself or a folder "
                            f"above it; remove the link (each subfolder of folder:PATH is a class)")
    # Sorted by real path, a folder is followed by the folders under it: adjacent pairs suffice.
    order = sorted(class_dirs, key=lambda d: real[d] + os.sep)
    for a, b in zip(order, order[1:]):
        if inside(real[b], real[a]):  # b is a, or under it
            outer = (folder / a).is_symlink() and not (folder / b).is_symlink()
            alias, other = (a, b) if outer else (b, a)
            how = ("is the same folder as" if real[a] == real[b] else
                   "holds" if outer else "lies inside")
            raise DataError(f"class folder {link(alias)} in {folder} {how} class folder '{other}', so the "
                            f"same images would be in two classes; remove the link, or replace it with a "
                            f"folder of its own images (each subfolder of folder:PATH is a class)")


def _class_names(folder: Path, class_dirs: list[str] | None) -> list[str] | None:
    """The class names of the subfolders: their names, or, for a dataset ``ganforge augment``
    wrote (classes.json maps its folders 03_T-shirt-top to the run's names T-shirt/top), the
    names it was generated with, so a run trained on it generates a class by the same name."""
    if class_dirs is None:
        return None
    import json

    try:
        meta = json.loads((folder / "classes.json").read_text())
        names = dict(zip(meta["folders"], meta["class_names"]))
        if sorted(names) == sorted(class_dirs) and all(isinstance(v, str) for v in names.values()):
            return [names[d] for d in class_dirs]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return class_dirs


def _require_every_class(folder: Path, class_names: list[str] | None, labels) -> None:
    """DataError naming the first class subfolder left without a readable image."""
    if class_names is None:
        return
    counts = np.bincount(np.asarray(labels), minlength=len(class_names))
    for name, count in zip(class_names, counts):
        if count == 0:
            raise DataError(f"class folder '{name}' in {folder} has no readable images; add images "
                            f"to it or remove it (each subfolder of folder:PATH is a class)")


def _try(fn, *args):
    """(result, None) or (None, reason): one bad file must not stop a scan of thousands."""
    try:
        return fn(*args), None
    except Exception as exc:  # PIL raises many types for bad files
        return None, _reason(exc)


def _count_files(n: int) -> str:
    """'1 image file', '3 image files'."""
    return f"{n} image file{'' if n == 1 else 's'}"


def skipped_listing(folder: Path, skipped: list[tuple[Path, str]], shown: int = 5) -> str:
    """'a.png (reason), b.png (reason), ... and 3 more' on one line."""
    def short(path: Path, reason: str) -> str:  # PIL repeats the full path in its message
        reason = reason.replace(" '" + str(path) + "'", "")
        return reason if len(reason) <= 60 else reason[:57] + "..."  # cut, and seen to be

    names = [f"{p.relative_to(folder)} ({short(p, reason)})" for p, reason in skipped[:shown]]
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return ", ".join(names) + more


def _warn_skipped(folder: Path, skipped: list[tuple[Path, str]]) -> None:
    """One warning line with the count and the files (the CLI prints it as one line)."""
    if skipped:
        noun = _count_files(len(skipped)).split(" ", 1)[1]
        warn(f"skipped {len(skipped)} unusable {noun} in {folder}: "
                      f"{skipped_listing(folder, skipped)}")


def _defaults(scan: _Scan, resolution: int | None, channels: int | None) -> tuple[int, int]:
    resolution = resolution or min(scan.first_short_side, MAX_DEFAULT_RESOLUTION)
    channels = channels or (1 if scan.all_gray else 3)
    return resolution, channels


def _folder(arg: str | None) -> Path:
    if not arg:
        raise DataError("folder: needs a path, e.g. folder:/data/faces")
    return Path(arg).expanduser()


def file_keys(folder: Path, files: list[Path], sizes: list[tuple[int, int]] | None = None) -> bytes:
    """The files a dataset was read from, as sorted 8-byte keys: a hash of each file's path under
    ``folder`` and its pixel size (the scan's header sizes: nothing is read again; None: the path
    alone, for readers that resize as they decode). A checkpoint keeps them, and a resume tells
    how many files were added and removed since it was written (api._check_resume_data),
    wherever the folder is now."""
    sized = [f"\0{w}x{h}" for w, h in sizes] if sizes is not None else [""] * len(files)
    keys = [int.from_bytes(hashlib.blake2b(f"{p.relative_to(folder).as_posix()}{size}".encode(),
                                           digest_size=8).digest(), "little") for p, size in zip(files, sized)]
    return np.sort(np.array(keys, dtype="<u8")).tobytes()


def _read(folder: Path, scan: _Scan, *, name: str, resolution: int, channels: int,
          max_memory_bytes: int | None, fix: str) -> ImageDataset | StreamingFolderDataset:
    """The scanned files decoded at ``resolution`` with ``channels``, or streamed when too large."""
    labels = torch.from_numpy(scan.labels) if scan.labels is not None else None
    n = len(scan.files)
    limit = max_memory_bytes if max_memory_bytes is not None else default_max_memory_bytes()
    if n * channels * resolution * resolution > limit:
        _warn_skipped(folder, scan.skipped)
        return StreamingFolderDataset(files=scan.files, labels=labels, class_names=scan.class_names,
                                      resolution=resolution, channels=channels, name=name, source=str(folder),
                                      file_keys=file_keys(folder, scan.files, scan.sizes))
    images = np.empty((n, resolution, resolution, channels), dtype=np.uint8)  # HWC, as PIL gives it
    mode = "L" if channels == 1 else "RGB"

    def fill(i: int):
        images[i] = _decode(scan.files[i], mode, resolution).reshape(resolution, resolution, channels)

    errors = _decode_all(folder, n, fill)
    keep = np.array([e is None for e in errors])
    skipped = scan.skipped + [(p, e) for p, e in zip(scan.files, errors) if e is not None]
    _warn_skipped(folder, skipped)
    if not keep.any():
        raise DataError(f"folder {folder} has no image that decodes; {fix}")
    if not keep.all():
        images = images[keep]
        labels = labels[torch.from_numpy(keep)] if labels is not None else None
        _require_every_class(folder, scan.class_dirs, labels)
    dataset = ImageDataset(images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels=labels,
                           class_names=scan.class_names, source=str(folder), name=name)
    kept = [(p, size) for p, size, k in zip(scan.files, scan.sizes, keep) if k]
    dataset.file_keys = file_keys(folder, [p for p, _ in kept], [size for _, size in kept])  # read by data_record
    return dataset


def load_for_eval(arg: str | Path, *, resolution: int | None = None,
                  channels: int | None = None) -> ImageDataset | StreamingFolderDataset:
    """A folder as ``ganforge eval`` reads it, as its target or as ``--ref folder:PATH``.

    Without a resolution, the images are read at the largest short side among all files (headers
    only), capped at MAX_EVAL_RESOLUTION: training's default, the first file's short side, had
    let one thumbnail sorted first shrink every 400x400 image to 30x30 before the extractor saw
    it. Files of different sizes are said in a warning naming the size used; colour read as
    grayscale (the samples' channel count) is said in eval's words, not training's options.
    """
    folder = _folder(str(arg))
    scan = _scan(folder, EVAL_FIX)
    if resolution is None:
        sides = sorted(min(size) for size in scan.sizes)
        resolution = min(sides[-1], MAX_EVAL_RESOLUTION)
        if len(set(scan.sizes)) > 1:
            warn(f"the images in {folder} differ in size (short sides {sides[0]} to {sides[-1]} "
                          f"pixels); all are evaluated at {resolution}x{resolution} (short side resized, "
                          f"then center-cropped)")
    channels = channels or (1 if scan.all_gray else 3)
    if channels == 1 and not scan.all_gray:
        warn(f"{folder} holds colour images; they are evaluated in grayscale, as the 1-channel "
                      f"images they are compared with")
    return _read(folder, scan, name=f"folder:{arg}", resolution=resolution, channels=channels,
                 max_memory_bytes=None, fix=EVAL_FIX)


def _upscaled(folder: Path, scan: _Scan, resolution: int) -> str | None:
    """The note for a folder whose images are mostly smaller than ``resolution``: each is enlarged
    to it, and a GAN learns the enlargement's blur (there is no detail to learn at that size)."""
    sides = sorted(min(size) for size in scan.sizes)
    small = sum(side < resolution for side in sides)
    if small * 2 <= len(sides):
        return None
    median = sides[len(sides) // 2]
    range_ = (f"short side {median}" if sides[0] == sides[-1] else
              f"short sides {sides[0]} to {sides[-1]} pixels, median {median}")
    return (f"{small} of {len(sides)} images in {folder} are smaller than data.resolution={resolution} "
            f"({range_}) and are enlarged to it, so the samples learn their blur; set a data.resolution of "
            f"at most {median}, or use larger images")


class FolderSource:
    def load(self, req: LoadRequest) -> ImageDataset | StreamingFolderDataset:
        folder = _folder(req.arg)
        if req.split not in ("train", "test", "all"):  # a typo had been recorded and trained on
            raise DataError(f"data.split={req.split}: a folder has one split, which train, test and all "
                            f"all read; use data.split=train")
        fix = _CALLER_FIX.get() or TRAIN_FIX
        scan = _scan(folder, fix)
        resolution, channels = _defaults(scan, req.resolution, req.channels)
        # training's advice names data.channels; a command reading a folder for something else (a
        # detector's eval: its channels are the detector's) takes no such setting
        training = _CALLER_FIX.get() is None
        if channels == 1 and not scan.all_gray:  # a config's default (Fashion-MNIST's 1) had been silent
            warn(f"{folder} holds colour images; they are read as grayscale "
                 + ("(data.channels=1); set data.channels=3 to use their colour" if training else "here"))
        if channels == 3 and scan.all_gray and req.channels == 3 and training:
            warn(f"{folder} holds grayscale images only; data.channels=3 trains on three equal "
                          f"channels of each; set data.channels=1")
        upscaled = _upscaled(folder, scan, resolution) if training else None  # advice on data.resolution
        if upscaled:
            warn(upscaled)
        return _read(folder, scan, name=req.name, resolution=resolution, channels=channels,
                     max_memory_bytes=req.max_memory_bytes, fix=fix)

    def fetch(self, arg, *, data_dir) -> str:
        """'folder:PATH: N images in K classes at PATH[; skipped M unusable image files: ...]'.

        N is what training uses: every file is decoded (at a small size, on threads) as training
        decodes it, so a file whose header reads but whose body does not is counted among the
        skipped, not the images; a class left without a usable image is the error training gives.
        """
        folder = _folder(arg)
        scan = _scan(folder, FETCH_FIX)
        errors = _decode_all(folder, len(scan.files), lambda i: _decode(scan.files[i], "L", MIN_SIZE))
        files = [p for p, e in zip(scan.files, errors) if e is None]
        skipped = sorted(scan.skipped + [(p, e) for p, e in zip(scan.files, errors) if e is not None])
        if not files:
            raise DataError(f"folder {folder} has no image that decodes; {FETCH_FIX}")
        if scan.labels is not None:
            _require_every_class(folder, scan.class_dirs, scan.labels[[e is None for e in errors]])
        classes = f" in {len(scan.class_names)} classes" if scan.class_names else ""
        bad = ""
        if skipped:
            noun = _count_files(len(skipped)).split(" ", 1)[1]
            bad = f"; skipped {len(skipped)} unusable {noun}: {skipped_listing(folder, skipped)}"
        return f"folder:{arg}: {len(files)} image{'' if len(files) == 1 else 's'}{classes} at {folder.resolve()}{bad}"

    def info(self, arg) -> dict:
        """Properties load_dataset gives by default (resolution: first image's short side, capped)."""
        scan = _scan(_folder(arg), TRAIN_FIX)
        resolution, channels = _defaults(scan, None, None)
        return {"resolution": resolution, "channels": channels,
                "num_classes": len(scan.class_names) if scan.class_names else None,
                "class_names": scan.class_names}


DATASETS.register("folder:PATH")(FolderSource())
