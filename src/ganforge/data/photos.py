"""Photographs that ship inside an installed package, for offline image-to-image and
super-resolution demos: scikit-image's sample images (public-domain or CC0 photographs; see
skimage/data/README.txt and the scikit-image docs for their sources).

No dataset can be downloaded on an offline machine, but ``pip install scikit-image`` brings a
handful of real colour photographs in its wheel. They are read straight from the package
directory as PNG/JPEG files, so skimage itself is never imported (it is slow to import).

    train = load_photos("train")          # list of uint8 [H, W, 3] arrays
    test = load_photos("test")            # held-out photographs, never in "train"
    patches = cut_patches(train, size=64, stride=48)   # uint8 [N, 3, 64, 64]

The split is fixed by file name so every run and every benchmark holds out the same images.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError

# Colour photographs of natural scenes (not charts, logos, microscopy or synthetic images).
TRAIN_PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")
TEST_PHOTOS = ("chelsea.png", "motorcycle_right.png")
SPLITS = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS, "all": TRAIN_PHOTOS + TEST_PHOTOS}


def photo_dir() -> Path:
    """The directory that holds scikit-image's sample images, or a DataError saying how to get it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the offline photo demo needs scikit-image's sample photographs; "
                        "install them with: pip install scikit-image")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not folder.is_dir():
        raise DataError(f"scikit-image is installed but {folder} is missing; reinstall it with: "
                        f"pip install --force-reinstall scikit-image")
    return folder


def photo_paths(split: str = "train") -> list[Path]:
    if split not in SPLITS:
        raise DataError(f"unknown photo split {split!r}; use one of {', '.join(SPLITS)}")
    folder = photo_dir()
    paths = [folder / name for name in SPLITS[split]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"scikit-image's sample photographs {', '.join(missing)} are missing from "
                        f"{folder}; reinstall it with: pip install --force-reinstall scikit-image")
    return paths


def load_photos(split: str = "train") -> list[np.ndarray]:
    """The split's photographs as uint8 [H, W, 3] RGB arrays, in a fixed order."""
    return [np.asarray(Image.open(p).convert("RGB")) for p in photo_paths(split)]


def cut_patches(images: list[np.ndarray], size: int, stride: int | None = None) -> np.ndarray:
    """Every size x size window on a grid of ``stride`` (default: size) of every image, as uint8
    [N, C, size, size]. Images smaller than ``size`` contribute nothing."""
    stride = stride or size
    out = []
    for img in images:
        h, w = img.shape[:2]
        for top in range(0, h - size + 1, stride):
            for left in range(0, w - size + 1, stride):
                out.append(img[top:top + size, left:left + size])
    if not out:
        raise DataError(f"no {size}x{size} patch fits in the given images; lower the patch size")
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))
