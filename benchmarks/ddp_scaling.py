"""Data-parallel scaling on one machine: 1 against N CPU processes (gloo), ganforge's Trainer with
its nets in DistributedDataParallel, as ``torchrun --nproc_per_node=N -m ganforge train`` runs it.

    python benchmarks/ddp_scaling.py                         # 1 and 2 processes, dcgan-fashion-mnist
    python benchmarks/ddp_scaling.py --steps 5 --warmup 2    # smoke
    python benchmarks/ddp_scaling.py --procs 1,2,4 --json benchmarks/results/ddp_scaling.json

Weak scaling by default: each process keeps ``--batch-per-rank`` images, so the global batch
grows with the processes (``--strong`` keeps the global batch instead). Each process gets
cores / N threads, so the machine's cores are shared out, not multiplied.

Reported per world size: training images/s over the global batch (timed ``Trainer.train_step``
between barriers), the scaling efficiency ips(N) / (N ips(1)), and the communication time per
step: an all-reduce of exactly the gradient bytes a step reduces (every phase's nets), timed
on its own, so the share of a step spent communicating can be read off.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_int, positive_ints, run_main

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

PRESET = "dcgan-fashion-mnist"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, args, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(max(1, args.cores // world))
    from ganforge import api
    from ganforge.config import load_config
    from ganforge.training import distributed
    from ganforge.training.trainer import Trainer

    batch = args.batch_per_rank * (1 if args.strong else world)
    _, cfg = load_config(args.preset, [f"train.batch_size={batch}", "train.device=cpu",
                                       f"train.precision={args.precision}", "monitor.enabled=false"])
    distributed.init(torch.device("cpu"))
    objective, dataset = api.build(cfg)
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")),
                      run_dir=None, device=torch.device("cpu"), progress=False)
    for _ in range(args.warmup):
        trainer.train_step()
    rates = []
    for _ in range(args.repeats):
        distributed.barrier(trainer.world)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step()
        distributed.barrier(trainer.world)
        rates.append(batch * args.steps / (time.perf_counter() - t0))
    comm = 0.0
    if world > 1:  # the gradient bytes one step all-reduces, timed alone
        sizes = [sum(p.numel() for n in objective.optimizers[ph.optimizer].nets
                     for p in objective.nets[n].parameters()) * ph.repeat for ph in objective.phases]
        flats = [torch.zeros(n) for n in sizes]
        for flat in flats:
            dist.all_reduce(flat)
        times = []
        for _ in range(20):
            dist.barrier()
            t0 = time.perf_counter()
            for flat in flats:
                dist.all_reduce(flat)
            times.append(time.perf_counter() - t0)
        comm = statistics.median(times)
    if rank == 0:
        Path(out).write_text(json.dumps({"world": world, "global_batch": batch,
                                         "threads_per_rank": torch.get_num_threads(),
                                         "images_per_s": statistics.median(rates),
                                         "images_per_s_all": rates, "comm_s_per_step": comm,
                                         "step_s": batch / statistics.median(rates)}))
    distributed.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=PRESET)
    p.add_argument("--procs", type=positive_ints, default="1,2")
    p.add_argument("--batch-per-rank", type=positive_int, default=64)
    p.add_argument("--strong", action="store_true", help="keep the global batch (= --batch-per-rank)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--steps", type=positive_int, default=40)
    p.add_argument("--warmup", type=nonnegative_int, default=5)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--cores", type=positive_int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    print(f"{args.preset} | {args.cores} cores | {'strong' if args.strong else 'weak'} scaling, "
          f"batch {args.batch_per_rank} {'global' if args.strong else 'per rank'} | {args.precision} | "
          f"warmup {args.warmup} + {args.steps} steps x {args.repeats}", flush=True)
    rows = []
    import tempfile

    for world in args.procs:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            mp.spawn(_worker, args=(world, _port(), args, f.name), nprocs=world, join=True)
            rows.append(json.loads(Path(f.name).read_text()))
    one = rows[0]["images_per_s"] / rows[0]["world"]
    print(f"\n{'procs':>5} {'global batch':>12} {'threads':>7} {'images/s':>9} {'efficiency':>10} "
          f"{'comm ms/step':>12} {'comm share':>10}")
    for r in rows:
        r["efficiency"] = r["images_per_s"] / (r["world"] * one)
        r["comm_share"] = r["comm_s_per_step"] / r["step_s"]
        print(f"{r['world']:>5} {r['global_batch']:>12} {r['threads_per_rank']:>7} {r['images_per_s']:9.1f} "
              f"{100 * r['efficiency']:9.0f}% {1000 * r['comm_s_per_step']:12.2f} {100 * r['comm_share']:9.1f}%")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "results": rows, "command": " ".join(sys.argv)}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
