"""Full-reference metrics for paired image-to-image tasks, and the held-out evaluation of a
pix2pix run next to the trivial baseline of its task.

PSNR: 10 log10(1 / MSE) per image on a [0, 1] intensity scale, capped at PSNR_MAX (100 dB; an
exact match's is infinite), averaged over images; where a pair reaches the cap, the mean without
those pairs is reported too (``psnr_uncapped``), with a warning naming them.
SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image Quality Assessment: From Error Visibility to
Structural Similarity"): an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range
1, local statistics with population (not sample) covariance, averaged over the positions where
the window fits inside the image ("valid"), over channels, then over images. These are the
choices of the paper's reference code and of scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1)``, which the tests check it against. Written here because torchmetrics, the
library that would provide both, is not a ganforge dependency; images need H, W >= 11.

Unpaired (cyclegan) runs: FID / KID of translated held-out images against the other domain's
held-out images (``evaluate_unpaired``), on any extractor of ganforge.metrics.

LPIPS is not reported: it needs the ``lpips`` package and backbone weights that cannot be
fetched offline. The result says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
# dB, the value of identical images (their MSE is 0 and the ratio infinite), so a mean over images
# stays finite. An image a method reproduces exactly scores it, tens of dB above any real error,
# and can reverse a ranking of means (bicubic is exact on a flat image): capped_warning says so.
PSNR_MAX = 100.0


def _unit(x: Tensor) -> Tensor:
    """float [-1, 1] -> float64 [0, 1] (the metrics' data range is 1)."""
    return (x.double().clamp(-1, 1) + 1) / 2


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image PSNR in dB of float [-1, 1] images [N, C, H, W]: [N], at most PSNR_MAX (where
    x == y: a mean over images stays finite)."""
    mse = (_unit(x) - _unit(y)).square().flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse)).clamp(max=PSNR_MAX)


def capped(psnr_by_method: dict[str, list[float]]) -> list[int]:
    """The indices of the images where some method's PSNR reached PSNR_MAX (an exact match, or
    nearly): their 100 dB outweighs every real difference in a mean."""
    rows = list(psnr_by_method.values())
    n = len(rows[0]) if rows else 0
    return [i for i in range(n) if any(row[i] >= PSNR_MAX for row in rows)]


def uncapped_mean(values: list[float], capped_idx: list[int]) -> float | None:
    """The mean of ``values`` without the capped images; None when every image is capped."""
    skip = set(capped_idx)
    rest = [v for i, v in enumerate(values) if i not in skip]
    return float(sum(rest) / len(rest)) if rest else None


def capped_warning(capped_names: list[str], n: int, *, key: str, what: str = "image") -> str:
    """One line naming up to 3 of the images whose PSNR hit the cap, their count, and where the
    mean without them is (``key``: its name in the table and the JSON)."""
    k = len(capped_names)
    shown = ", ".join(capped_names[:3]) + (f", and {k - 3} more" if k > 3 else "")
    rest = (f"{key} is the mean PSNR over the other {n - k} {what}{'' if n - k == 1 else 's'}; compare "
            f"methods by it" if n > k else f"no {what} is left to average without them")
    return (f"PSNR is capped at {PSNR_MAX:g} dB (an exact match's is infinite) and {k} of {n} "
            f"{what}{'' if n == 1 else 's'} reached the cap for some method ({shown}): those "
            f"{PSNR_MAX:g} dB dominate that method's mean PSNR; {rest}")


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-image SSIM of float [-1, 1] images [N, C, H, W] (H, W >= 11): [N]."""
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                         f"{tuple(x.shape[-2:])}")
    n, c = x.shape[:2]
    a, b = _unit(x).reshape(n * c, 1, *x.shape[-2:]), _unit(y).reshape(n * c, 1, *y.shape[-2:])
    w = gaussian_window().to(a.device)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian filter, valid positions only
        t = F.conv2d(t, w.view(1, 1, -1, 1))
        return F.conv2d(t, w.view(1, 1, 1, -1))

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.reshape(n, -1).mean(1)


def as_channels(x: Tensor, channels: int) -> Tensor:
    """The input shown as an answer: gray replicated to RGB, RGB to luma (BT.601), else as is."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


BASELINES = {
    "colorize": "the grayscale input replicated to RGB",
    "denoise": "the noisy input",
    "sketch": "the sketch itself",
    "paired": "the input image itself",
}


@torch.no_grad()
def compare(outputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Mean PSNR and SSIM of outputs against targets (float [-1, 1], [N, C, H, W])."""
    out = {"psnr": float(psnr(outputs, targets).mean())}
    if min(outputs.shape[-2:]) >= SSIM_WINDOW:
        out["ssim"] = float(ssim(outputs, targets).mean())
    return out


def with_uncapped(rows: dict[str, dict[str, Any]], per_image: dict[str, list[float]],
                   names: list[str], *, key: str, what: str) -> list[str]:
    """Adds ``key`` (the mean PSNR without the capped images) to each row when some image hit
    PSNR_MAX; returns the warning that names them (none otherwise)."""
    idx = capped(per_image)
    if not idx:
        return []
    for method, values in per_image.items():
        rows[method][key] = uncapped_mean(values, idx)
    return [capped_warning([names[i] for i in idx], len(names), key=key, what=what)]


@torch.no_grad()
def evaluate_translation(run, a: Tensor, b: Tensor, *, baseline_is: str, ema: bool = True,
                         limit: int | None = None, batch_size: int = 256) -> dict[str, Any]:
    """PSNR / SSIM of a loaded paired run's translations of the held-out inputs ``a`` (uint8
    [N, Ca, H, W]) against the targets ``b``, next to the trivial baseline (the input itself,
    as ``baseline_is`` describes it)."""
    if limit is not None:
        a, b = a[:limit], b[:limit]
    to_float = lambda t: t.float() / 127.5 - 1  # noqa: E731
    outputs = torch.cat([run.translate(to_float(chunk), ema=ema)
                         for chunk in a.split(batch_size)])
    targets, inputs = to_float(b), to_float(a)
    answers = {"model": outputs, "baseline": as_channels(inputs, targets.shape[1])}
    rows = {k: compare(x, targets) for k, x in answers.items()}
    # the held-out pairs have no file names here: numbered in held-out order, from 0
    warnings = with_uncapped(rows, {k: psnr(x, targets).tolist() for k, x in answers.items()},
                              [f"held-out pair {i}" for i in range(len(a))], key="psnr_uncapped",
                              what="held-out pair")
    model, baseline = rows["model"], rows["baseline"]
    gain = {"gain_db": model["psnr"] - baseline["psnr"]}
    if model.get("psnr_uncapped") is not None:
        gain["gain_db_uncapped"] = model["psnr_uncapped"] - baseline["psnr_uncapped"]
    return {"run": str(run.run_dir), "checkpoint": run.checkpoint.name, "step": run.step,
            "data": run.config.data.name, "n": len(a),
            "size": list(a.shape[-2:]), "ema": ema and run.ema_weights, "model": model, "baseline": baseline,
            "baseline_is": baseline_is, **gain, "psnr_max": PSNR_MAX, "warnings": warnings,
            "lpips": "not computed (needs the lpips package and its backbone weights locally)",
            "protocol": "PSNR and SSIM per image on [0, 1], mean over the held-out split; PSNR capped at "
                        f"{PSNR_MAX:g} dB (psnr_uncapped: the mean without the pairs that reach it); "
                        "SSIM 11x11 Gaussian window, sigma 1.5, valid region (ganforge.metrics.paired)"}


@torch.no_grad()
def evaluate_unpaired(run, data, *, extractor: str = "inception", inception_weights=None,
                      ema: bool = True, limit: int | None = None,
                      batch_size: int = 256) -> dict[str, Any]:
    """FID / KID of a cyclegan run's translations of the held-out images of each domain
    against the held-out images of the other domain, next to the untranslated images (the
    trivial baseline: translating nothing). Features from ``extractor``
    (ganforge.metrics.features); with few held-out images FID is biased upwards (Chong &
    Forsyth 2020), so compare runs at equal n only. ``data``: the run's held-out images,
    ``data.test_a`` and ``data.test_b`` uint8 [N, C, H, W]."""
    from . import fid, get_extractor, kid, to_uint8
    from .evaluation import small_sample_warnings

    check_held_out(data, limit)
    cfg = run.config
    kwargs = {"inception_weights": inception_weights} if inception_weights else {}
    ext = get_extractor(extractor, **kwargs)
    to_float = lambda t: t.float() / 127.5 - 1  # noqa: E731
    # the size the held-out images are scored at: translate.load_size, not data.resolution (the
    # training crop), and how the extractor then reads them, as `ganforge eval` records both
    out: dict[str, Any] = {"run": str(run.run_dir), "checkpoint": run.checkpoint.name,
                           "step": run.step, "data": cfg.data.name, **ext.describe(),
                           "size": [int(s) for s in data.test_a.shape[-2:]],
                           "ema": ema and run.ema_weights}  # what was used (LoadedRun.ema_weights)
    warnings: list[str] = []
    for direction, src, dst in (("AtoB", data.test_a, data.test_b), ("BtoA", data.test_b, data.test_a)):
        # every held-out image translated: no --n raises n, only more of them in testA/, testB/
        every = limit is None or limit >= len(src)
        if limit is not None:
            src, dst = src[:limit], dst[:limit]
        fake = torch.cat([run.translate(to_float(c), direction=direction, ema=ema)
                          for c in src.split(batch_size)])
        f_fake, f_real = ext(to_uint8(fake)).features, ext(dst).features
        f_same = ext(to_uint8(as_channels(to_float(src), dst.shape[1]))).features
        k, k_base = kid(f_fake, f_real), kid(f_same, f_real)
        out[direction] = {"n": [len(src), len(dst)], "fid": fid(f_fake, f_real), "kid": k[0],
                          "baseline_fid": fid(f_same, f_real), "baseline_kid": k_base[0]}
        # what the held-out sizes make unreliable, as `ganforge eval` says it
        target = "B" if direction == "AtoB" else "A"
        warnings += [f"{direction}: {w}" for w in small_sample_warnings(
            {"fid": None, "kid": None}, n_fake=len(src), n_ref=len(dst), dim=int(f_real.shape[1]),
            ref=f"(held-out {target} images)",
            more_samples="add held-out images to the dataset's testA/ and testB/" if every else None)]
    # only when --n was given: without it, no n was lowered and the lines above say what adds images
    if warnings and limit is not None and limit >= max(len(data.test_a), len(data.test_b)):
        warnings.append(f"--n only lowers n: every held-out image was used ({len(data.test_a)} A, "
                        f"{len(data.test_b)} B); for more, add images to the dataset's testA/ and testB/")
    out["warnings"] = warnings
    return out


def check_held_out(data, limit: int | None) -> None:
    """FID and KID compare sets of images: each held-out domain, after ``limit``, needs 2 or
    more. Checked before the extractor loads and the translations run."""
    from ..data.pairs import image_files
    from .errors import EvalError

    if limit is not None and limit < 2:
        raise EvalError(f"FID / KID compare sets of at least 2 images per domain and --n {limit} gives "
                        f"{limit}; pass --n 2 or more (limit= in Python), or leave it out")
    for side, images in (("A", data.test_a), ("B", data.test_b)):
        if len(images) < 2:
            test = Path(data.source) / f"test{side}"
            where = (f"{test}/" if test.is_dir() and image_files(test) else
                     f"held out of {test.parent}/train{side}/, with no images in test{side}/")
            raise EvalError(f"the held-out {side} domain has {len(images)} image ({where}); FID / KID "
                            f"need at least 2 per domain: add images to {test}/")


def _weights(r: dict[str, Any]) -> str:
    return "EMA weights" if r["ema"] else "raw weights (no EMA)"


def format_translation(r: dict[str, Any]) -> str:
    if "AtoB" in r:  # unpaired
        lines = [f"{r['data']} ({r['checkpoint']}, step {r['step']}, {_weights(r)}), {r['extractor']} features",
                 f"{'':<6}{'n':>10}{'FID':>10}{'KID':>10}{'FID untranslated':>18}{'KID untranslated':>18}"]
        for d in ("AtoB", "BtoA"):
            m = r[d]
            n = f"{m['n'][0]}/{m['n'][1]}"  # translated / other domain's, right-aligned under "n"
            lines.append(f"{d:<6}{n:>10}{m['fid']:10.2f}{m['kid']:10.4f}{m['baseline_fid']:18.2f}"
                         f"{m['baseline_kid']:18.4f}")
        if "size" in r:  # results written before these were recorded have neither
            sha = (r.get("extractor_sha256") or "")[:12]
            how = f", {r['resize_mode']}" if r.get("resize_mode") else ""
            lines.append(f"held-out images scored at {r['size'][0]}x{r['size'][1]}; extractor {r['extractor']} "
                         f"({sha}){how}")
        lines += [f"warning: {w}" for w in r.get("warnings", [])]
        return "\n".join(lines)
    uncapped = "psnr_uncapped" in r["model"]  # some pair reached PSNR_MAX: the mean without them too
    lines = [f"{r['task']} on {r['data']}: {r['n']} held-out pairs of {r['size'][0]}x{r['size'][1]} "
             f"({r['checkpoint']}, step {r['step']}, {_weights(r)})",
             f"{'':<10}{'PSNR (dB)':>10}{'SSIM':>8}" + (f"{'psnr_uncapped (dB)':>20}" if uncapped else "")]
    for name, key in (("model", "model"), ("baseline", "baseline")):
        m = r[key]
        ssim_text = f"{m['ssim']:8.4f}" if "ssim" in m else f"{'-':>8}"
        extra = ""
        if uncapped:
            extra = f"{m['psnr_uncapped']:20.2f}" if m["psnr_uncapped"] is not None else f"{'-':>20}"
        lines.append(f"{name:<10}{m['psnr']:10.2f}{ssim_text}{extra}")
    gain = f"baseline = {r['baseline_is']}; model - baseline = {r['gain_db']:+.2f} dB PSNR"
    if r.get("gain_db_uncapped") is not None:
        gain += f" ({r['gain_db_uncapped']:+.2f} dB without the pairs that reach the cap)"
    lines.append(gain)
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)
