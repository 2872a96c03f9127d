"""Data for image-to-image translation: pairs (A -> B) for Pix2Pix, two unpaired domains for
CycleGAN, and pair makers that turn any image dataset into a paired task.

Sources (``translate.task``):

- ``colorize`` / ``sketch`` / ``denoise``: B is an image of ``data.name`` (any dataset name,
  ``folder:PATH``, or ``photos``: patches of the colour photographs that ship with scikit-image,
  ganforge.data.photos), A is made from B by the pair maker: its luma (colorize), a deterministic
  edge map (sketch), or B with noise (denoise, ``translate.noise`` / ``noise_level``).
- ``paired``: ``data.name=folder:ROOT`` with ``ROOT/A/`` and ``ROOT/B/`` (files matched by
  name without extension) or side-by-side AB images (left half A, right half B, the layout of
  the public pix2pix datasets; an image not about twice as wide as high, AB_RATIO, is refused);
  either directly in ROOT or in ``ROOT/train/`` and ``ROOT/test/`` (or ``ROOT/val/``).
- ``unpaired``: ``data.name=folder:ROOT`` with ``ROOT/trainA/``, ``ROOT/trainB/`` and
  optionally ``ROOT/testA/``, ``ROOT/testB/``.

Where a source has no test split, every k-th file (k = 1 / ``translate.holdout``) is held out,
the same files every run; the last one when there are fewer than k (one file is refused).
Images are resized to ``translate.load_size`` (default ``data.resolution``); PairBatches then
crops ``data.resolution`` at random and flips, the same crop and flip on both sides of a pair.
Everything is uint8 NCHW in memory, float [-1, 1] in batches: ``{"a": [N, Ca, H, W],
"b": [N, Cb, H, W], "real": b, "labels": None}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, DataError, warn
from .. import imageio
from .base import adapt_images
from .folder import MIN_SIZE, broken_link, file_keys, quiet_bombs, skipped_listing, too_small
from ..imageio import EXTENSIONS, too_large

TASKS = ("colorize", "sketch", "denoise", "paired", "unpaired")
MADE_TASKS = ("colorize", "sketch", "denoise")
NOISES = ("gaussian", "saltpepper")
PREVIEW = 64  # held-out pairs kept for sample strips


def a_channels(cfg) -> int:
    """Input channels, known from the config alone (a run directory rebuilds without data)."""
    t = cfg.translate
    if t.a_channels is not None:
        return t.a_channels
    return 1 if t.task in ("colorize", "sketch") else cfg.data.channels


def check_config(cfg) -> None:
    t = cfg.translate
    if t.task not in TASKS:
        raise ConfigError(f"translate.task must be one of {', '.join(TASKS)}, got '{t.task}'")
    if t.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"translate.direction must be AtoB or BtoA, got '{t.direction}'")
    if t.noise not in NOISES:
        raise ConfigError(f"translate.noise must be one of {', '.join(NOISES)}, got '{t.noise}'")
    if t.a_channels not in (None, 1, 3):
        raise ConfigError(f"translate.a_channels must be 1 or 3, got {t.a_channels}")
    if not 0 <= t.noise_level <= 1:
        raise ConfigError(f"translate.noise_level must be in [0, 1], got {t.noise_level}")
    if not 0 < t.holdout < 1:
        raise ConfigError(f"translate.holdout must be in (0, 1), got {t.holdout}")
    if t.load_size is not None and t.load_size < cfg.data.resolution:
        raise ConfigError(f"translate.load_size={t.load_size} is smaller than the crop "
                          f"data.resolution={cfg.data.resolution}; raise it or leave it unset")
    if t.task == "colorize" and cfg.data.channels != 3:
        raise ConfigError("translate.task=colorize needs colour targets: set data.channels=3")
    if cfg.eval.every:
        raise ConfigError("eval.every measures samples from noise, which translation runs do not "
                          "make; set eval.every=0 and evaluate with: ganforge translate-eval RUN")
    if t.task in ("paired", "unpaired") and not cfg.data.name.startswith("folder:"):
        raise ConfigError(f"translate.task={t.task} reads a folder: set data.name=folder:PATH "
                          f"(got '{cfg.data.name}'); or pick a made task: colorize, sketch, denoise")


# ----------------------------------------------------------------------------- pair makers


def _luma(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3 or 1, H, W] -> float [N, 1, H, W] in [0, 255] (ITU-R BT.601, as PIL's "L")."""
    x = images.float()
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def make_colorize(images: torch.Tensor, **_: Any) -> torch.Tensor:
    """The grayscale (luma) version: uint8 [N, 1, H, W]."""
    return _to_uint8(_luma(images))


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def make_sketch(images: torch.Tensor, **_: Any) -> torch.Tensor:
    """A deterministic line drawing: dark lines where the luma's Sobel gradient is strong, on
    white. Each image's gradient magnitude is divided by its 90th percentile (so faint and
    contrasty photos get similar line densities), clipped to [0, 1] and inverted. uint8 [N, 1, H, W]."""
    out = []
    kernel = torch.stack([SOBEL_X, SOBEL_X.t()]).unsqueeze(1)  # [2, 1, 3, 3]
    for chunk in images.split(2048):
        y = F.pad(_luma(chunk) / 255.0, (1, 1, 1, 1), mode="replicate")
        g = F.conv2d(y, kernel)  # [n, 2, H, W]
        mag = g.square().sum(1, keepdim=True).sqrt()
        scale = torch.quantile(mag.flatten(1), 0.9, dim=1).clamp_min(1e-3).view(-1, 1, 1, 1)
        out.append(_to_uint8(255.0 * (1.0 - (mag / scale).clamp(0, 1))))
    return torch.cat(out)


def make_denoise(images: torch.Tensor, *, noise: str = "gaussian", noise_level: float = 0.2,
                 seed: int = 0, **_: Any) -> torch.Tensor:
    """B with noise, the same for a seed: gaussian (std ``noise_level`` x 255, clipped) or
    salt-and-pepper (a ``noise_level`` share of pixels set to black or white). Same shape as B."""
    g = torch.Generator().manual_seed(seed)
    if noise == "gaussian":
        z = torch.randn(images.shape, generator=g)
        return _to_uint8(images.float() + 255.0 * noise_level * z)
    if noise == "saltpepper":
        n, _, h, w = images.shape
        hit = torch.rand((n, 1, h, w), generator=g) < noise_level
        salt = torch.rand((n, 1, h, w), generator=g) < 0.5
        value = torch.where(salt, 255, 0).to(torch.uint8).expand_as(images)
        return torch.where(hit.expand_as(images), value, images)
    raise ConfigError(f"translate.noise must be one of {', '.join(NOISES)}, got '{noise}'")


PAIR_MAKERS: dict[str, Callable[..., torch.Tensor]] = {
    "colorize": make_colorize, "sketch": make_sketch, "denoise": make_denoise}


def make_pairs(images: torch.Tensor, task: str, *, noise: str = "gaussian",
               noise_level: float = 0.2, seed: int = 0) -> torch.Tensor:
    """The input side A for targets ``images`` (uint8 [N, C, H, W]) under a made task."""
    if task not in PAIR_MAKERS:
        raise ConfigError(f"no pair maker '{task}'; use one of {', '.join(PAIR_MAKERS)}")
    return PAIR_MAKERS[task](images, noise=noise, noise_level=noise_level, seed=seed)


# ----------------------------------------------------------------------------- reading images


def image_files(folder: Path) -> list[Path]:
    """The visible image files of ``folder``, broken links included (reading them fails, so they
    are listed among the skipped files instead of vanishing)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")
                  and (p.is_file() or (p.is_symlink() and not p.exists())))


def _read_files(folder: Path) -> list[Path]:
    """``image_files`` of a folder training reads, and a warning naming its subfolders: the
    layouts keep a side's images directly in its folder, and images in trainB/more/ had been
    left out silently (an image folder, folder:PATH, reads its subfolders; these do not)."""
    subfolders = sorted(f"{p.name}/" for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subfolders:
        one = len(subfolders) == 1
        warn(f"{folder} has {len(subfolders)} subfolder{'' if one else 's'} ({', '.join(subfolders[:3])}"
                      f"{', ...' if len(subfolders) > 3 else ''}) that {'is' if one else 'are'} not read: a "
                      f"translation folder's images lie directly in it; move them up to use them")
    return image_files(folder)


def _readable(files: list[Path], read: Callable[[Path], Any]) -> tuple[list[Any], list[tuple[Path, str]]]:
    """(``read(p)`` of each file, None where it fails; [(file, reason)] of those that failed):
    one damaged file must not refuse a folder of thousands (the callers skip it, named in a
    warning, as image folders and super-resolution folders do)."""
    out, bad = [], []
    with quiet_bombs():  # a 96 MP photo is read; over PIL's limit, skipped with the fix
        for path in files:
            try:
                if path.is_symlink() and not path.exists():
                    raise OSError(broken_link(path))
                out.append(read(path))
            except (DataError, OSError) as exc:
                cause = exc.__context__ if isinstance(exc, DataError) and exc.__context__ is not None else exc
                out.append(None)
                bad.append((path, f"{too_large(cause)}; resize it" if isinstance(cause, Image.DecompressionBombError)
                            else " ".join(str(cause).split()) or type(cause).__name__))
    return out, bad


def _unusable(bad: list[tuple[Path, str]]) -> str:
    """'unusable' when some skipped files read but are too small, else 'unreadable'."""
    return "unusable" if any(f"under {MIN_SIZE}x{MIN_SIZE}" in reason for _, reason in bad) else "unreadable"


def _warn_skipped(folder: Path, bad: list[tuple[Path, str]], what: str) -> None:
    """One warning line: 'skipped 2 pairs with an unreadable file in F: A/3.png (reason), ...'."""
    if bad:
        warn(f"skipped {what} in {folder}: {skipped_listing(folder, sorted(bad))}; delete or fix "
                      f"{'it' if len(bad) == 1 else 'them'}")


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _big_enough(img: Image.Image, width: int) -> Image.Image:
    """``img``, or an OSError (skipped, named) when ``width`` or its height is under MIN_SIZE, as
    an image folder skips it: a 1x1 file had been trained on silently."""
    if min(width, img.size[1]) < MIN_SIZE:
        raise OSError(too_small(width, img.size[1]))
    return img


def _read_one(path: Path, size: int | tuple[int, int], channels: int, sizes: dict | None = None) -> np.ndarray:
    """``path`` upright at ``size`` with ``channels``; ``sizes``: gets its own (width, height)."""
    h, w = (size, size) if isinstance(size, int) else size
    img = imageio.read(path, "L" if channels == 1 else "RGB")
    if sizes is not None:
        sizes[path] = img.size
    arr = np.asarray(_big_enough(img, img.size[0]).resize((w, h), Image.Resampling.BICUBIC))
    return arr.reshape(h, w, channels)


def _read_side(folder: Path, files: list[Path], size: int, channels: int) -> list[tuple[Path, np.ndarray]]:
    """The readable ones of ``files`` with their images (uint8 [size, size, channels] each), the
    others skipped and named in one warning; a DataError when none is readable."""
    arrays, bad = _readable(files, lambda p: _read_one(p, size, channels))
    if len(bad) == len(files):
        raise DataError(f"no image in {folder} is readable (e.g. {files[0].name}: {bad[0][1]}); "
                        f"delete or fix them, or add readable images")
    _warn_skipped(folder.parent, bad, f"{len(bad)} {_unusable(bad)} image file{'' if len(bad) == 1 else 's'}")
    return [(p, a) for p, a in zip(files, arrays) if a is not None]


# Side-by-side AB images are two square halves (the public pix2pix datasets are exactly 2:1),
# so their width is about twice their height. Within 10% tolerates an odd pixel or a trimmed
# edge and refuses ordinary photographs, 1:1 to 16:9 (1.78), instead of splitting them in half.
AB_RATIO = (1.8, 2.2)


def _read_halves(path: Path, size: int, channels: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): the left and right halves of a side-by-side AB image. A ConfigError, which the
    skipping of unreadable files lets through, for an image that is not twice as wide as high."""
    img = imageio.read(path, "RGB")
    w, h = img.size
    if not AB_RATIO[0] <= w / h <= AB_RATIO[1]:
        raise ConfigError(f"{path} is {w}x{h}, not a side-by-side AB image (those are twice as wide as "
                          f"high: left half A, right half B); put pairs in {path.parent}/A/ and "
                          f"{path.parent}/B/, matched by file name")
    _big_enough(img, w // 2)  # each half
    halves = (img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, 2 * (w // 2), h)))
    return tuple(np.asarray(half.convert("L" if c == 1 else "RGB").resize((size, size), Image.Resampling.BICUBIC))
                 .reshape(size, size, c) for half, c in zip(halves, channels))


def holdout_split(n: int, holdout: float) -> tuple[list[int], list[int]]:
    """(train indices, test indices): every k-th item, k = round(1 / holdout), is held out; the
    last one when there are fewer than k but at least 2 (7 images at holdout 0.1 still train on
    6 and preview and evaluate on 1). One item is all train: the caller refuses it."""
    k = max(2, round(1 / holdout))
    test = list(range(k - 1, n, k)) or ([n - 1] if n >= 2 else [])
    held = set(test)
    return [i for i in range(n) if i not in held], test


# ----------------------------------------------------------------------------- the dataset


@dataclass
class TranslationData:
    """Train and held-out images of both sides; ``paired``: a[i] goes with b[i]."""

    a: torch.Tensor  # uint8 [N, Ca, L, L] (L = load size)
    b: torch.Tensor  # uint8 [N or M, Cb, L, L]
    test_a: torch.Tensor
    test_b: torch.Tensor
    paired: bool
    name: str
    source: str
    crop: int  # data.resolution
    flip: bool
    labels: None = None
    class_names: None = None
    # a folder's files (data.folder.file_keys of their paths under it), training's and the held-out
    # ones, for a resume to compare; None for the offline tasks' images, made the same each time
    files: bytes | None = None
    held_out_files: bytes | None = None

    def data_record(self) -> dict[str, Any] | None:
        """What a checkpoint keeps of this data (objectives.base.data_record): the count of
        training pairs (images of both sides, unpaired) and the file keys of both splits, so that a
        resume on a folder with files added or removed says so, and which held-out pairs it had
        trained on: every k-th file is held out, so one file more moves the whole held-out set."""
        if self.files is None:
            return None
        unit = "pairs" if self.paired else "images"
        count = len(self.a) if self.paired else len(self.a) + len(self.b)
        return {unit: count, "files": self.files, "held_out": self.held_out_files}

    def __len__(self) -> int:
        return min(len(self.a), len(self.b))

    def make_batches(self, cfg, device: torch.device) -> "PairBatches":
        return PairBatches(self.a, self.b, batch_size=cfg.train.batch_size, seed=cfg.train.seed,
                           device=device, crop=self.crop, flip=self.flip, paired=self.paired)

    def preview(self, n: int = PREVIEW) -> tuple[torch.Tensor, torch.Tensor]:
        """n held-out pairs spread evenly over the test split, centre-cropped to the crop size."""
        def pick(x):
            idx = torch.linspace(0, len(x) - 1, min(n, len(x))).round().long()
            return center_crop(x[idx], self.crop)
        return pick(self.test_a), pick(self.test_b)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def _made_images(cfg, split: str) -> tuple[torch.Tensor, str]:
    """Targets B of a made task for ``split`` and where they came from."""
    d, t = cfg.data, cfg.translate
    size = t.load_size or d.resolution
    if d.name == "photos":
        from . import photos

        stride = (t.patch_stride or max(1, size // 2)) if split == "train" else size
        patches = torch.from_numpy(photos.cut_patches(photos.load_photos(split), size, stride))
        return adapt_images(patches, None, d.channels), f"photos:{split} ({photos.photo_dir()})"
    from . import load_dataset

    if d.name.startswith("folder:"):  # one split: hold out every k-th image
        ds = load_dataset(d.name, resolution=size, channels=d.channels, data_dir=d.data_dir)
        if not hasattr(ds, "images"):
            raise DataError(f"{d.name} is too large to hold in memory, which translation data "
                            f"needs; use fewer images or a smaller data.resolution / "
                            f"translate.load_size")
        train, test = holdout_split(len(ds), t.holdout)
        if not test:
            raise DataError(f"{d.name[len('folder:'):]} has too few images to hold some out "
                            f"({len(ds)}); add images")
        return ds.images[train if split == "train" else test], str(ds.source)
    ds = load_dataset(d.name, split=split, resolution=size, channels=d.channels,
                      data_dir=d.data_dir, seed=cfg.train.seed)
    return ds.images, str(ds.source)


def _by_stem(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """A paired side's image files by name without extension, and the files whose name another
    file shares (000.png and 000.jpg: which one is the partner is not knowable)."""
    files: dict[str, list[Path]] = {}
    for p in _read_files(folder):
        files.setdefault(p.stem, []).append(p)
    return ({stem: ps[0] for stem, ps in files.items() if len(ps) == 1},
            [p for ps in files.values() if len(ps) > 1 for p in ps])


def _warn_misshapen(folder: Path, pairs: list[tuple[Path, Path]], sizes: dict[Path, tuple[int, int]]) -> None:
    """One warning for pairs whose two images differ in shape (width / height by more than 2%):
    each side is resized to a square on its own, so their pixels line up only if both show the
    same framing; a 48x48 A with a 64x40 B had trained without a word."""
    odd = [(a, b) for a, b in pairs
           if abs(sizes[a][0] * sizes[b][1] - sizes[b][0] * sizes[a][1]) > 0.02 * sizes[a][0] * sizes[b][1]]
    if odd:
        (a, b), one = odd[0], len(odd) == 1
        warn(f"{len(odd)} pair{'' if one else 's'} in {folder} {'has' if one else 'have'} A and B images of "
             f"different shapes (e.g. A/{a.name} {sizes[a][0]}x{sizes[a][1]}, B/{b.name} {sizes[b][0]}x{sizes[b][1]}); "
             f"each side is resized to a square on its own, so they line up only if both show the same framing")


def _check_sides(folder: Path) -> None:
    """A paired folder with one side, or sides in lower case, is told so: it had been read as a
    folder of side-by-side AB images, with a warning to move A/'s images up and then "neither
    A/ and B/ subfolders nor side-by-side AB images"."""
    have = {p.name for p in folder.iterdir() if p.is_dir()}
    one = [s for s in ("A", "B") if s in have]
    if len(one) == 1:
        other = "B" if one[0] == "A" else "A"
        raise DataError(f"{folder} has {one[0]}/ but no {other}/: a paired folder needs both, partners named "
                        f"alike (A/001.png with B/001.jpg); add {folder / other}/")
    lower = [s for s in ("a", "b") if s in have]
    if lower and not one:
        raise DataError(f"{folder} has {' and '.join(s + '/' for s in lower)}: a paired folder's sides are named "
                        f"A/ and B/, in capitals; rename them")


def _paired_folder(cfg, root: Path) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], tuple[bytes, bytes]]:
    """(train A, B), (held-out A, B) and the file keys of the two splits (the A side's files, or
    the AB images)."""
    t, size = cfg.translate, cfg.translate.load_size or cfg.data.resolution
    ca, cb = a_channels(cfg), cfg.data.channels
    if t.direction == "BtoA":  # the folder's B side is the input
        ca, cb = cb, ca

    def read(folder: Path):
        _check_sides(folder)
        if (folder / "A").is_dir() and (folder / "B").is_dir():
            beside = image_files(folder)
            if beside:  # side-by-side AB images next to A/ and B/ had been left out without a word
                one = len(beside) == 1
                warn(f"{len(beside)} image{'' if one else 's'} in {folder} itself ({beside[0].name}"
                     f"{', ...' if not one else ''}) {'is' if one else 'are'} not read: with A/ and B/ "
                     f"there, the pairs are theirs; move side-by-side AB images to a folder of their own")
            (fa, twins_a), (fb, twins_b) = (_by_stem(folder / side) for side in ("A", "B"))
            empty = [f"{folder / side}" for side in ("A", "B") if not image_files(folder / side)]
            if empty:
                raise DataError(f"{' and '.join(empty)} hold{'s' if len(empty) == 1 else ''} no images "
                                f"({', '.join(sorted(EXTENSIONS))}); put each pair's two images there under "
                                f"one name (A/001.png with B/001.jpg)")
            twins = sorted(f"{p.parent.name}/{p.name}" for p in twins_a + twins_b)
            if twins:
                stems = {p.stem for p in twins_a + twins_b}
                fa, fb = ({n: p for n, p in f.items() if n not in stems} for f in (fa, fb))
                warn(f"{len(twins)} files in {folder} share a name without extension, so "
                              f"their pairs are not used ({', '.join(twins[:4])}"
                              f"{', ...' if len(twins) > 4 else ''}); rename or remove one of each")
            names = sorted(fa.keys() & fb.keys())
            if not names:
                raise DataError(f"{folder}/A and {folder}/B share no file names; pairs are "
                                f"matched by name without extension (A/001.png with B/001.jpg)")
            alone = sorted(f"A/{fa[n].name}" for n in fa.keys() - fb.keys()) + \
                sorted(f"B/{fb[n].name}" for n in fb.keys() - fa.keys())
            if alone:
                one = len(alone) == 1
                warn(f"{len(alone)} file{'' if one else 's'} in {folder} {'has' if one else 'have'} no "
                              f"partner of the same name on the other side and {'is' if one else 'are'} not used "
                              f"(e.g. {', '.join(alone[:3])})")
            # A pair with an unreadable side is skipped and named, as a folder skips a file.
            sizes: dict[Path, tuple[int, int]] = {}
            xa, bad_a = _readable([fa[n] for n in names], lambda p: _read_one(p, size, ca, sizes))
            xb, bad_b = _readable([fb[n] for n in names], lambda p: _read_one(p, size, cb, sizes))
            keep = [i for i in range(len(names)) if xa[i] is not None and xb[i] is not None]
            _warn_misshapen(folder, [(fa[names[i]], fb[names[i]]) for i in keep], sizes)
            bad = bad_a + bad_b
            if not keep:
                raise DataError(f"no pair in {folder} has both files readable (e.g. "
                                f"{bad[0][0].relative_to(folder)}: {bad[0][1]}); delete or fix the "
                                f"unreadable files, or add readable pairs")
            n_bad = len(names) - len(keep)
            _warn_skipped(folder, bad, f"{n_bad} pair{'' if n_bad == 1 else 's'} with an "
                                       f"{_unusable(bad)} file")
            return _stack([xa[i] for i in keep]), _stack([xb[i] for i in keep]), [fa[names[i]] for i in keep]
        files = _read_files(folder)
        if not files:
            raise DataError(f"{folder} holds neither A/ and B/ subfolders nor side-by-side AB "
                            f"images; see 'translate.task=paired' in the README for the layout")
        halves, bad = _readable(files, lambda p: _read_halves(p, size, (ca, cb)))
        kept = [p for p, h in zip(files, halves) if h is not None]
        halves = [h for h in halves if h is not None]
        if not halves:
            raise DataError(f"no side-by-side AB image in {folder} is readable (e.g. {bad[0][0].name}: "
                            f"{bad[0][1]}); delete or fix them, or add readable images")
        _warn_skipped(folder, bad, f"{len(bad)} {_unusable(bad)} AB image{'' if len(bad) == 1 else 's'}")
        return _stack([a for a, _ in halves]), _stack([b for _, b in halves]), kept

    if (root / "train").is_dir():
        train = read(root / "train")
        test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
        test = read(test_dir) if test_dir is not None else None
    else:
        train, test = read(root), None
    if test is None:
        keep, held = holdout_split(len(train[0]), t.holdout)
        if not held:
            where = root / "train" if (root / "train").is_dir() else root
            raise DataError(f"{where} has too few pairs to hold some out ({len(train[0])}); add "
                            f"pairs or a {root}/test/ folder")
        train, test = ((train[0][keep], train[1][keep], [train[2][i] for i in keep]),
                       (train[0][held], train[1][held], [train[2][i] for i in held]))
    keys = (file_keys(root, train[2]), file_keys(root, test[2]))
    train, test = train[:2], test[:2]
    if t.direction == "BtoA":
        train, test = train[::-1], test[::-1]
    return train, test, keys


def _unpaired_folder(cfg, root: Path):
    """(train A, B), (held-out A, B) and the file keys of the two splits, both sides in each."""
    t, size = cfg.translate, cfg.translate.load_size or cfg.data.resolution
    ca, cb = a_channels(cfg), cfg.data.channels
    sides = []
    for side, c in (("A", ca), ("B", cb)):
        if not (root / f"train{side}").is_dir():
            raise DataError(f"{root} has no train{side}/ folder; unpaired data needs "
                            f"{root}/trainA/ and {root}/trainB/ (and optionally testA/, testB/)")
        files = _read_files(root / f"train{side}")
        if not files:
            raise DataError(f"{root}/train{side}/ holds no images ({', '.join(sorted(EXTENSIONS))})")
        # Unreadable files are skipped (named in a warning) before the hold-out is chosen.
        train = _read_side(root / f"train{side}", files, size, c)
        test_files = _read_files(root / f"test{side}") if (root / f"test{side}").is_dir() else []
        if test_files:
            test = _read_side(root / f"test{side}", test_files, size, c)
        else:
            keep, held = holdout_split(len(train), t.holdout)
            train, test = [train[i] for i in keep], [train[i] for i in held]
        if not test:
            raise DataError(f"{root}/train{side}/ has too few images to hold some out; add "
                            f"images or a test{side}/ folder")
        sides.append((train, test))
    (a, test_a), (b, test_b) = sides
    keys = tuple(file_keys(root, [p for p, _ in x + y]) for x, y in ((a, b), (test_a, test_b)))
    return ((_stack([x for _, x in a]), _stack([x for _, x in b])),
            (_stack([x for _, x in test_a]), _stack([x for _, x in test_b])), keys)


def _warn_one_held_out(root: Path, held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Training takes a held-out domain of 1 image; translate-eval's FID / KID will not, so say
    so now rather than after the training's minutes (metrics.paired.check_held_out)."""
    for side, images in zip("AB", held_out):
        if len(images) == 1:
            test = root / f"test{side}"
            where = f"{test}/" if test.is_dir() and image_files(test) else f"{root}/train{side}/ (held out of it)"
            warn(f"the held-out {side} domain has 1 image ({where}); training runs, but translate-eval "
                 f"needs at least 2 per domain for FID / KID: add images to {root}/test{side}/")


# data.name of the cyclegan-folder and pix2pix-folder presets, until the user names a folder
PLACEHOLDER = "REPLACE_WITH_PATH"


def load_pairs(cfg, *, evaluating: bool = False) -> TranslationData:
    """The translation data a config asks for (see the module docstring); ``evaluating``: for
    translate-eval, which reads the folder the run was trained on (a missing one says so)."""
    check_config(cfg)
    t = cfg.translate
    if t.task in MADE_TASKS:
        b, source = _made_images(cfg, "train")
        test_b, _ = _made_images(cfg, "test")
        kw = dict(noise=t.noise, noise_level=t.noise_level)
        a = make_pairs(b, t.task, seed=cfg.train.seed, **kw)
        test_a = make_pairs(test_b, t.task, seed=cfg.train.seed + 1, **kw)  # other noise
        if a.shape[1] != a_channels(cfg):
            a = adapt_images(a, None, a_channels(cfg))
            test_a = adapt_images(test_a, None, a_channels(cfg))
        (tr, te), paired = ((a, b), (test_a, test_b)), True
        name, keys = f"{t.task}:{cfg.data.name}", (None, None)
    else:
        root = Path(cfg.data.name[len("folder:"):]).expanduser()
        if not root.is_dir():
            # train (--resume too) takes data.name=...; translate-eval reads the folder its run
            # was trained on and takes no override
            if evaluating:
                raise DataError(f"folder {root}, which this run was trained on, does not exist; move "
                                f"the data back to {root} to evaluate it")
            if root.name == PLACEHOLDER:  # a preset's, never trained on: the user is training
                raise DataError(f"no {t.task} data folder was given; set data.name=folder:PATH to "
                                f"your {t.task} data (e.g. ganforge train {cfg.objective}-folder "
                                f"data.name=folder:/path/to/data)")
            raise DataError(f"folder {root} does not exist; set data.name=folder:PATH to your "
                            f"{t.task} data (ganforge train, --resume too); for translate-eval, move "
                            f"the data back to {root}")
        paired = t.task == "paired"
        tr, te, keys = _paired_folder(cfg, root) if paired else _unpaired_folder(cfg, root)
        source, name = str(root), f"{t.task}:{root.name}"
        if not paired and not evaluating:
            _warn_one_held_out(root, te)
    return TranslationData(a=tr[0], b=tr[1], test_a=te[0], test_b=te[1], paired=paired,
                           name=name, source=source, crop=cfg.data.resolution, flip=t.flip,
                           files=keys[0], held_out_files=keys[1])


def load_test_pairs(cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out (A, B) uint8 images of a config at the load size (uncropped), the same
    split and, for denoise, the same noise as training held out."""
    check_config(cfg)
    t = cfg.translate
    if t.task in MADE_TASKS:
        test_b, _ = _made_images(cfg, "test")
        test_a = make_pairs(test_b, t.task, seed=cfg.train.seed + 1, noise=t.noise,
                            noise_level=t.noise_level)
        if test_a.shape[1] != a_channels(cfg):
            test_a = adapt_images(test_a, None, a_channels(cfg))
        return test_a, test_b
    data = load_pairs(cfg, evaluating=True)  # translate-eval's
    return data.test_a, data.test_b


# ----------------------------------------------------------------------------- batches


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class _Order:
    """Epoch permutations of n items, batch by batch; (epoch, pos) is the whole state."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.bs, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self.epoch, self.pos, self._perm = 0, 0, None

    def next(self) -> tuple[torch.Tensor, int, int]:
        if self.pos >= self.per_epoch:
            self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        if self._perm is None:
            self._perm = _permutation(self.n, self.seed, self.epoch)
        where = (self.epoch, self.pos)
        idx = self._perm[self.pos * self.bs:(self.pos + 1) * self.bs]
        self.pos += 1
        return idx, *where

    def state(self) -> tuple[int, int]:
        return self.epoch, self.pos

    def load(self, epoch: int, pos: int) -> None:
        self.epoch, self.pos, self._perm = int(epoch), int(pos), None


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


class PairBatches:
    """Endless batches of (A, B) held in memory on the device, with the state contract of
    ganforge.training.batches.InMemoryBatches: ``state_dict()`` is the position in the epoch
    order (plus B's own position when unpaired) and the random crops and flips are a function of
    (seed, epoch, position), so resume is exact.

    Paired: a[i] and b[i] get the same crop and flip. Unpaired: B is drawn in its own order and
    cropped and flipped independently. There is no ``probe``: the Trainer's diversity probe
    (mode collapse of a z -> image generator) does not apply to translation.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, *, batch_size: int, seed: int,
                 device: torch.device, crop: int, flip: bool = True, paired: bool = True):
        if min(len(a), len(b)) < batch_size:
            raise ValueError("dataset smaller than one batch")
        if paired and len(a) != len(b):
            raise ValueError(f"paired data needs as many A as B images, got {len(a)} and {len(b)}")
        self.a, self.b = a.to(device), b.to(device)
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.crop, self.flip, self.paired = crop, flip, paired
        self.order_a = _Order(len(a), batch_size, seed)
        self.order_b = None if paired else _Order(len(b), batch_size, seed + 7919)

    def state_dict(self) -> dict[str, int]:
        state = dict(zip(("epoch", "pos"), self.order_a.state()))
        if self.order_b is not None:
            state.update(zip(("b_epoch", "b_pos"), self.order_b.state()))
        return state

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.order_a.load(state["epoch"], state["pos"])
        if self.order_b is not None:
            self.order_b.load(state["b_epoch"], state["b_pos"])

    def _augment(self, xs: list[torch.Tensor], epoch: int, pos: int, salt: int) -> list[torch.Tensor]:
        """The same random crop and flip for every tensor in ``xs`` (one draw per sample)."""
        n, size = xs[0].shape[0], xs[0].shape[-1]
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 100_003 + pos * 2 + salt)
        if size > self.crop:
            top = torch.randint(0, size - self.crop + 1, (n,), generator=g).tolist()
            left = torch.randint(0, size - self.crop + 1, (n,), generator=g).tolist()
            c = self.crop
            xs = [torch.stack([x[i, :, t:t + c, l:l + c] for i, (t, l) in enumerate(zip(top, left))])
                  for x in xs]
        if self.flip:
            mirror = (torch.rand(n, generator=g) < 0.5).to(self.device).view(n, 1, 1, 1)
            xs = [torch.where(mirror, x.flip(-1), x) for x in xs]
        return xs

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        idx, epoch, pos = self.order_a.next()
        idx = idx.to(self.device)
        if self.paired:
            a, b = self._augment([self.a[idx], self.b[idx]], epoch, pos, 0)
        else:
            (a,) = self._augment([self.a[idx]], epoch, pos, 0)
            idx_b, epoch_b, pos_b = self.order_b.next()
            (b,) = self._augment([self.b[idx_b.to(self.device)]], epoch_b, pos_b, 1)
        a, b = to_float(a), to_float(b)
        return {"a": a, "b": b, "real": b, "labels": None}
