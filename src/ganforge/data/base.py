"""Shared pieces of the data layer: the dataset registry, the in-memory image dataset, and
resolution/channel adaptation of uint8 image tensors."""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..config import available_memory
from ..registry import Registry

# A folder whose decoded images would take more than this is streamed from disk, not loaded:
# at most MAX_IN_MEMORY_BYTES, and at most MEMORY_SHARE of the memory available when it loads
# (the model, the optimizer and the DataLoader need the rest).
MAX_IN_MEMORY_BYTES = 4 * 2**30
MEMORY_SHARE = 0.5


def default_max_memory_bytes() -> int:
    """min(MAX_IN_MEMORY_BYTES, MEMORY_SHARE x available memory), read now; the fixed cap
    where the available memory is unknown."""
    have = available_memory()
    return MAX_IN_MEMORY_BYTES if have is None else min(MAX_IN_MEMORY_BYTES, int(have * MEMORY_SHARE))


@dataclass(frozen=True)
class LoadRequest:
    """Everything load_dataset was asked for; each source reads the fields that concern it."""

    name: str
    arg: str | None  # the PATH of "folder:PATH"; None for other sources
    split: str = "train"
    resolution: int | None = None
    channels: int | None = None
    data_dir: str | Path | None = None
    download: bool = True
    max_memory_bytes: int | None = None  # None: default_max_memory_bytes() when the data loads
    n_toy: int = 100_000
    seed: int = 0


class Source(Protocol):
    def load(self, req: LoadRequest): ...
    def fetch(self, arg: str | None, *, data_dir) -> str: ...
    def info(self, arg: str | None) -> dict: ...


def _is_source(obj) -> bool:
    """Something whose load(req) can be called (the one method every use calls): an instance, or a
    class whose load is a static or class method (a class's plain load lacks its self)."""
    if isinstance(obj, type) and inspect.isfunction(inspect.getattr_static(obj, "load", None)):
        return False
    return callable(getattr(obj, "load", None))


# Keyed by the name a user types; "folder:PATH" is one key whose PATH part is parsed off.
DATASETS: Registry[Source] = Registry(
    "dataset", check=_is_source,
    expects="a source instance with load(req), fetch(arg, *, data_dir) and info(arg) "
            "(CONTRIBUTING.md, 'Other extension points')")

# The data names whose part after the prefix is a path (folder:PATH of the image families, pairs,
# super-resolution; audio:PATH of the audio families); photos:SPLIT and toy:NAME are not paths.
PATH_PREFIXES = ("folder:", "audio:")


def absolute_data_name(name: str) -> str:
    """``name`` with the path of a path-taking prefix made absolute (~ expanded), against the
    current directory, where it is read from: a run saves it so, and resuming or evaluating it
    from elsewhere finds the same data. Other names (and an empty path) unchanged."""
    for prefix in PATH_PREFIXES:
        if name.startswith(prefix) and name[len(prefix):].strip():
            return prefix + os.path.abspath(os.path.expanduser(name[len(prefix):]))
    return name


class _TensorPairs(torch.utils.data.Dataset):
    """(uint8 CHW image, label or -1) pairs over in-memory tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i]) if self.labels is not None else -1


def _tensor_of(array):
    """A numpy array of numbers as the tensor it holds (copied where it is a view with negative
    strides, which torch cannot hold); anything else as given, for the checks to name."""
    if isinstance(array, np.ndarray) and array.dtype.kind in "biuf":
        return torch.from_numpy(np.ascontiguousarray(array))
    return array


@dataclass
class ImageDataset:
    images: torch.Tensor  # uint8 [N, C, H, W], C in {1, 3}
    labels: torch.Tensor | None  # int64 [N]
    class_names: list[str] | None
    source: str  # where the files came from (path or URL)
    name: str

    def __post_init__(self):
        # numpy arrays given from Python (train's dataset=) are taken as the tensors they hold:
        # images had been refused as "must be a uint8 tensor ..., got uint8" with no word of numpy
        self.images, self.labels = _tensor_of(self.images), _tensor_of(self.labels)

    def __len__(self) -> int:
        return len(self.images)

    def torch_dataset(self) -> torch.utils.data.Dataset:
        """Same interface as StreamingFolderDataset.torch_dataset(), for code that takes either."""
        return _TensorPairs(self.images, self.labels)


# ITU-R BT.601 luma, the weights PIL's convert("L") uses, so named and folder datasets agree.
_LUMA = (0.299, 0.587, 0.114)


def adapt_images(images: torch.Tensor, resolution: int | None, channels: int | None) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, channels, resolution, resolution] (None keeps the native value)."""
    n, c, h, w = images.shape
    need = n * (channels or c) * (resolution or h) * (resolution or w)
    have = available_memory()
    if have is not None and need > have:  # refused, not attempted: the allocation would fail or swap
        from ..errors import DataError

        raise DataError(f"{n} images at {resolution}x{resolution} need {need / 1e9:.1f} GB in memory, "
                        f"more than the {have / 1e9:.1f} GB available; lower data.resolution")
    if channels is not None and channels != c:
        if channels == 3:  # 1 -> 3: replicate (repeat, not expand: callers may write in place)
            images = images.repeat(1, 3, 1, 1)
        else:  # 3 -> 1
            weights = torch.tensor(_LUMA).view(1, 3, 1, 1)
            images = torch.cat([(chunk.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
                                for chunk in images.split(8192)])
    if resolution is not None and (h, w) != (resolution, resolution):
        # Chunked so that 60k images at 64x64 do not need a 1 GB float32 temporary.
        images = torch.cat([
            F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=True).round_().clamp_(0, 255).to(torch.uint8)
            for chunk in images.split(4096)
        ])
    return images.contiguous()
