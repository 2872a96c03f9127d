"""Class labels of conditional runs, shared by every family that generates a requested class and
by the commands that ask for one: grid layouts and class lookup by index or name."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from .errors import ConfigError


class ClassError(ConfigError):
    """A class requested by index or name that the run does not have."""


def grid_labels(n: int, num_classes: int, per_row: int | None = None) -> Tensor:
    """Labels [n] for a grid of n images laid out ``per_row`` to a row (default int(sqrt(n)), as
    the Trainer tiles its sample grids): every row holds one class, rows cycle through the
    classes. With n = K * K the grid is one row per class."""
    per_row = per_row or max(1, int(math.sqrt(n)))
    return (torch.arange(n) // per_row) % num_classes


def resolve_class(value: str | int, class_names: Sequence[str]) -> int:
    """A class index from an index or a name (case-insensitive), or a ClassError listing them."""
    k = len(class_names)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < k:
            return index
        raise ClassError(f"class index {index} is out of range; this run has classes 0..{k - 1}: "
                         f"{listing(class_names)}")
    lowered = {name.lower(): i for i, name in enumerate(class_names)}
    if text.lower() in lowered:
        return lowered[text.lower()]
    raise ClassError(f"unknown class '{text}'; valid classes (index or name): {listing(class_names)}")


def listing(class_names: Sequence[str]) -> str:
    return ", ".join(f"{i}={name}" for i, name in enumerate(class_names))
