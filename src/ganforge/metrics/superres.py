"""Super-resolution quality, by the convention of SR papers (e.g. Ledig et al. 2017, Lim et al.
2017 (EDSR), Wang et al. 2018 (ESRGAN)): PSNR and SSIM on the luma (Y) channel of ITU-R BT.601
YCbCr (MATLAB's rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, R, G, B in
[0, 255]), with ``scale`` pixels cropped from every border, data range 255. SSIM is Wang et al.
2004's, with an 11x11 Gaussian window of sigma 1.5 and K1 = 0.01, K2 = 0.03 (scikit-image's
structural_similarity with those settings, averaged over the valid window positions).

The protocol of :func:`evaluate_sr`: each HR image is cropped to a multiple of the scale,
degraded to its LR image (ganforge.data.superres.degrade: PIL-compatible bicubic, rounded to
uint8), upscaled, rounded to uint8 and compared with the HR image. The bicubic baseline
upsamples the same LR image with PIL's bicubic kernel. PSNR is capped at PSNR_MAX (100 dB: an
exact match's is infinite); where some method reaches it on an image, each row also holds
``psnr_y_uncapped``, the mean over the other images, since one exact image (bicubic on a flat
one) outweighs every real difference in a mean and can reverse the ranking.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError, GanforgeError
from .paired import PSNR_MAX, SSIM_WINDOW, with_uncapped

Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """uint8 (or float in [0, 255]) RGB [H, W, 3] -> float64 Y [H, W] in [16, 235]."""
    x = np.asarray(image, dtype=np.float64)
    return 16.0 + (x[..., 0] * Y_WEIGHTS[0] + x[..., 1] * Y_WEIGHTS[1] + x[..., 2] * Y_WEIGHTS[2]) / 255.0


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    return y[border:-border, border:-border] if border > 0 else y


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """PSNR in dB between the Y channels of two RGB uint8 images, ``border`` pixels cropped, at
    most PSNR_MAX (identical images: one flat image reproduced exactly no longer makes a mean
    over images infinite)."""
    a, b = _crop(rgb_to_y(sr), border), _crop(rgb_to_y(hr), border)
    mse = float(np.mean((a - b) ** 2))
    return PSNR_MAX if mse == 0 else min(PSNR_MAX, 10.0 * np.log10(255.0 ** 2 / mse))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> float:
    """SSIM between the Y channels of two RGB uint8 images, ``border`` pixels cropped: the
    Gaussian-window SSIM of ganforge.metrics.paired (11x11, sigma 1.5, K1 0.01, K2 0.03, data
    range 255), which is tested against scikit-image's structural_similarity."""
    from .paired import ssim

    a, b = (torch.from_numpy(_crop(rgb_to_y(im), border)) / 127.5 - 1.0 for im in (sr, hr))
    return float(ssim(a[None, None], b[None, None])[0])


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    return image[:h - h % scale, :w - w % scale]


def lr_image(hr: np.ndarray, scale: int) -> np.ndarray:
    """HR uint8 [H, W, 3] (a multiple of scale) -> LR uint8 [H/s, W/s, 3]."""
    from ..data.superres import degrade

    t = torch.from_numpy(np.array(hr, dtype=np.uint8)).permute(2, 0, 1)[None]
    return degrade(t, scale)[0].permute(1, 2, 0).numpy()


def bicubic_image(lr: np.ndarray, scale: int) -> np.ndarray:
    """LR uint8 [h, w, 3] -> bicubic uint8 [s*h, s*w, 3] (PIL's kernel, in float, rounded)."""
    from ..models.srresnet import bicubic_up

    t = torch.from_numpy(np.array(lr, dtype=np.uint8)).permute(2, 0, 1)[None].float()
    up = bicubic_up(t, scale).round().clamp(0, 255).to(torch.uint8)
    return up[0].permute(1, 2, 0).numpy()


class LPIPS:
    """LPIPS (Zhang et al. 2018) through the ``lpips`` package, only when it and torchvision's
    AlexNet weights are already on this machine; ``available`` says why not otherwise."""

    def __init__(self):
        self.reason = ""
        self.model = None
        if importlib.util.find_spec("lpips") is None:
            self.reason = "the lpips package is not installed"
            return
        from torchvision.models import AlexNet_Weights

        name = AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
        if not (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file():
            self.reason = f"AlexNet weights {name} are not in the torch hub cache"
            return
        import lpips

        self.model = lpips.LPIPS(net="alex", verbose=False).eval()

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, sr: np.ndarray, hr: np.ndarray) -> float:
        def t(x):
            return torch.from_numpy(np.array(x, dtype=np.float32)).permute(2, 0, 1)[None].float() / 127.5 - 1

        return float(self.model(t(sr), t(hr)).mean())


BASELINE = "bicubic"  # the name of the baseline's row in evaluate_sr's table


def min_hr_size(scale: int) -> int:
    """The smallest HR side that evaluate_sr can measure: after the crop to a multiple of the
    scale and the ``scale``-pixel border, SSIM's 11x11 window must fit."""
    return -(-(SSIM_WINDOW + 2 * scale) // scale) * scale


UNCAPPED = "psnr_y_uncapped"  # a row's mean Y-PSNR without the images where some method hit PSNR_MAX


def evaluate_sr(hr_images: list[np.ndarray], scale: int,
                methods: dict[str, Callable[[np.ndarray], np.ndarray]], *,
                lpips: LPIPS | None = None, names: list[str] | None = None,
                warnings: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Mean Y-PSNR / Y-SSIM (and LPIPS) over ``hr_images`` for each method, with the bicubic
    baseline first. ``methods`` maps a name to a function LR uint8 [h, w, 3] -> SR uint8; a
    name "bicubic" is refused (it had silently replaced the baseline's row).
    An image smaller than ``min_hr_size`` is a one-line DataError naming it (``names``: the
    images' names), before any is upscaled.
    Where some method's PSNR reaches PSNR_MAX on an image, every row also holds ``UNCAPPED``
    (the mean over the other images; None when none is left) and a line naming those images is
    appended to ``warnings`` (when given)."""
    if BASELINE in methods:
        raise ConfigError(f"a method named {BASELINE!r} would replace the bicubic baseline's row; "
                          f"name it otherwise")
    least = min_hr_size(scale)
    for i, hr in enumerate(hr_images):
        h, w = hr.shape[:2]
        if min(h, w) < least:
            name = names[i] if names is not None else f"image {i}"
            raise DataError(f"{name} is {w}x{h} pixels, too small to evaluate at x{scale} (SSIM's "
                            f"{SSIM_WINDOW}x{SSIM_WINDOW} window inside the {scale}-pixel border needs at "
                            f"least {least}x{least}); remove it from the evaluation images")
    all_methods = {BASELINE: lambda lr: bicubic_image(lr, scale), **methods}
    sums: dict[str, dict[str, list[float]]] = {m: {"psnr_y": [], "ssim_y": []} for m in all_methods}
    for hr in hr_images:
        hr = mod_crop(hr, scale)
        lr = lr_image(hr, scale)
        for name, fn in all_methods.items():
            sr = fn(lr)
            if sr.shape != hr.shape:
                raise GanforgeError(f"{name} returned a {sr.shape} image for a {hr.shape} target; "
                                    f"is --scale the run's sr.scale?")
            sums[name]["psnr_y"].append(psnr_y(sr, hr, scale))
            sums[name]["ssim_y"].append(ssim_y(sr, hr, scale))
            if lpips is not None and lpips.available:
                sums[name].setdefault("lpips", []).append(lpips(sr, hr))
    table = {m: {k: float(np.mean(v)) for k, v in vals.items()} for m, vals in sums.items()}
    label = names if names is not None else [f"image {i}" for i in range(len(hr_images))]
    said = with_uncapped(table, {m: vals["psnr_y"] for m, vals in sums.items()}, label, key=UNCAPPED, what="image")
    if warnings is not None:
        warnings += said
    return table
