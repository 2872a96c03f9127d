"""The small CNN behind the offline extractors (``fashion-mnist-cnn``, ``mnist-cnn``) and the
class-based metrics, and the fixed recipe that trains it (``ganforge train-classifier``).

Architecture (VGG-style, Simonyan & Zisserman 2015, with batch norm, Ioffe & Szegedy 2015, and
dropout): three stages of 3x3 conv + BatchNorm + ReLU + 2x2 max-pool (28 -> 14 -> 7 -> 3 pixels,
widths 32/64/128 by default), flatten, dropout, linear to a 128-d embedding + ReLU, dropout,
linear to the logits. The 128-d penultimate activation is the embedding the distribution metrics
(FID, KID, precision/recall, ...) are computed on. Sized to train in minutes on two CPU cores.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import signals
from ..atomic import atomic_path, atomic_write_json, save_tensors

ARCH = "ganforge-smallcnn-v1"


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: BatchNorm's shift makes it redundant.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.MaxPool2d(2)]


class SmallCNN(nn.Module):
    """uint8 or float images [N, C, 28, 28] -> logits [N, num_classes]; ``embed`` gives both."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, widths=(32, 64, 128),
                 embed_dim: int = 128, dropout: float = 0.2):
        super().__init__()
        w1, w2, w3 = widths
        self.body = nn.Sequential(
            *_block(in_channels, w1), *_block(w1, w2), *_block(w2, w3),  # 28 -> 14 -> 7 -> 3
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(w3 * 9, embed_dim), nn.ReLU(inplace=True),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_classes)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "widths": list(widths),
                       "embed_dim": embed_dim, "dropout": dropout}

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float [-1, 1], the library's image convention."""
        return images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding [N, embed_dim], logits [N, num_classes])."""
        h = self.body(self.normalize(images))
        return h, self.head(self.drop(h))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)[1]


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights (besides the data and the torch build)."""

    arch: str = ARCH
    widths: tuple[int, int, int] = (32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.2
    epochs: int = 12
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3  # peak of a one-cycle schedule (Smith & Topin 2019)
    weight_decay: float = 5e-4
    max_shift: int = 0  # augmentation: random horizontal flip + random shift of up to this many pixels (0: flip only)
    seed: int = 0


def augment(images: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random horizontal flip and random translation (zero padded) of uint8 [N, C, H, W]."""
    n, c, h, w = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    images = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # [N, 1, H, 1]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # [N, 1, 1, W]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def train(train_images: torch.Tensor, train_labels: torch.Tensor, *, num_classes: int,
          recipe: Recipe = Recipe(), log: Callable[[str], None] = print) -> SmallCNN:
    """Train a SmallCNN on uint8 [N, C, 28, 28] images with int64 labels by ``recipe``."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = SmallCNN(in_channels=train_images.shape[1], num_classes=num_classes, widths=recipe.widths,
                     embed_dim=recipe.embed_dim, dropout=recipe.dropout)
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU
    signals.before_first_optimizer()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, len(train_images) // recipe.batch_size)  # drop the ragged last batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, epochs=recipe.epochs,
                                                steps_per_epoch=steps_per_epoch)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=gen)
        t0, total = time.perf_counter(), 0.0
        for i in range(steps_per_epoch):
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            x = augment(train_images[idx], gen, recipe.max_shift).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {total / steps_per_epoch:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    return model.eval().to(memory_format=torch.contiguous_format)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def metadata_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save(model: SmallCNN, path: Path, *, dataset: str, class_names: list[str], recipe: Recipe,
         test_accuracy: float, train_seconds: float) -> dict:
    """Write ``path`` (safetensors) and ``path.with_suffix('.json')`` (recipe, accuracy, sha256)."""
    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_tensors(state, tmp, metadata={"arch": ARCH, "dataset": dataset})
    meta = {
        "dataset": dataset, "arch": ARCH, "model": model.config, "class_names": class_names,
        "input": "uint8 [N, C, 28, 28] -> float x/127.5 - 1",
        "recipe": asdict(recipe), "test_accuracy": round(test_accuracy, 5),
        "train_seconds": round(train_seconds, 1), "torch": torch.__version__,
        "sha256": sha256_file(path),
    }
    atomic_write_json(metadata_path(path), meta)
    return meta


def load(path: Path) -> tuple[SmallCNN, dict]:
    """(model in eval mode, metadata) from a safetensors file and its JSON beside it."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads(metadata_path(path).read_text())
    if meta.get("arch") != ARCH:
        raise ValueError(f"{path}: arch {meta.get('arch')!r}, expected {ARCH!r}")
    model = SmallCNN(**meta["model"])
    model.load_state_dict(load_file(str(path)))
    return model.eval().requires_grad_(False), meta
