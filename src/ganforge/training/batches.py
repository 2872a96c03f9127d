"""Batches for the Trainer, as dicts of device tensors: ``real`` (float, [-1, 1]) and ``labels``.

Datasets that fit in memory live as one uint8 tensor on the training device and batches are drawn
by index, so a step costs one gather and one cast, with no per-image Python. The order is an epoch
permutation derived from (seed, epoch), so the position (epoch, batch) is the whole state and
resume is exact. Folders too large for memory stream through a DataLoader with workers, in the
same order.

Under torchrun every rank walks the same global order and keeps its rows of each global batch
(``shard``), so the position is the same on every rank and a run resumes on any world size.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from ..errors import DataError


def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


class InMemoryBatches:
    """Endless batches from tensors held on the device. Drops the last partial batch of an epoch."""

    def __init__(self, data: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
                 seed: int, device: torch.device):
        if len(data) < batch_size:
            raise ValueError("dataset smaller than one batch")  # the Trainer reports it nicely
        self.data = data.to(device)
        self.labels = labels.to(device) if labels is not None else None
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.per_epoch = len(data) // batch_size
        self.epoch, self.pos = 0, 0
        self._perm = None
        self._rows = slice(None)  # this rank's rows of a global batch

    def shard(self, rank: int, size: int) -> None:
        n = self.batch_size // size
        self._rows = slice(rank * n, (rank + 1) * n)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos, self._perm = int(state["epoch"]), int(state["pos"]), None

    def probe(self, n: int) -> torch.Tensor:
        """A fixed real batch (float), drawn without touching the training order."""
        idx = _permutation(len(self.data), self.seed, -1)[:n].to(self.device)
        x = self.data[idx]
        return to_float(x) if x.dtype == torch.uint8 else x

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        if self.pos >= self.per_epoch:
            self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        if self._perm is None:
            self._perm = _permutation(len(self.data), self.seed, self.epoch).to(self.device)
        idx = self._perm[self.pos * self.batch_size:(self.pos + 1) * self.batch_size][self._rows]
        self.pos += 1
        x = self.data[idx]
        real = to_float(x) if x.dtype == torch.uint8 else x
        return {"real": real, "labels": self.labels[idx] if self.labels is not None else None}


class _EpochSampler(Sampler):
    def __init__(self, n: int, seed: int, batch_size: int, start_epoch: int, start_pos: int,
                 rank: int = 0, size: int = 1):
        self.n, self.seed, self.bs = n, seed, batch_size
        self.start_epoch, self.start_pos = start_epoch, start_pos
        self.rank, self.size = rank, size

    def __iter__(self) -> Iterator[int]:
        epoch, pos = self.start_epoch, self.start_pos
        share = self.bs // self.size
        while True:
            perm = _permutation(self.n, self.seed, epoch)
            usable = (self.n // self.bs) * self.bs
            if self.size == 1:
                yield from perm[pos * self.bs:usable].tolist()
            else:  # this rank's rows of each global batch
                rows = perm[pos * self.bs:usable].view(-1, self.bs)
                yield from rows[:, self.rank * share:(self.rank + 1) * share].reshape(-1).tolist()
            epoch, pos = epoch + 1, 0


class StreamingBatches:
    """Endless batches decoded by DataLoader workers; same order and state as InMemoryBatches."""

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, seed: int,
                 device: torch.device, num_workers: int, has_labels: bool):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.has_labels = has_labels
        self.device, self.num_workers = device, num_workers
        self.per_epoch = len(dataset) // batch_size
        if self.per_epoch == 0:
            raise ValueError("dataset smaller than one batch")
        self.epoch, self.pos = 0, 0
        self._it = None
        self.rank, self.size = 0, 1

    def shard(self, rank: int, size: int) -> None:
        self.rank, self.size, self._it = rank, size, None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos, self._it = int(state["epoch"]), int(state["pos"]), None

    def probe(self, n: int) -> torch.Tensor:
        """A fixed real batch (float), drawn without touching the training order."""
        idx = _permutation(len(self.dataset), self.seed, -1)[:n].tolist()
        return to_float(torch.stack([self.dataset[i][0] for i in idx]).to(self.device))

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            sampler = _EpochSampler(len(self.dataset), self.seed, self.batch_size,
                                    self.epoch, self.pos, self.rank, self.size)
            loader = DataLoader(self.dataset, batch_size=self.batch_size // self.size, sampler=sampler,
                                num_workers=self.num_workers, drop_last=True,
                                persistent_workers=self.num_workers > 0,
                                pin_memory=self.device.type == "cuda")
            self._it = iter(loader)
        try:
            images, labels = next(self._it)
        except DataError as exc:  # raised in a worker: torch re-raises it with the worker's traceback
            raise DataError(str(exc).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None
        if self.pos + 1 >= self.per_epoch:
            self.epoch, self.pos = self.epoch + 1, 0
        else:
            self.pos += 1
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True) if self.has_labels else None
        return {"real": to_float(images), "labels": labels}
