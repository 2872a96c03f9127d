"""Class labels of conditional runs, shared by every family that generates a requested class and
by the commands that ask for one: grid layouts, class lookup by index or name, and grids with
each row's class written beside it."""
from __future__ import annotations

import math
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError


class ClassError(ConfigError):
    """A class requested by index or name that the run does not have."""


def grid_columns(n: int) -> int:
    """Images per row of a grid of n (the nearest whole square root): the Trainer's sample grids,
    ``ganforge sample`` and the server's PNGs tile so, and ``grid_labels`` puts a class per row."""
    return max(1, round(math.sqrt(n)))


def grid_labels(n: int, num_classes: int, per_row: int | None = None) -> Tensor:
    """Labels [n] for a grid of n images laid out ``per_row`` to a row (default ``grid_columns``,
    as every grid is tiled): every row holds one class, rows cycle through the classes. With
    n = K * K the grid is one row per class."""
    per_row = per_row or grid_columns(n)
    return (torch.arange(n) // per_row) % num_classes


def interleaved_labels(n: int, num_classes: int, start: int = 0) -> Tensor:
    """Labels [n] for scoring a conditional generator: image i (counted from ``start``) is class
    i % K, so any n consecutive images hold every class equally often, to one image. The grid
    layout's rows are not balanced for most n (1,000 images of 10 classes gave 124 of the first
    two classes and 93 of the rest), and FID over an uneven class mix is biased."""
    return (torch.arange(start, start + n) % num_classes).to(torch.int64)


def class_kwargs(objective, n: int, start: int = 0) -> dict:
    """``objective.sample``'s keyword for balanced classes (``interleaved_labels``): {} for a family
    that does not sample a requested class."""
    k = int(getattr(objective, "num_classes", 0) or 0)
    if "sample_labels" not in objective.capabilities or k <= 0:
        return {}
    return {"labels": interleaved_labels(n, k, start)}


def _comparable(name: str) -> str:
    """A class name as typed and as stored compare equal: Unicode NFC (a name typed or made on
    macOS arrives decomposed, 'e' and a combining accent), then case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def resolve_class(value: str | int, class_names: Sequence[str]) -> int:
    """A class index from an index or a name, or a ClassError listing them. An int is an index.
    A text is first a class's exact name (Unicode-normalized), then a name that differs only by
    case when one class has it, then an index: a class folder named "2" is class "2" whatever
    its index (folders 0-11 sort as text, 0, 1, 10, 11, 2, ...; "2" had drawn index 2, folder
    "10"), and of folders "Cat" and "cat", "Cat" is "Cat" (it had drawn "cat")."""
    k = len(class_names)
    text = str(value).strip()
    shown = text if len(text) <= 60 else text[:60] + "..."  # a 5,000-character value is not echoed whole
    if not isinstance(value, int):
        typed = unicodedata.normalize("NFC", text)
        exact = [i for i, name in enumerate(class_names) if unicodedata.normalize("NFC", name) == typed]
        if exact:
            return exact[0]
        folded = [i for i, name in enumerate(class_names) if _comparable(name) == _comparable(text)]
        if len(folded) == 1:
            return folded[0]
        if len(folded) > 1:
            raise ClassError(f"class '{shown}' matches {' and '.join(repr(class_names[i]) for i in folded)}, "
                             f"which differ only by case; type the name exactly or give its index: "
                             f"{listing(class_names)}")
    if text.lstrip("-").isdigit():
        if len(text) > 20:  # past any index (and int() refuses over 4,300 digits)
            raise ClassError(f"class index {shown} is out of range; this run has classes 0..{k - 1}: "
                             f"{listing(class_names)}")
        index = int(text)
        if 0 <= index < k:
            return index
        raise ClassError(f"class index {index} is out of range; this run has classes 0..{k - 1}: "
                         f"{listing(class_names)}")
    raise ClassError(f"unknown class '{shown}'; valid classes (index or name): {listing(class_names)}")


def labels_tensor(n: int, labels, class_names: Sequence[str]) -> Tensor:
    """int64 [n] on the CPU for a conditional family's ``sample``: the given labels (one int for
    all, or n of them), or the grid layout of ``grid_labels`` when None; a class the run does
    not have is a ClassError listing them."""
    k = len(class_names)
    if labels is None:
        out = grid_labels(n, k)
    elif isinstance(labels, int):
        out = torch.full((n,), labels, dtype=torch.int64)
    else:
        out = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
        if len(out) != n:
            raise ValueError(f"{len(out)} labels for {n} samples")
    if len(out) and (int(out.min()) < 0 or int(out.max()) >= k):
        raise ClassError(f"labels must be in 0..{k - 1}; this run's classes: {listing(class_names)}")
    return out


def dataset_classes(cfg, data_info, *, otherwise: str) -> list[str]:
    """The class names of a labeled dataset's ``data_info`` (index order; the indices as names
    when it has none), or a one-line ConfigError for a conditional family given unlabeled data;
    ``otherwise`` names the unconditional objective to train instead."""
    k = int(data_info.get("num_classes") or 0)
    if not k or not data_info.get("has_labels", True):
        # the dataset actually given (a Python dataset is not cfg.data.name)
        name = str(data_info.get("name") or cfg.data.name)
        raise ConfigError(f"objective={cfg.objective} needs a labeled dataset; {name} has "
                          f"no labels{_stray_images(name)} (use fashion-mnist, mnist, cifar10, "
                          f"folder:PATH with one subfolder per class, or an ImageDataset with labels), "
                          f"or train objective={otherwise}")
    names = data_info.get("class_names")
    return [str(n) for n in names] if names else [str(i) for i in range(k)]


def _stray_images(name: str) -> str:
    """For a folder with class subfolders that is unlabelled because of images beside them:
    which, so the user can move them."""
    if not name.startswith("folder:"):
        return ""
    from .imageio import EXTENSIONS

    folder = Path(name.removeprefix("folder:")).expanduser()
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return ""
    top = sorted(p.name for p in entries if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if top and any(p.is_dir() for p in entries):
        many = len(top) > 1
        return (f": {f'its {len(top)} images' if many else 'an image'} beside the class subfolders (e.g. "
                f"{top[0]}) make{'' if many else 's'} it one unlabelled set; move {'them' if many else 'it'} "
                f"into a subfolder")
    return ""


def listing(class_names: Sequence[str]) -> str:
    return ", ".join(f"{i}={name}" for i, name in enumerate(class_names))


LABEL_FONT_SIZE = 11  # pixels, about PIL's built-in font


def _label_font():
    """(font, whether a character can be drawn): DejaVu Sans from matplotlib's fonts (a
    dependency), which covers Latin, Greek and Cyrillic; PIL's built-in font has ASCII only
    and had drawn the class 'blåbær' as 'bl▯b▯r'. Where the file is missing, the built-in font."""
    from PIL import ImageFont

    try:
        import matplotlib
        from matplotlib.ft2font import FT2Font

        path = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
        face = FT2Font(path)
        return ImageFont.truetype(path, LABEL_FONT_SIZE), lambda ch: face.get_char_index(ord(ch)) != 0
    except (ImportError, OSError, RuntimeError):
        return ImageFont.load_default(), lambda ch: ch.isascii() and ch.isprintable()


def labeled_grid(images: torch.Tensor, labels: torch.Tensor, class_names: list[str], per_row: int):
    """A PIL image: images float [N, C, H, W] in [-1, 1] tiled ``per_row`` to a row, each row
    prefixed by the index and class name of its first image (a character the font lacks, as
    in '猫', is drawn as '?', the index telling such classes apart)."""
    from PIL import Image, ImageDraw

    from .grid import make_grid

    grid = make_grid(images.cpu(), nrow=per_row, value_range=(-1, 1), padding=2)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    h = images.shape[2] + 2
    rows = (len(images) + per_row - 1) // per_row
    font, drawable = _label_font()
    texts = ["".join(ch if drawable(ch) else "?" for ch in
                     f"{int(labels[r * per_row])} {class_names[int(labels[r * per_row])]}") for r in range(rows)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(int(probe.textlength(t, font=font)) for t in texts) + 8
    canvas = Image.new("RGB", (arr.shape[1] + margin, arr.shape[0]), "black")
    canvas.paste(Image.fromarray(arr).convert("RGB"), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(texts):
        draw.text((4, r * h + max(2, h // 2 - 6)), text, fill="white", font=font)
    return canvas
