"""Train, save, load and apply a real-vs-generated detector (ganforge.detect.model).

A detector folder holds ``weights.safetensors`` and ``detector.json``: the network's constructor
arguments (so the folder rebuilds it), the image size it works at, the training recipe, the
sources it was trained on and its validation numbers.

Images come in as uint8 [N, C, H, W] at the detector's size; the caller (the ``ganforge detect``
command) resolves sources (datasets, runs, .npz, folders) into such tensors.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import signals
from ..atomic import atomic_path, atomic_write_json, save_tensors
from ..errors import CheckpointError, ConfigError, DataError, shell_arg
from .metrics import accuracy, average_precision
from .model import DetectorCNN, blur_jpeg, to_float

WEIGHTS, META = "weights.safetensors", "detector.json"
ARCH = "ganforge-detector-cnn-v1"


@dataclass
class Recipe:
    steps: int = 10000  # at 1,000, held-out AP 0.53 with blur+JPEG, 0.69 without (BENCHMARKS.md)
    batch_size: int = 64  # half real, half generated
    lr: float = 1e-3
    width: int = 16
    depth: int = 3
    augment: bool = True  # Wang et al.'s Blur+JPEG (0.5) and flips
    p_blur: float = 0.5
    p_jpeg: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0

    def check(self) -> None:
        for flag, value in (("--steps", self.steps), ("--width", self.width), ("--depth", self.depth)):
            if value <= 0:
                raise ConfigError(f"{flag} must be positive, got {value}")
        if not 0 < self.lr < float("inf"):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 (half real, half generated), got {self.batch_size}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


def max_depth(resolution: int) -> int:
    """Stride-2 stages until the feature map is 1x1 (each halves it, rounding up): more stages only
    double the channels (width * 2**depth) and the memory, on a 1x1 map."""
    return max(1, (resolution - 1).bit_length())


def training_bytes(channels: int, resolution: int, width: int, depth: int, batch_size: int) -> int:
    """A rough lower bound of the memory training a DetectorCNN takes: ~16 bytes a parameter
    (float32 weights, gradients and Adam's two moments) and the float32 feature maps of one batch,
    kept twice (convolution and activation outputs) for the backward pass."""
    c_in, c, side = channels, width, resolution
    params, activations = c_in * c * 9 + c, c * side * side
    for _ in range(depth):
        side = (side + 1) // 2
        params += c * 2 * c * 9 + 2 * c
        c *= 2
        activations += c * side * side
    params += c + 1
    return 16 * params + 2 * 4 * batch_size * activations


def check_network(recipe: Recipe, resolution: int, channels: int) -> None:
    """Refuse, before training, a --depth past the 1x1 feature map at this resolution and a
    network whose training would not fit in the memory left (--depth 10 had been killed for
    memory without a message)."""
    from ..config import _bytes, available_memory

    deepest = max_depth(resolution)
    if recipe.depth > deepest:
        raise ConfigError(f"--depth {recipe.depth} is too deep for {resolution}x{resolution} images: the "
                          f"feature map is 1x1 after {deepest} stride-2 stages; use --depth {deepest} or less")
    need = training_bytes(channels, resolution, recipe.width, recipe.depth, recipe.batch_size)
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(f"--width {recipe.width} --depth {recipe.depth} --batch-size {recipe.batch_size} "
                          f"needs about {_bytes(need)} of memory to train, more than the {_bytes(have)} "
                          f"available; lower --width, --depth or --batch-size")


@dataclass
class Detector:
    model: DetectorCNN
    resolution: int
    channels: int
    meta: dict = field(default_factory=dict)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """P(generated) [N] for uint8 [N, C, H, W] images at the detector's size."""
        check_size(images, self.resolution, self.channels, what="images")
        self.model.eval()
        out = [torch.sigmoid(self.model(to_float(images[i:i + batch_size]))) for i in
               range(0, len(images), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros(0)


def check_size(images: torch.Tensor, resolution: int, channels: int, *, what: str) -> None:
    """Images of the detector's size; a ganforge error otherwise (the CLI's one line, not a
    traceback: a run of 2-D points had reached here as a ValueError)."""
    if images.dim() != 4 or images.dtype != torch.uint8:
        raise DataError(f"{what}: expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}; "
                        f"pass images (a run that generates images, a samples .npz or a folder of images)")
    c, h, w = images.shape[1:]
    if (c, h, w) != (channels, resolution, resolution):
        raise ConfigError(f"{what} are {h}x{w} with {c} channel(s) but the detector works at "
                          f"{resolution}x{resolution} with {channels}; sample them at that size or "
                          f"train a detector on images like them")


def _split(images: torch.Tensor, fraction: float, gen: torch.Generator):
    perm = torch.randperm(len(images), generator=gen)
    n_val = int(round(len(images) * fraction))
    return images[perm[n_val:]], images[perm[:n_val]]


def train(real: torch.Tensor, fake: torch.Tensor, recipe: Recipe, *, sources: dict | None = None,
          log=None) -> Detector:
    """Train on uint8 [N, C, H, W] ``real`` and ``fake`` of one size: balanced batches, the
    logistic loss (softplus form), Adam; ``recipe.val_fraction`` of each side held out and scored
    at the end (AP and accuracy, in ``meta["validation"]``)."""
    recipe.check()
    if real.shape[1:] != fake.shape[1:]:
        raise ConfigError(f"real images {tuple(real.shape[1:])} and generated {tuple(fake.shape[1:])} "
                          f"differ in size; bring them to one size first")
    channels, resolution = real.shape[1], real.shape[2]
    check_network(recipe, resolution, channels)
    gen = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    real_train, real_val = _split(real, recipe.val_fraction, gen)
    fake_train, fake_val = _split(fake, recipe.val_fraction, gen)
    if len(real_train) == 0 or len(fake_train) == 0:
        raise ConfigError("too few images to train a detector; give more real and generated images (--n)")
    model = DetectorCNN(channels, recipe.width, recipe.depth)
    signals.before_first_optimizer()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    half = recipe.batch_size // 2
    t0, losses = time.perf_counter(), []
    for step in range(1, recipe.steps + 1):
        r = real_train[torch.randint(len(real_train), (half,), generator=gen)]
        f = fake_train[torch.randint(len(fake_train), (half,), generator=gen)]
        if recipe.augment:
            r = blur_jpeg(r, gen, p_blur=recipe.p_blur, p_jpeg=recipe.p_jpeg)
            f = blur_jpeg(f, gen, p_blur=recipe.p_blur, p_jpeg=recipe.p_jpeg)
        logits = model(to_float(torch.cat([r, f])))
        # -log(1 - p) on real, -log p on generated, in the stable softplus form
        loss = F.softplus(logits[:half]).mean() + F.softplus(-logits[half:]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log is not None and (step % 100 == 0 or step == recipe.steps):
            log(f"  step {step}/{recipe.steps}: loss {np.mean(losses[-100:]):.4f}")
    det = Detector(model.eval(), resolution, channels)
    det.meta = {"arch": ARCH, "model": {"channels": channels, "width": recipe.width, "depth": recipe.depth},
                "resolution": resolution, "channels": channels, "recipe": asdict(recipe),
                "sources": sources or {}, "n_train": {"real": len(real_train), "fake": len(fake_train)},
                "train_seconds": round(time.perf_counter() - t0, 1),
                "final_loss": round(float(np.mean(losses[-50:])), 5)}
    if len(real_val) and len(fake_val):
        det.meta["validation"] = evaluate(det, real_val, fake_val)
    return det


def evaluate(det: Detector, real: torch.Tensor, fake: torch.Tensor) -> dict:
    """AP and accuracy (threshold 0.5) of ``det`` on uint8 ``real`` and ``fake`` images."""
    p_real, p_fake = det.probabilities(real), det.probabilities(fake)
    scores = np.r_[p_real, p_fake]
    is_fake = np.r_[np.zeros(len(p_real), bool), np.ones(len(p_fake), bool)]
    return {"ap": average_precision(scores, is_fake), **accuracy(scores, is_fake),
            "n_real": len(p_real), "n_fake": len(p_fake),
            "mean_p_real": float(p_real.mean()), "mean_p_fake": float(p_fake.mean())}


def save(det: Detector, folder: Path) -> None:
    """Write the detector folder (weights, then the JSON that makes it loadable)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in det.model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_tensors(state, tmp, metadata={"arch": ARCH})
    atomic_write_json(folder / META, det.meta)


def load(folder: Path | str) -> Detector:
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        if folder.is_dir() and any(p.name not in (META, WEIGHTS) for p in folder.iterdir()):
            # detect train --out refuses a folder of other files (a run, a dataset): name another
            raise CheckpointError(f"{folder} is not a detector folder (no {META} and {WEIGHTS}); pass a "
                                  f"detector folder, or train one into a new folder: ganforge detect train "
                                  f"--real ... --fake ... --out NEW_FOLDER")
        raise CheckpointError(f"{folder} is not a detector folder (no {META} and {WEIGHTS}); train one "
                              f"with ganforge detect train --out {shell_arg(folder)}")
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("arch") != ARCH:
            raise ValueError(f"arch {meta.get('arch')!r}")
        model = DetectorCNN(**meta["model"])
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{folder}: unreadable detector ({str(exc).splitlines()[0][:80]}); "
                              f"retrain it with ganforge detect train") from None
    return Detector(model.eval().requires_grad_(False), meta["resolution"], meta["channels"], meta)
