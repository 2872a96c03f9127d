"""Datasets for ganforge: named image datasets (fashion-mnist, mnist, cifar10), a folder of
images (folder:PATH) and 2-D toy mixtures (toy:ring8, toy:grid25).

    ds = load_dataset("fashion-mnist", resolution=32)   # ImageDataset, uint8 [N, 1, 32, 32]
    print(fetch("fashion-mnist"))                       # where it came from

Images are uint8 NCHW here; converting to float [-1, 1] is the caller's job (on the device,
where it is cheap), so the in-memory copy stays four times smaller.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DataError
from . import cifar, folder, named, toy  # noqa: F401  (importing registers the sources)
from .base import DATASETS, ImageDataset, LoadRequest
from .folder import StreamingFolderDataset
from .idx import read_idx
from .toy import ToyDataset

__all__ = ["DATASET_NAMES", "dataset_names", "ImageDataset", "ToyDataset", "StreamingFolderDataset",
           "load_dataset", "fetch", "dataset_info", "read_idx"]

# The built-in names, in registration order: fashion-mnist, mnist, cifar10, folder:PATH,
# toy:ring8, toy:grid25. A snapshot taken at import: dataset_names() has those registered since.
DATASET_NAMES = list(DATASETS)


def dataset_names() -> list[str]:
    """Every dataset name registered now, a plugin's included, in registration order."""
    return list(DATASETS)


def _resolve(name: str):
    """(source, argument): 'folder:PATH' -> (folder source, 'PATH'); other names have no argument."""
    if name.startswith("folder:"):
        return DATASETS.get("folder:PATH"), name[len("folder:"):]
    return DATASETS.get(name), None


def load_dataset(name: str, *, split: str = "train", resolution: int | None = None,
                 channels: int | None = None, data_dir: str | Path | None = None,
                 download: bool = True, max_memory_bytes: int | None = None, n_toy: int = 100_000,
                 seed: int = 0) -> ImageDataset | ToyDataset | StreamingFolderDataset:
    """Load a dataset by name at the given resolution and channel count (None: native).

    split applies to named datasets ("train"/"test"); folders and toys have a single split.
    A folder whose decoded images need more than max_memory_bytes is streamed from disk; None:
    the smaller of 4 GiB and half the memory available (ganforge.data.base.default_max_memory_bytes).
    """
    source, arg = _resolve(name)
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise ConfigError(f"resolution must be a positive integer, got {resolution!r}")
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels!r}")
    return source.load(LoadRequest(name=name, arg=arg, split=split, resolution=resolution, channels=channels,
                                   data_dir=data_dir, download=download, max_memory_bytes=max_memory_bytes,
                                   n_toy=n_toy, seed=seed))


def fetch(name: str, *, data_dir: str | Path | None = None) -> str:
    """Find or download (and verify) a dataset; returns a one-line message saying where it came from.

    Also the names training reads directly (photos, photos:SPLIT, audio:PATH): nothing to fetch,
    the message says so once they are there, a DataError when they are not."""
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():  # for every name, used or not
        raise DataError(f"--data-dir {data_dir} does not exist or is not a directory; pass the folder that "
                        f"holds {name}, or leave it out")
    if name == "photos" or name.startswith("photos:"):
        return _photos_note(name)
    if name.startswith("audio:"):
        return _audio_note(name)
    source, arg = _resolve(name)
    return source.fetch(arg, data_dir=data_dir)


def _photos_note(name: str) -> str:
    from . import photos

    split = name.split(":", 1)[1] if ":" in name else "train"  # as training parses it
    paths = photos.photo_paths(split)  # DataError: an unknown split, scikit-image or a photo missing
    return (f"{name}: scikit-image's sample images ({len(paths)} photographs in {paths[0].parent}), "
            f"read directly by training; nothing to fetch")


def _audio_note(name: str) -> str:
    from .audio import audio_files, parse_audio_name, survey

    root = parse_audio_name(name)
    fix = ("write one with ganforge data make-speech --out DIR, or point audio:PATH at a folder of "
           "WAV, FLAC, OGG or MP3 files")
    if not root.is_dir():
        raise DataError(f"audio folder {root} does not exist or is not a directory; {fix}")
    files = audio_files(root)
    if not files:
        raise DataError(f"audio folder {root} holds no WAV, FLAC, OGG or MP3 file; {fix}")
    seconds, rates, channels, bad = survey(files)
    if bad:  # training stops at the first of these; say them all now, before a run is started
        shown = ", ".join(f"{p.relative_to(root)} ({why})" for p, why in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise DataError(f"{len(bad)} of {len(files)} audio files in {root} cannot be trained on: {shown}{more}; "
                        f"remove or replace them, then run this again")
    hz = ", ".join(f"{r} Hz" for r in sorted(rates))
    kinds = " and ".join({1: "mono", 2: "stereo"}.get(c, f"{c}-channel") for c in sorted(channels))
    length = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return (f"{name}: {len(files)} audio file{'' if len(files) == 1 else 's'} in {root} ({length}, {hz}, "
            f"{kinds}; each decodes and has sound), read directly by training; nothing to fetch")


def dataset_info(name: str) -> dict:
    """Native properties: resolution, channels, num_classes, class_names (None where not applicable)."""
    source, arg = _resolve(name)
    return source.info(arg)
