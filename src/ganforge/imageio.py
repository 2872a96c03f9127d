"""Reading an image file as a viewer shows it, in one place for every reader (training folders,
translation pairs, super-resolution, the translate/upscale/detect commands, the server).

PIL's ``convert`` alone gets four common files wrong: a phone photo stored sideways with an EXIF
Orientation tag stays sideways; a 16-bit grayscale PNG (mode I;16) is clipped to 8 bits, which
turns it nearly white; transparent pixels keep whatever colour lies under the alpha (often black,
sometimes leftovers of an edit); and each format's quirks are handled by each caller differently.
``normalize`` turns the image upright, scales 16- and 32-bit samples to 8 bits, composites
transparency on white (``BACKGROUND``), then converts to the mode asked for. GIF and TIFF files
are read too (a GIF's first frame).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
BACKGROUND = (255, 255, 255)  # where an image is transparent
_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF Orientation tag says; unturned when the EXIF block is too
    malformed for Pillow to rewrite (a camera's mistyped tag): a viewable photo is not lost."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # struct.error, TypeError, ... from re-serialising the EXIF
        return img


def normalize(img: Image.Image, mode: str) -> Image.Image:
    """``img`` upright (EXIF orientation applied), 16/32-bit samples scaled to 8 bits,
    transparency composited on BACKGROUND, in ``mode`` ("L" or "RGB")."""
    img = upright(img)
    if img.mode in _WIDE_GRAY:
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        # 16-bit samples: 65535 -> 255; a float image in [0, 1] -> [0, 255]; 8-bit values held
        # in a 32-bit mode stay as they are
        scale = (1 / 257 if img.mode.startswith("I;16") or top > 255 else
                 255.0 if img.mode == "F" and top <= 1.0 else 1.0)
        img = Image.fromarray(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8), "L")
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        base = Image.new("RGBA", img.size, BACKGROUND + (255,))
        img = Image.alpha_composite(base, img.convert("RGBA"))
    return img.convert(mode)


def too_large(exc: Image.DecompressionBombError) -> str:
    """'200 MP, over Pillow's safety limit of 179 MP' for PIL's decompression-bomb refusal, whose
    own two-line message names neither the size in camera terms nor a fix."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # PIL refuses past twice its warning size

    def size(n: int) -> str:
        return f"{n / 1e6:.0f} MP" if n >= 10**6 else f"{n} px"

    return f"{size(int(found[1])) if found else 'too large'}, over Pillow's safety limit of {size(limit)}"


def read(path: Path | str, mode: str) -> Image.Image:
    """The image file ``path`` through ``normalize``; a one-line DataError naming the file when
    it cannot be read (damaged, not an image, or over PIL's decompression-bomb limit)."""
    try:
        with Image.open(path) as img:
            return normalize(img, mode)
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to read safely ({too_large(exc)}); "
                        f"resize it or move it out of the folder") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path} ({type(exc).__name__}); delete or fix it") from None


def read_array(path: Path | str, mode: str) -> np.ndarray:
    """uint8 [H, W, C] (C = 1 for "L", 3 for "RGB") of the image file ``path``."""
    img = read(path, mode)
    return np.asarray(img).reshape(img.size[1], img.size[0], -1)
