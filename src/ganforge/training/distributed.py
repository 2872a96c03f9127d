"""Data-parallel training under torchrun: the process group, each rank's share of a batch, and the
reductions that keep every rank's weights identical.

Launch: ``torchrun --nproc_per_node=N -m ganforge train PRESET ...`` (or ``--nnodes=M
--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``). torchrun sets RANK, WORLD_SIZE and
LOCAL_RANK; without them training runs in one process exactly as before.

Gradients are averaged with one all-reduce per optimizer step over the flattened gradients of
the nets that step updates, after the phase's backward, instead of wrapping the nets in
DistributedDataParallel. The reasons are GAN-specific: every phase switches ``requires_grad`` of
whole nets (G's step backpropagates through a frozen D), gradient penalties (R1, GP, DRAGAN,
path length) take a second derivative through ``torch.autograd.grad``, and lazy phases run only
every k steps; a DDP wrapper expects the same parameters to receive gradients in every backward
and supports double backward only in restricted cases. StyleGAN2-ADA's training loop reduces
gradients by hand for the same reasons. The result is the same averaged gradient DDP computes;
what is given up is DDP's overlap of communication with the backward pass.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The rank and world size torchrun (or SLURM's srun with torchrun) set; one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return World(rank=rank, size=size, local_rank=local)


def init_process_group(world: World, device: torch.device, timeout_s: float = 600.0) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU) and return this rank's device."""
    if not world.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return device


def check_batch(batch_size: int, world: World) -> int:
    """This rank's share of the global ``train.batch_size``."""
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size={batch_size} does not divide among {world.size} "
                          f"processes; choose a multiple of {world.size} (the batch size is the "
                          f"global batch)")
    return batch_size // world.size


def rank_seed(seed: int, world: World) -> int:
    """The seed of this rank's noise: rank 0 keeps ``seed`` (one process is unchanged)."""
    return seed + 1_000_003 * world.rank


class ShardedBatches:
    """Each rank's disjoint share of the global batches of ``inner``: every rank draws the same
    global batch (the order is a function of the seed) and keeps rows [r*b, (r+1)*b). Works for
    every family's batch source (dicts of tensors along dim 0); its state is the inner state."""

    def __init__(self, inner, world: World):
        self.inner, self.world = inner, world

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        return shard(next(self.inner), self.world)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str):  # probe() and the like come from the inner source
        return getattr(self.inner, name)


def shard(batch: dict[str, Any], world: World) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            n = value.shape[0] // world.size
            value = value[world.rank * n:(world.rank + 1) * n]
        out[key] = value
    return out


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], world: World) -> None:
    """Average the gradients of ``params`` over the ranks, in one flattened all-reduce."""
    if not world.enabled:
        return
    params = [p for p in params if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def all_reduce_mean(values: dict[str, torch.Tensor], world: World) -> dict[str, torch.Tensor]:
    """Mean over the ranks of scalar tensors (the logged statistics), in one all-reduce."""
    if not world.enabled or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= world.size
    return {k: flat[i] for i, k in enumerate(keys)}


def broadcast_module(module: torch.nn.Module, world: World) -> None:
    """Rank 0's parameters and buffers on every rank (identical starting weights)."""
    if not world.enabled:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()
