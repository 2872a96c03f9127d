"""Data-parallel training under torchrun: the process group, each rank's share of a batch, the
DistributedDataParallel wrapping of the nets an optimizer updates, and the reductions that keep
every rank's state identical.

Launch: ``torchrun --nproc_per_node=N -m ganforge train PRESET ...`` (or ``--nnodes=M
--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``). torchrun sets RANK, WORLD_SIZE and LOCAL_RANK;
without them (or with WORLD_SIZE=1) training runs in one process exactly as before.

Semantics (README, "Training on several GPUs and machines"):

- ``train.batch_size`` is the global batch: rank r of W takes rows [r*B/W, (r+1)*B/W) of every
  global batch, which is drawn in the same seeded order whatever W is (so a resumed run on
  another world size continues the same data order).
- Random draws inside a step (latents, noise, augmentation) come from a per-rank stream that is
  re-seeded at every step from (seed, rank, step): no generator state needs saving, a resume on
  the same world size is bit-exact, and ranks never share noise. One process keeps its one
  continuous stream (bit-identical to earlier versions).
- Gradients are averaged by DistributedDataParallel. A phase wraps only the nets its optimizer
  updates; the other nets are called directly (their parameters take no gradient there), as in
  StyleGAN2-ADA's ``ddp_sync(module, sync=False)``. Parameters the phase's loss does not reach
  (the last bias under a lazy R1 penalty) get a zero-weighted term so that DDP's reducer sees
  every gradient, and their ``.grad`` is reset to None afterwards: the optimizer then skips them
  exactly as in one process.
- Evaluation during training (``eval.every``) is shared: rank 0's EMA BatchNorm statistics are
  broadcast, every rank samples and extracts the features of its blocks of ``eval.n``
  (ganforge.metrics.hook), and ``gather_rows`` brings the features (not the images), padded to
  the longest share, to rank 0, which computes and logs the metrics.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import hashlib
import inspect
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, DistributedError
from ..signals import import_uninterrupted

TIMEOUT = datetime.timedelta(minutes=30)  # an eval on rank 0 may keep the others waiting
_SIDE_GROUP = None  # a gloo group for host-side flags when the main backend is nccl


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
    """The rank and world size torchrun (or srun with torchrun) set; one process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return World(rank=rank, size=size, local_rank=int(os.environ.get("LOCAL_RANK", str(rank))))


def current_world() -> World:
    """The world of the initialized process group, else the environment's."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return world_from_env()


def init(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group (nccl on CUDA, gloo otherwise) and return (world, this rank's
    device). One process: nothing happens."""
    global _SIDE_GROUP
    world = world_from_env()
    if not world.enabled:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
        if missing:
            raise DistributedError(f"WORLD_SIZE={world.size} asks for {world.size} processes, but "
                                   f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                                   f"launch with torchrun (it sets them), or unset WORLD_SIZE for one process")
        # torch._dynamo imported before the group exists: first imported after it (as the
        # optimizers' constructors do, once torchvision no longer imported it with ganforge.api),
        # it left the finished run's group, and gloo's 3-4 threads, alive past api.train
        # (test_a_finished_run_ends_the_process_groups_threads), which had aborted processes at exit
        import_uninterrupted("torch._dynamo")

        waiting = _waiting_note(world)
        try:
            dist.init_process_group(backend, timeout=TIMEOUT)
        finally:
            waiting.cancel()
        if backend != "gloo":
            _SIDE_GROUP = dist.new_group(backend="gloo", timeout=TIMEOUT)
    _store_set(f"pid/{world.rank}", f"{socket.gethostname()}:{os.getpid()}")
    return world, device


JOIN_NOTE_S = 30.0  # after this long without every rank, say what the wait is for


def _waiting_note(world: World):
    """A timer that says, once, that this rank is still waiting for the others to join: a
    rank that failed before joining (a missing run directory on one node) leaves the rest
    waiting for up to TIMEOUT, which would otherwise look like a hang."""
    import threading

    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"

    def note():
        if world.rank == 0 or world.local_rank == 0:
            print(f"ganforge: rank {world.rank} still waits for all {world.size} processes to join at "
                  f"{where} (it gives up after {int(TIMEOUT.total_seconds() // 60)} min); check that "
                  f"every node started with the same command and sees the same files, and read the "
                  f"other nodes' output", file=sys.stderr, flush=True)

    timer = threading.Timer(JOIN_NOTE_S, note)
    timer.daemon = True
    timer.start()
    return timer


def same_on_all_ranks(value: str, world: World, what: str) -> None:
    """Refuse, on every rank at once, when ranks hold different ``value`` (for example the
    checkpoint each resumed from: a node with a stale copy of the run directory)."""
    if not world.enabled:
        return
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value, group=_SIDE_GROUP)
    if len(set(values)) > 1:
        shown = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise DistributedError(f"the ranks disagree on {what} ({shown}); the run directory must be one "
                               f"copy on a file system every node sees")


def shutdown() -> None:
    """Destroys the process group, and with it (now, not at interpreter exit) its threads.

    DistributedDataParallel wrappers left in reference cycles keep a destroyed gloo group alive,
    and with it its worker threads. Such a thread that freed the tensors of a finished
    collective while the interpreter was exiting could not take the GIL, and the process aborted
    (SIGABRT, "terminate called without an active exception", seen by gdb in
    ProcessGroupGloo::runLoop): a completed torchrun run then reported a failure in about 1 of
    10 runs. Collecting those cycles here ends the group while Python still runs."""
    global _SIDE_GROUP
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        gc.collect()
    _SIDE_GROUP = None


def local_batch(batch_size: int, world: World, pac: int = 1) -> int:
    """This rank's share of the global ``train.batch_size``; with PacGAN (``pac`` > 1) each rank
    packs its own share, so that share must be a multiple of ``pac``."""
    if batch_size % world.size:
        raise ConfigError(f"train.batch_size={batch_size} (the global batch) does not divide among "
                          f"{world.size} processes; use a multiple of {world.size}")
    local = batch_size // world.size
    if local % pac:
        raise ConfigError(f"train.batch_size={batch_size} gives each of {world.size} processes {local} "
                          f"images, which model.pac={pac} cannot pack; use a multiple of "
                          f"{world.size * pac}")
    return local


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank ``rank``'s random stream at ``step`` (a 63-bit hash of the three)."""
    digest = hashlib.blake2b(f"ganforge:{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# ----------------------------------------------------------------------------- batches


class ShardedBatches:
    """Rank r's rows of every global batch of ``inner`` (any family's batch source: dicts of
    tensors along dim 0). Sources with a ``shard(rank, size)`` method split before they gather
    (no wasted work); this wrapper serves the others. Its state is the inner (global) state."""

    def __init__(self, inner, world: World):
        self.inner, self.world = inner, world

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        return _shard(next(self.inner), self.world)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str):  # probe() and the like come from the inner source
        return getattr(self.inner, name)


def _shard(batch: Mapping[str, Any], world: World) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            n = value.shape[0] // world.size
            value = value[world.rank * n:(world.rank + 1) * n]
        out[key] = value
    return out


def shard_batches(batches, world: World):
    if not world.enabled:
        return batches
    if hasattr(batches, "shard"):
        batches.shard(world.rank, world.size)
        return batches
    return ShardedBatches(batches, world)


# ----------------------------------------------------------------------------- DDP wrapping


class _Dispatch(nn.Module):
    """Lets DDP's forward run any method or submodule of ``net`` (StyleGAN2's ``G.ws`` and
    ``G.synthesis``), so that every call a loss makes prepares the gradient reduction."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args, _ganforge_path: tuple[str, ...] = (), **kwargs):
        target = self.net
        for name in _ganforge_path:
            target = getattr(target, name)
        return target(*args, **kwargs)


# Buffers are broadcast once at construction, not before every forward (the keyword was renamed).
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                   else {"broadcast_buffers": False})
_MODULE_API = frozenset(dir(nn.Module))  # parameters(), state_dict(), train(): not forwards


class NetView:
    """What the objective sees of a DDP-wrapped net during a phase: calls (of the net, its
    submodules and its own methods) go through DDP; everything else reads the net itself."""

    def __init__(self, ddp: DistributedDataParallel, path: tuple[str, ...] = ()):
        self._ddp, self._path = ddp, path

    def _target(self):
        target = self._ddp.module.net
        for name in self._path:
            target = getattr(target, name)
        return target

    def __call__(self, *args, **kwargs):
        return self._ddp(*args, _ganforge_path=self._path, **kwargs)

    def __getattr__(self, name: str):
        attr = getattr(self._target(), name)
        if isinstance(attr, nn.Module):
            return NetView(self._ddp, self._path + (name,))
        if callable(attr) and name not in _MODULE_API and hasattr(attr, "__self__"):
            return functools.partial(self._ddp, _ganforge_path=self._path + (name,))
        return attr


def reached_parameters(loss: torch.Tensor) -> set[int]:
    """ids of the leaf tensors the backward of ``loss`` accumulates into (a walk of its graph)."""
    seen, out, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            out.add(id(variable))
        stack.extend(f for f, _ in fn.next_functions)
    return out


class DataParallel:
    """DDP wrappers of the nets that optimizers update, swapped into ``objective.nets`` while a
    phase computes its loss."""

    def __init__(self, objective, owned: Iterable[str], device: torch.device):
        self.objective = objective
        self.ddp: dict[str, DistributedDataParallel] = {}
        for name in sorted(set(owned)):
            net = objective.nets[name]
            net.requires_grad_(True)  # DDP buckets every parameter that may take a gradient
            ids = [device.index] if device.type == "cuda" else None
            # No buffer broadcast: each rank keeps its own BatchNorm statistics (train.sync_bn
            # synchronizes them); the module state is broadcast from rank 0 once, here.
            self.ddp[name] = DistributedDataParallel(_Dispatch(net), device_ids=ids, **_NO_BUFFER_SYNC)
        self.views = {name: NetView(ddp) for name, ddp in self.ddp.items()}

    @contextlib.contextmanager
    def phase(self, owned: Iterable[str], *, sync: bool):
        """Within: ``objective.nets[name]`` is the DDP view for each owned net; without
        ``sync`` (all but the last micro-batch of a step) gradients only accumulate locally."""
        nets = self.objective.nets
        raw = {name: nets[name] for name in owned}
        stack = contextlib.ExitStack()
        for name in owned:
            nets[name] = self.views[name]
            if not sync:
                stack.enter_context(self.ddp[name].no_sync())
        try:
            with stack:
                yield
        finally:
            nets.update(raw)

    def backward(self, loss: torch.Tensor, owned: Iterable[str], *, sync: bool) -> None:
        """``loss.backward()`` with every owned parameter seen by DDP's reducer: the ones the
        loss does not reach get a zero-weighted term, then their gradient is reset to None."""
        params = [p for name in owned for p in self.ddp[name].module.net.parameters() if p.requires_grad]
        missing = []
        if sync:
            reached = reached_parameters(loss)
            missing = [p for p in params if id(p) not in reached]
        if missing:
            had = {id(p) for p in missing if p.grad is not None}  # earlier micro-batches
            loss = loss + sum(p.view(-1)[0] * 0.0 for p in missing)
        loss.backward()
        for p in missing:
            if id(p) not in had:
                p.grad = None


# ----------------------------------------------------------------------------- collectives


def all_reduce_mean(values: Mapping[str, float], world: World) -> dict[str, float]:
    """Means over the ranks of the logged statistics (the same keys on every rank)."""
    if not world.enabled or not values:
        return dict(values)
    keys = sorted(values)
    flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(flat, group=_SIDE_GROUP)
    flat /= world.size
    return {k: float(v) for k, v in zip(keys, flat.tolist())}


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    if not world.enabled:
        return values
    flat = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(flat, group=_SIDE_GROUP)
    return flat.tolist()


def max_over_ranks(value: int, world: World) -> int:
    """The largest ``value`` of all ranks (a stop signal on one rank stops all at one step)."""
    if not world.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_SIDE_GROUP)
    return int(t.item())


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (small picklable decisions: a run directory, an event)."""
    if not world.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_SIDE_GROUP)
    return box[0]


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier(group=_SIDE_GROUP)


@torch.no_grad()
def broadcast_module(module: nn.Module, world: World) -> None:
    """Rank 0's parameters and buffers on every rank."""
    if world.enabled:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank."""
    if world.enabled:
        for tensor in module.buffers():
            dist.broadcast(tensor.data, src=0)


def gather_rows(rows, world: World):
    """Every rank's rows (a float array [n_r, D], n_r may differ and be 0, or None for none) on
    rank 0, concatenated in rank order as float32 numpy [sum n_r, D]; None on the other ranks
    (and on rank 0 when no rank had rows). Shares are padded to the longest for one collective
    ``gather`` on the host-side (gloo) group; every rank must call it."""
    rows = None if rows is None else np.asarray(rows, dtype=np.float32)
    if not world.enabled:
        return rows
    local = torch.zeros(0, 0) if rows is None or rows.size == 0 else torch.from_numpy(rows).reshape(len(rows), -1)
    sizes = [torch.zeros(2, dtype=torch.int64) for _ in range(world.size)]
    dist.all_gather(sizes, torch.tensor(local.shape, dtype=torch.int64), group=_SIDE_GROUP)
    counts = [int(t[0]) for t in sizes]
    width = max(int(t[1]) for t in sizes)
    if max(counts) == 0:
        return None
    if len(local) and local.shape[1] != width:
        raise ValueError(f"rank {world.rank} has rows of width {local.shape[1]}, another rank {width}")
    padded = torch.zeros(max(counts), width)
    if len(local):  # an empty share (a rank with no eval block) sends padding only
        padded[:len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(world.size)] if world.is_main else None
    dist.gather(padded, parts, dst=0, group=_SIDE_GROUP)
    if not world.is_main:
        return None
    return torch.cat([part[:k] for part, k in zip(parts, counts)]).numpy()


@torch.no_grad()
def average_buffers(module: nn.Module, world: World) -> None:
    """Floating-point buffers (BatchNorm running statistics) averaged over the ranks."""
    if not world.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= world.size


# ----------------------------------------------------------------------------- failures


def _store():
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except Exception:  # no process group, or the store's host is gone
        return None


def _store_set(key: str, value: str) -> None:
    store = _store()
    if store is not None:
        try:
            store.set(f"ganforge/{key}", value)
        except Exception:
            pass


def _store_get(key: str) -> str | None:
    store = _store()
    if store is None:
        return None
    try:
        if store.check([f"ganforge/{key}"]):
            return store.get(f"ganforge/{key}").decode()
    except Exception:
        pass
    return None


def record_failure(world: World, message: str) -> None:
    """Tell the other ranks, through the rendezvous store, why this rank stops."""
    if world.enabled:
        _store_set(f"failed/{world.rank}", " ".join(message.split())[:300])


def record_stopped_at_once(world: World) -> None:
    """Tell the other ranks that this one stops at once, on a second Ctrl-C. Each rank gets that
    signal, but one can meet this rank's exit in a collective before its own signal is handled
    (or took the signal for a first one, when the launcher's came before torchrun's): it then
    stops as this one did (``stopped_at_once``), not with an error naming this rank's exit."""
    if world.enabled:
        _store_set("stopped-at-once", str(world.rank))


def stopped_at_once(world: World) -> bool:
    """Whether another rank stopped at once on a second Ctrl-C (``record_stopped_at_once``)."""
    return world.enabled and (_store_get("stopped-at-once") or str(world.rank)) != str(world.rank)


def failed_ranks(world: World) -> list[str]:
    """What is known of the other ranks that stopped: the reason they recorded, or that their
    process on this host is gone (killed)."""
    found = []
    host = socket.gethostname()
    for rank in range(world.size):
        if rank == world.rank:
            continue
        reason = _store_get(f"failed/{rank}")
        if reason:
            found.append(f"rank {rank} failed: {reason}")
            continue
        where = _store_get(f"pid/{rank}") or ""
        peer_host, _, pid = where.rpartition(":")
        if peer_host == host and pid.isdigit() and not _alive(int(pid)):
            found.append(f"rank {rank} (pid {pid}) was killed or exited")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process stays a zombie until torchrun's agent reaps it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_PEER_SIGNS = ("connection closed", "connection reset", "broken pipe", "gloo", "nccl", "timed out",
               "timeout", "socket", "peer")


def is_peer_failure(exc: BaseException, world: World) -> bool:
    """Whether ``exc`` is a collective that failed because another rank stopped."""
    if not world.enabled:
        return False
    if isinstance(exc, getattr(dist, "DistError", ())) or failed_ranks(world):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(sign in text for sign in _PEER_SIGNS)


_PEER_WAIT_S = 3.0


def peer_failure(world: World, exc: BaseException, step: int | None, resume_hint: str) -> DistributedError:
    """The one-line error of a rank whose collective failed because another rank stopped.

    A killed peer's sockets close while the kernel is still tearing the process down, before it
    shows as a zombie, and a failing peer records its reason just after its own error: so the
    collective can fail here a moment before either is visible. Look again for up to
    ``_PEER_WAIT_S`` seconds before falling back to the collective's own message. ``step`` None:
    the ranks were still setting up (reading data, checking the run directory)."""
    found = failed_ranks(world)
    deadline = time.monotonic() + _PEER_WAIT_S
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = failed_ranks(world)
    who = "; ".join(found) if found else (f"another rank stopped ({' '.join(str(exc).split())[:120]}); "
                                          f"torchrun's report above names it")
    where = "before training" if step is None else f"at step {step}"
    return DistributedError(f"rank {world.rank} stops {where}: {who}; all ranks stop; {resume_hint}")


# ----------------------------------------------------------------------------- torchrun for --nproc

# What ``ganforge train --nproc N`` starts: torchrun in a session of its own, so that a terminal's
# Ctrl-C reaches the launcher alone, which passes each stop signal on once (torchrun passes it to
# the ranks, each in a session of its own too). A signal that comes before torchrun has started a
# rank ends it at once, with STOPPED_BEFORE_RANKS: there is nothing to save yet, and no rank has
# said anything, so the launcher says so (torchrun replaces these handlers as it starts the ranks).
STOPPED_BEFORE_RANKS = 3
TORCHRUN_CODE = ("import os, signal; os.setsid(); [signal.signal(s, lambda n, f: "
                 f"os._exit({STOPPED_BEFORE_RANKS})) for s in (signal.SIGINT, signal.SIGTERM)]; "
                 "from ganforge.training.distributed import torchrun; torchrun()")

# torchrun's log lines of a shutdown, by a signal or after a failed rank: the ranks say what they
# stopped at and saved, or why they stopped; a crash keeps torchrun's report, which says it too
_SHUTDOWN_LOGS = {"torch.distributed.elastic.agent.server.api": ("Received %s death signal",),
                  "torch.distributed.elastic.multiprocessing.api": ("Sending process %s closing signal",
                                                                    "failed (exitcode: %s)")}

GANFORGE_ERROR_EXIT = 2  # the exit code of a rank that said a ganforge error (cli.EXIT_USAGE)

# torchrun stops the other ranks with SIGTERM once one has failed, as a stop signal passed on from
# the launcher does. The file this names (set for the ranks by ``torchrun()``) exists once torchrun
# stops them after a failure: a rank still starting then says nothing, as its signal is not the
# user's, and exits STOPPED_WITH_THE_OTHERS; ``torchrun()`` names the rank that failed
# (cli reads both without importing this module: torch may be half-imported there)
STOPPED_AFTER_A_FAILURE = "GANFORGE_STOPPED_AFTER_A_FAILURE"
STOPPED_WITH_THE_OTHERS = 4

# Set by ``ganforge train --nproc N`` for its ranks: the launcher has checked the config and said
# the family's warnings about it (check_run), so a rank checks it again without saying them twice
CHECKED_BY_LAUNCHER = "GANFORGE_CHECKED_BY_LAUNCHER"


def torchrun(argv: list[str] | None = None) -> None:
    """torch.distributed.run's ``main`` (started by TORCHRUN_CODE), which passes SIGINT and
    SIGTERM on to the ranks and waits for them to stop, less its traceback and log lines of that
    shutdown; it exits 128 + the signal, as a shell reports a process a signal stopped. When the
    ranks stopped on a ganforge error, which a rank has said in one line, it exits 2 as one
    process would, without torchrun's traceback and report of the failed ranks; so it does, with
    a line of its own (``killed_while_starting``), when a rank was killed while the ranks started."""
    import logging
    import tempfile

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main

    argv = sys.argv[1:] if argv is None else list(argv)
    with tempfile.TemporaryDirectory(prefix="ganforge-torchrun-") as tmp:
        marker = Path(tmp) / "stopped-after-a-failure"
        os.environ[STOPPED_AFTER_A_FAILURE] = str(marker)  # the ranks' environment
        seen_signal = []

        def note(record) -> bool:  # sees every record first (the filters below drop some)
            message = str(record.msg)
            if message.startswith("Received %s death signal"):
                seen_signal.append(True)
            elif message.startswith("Sending process %s closing signal") and not seen_signal:
                with contextlib.suppress(OSError):
                    marker.touch()  # before the signal is sent: the rank finds it in its handler
            return True

        filters = {name: [note, lambda record, starts=starts: not str(record.msg).startswith(starts)]
                   for name, starts in _SHUTDOWN_LOGS.items()}
        for name, pair in filters.items():
            for log_filter in pair:
                logging.getLogger(name).addFilter(log_filter)
        try:
            main(argv)
        except SignalException as exc:
            sys.exit(128 + int(exc.sigval))
        except ChildFailedError as exc:
            if said_by_a_rank([failure.exitcode for failure in exc.failures.values()]):
                sys.exit(GANFORGE_ERROR_EXIT)
            line = killed_while_starting(exc.failures, _out_of(argv))
            if line is None:
                raise  # a crash: its traceback and torchrun's report are what the user has to go on
            print(f"ganforge: error: {line}", file=sys.stderr, flush=True)
            sys.exit(GANFORGE_ERROR_EXIT)
        finally:
            for name, pair in filters.items():
                for log_filter in pair:
                    logging.getLogger(name).removeFilter(log_filter)


def _out_of(argv: list[str]) -> Path | None:
    """The ``--out`` of the ``ganforge train`` command torchrun runs (as the launcher wrote it)."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--out"]
    return Path(values[-1]) if values else None


def killed_while_starting(failures: Mapping[int, Any], out: Path | None) -> str | None:
    """The line for ranks that ended while they were starting because one was killed from outside
    (SIGKILL, from a person or the OOM killer): the first failure (torchrun's ``ProcessFailure``
    records by global rank, with ``exitcode``, ``pid``, ``timestamp``) is a signal's, and the others
    stopped before training started when torchrun stopped them (STOPPED_WITH_THE_OTHERS, or
    SIGTERM's default before ganforge listened). None for anything else: in training the rank that
    met the loss says its own line, and a crash keeps torchrun's report."""
    if not failures:
        return None
    first_rank, first = min(failures.items(), key=lambda item: item[1].timestamp)
    others = [f.exitcode for rank, f in failures.items() if rank != first_rank]
    if first.exitcode >= 0 or not others or any(
            code not in (STOPPED_WITH_THE_OTHERS, -signal.SIGTERM) for code in others):
        return None
    try:
        how = f"killed by {signal.Signals(-first.exitcode).name}"
    except ValueError:
        how = f"killed by signal {-first.exitcode}"
    return (f"rank {first_rank} (pid {first.pid}) was {how} while the ranks were starting; "
            f"{_what_out_keeps(out)}")


def _what_out_keeps(out: Path | None) -> str:
    from ..errors import GanforgeError, shell_arg
    from ..rundir import nproc_flag
    from . import checkpoint as ckpt

    if out is None:
        return "start again"
    if not out.is_dir() or not any(out.iterdir()):
        return f"nothing was written to {out}; start again"
    try:
        kept = ckpt.find(out)
    except GanforgeError:
        return f"{out} keeps no checkpoint; start again"
    return f"{out} keeps {kept}; continue with: ganforge train --resume --out {shell_arg(out)}{nproc_flag()}"


def said_by_a_rank(exit_codes: list[int]) -> bool:
    """Whether the failed ranks' ``exit_codes`` show a ganforge error said in one line: a rank
    exited 2, and the others did too or were stopped by a signal (torchrun stops the rest once
    one fails, and a rank killed from outside is named in the line of the rank that met its loss
    when that rank exits 2 before torchrun stops it) or, still starting, said nothing
    (STOPPED_WITH_THE_OTHERS). A rank that crashed (exit 1, its own Python traceback) is not, nor
    ranks all stopped by signals: torchrun's report stays."""
    return GANFORGE_ERROR_EXIT in exit_codes and all(
        code in (GANFORGE_ERROR_EXIT, STOPPED_WITH_THE_OTHERS) or code < 0 for code in exit_codes)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (torchrun's: its ranks), from Linux's /proc; none
    where there is no /proc."""
    found = []
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:  # "pid (command) state ppid ...": the command may hold spaces and parentheses
            fields = (Path(entry.path) / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # it has just ended
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
