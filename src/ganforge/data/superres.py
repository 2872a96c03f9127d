"""Super-resolution training data: high-resolution (HR) photographs -> random HR crops -> the
low-resolution (LR) input by a known degradation.

Degradation: optional Gaussian blur, then antialiased bicubic downsampling by the scale factor,
the same operation as PIL's ``Image.resize(size, Image.BICUBIC, reducing_gap=None)`` (the
classic "BI" degradation of SR benchmarks), then optional Gaussian noise, rounding to uint8 (an
LR image is an 8-bit image) and optional JPEG compression. Blur, noise and JPEG follow the
"complex degradation" idea of Wang et al. 2021 (Real-ESRGAN) in a single stage.

Sources (``data.name``): ``photos`` (= ``photos:train``) and ``photos:test``, the offline
photographs of :mod:`ganforge.data.photos`, or ``folder:PATH``, any folder of images at their
native size, held in memory as uint8.

Batches are random crops drawn from a generator seeded by (seed, step): the step is the whole
state, so resume is exact (the ``state_dict`` contract of training.batches.InMemoryBatches).
There is deliberately no ``probe``: the Trainer's diversity probe compares sample diversity with
real-data diversity, which has no meaning for a conditional, deterministic LR -> HR mapping, so
the monitor skips mode-collapse checks for SR runs (its divergence, vanishing-gradient and
oscillation detectors still run).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import DataError, warn
from .. import imageio
from .folder import EXTENSIONS, _visible, broken_link


def downsample_bicubic(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling, PIL's BICUBIC resize (kernel a = -0.5 stretched by the
    scale factor) in float: [N, C, H, W] -> [N, C, H // scale, W // scale]."""
    h, w = hr.shape[-2] // scale, hr.shape[-1] // scale
    return F.interpolate(hr.float(), size=(h, w), mode="bicubic", align_corners=False,
                         antialias=True)


def _gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.functional import gaussian_blur

    out = []
    for img, sigma in zip(x, sigmas.tolist()):
        if sigma <= 0:
            out.append(img)
            continue
        k = 2 * int(np.ceil(3 * sigma)) + 1
        out.append(gaussian_blur(img[None], [k, k], [sigma, sigma])[0])
    return torch.stack(out)


def degrade(hr: torch.Tensor, scale: int, *, blur: float = 0.0, noise: float = 0.0,
            jpeg: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """HR uint8 [N, C, H, W] -> LR uint8 [N, C, H // scale, W // scale].

    blur: Gaussian sigma (HR pixels) drawn uniformly in [0, blur] per image; noise: std (in
    0-255 levels) drawn uniformly in [0, noise]; jpeg: quality drawn uniformly in [jpeg, 95]
    (0: off). Random draws come from ``generator`` (CPU), so a batch is reproducible."""
    n = hr.shape[0]
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x = hr.float()
    if blur > 0:
        x = _gaussian_blur(x, torch.rand(n, generator=gen) * blur)
    x = downsample_bicubic(x, scale)
    if noise > 0:
        std = (torch.rand(n, 1, 1, 1, generator=gen) * noise).to(x.device)
        x = x + std * torch.randn(x.shape, generator=gen).to(x.device)
    lr = x.round().clamp(0, 255).to(torch.uint8)
    if jpeg > 0:
        qualities = torch.randint(jpeg, 96, (n,), generator=gen).tolist()
        cpu = lr.permute(0, 2, 3, 1).cpu().numpy()
        lr = torch.stack([torch.from_numpy(_jpeg(img, q)) for img, q in zip(cpu, qualities)])
        lr = lr.permute(0, 3, 1, 2).contiguous().to(hr.device)
    return lr


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 [h, w, C] through a JPEG encode/decode round trip at ``quality`` (PIL)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(image.squeeze(2) if image.shape[2] == 1 else image).save(
        buf, format="JPEG", quality=quality)
    out = np.asarray(Image.open(buf))
    return out.reshape(image.shape).copy()


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float().div(127.5).sub(1.0)


# ----------------------------------------------------------------------------- sources


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3]; a DataError naming the file if it is unreadable."""
    if path.is_symlink() and not path.exists():
        raise DataError(f"cannot read image {path} ({broken_link(path)}); delete or fix it")
    return imageio.read_array(path, "RGB")


def image_files(folder: Path, *, what: str = "high-resolution images",
                option: str = "data.name=folder:PATH") -> list[Path]:
    """The image files under ``folder``; its errors say the folder is one of ``what``, passed as
    ``option`` (upscale's INPUT is of low-resolution images, eval-sr's is --data: the training
    option data.name had been named to both)."""
    if not folder.is_dir():
        raise DataError(f"folder {folder} does not exist or is not a directory; pass a folder of "
                        f"{what} ({option})")
    # broken links included: reading them fails, so they are named among the skipped files (or
    # refused, where one file is asked for) instead of vanishing from the count
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in EXTENSIONS and _visible(p, folder)
                   and (p.is_file() or (p.is_symlink() and not p.exists())))
    if not files:
        raise DataError(f"no {'/'.join(sorted(EXTENSIONS))} images in {folder}; point at a folder "
                        f"of {what}")
    return files


def load_images(name: str, *, skip_unreadable: bool = False,
                option: str = "data.name=folder:PATH") -> tuple[list[np.ndarray], list[str]]:
    """(uint8 [H, W, 3] images, their names) for 'photos', 'photos:SPLIT' or 'folder:PATH' (or a
    bare folder path). An unreadable file is a one-line DataError, or with ``skip_unreadable``
    (training, as image folders do) left out and named in one warning."""
    if name == "photos" or name.startswith("photos:"):
        from . import photos

        split = name.split(":", 1)[1] if ":" in name else "train"
        return photos.load_photos(split), [p.name for p in photos.photo_paths(split)]
    path = Path(name[len("folder:"):] if name.startswith("folder:") else name)
    images, names, bad = [], [], []
    for p in image_files(path, option=option):
        try:
            images.append(read_image(p))
        except DataError:
            if not skip_unreadable:
                raise
            bad.append(str(p.relative_to(path)))
            continue
        names.append(str(p.relative_to(path)))
    if bad:

        warn(f"skipped {len(bad)} unreadable file{'s' if len(bad) > 1 else ''} in {path} "
                      f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); delete or fix them")
    if not images:
        raise DataError(f"no readable image in {path}; point at a folder of high-resolution images")
    return images, names


@dataclass
class HRImages:
    """HR training images at native size (uint8 [3, H, W] each) and the fixed preview images."""

    images: list[torch.Tensor]
    name: str
    preview_images: list[torch.Tensor] = field(default_factory=list)
    labels: None = None  # the fields api.data_info reads
    class_names: None = None

    def __len__(self) -> int:
        return len(self.images)

    def preview_side(self, n: int) -> int:
        """The largest crop side that ``n`` different preview images (or all there are) can give:
        the largest image's side alone had left one image for every tile of a folder whose other
        photos were a little smaller (a 128x128 one among 128x85 ones: 4 identical tiles)."""
        sides = sorted((min(im.shape[1:]) for im in (self.preview_images or self.images)), reverse=True)
        return sides[min(n, len(sides)) - 1]

    def preview(self, n: int, size: int) -> torch.Tensor:
        """n fixed size x size HR crops (uint8 [n, 3, size, size]) of the preview images: the
        held-out test photographs for ``photos``, the training images themselves for folders."""
        pool = [im for im in (self.preview_images or self.images) if min(im.shape[1:]) >= size]
        if not pool:
            return torch.zeros(0, 3, size, size, dtype=torch.uint8)
        crops = []
        for i in range(n):
            img, k = pool[i % len(pool)], i // len(pool)
            h, w = img.shape[1:]
            frac = [0.5, 0.25, 0.75][k % 3]  # centre first, then off-centre
            top, left = int((h - size) * frac), int((w - size) * (1 - frac if k % 2 else frac))
            crops.append(img[:, top:top + size, left:left + size])
        return torch.stack(crops)


def load_hr(cfg) -> HRImages:
    """The HR dataset named by cfg.data.name, with crops of at least sr.crop pixels."""
    name, crop = cfg.data.name, cfg.sr.crop
    if not (name == "photos" or name.startswith(("photos:", "folder:"))):
        raise DataError(f"super-resolution data must be photos, photos:test or folder:PATH, got "
                        f"data.name={name}; set data.name=folder:/path/to/hr/images")
    arrays, names = load_images(name, skip_unreadable=True)
    images = [torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous() for a in arrays]
    usable = [im for im in images if min(im.shape[1:]) >= crop]
    if not usable:
        raise DataError(f"no image in {name} is at least sr.crop={crop} pixels on its short side; "
                        f"lower sr.crop or add larger images")
    small = [n for n, im in zip(names, images) if min(im.shape[1:]) < crop]
    if small:

        warn(f"skipped {len(small)} of {len(images)} images in {name} smaller than sr.crop={crop} "
                      f"pixels on their short side (e.g. {', '.join(small[:3])}); lower sr.crop to use them")
    preview = []
    if name == "photos" or name == "photos:train":
        from . import photos

        preview = [torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()
                   for a in photos.load_photos("test")]
    return HRImages(images=usable, name=name, preview_images=preview)


class PairBatches:
    """Endless (LR, HR) batches of random crops with flips and 90-degree rotations.

    Each batch: {"real": HR float [N, 3, crop, crop] in [-1, 1], "lr": LR float
    [N, 3, crop/scale, crop/scale] in [-1, 1], "labels": None}. An image is picked with
    probability proportional to its number of crop positions, so large images are not
    under-sampled."""

    def __init__(self, data: HRImages, *, batch_size: int, crop: int, scale: int, seed: int,
                 device: torch.device, blur: float = 0.0, noise: float = 0.0, jpeg: int = 0):
        if crop % scale:
            raise DataError(f"sr.crop={crop} is not a multiple of sr.scale={scale}; choose a crop "
                            f"such as {crop - crop % scale}")
        self.images = [im.to(device) for im in data.images]
        self.weights = torch.tensor([float((im.shape[1] - crop + 1) * (im.shape[2] - crop + 1))
                                     for im in data.images])
        self.batch_size, self.crop, self.scale, self.seed = batch_size, crop, scale, seed
        self.device = device
        self.blur, self.noise, self.jpeg = blur, noise, jpeg
        self.pos = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": 0, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = int(state["pos"])

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.pos)
        self.pos += 1
        which = torch.multinomial(self.weights, self.batch_size, replacement=True,
                                  generator=gen).tolist()
        crops = []
        for i in which:
            img = self.images[i]
            top = int(torch.randint(img.shape[1] - self.crop + 1, (1,), generator=gen))
            left = int(torch.randint(img.shape[2] - self.crop + 1, (1,), generator=gen))
            x = img[:, top:top + self.crop, left:left + self.crop]
            flip_h, flip_v, transpose = torch.rand(3, generator=gen).lt(0.5).tolist()
            if flip_h:
                x = x.flip(2)
            if flip_v:
                x = x.flip(1)
            if transpose:
                x = x.transpose(1, 2)
            crops.append(x)
        hr = torch.stack(crops)  # uint8 [N, 3, crop, crop] on the device
        lr = degrade(hr, self.scale, blur=self.blur, noise=self.noise, jpeg=self.jpeg,
                     generator=gen)
        return {"real": to_float(hr), "lr": to_float(lr), "labels": None}


def make_pair_batches(data: HRImages, cfg, device: torch.device) -> PairBatches:
    s = cfg.sr
    return PairBatches(data, batch_size=cfg.train.batch_size, crop=s.crop, scale=s.scale,
                       seed=cfg.train.seed, device=device, blur=s.blur, noise=s.noise,
                       jpeg=s.jpeg)
