"""Named datasets stored as IDX files: Fashion-MNIST (Xiao et al., 2017, arXiv:1708.07747) and
MNIST (LeCun et al., 1998). Also the lookup shared with cifar.py: where to look for a named
dataset, and what to tell the user when it is nowhere and cannot be downloaded.

Lookup order: data_dir (else $GANFORGE_DATA), with /<name> appended and as given; the cache;
system folders (Debian packages); then a verified download into the cache. A data_dir that does
not hold the dataset is an error, not a reason to use another copy (GANFORGE_DATA, set for every
dataset, is passed over when it does not hold the one asked for).
Found files are not checksummed (Debian re-compresses them, so the upstream .gz checksums do
not apply); the IDX reader checks their structure instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import DATASETS, ImageDataset, LoadRequest, adapt_images
from .download import ChecksumMismatch, DownloadFailed, cache_root, download
from .idx import read_idx

# Mirrors tried in order. Module-level so tests can point them at a local server.
MIRRORS: dict[str, list[str]] = {
    # From the zalandoresearch/fashion-mnist README.
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    # yann.lecun.com is often down; torchvision uses the same S3 mirror first.
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}
CHECKSUMS: dict[str, dict[str, str]] = {
    "fashion-mnist": {  # MD5s from the official README
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12e480ee83cd310",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"},
}
# Folders where OS packages install datasets; a list per name so tests can replace it.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}
APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}
SPLITS = ("train", "test")
# Mean pixel / 255 of the official training images (torchvision's normalization constants): the
# two datasets have identical IDX headers, their content tells one from the other.
TRAIN_MEANS = {"mnist": 0.1307, "fashion-mnist": 0.2860}
OFFICIAL_TRAIN_COUNT = 60_000  # only the full official training set is judged by its mean


def _user_dirs(name: str, data_dir) -> list[Path]:
    """[DIR/name, DIR] of data_dir (else GANFORGE_DATA), or []. DIR/name first: DIR may be a
    folder of datasets holding another one's files at its top (MNIST's and Fashion-MNIST's files
    have the same names). An empty data_dir is none, as train's --data-dir "" (data.data_dir=) is:
    `data fetch --data-dir "$UNSET"` had failed with an IndexError."""
    data_dir = data_dir if data_dir not in ("", b"") else None
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(f"--data-dir {data_dir} does not exist or is not a directory; pass the "
                        f"folder that holds {name}, or leave it out to use the usual places")
    user = data_dir if data_dir is not None else os.environ.get("GANFORGE_DATA") or None
    if data_dir is None and user is not None and not Path(user).expanduser().is_dir():
        raise DataError(f"GANFORGE_DATA={user} does not exist or is not a directory; set it to the folder "
                        f"that holds {name}, or unset it to use the usual places (or pass --data-dir DIR)")
    return [Path(user).expanduser() / name, Path(user).expanduser()] if user else []


def search_dirs(name: str, data_dir) -> list[Path]:
    """Folders to look in, best first. A data_dir (or GANFORGE_DATA) that does not exist is a
    mistake, not a reason to use another copy silently."""
    return _user_dirs(name, data_dir) + [cache_root() / name] + [Path(d) for d in SYSTEM_DIRS.get(name, [])]


def obtain(name: str, *, data_dir, download_ok: bool, has: Callable[[Path], bool],
           fetch_into: Callable[[Path], str], manual: str, expected: str | None = None) -> tuple[Path, str]:
    """(folder holding the dataset, one-line message saying where it came from).

    has(dir) says whether a folder holds the dataset; fetch_into(cache_dir) downloads and
    verifies it there, returning the URL used; manual says what to download by hand, expected
    (default: manual) which files a folder given by the user must hold.
    """
    data_dir = data_dir if data_dir not in ("", b"") else None  # as _user_dirs
    user = _user_dirs(name, data_dir)
    if data_dir is not None and not any(has(d) for d in user):  # said for this dataset: no other copy
        raise DataError(f"--data-dir {data_dir} does not hold {name}: expected {expected or manual} in "
                        f"{user[1]} or {user[0]}; put them there, or leave --data-dir out to use the usual "
                        f"places")  # GANFORGE_DATA, a folder for all datasets, is looked in and passed
    looked = search_dirs(name, data_dir)
    for d in looked:
        if has(d):
            from_system = any(Path(p) == d for p in SYSTEM_DIRS.get(name, []))
            note = f" (Debian package {APT_PACKAGES[name]})" if from_system and name in APT_PACKAGES else ""
            return d, f"{name}: found at {d}{note}"
    cache = cache_root() / name
    apt = (f"install the Debian package '{APT_PACKAGES[name]}' (apt-get install {APT_PACKAGES[name]}), or "
           if name in APT_PACKAGES else "")
    fix = f"{apt}download {manual} from {MIRRORS[name][0]} into {cache}, or pass --data-dir DIR (or set GANFORGE_DATA)"
    places = ", ".join(str(d) for d in looked)
    if not download_ok:
        raise DataError(f"{name} not found in {places} and downloading is disabled; {fix}")
    urls = ", ".join(MIRRORS[name])
    try:
        url = fetch_into(cache)
    except ChecksumMismatch as exc:  # every mirror answered with a wrong file, or failed
        raise DataError(f"{name} not found in {places} and no download from {urls} matched its known "
                        f"checksum ({exc}), and the wrong file was not kept: it is corrupt or the mirror "
                        f"changed; try again later, or {fix}") from None
    except DownloadFailed as exc:
        raise DataError(f"{name} not found in {places} and download from {urls} failed ({exc}); {fix}") from None
    return cache, f"{name}: downloaded from {url} to {cache} and verified"


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; valid: {', '.join(SPLITS)}")


class IdxSource:
    """A dataset of four IDX files: images and labels for a train and a test split."""

    FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

    def __init__(self, name: str, class_names: list[str]):
        self.name, self.class_names = name, class_names

    @staticmethod
    def _file(d: Path, base: str) -> Path | None:
        """The file, gzipped (as downloaded) or not (as some users unpack it), named as upstream
        (train-images-idx3-ubyte) or dotted as some copies (Kaggle's) are (train-images.idx3-ubyte)."""
        names = (base, base.replace("-idx", ".idx"))
        return next((p for n in names for p in (d / f"{n}.gz", d / n) if p.is_file()), None)

    def _has(self, d: Path) -> bool:
        return all(self._file(d, base) for pair in self.FILES.values() for base in pair)

    def _fetch_into(self, cache: Path) -> str:
        urls = []
        for pair in self.FILES.values():
            for base in pair:
                if self._file(cache, base) is None:  # resume: keep files an earlier run verified
                    fname = f"{base}.gz"
                    urls.append(download([m + fname for m in MIRRORS[self.name]], cache / fname,
                                         CHECKSUMS[self.name][fname]))
        return urls[0].rsplit("/", 1)[0] + "/"  # not empty: a complete cache was found before

    def _obtain(self, data_dir, download_ok: bool) -> tuple[Path, str]:
        names = [f"{base}.gz" for pair in self.FILES.values() for base in pair]
        bases = [base for pair in self.FILES.values() for base in pair]
        # GANFORGE_DATA is set for every dataset: a folder of it holding the other dataset's files
        # (MNIST's at its top, asked for Fashion-MNIST) is passed over, as one without files is
        shared = _user_dirs(self.name, None) if data_dir is None else []

        def has(d: Path) -> bool:
            return self._has(d) and not (d in shared and self._holds_another(d))

        return obtain(self.name, data_dir=data_dir, download_ok=download_ok, has=has,
                      fetch_into=self._fetch_into, manual=f"{', '.join(names[:-1])} and {names[-1]}",
                      expected=f"{', '.join(bases[:-1])} and {bases[-1]} (.gz or not)")

    def _read_split(self, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(images [N, H, W], labels [N]) of a split, checked: a DataError names a damaged file."""
        image_file, label_file = (self._file(folder, base) for base in self.FILES[split])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{image_file} and {label_file} do not hold matching images [N, H, W] and labels [N] "
                            f"(shapes {images.shape}, {labels.shape}); delete them and fetch {self.name} again")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(f"{label_file} has labels outside 0..{len(self.class_names) - 1}; "
                            f"delete it and fetch {self.name} again")
        if split == "train":
            self._check_content(folder, images)
        return images, labels

    def _looks_like(self, images: np.ndarray) -> tuple[str, float] | None:
        """(the dataset, mean pixel) when these are the official training images of another
        dataset (identical IDX headers and file names); smaller stand-ins are not judged."""
        if len(images) != OFFICIAL_TRAIN_COUNT or self.name not in TRAIN_MEANS:
            return None
        mean = float(images.sum(dtype=np.int64)) / images.size / 255  # ~0.1 s: no second read
        like = min(TRAIN_MEANS, key=lambda other: abs(TRAIN_MEANS[other] - mean))
        return (like, mean) if like != self.name else None

    def _holds_another(self, folder: Path) -> bool:
        """Whether ``folder``'s training images are another dataset's (a read of them, ~0.4 s)."""
        try:
            return self._looks_like(read_idx(self._file(folder, self.FILES["train"][0]))) is not None
        except DataError:  # a damaged file: the read for training names it
            return False

    def _check_content(self, folder: Path, images: np.ndarray) -> None:
        """A DataError when the official training images of another dataset stand in this one's
        folder (``_looks_like``)."""
        found = self._looks_like(images)
        if found is not None:
            like, mean = found
            raise DataError(f"{folder} holds {like}, not {self.name}: the mean pixel of its training images is "
                            f"{mean:.4f}, {like}'s is {TRAIN_MEANS[like]:.4f} and {self.name}'s "
                            f"{TRAIN_MEANS[self.name]:.4f}; "
                            f"keep each dataset in a folder of its own (DIR/{like}, DIR/{self.name}) and pass the "
                            f"one with {self.name}'s files as --data-dir")

    def load(self, req: LoadRequest) -> ImageDataset:
        check_split(req.split)
        folder, _ = self._obtain(req.data_dir, req.download)
        images, labels = self._read_split(folder, req.split)
        images_t = adapt_images(torch.from_numpy(images).unsqueeze(1), req.resolution, req.channels)
        return ImageDataset(images=images_t, labels=torch.from_numpy(labels).long(),
                            class_names=list(self.class_names), source=str(folder), name=self.name)

    def fetch(self, arg, *, data_dir) -> str:
        """Where the dataset came from, once every file reads as training reads it: `data fetch`
        is the readiness check, so a truncated or foreign file found is an error here, not
        minutes later when training starts (a full read of the 70k images takes about a second)."""
        folder, message = self._obtain(data_dir, True)
        for split in SPLITS:
            self._read_split(folder, split)
        return message

    def info(self, arg) -> dict:
        return {"resolution": 28, "channels": 1, "num_classes": len(self.class_names),
                "class_names": list(self.class_names)}


FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DATASETS.register("fashion-mnist")(IdxSource("fashion-mnist", FASHION_MNIST_CLASSES))
DATASETS.register("mnist")(IdxSource("mnist", [str(d) for d in range(10)]))
