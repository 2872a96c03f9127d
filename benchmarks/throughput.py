"""Training throughput of the ``dcgan-fashion-mnist`` preset against a plain PyTorch reference loop.

    python benchmarks/throughput.py                      # defaults: warmup 20, steps 150, repeats 3
    python benchmarks/throughput.py --steps 50 --repeats 1 --json out.json
    python benchmarks/throughput.py --device cuda       # the GPU fast path: benchmarks/throughput_gpu.py

What is measured: training images per second at batch 64 on the CPU, where one iteration is one
discriminator step and one generator step on one real batch (images/s = batch * steps / seconds).

* ganforge: the preset loaded through the public path (``load_config`` -> ``api.build`` ->
  ``objective.make_batches`` -> ``Trainer``) with the reference's networks pinned
  (``SAME_NETWORKS``: the preset itself now has a generator with a full-resolution stage),
  timing ``Trainer.train_step()``; once at the preset's precision (bf16 autocast) and once
  with ``train.precision=fp32``, so the table shows what each lever is worth. Everything a
  training step does in ``Trainer.fit`` is in the timed loop (batch fetch, both phases, EMA
  update); logging, sample grids and checkpoints are not, as they do not happen every step.
* reference: the loop of the classic PyTorch DCGAN example (pytorch/examples, dcgan/main.py): a
  torchvision-style dataset that turns each uint8 image into a PIL image and applies
  ``ToTensor`` + ``Normalize((0.5,), (0.5,))`` per image, a ``DataLoader(shuffle=True,
  num_workers=2)`` iterated inside the timed loop as a user would, D on real with label 1 and on
  ``fake.detach()`` with label 0 (sigmoid + BCELoss), then G through ``netD(fake)`` with label 1;
  fp32, no autocast.

Why the comparison is fair: both sides train the same network classes (ganforge's DCGAN G and D
for 28x28x1, width 64, z_dim 100, DCGAN init; the reference appends ``nn.Sigmoid()`` to D for
BCELoss), the same batch size, the same optimizer (Adam 2e-4, betas (0.5, 0.999)) and the same
``torch.set_num_threads``. What differs is exactly what ganforge claims to do better:

1. data: uint8 batches gathered from one in-memory tensor and cast on the device, versus per-image
   PIL conversion and transforms in DataLoader workers (which share the CPU cores with training);
2. loss: logits + softplus versus sigmoid + BCELoss;
3. precision: bf16 autocast (preset) versus fp32.

ganforge does slightly *more* work per iteration than the reference: its G step draws fresh noise
and runs G forward again (the reference reuses the D step's fake), and it updates an EMA copy of G.
The ``data`` column of the table names the batch source ``make_batches`` actually chose, and
``data wait`` is the share of the timed loop spent blocked on the next batch (worker processes'
CPU use does not show there: on few cores it shows as slower compute).

Timings are repeated ``--repeats`` times, rotating the order of the variants, and the median is
reported, so background load on the machine matters less.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_int, run_main

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

import ganforge
from ganforge import api, models
from ganforge.config import load_config
from ganforge.training.trainer import Trainer

PRESET = "dcgan-fashion-mnist"
SAME_NETWORKS = ["model.g_head=convt", "model.g_width=64", "model.d_head=conv", "model.d_width=64",
                 "model.z_dim=100"]
DEVICE = torch.device("cpu")


# ----------------------------------------------------------------------------- ganforge side


class _TimedBatches:
    """Wraps the Trainer's batch source to record the seconds spent waiting for batches."""

    def __init__(self, inner):
        self.inner, self.wait = inner, 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        batch = next(self.inner)
        self.wait += time.perf_counter() - t0
        return batch

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


class GanforgeRun:
    def __init__(self, precision: str, batch_size: int, dataset):
        # The reference's networks (the paper's DCGAN at width 64), whatever the preset's are now
        _, cfg = load_config(PRESET, [*SAME_NETWORKS, f"train.precision={precision}",
                                      f"train.batch_size={batch_size}", "train.device=cpu"])
        self.name, self.precision = "ganforge", precision
        objective, dataset = api.build(cfg, dataset)
        batches = objective.make_batches(dataset, cfg, DEVICE)
        self.data_desc = type(batches).__name__
        if hasattr(batches, "num_workers"):
            self.data_desc += f"(workers={batches.num_workers})"
        self.batches = _TimedBatches(batches)
        self.trainer = Trainer(cfg, objective, self.batches, run_dir=None, device=DEVICE,
                               progress=False)
        self.batch_size = batch_size

    def run(self, warmup: int, steps: int) -> tuple[float, float]:
        """(images/s, fraction of the time spent waiting for data) over ``steps`` iterations."""
        for _ in range(warmup):
            self.trainer.train_step()
        self.batches.wait = 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            self.trainer.train_step()
        dt = time.perf_counter() - t0
        return self.batch_size * steps / dt, self.batches.wait / dt

    def close(self):
        pass


# ----------------------------------------------------------------------------- reference side


class PerImageDataset(Dataset):
    """What torchvision.datasets.FashionMNIST does per item: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform  # [N, 28, 28] uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])  # uint8 [28, 28] -> mode "L"
        return self.transform(img), int(self.labels[i])


class ReferenceRun:
    """The training loop of pytorch/examples dcgan/main.py, with ganforge's network classes."""

    def __init__(self, batch_size: int, workers: int, images: np.ndarray, labels: np.ndarray, seed: int):
        self.name, self.precision = "reference", "fp32"
        self.data_desc = f"DataLoader(PIL, workers={workers})"
        torch.manual_seed(seed)
        self.nz = 100
        self.netG = models.build_generator("dcgan", resolution=28, channels=1, z_dim=self.nz, width=64)
        self.netD = nn.Sequential(
            models.build_discriminator("dcgan", resolution=28, channels=1, width=64), nn.Sigmoid())
        self.netG.to(DEVICE).train()
        self.netD.to(DEVICE).train()
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
        self.dataloader = DataLoader(PerImageDataset(images, labels, transform),
                                     batch_size=batch_size, shuffle=True, num_workers=workers)
        self.batch_size = batch_size
        self._it = None

    def _next_batch(self):
        # The example's `for epoch ...: for i, data in enumerate(dataloader)`, flattened.
        if self._it is None:
            self._it = iter(self.dataloader)
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.dataloader)
            return next(self._it)

    def _iteration(self, data) -> None:
        netD, netG, criterion = self.netD, self.netG, self.criterion
        real_label, fake_label = 1.0, 0.0
        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad()
        real_cpu = data[0].to(DEVICE)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=DEVICE)
        output = netD(real_cpu).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()  # noqa: F841  (the example logs these)
        noise = torch.randn(batch_size, self.nz, 1, 1, device=DEVICE)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()  # noqa: F841
        errD = errD_real + errD_fake  # noqa: F841
        self.optimizerD.step()
        # (2) Update G: maximize log(D(G(z)))
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()  # noqa: F841
        self.optimizerG.step()

    def run(self, warmup: int, steps: int) -> tuple[float, float]:
        for _ in range(warmup):
            self._iteration(self._next_batch())
        wait = 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            t1 = time.perf_counter()
            data = self._next_batch()
            wait += time.perf_counter() - t1
            self._iteration(data)
        dt = time.perf_counter() - t0
        return self.batch_size * steps / dt, wait / dt

    def close(self):
        self._it = None  # shuts the workers down


# ----------------------------------------------------------------------------- report


def machine_info(threads: int) -> dict:
    model = platform.processor() or ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ganforge": getattr(ganforge, "__version__", "?"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--levers" in argv or any(a in ("--device=cuda", "cuda") or a.startswith("--device=cuda:")
                                 for a in argv) and ("--device" in argv or "--device=cuda" in argv):
        sys.path.insert(0, str(Path(__file__).parent))
        import throughput_gpu  # the GPU fast-path table, with each lever on and off

        return throughput_gpu.main(argv)
    p = Parser(description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=150, help="timed iterations per measurement")
    p.add_argument("--warmup", type=nonnegative_int, default=20, help="untimed iterations before each measurement")
    p.add_argument("--repeats", type=positive_int, default=3, help="measurements per variant; the median is reported")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--threads", type=positive_int, default=default_threads(),
                   help="torch.set_num_threads for both sides")
    p.add_argument("--workers", type=nonnegative_int, default=2,
                   help="reference DataLoader workers (the example's default)")
    p.add_argument("--precisions", default="bf16,fp32", help="ganforge train.precision values to time")
    p.add_argument("--json", type=Path, help="also write machine info and all numbers here")
    p.add_argument("--device", choices=["cpu"], default="cpu",
                   help="cpu (this table); --device cuda runs benchmarks/throughput_gpu.py, the GPU "
                        "levers on and off (its own --help)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    info = machine_info(threads)
    print(f"{info['cpu_model']} | {info['cpu_count']} CPUs | torch {info['torch']} "
          f"({info['cpu_capability']}) | threads {threads} | batch {args.batch_size} | "
          f"warmup {args.warmup} + steps {args.steps} x {args.repeats} repeats", flush=True)

    t_start = time.perf_counter()
    _, base_cfg = load_config(PRESET, [])
    dataset = api.load_data(base_cfg)  # shared by all ganforge variants: loaded once
    images = dataset.images[:, 0].numpy()  # uint8 [N, 28, 28], as the IDX file holds them
    labels = dataset.labels.numpy()

    variants = [ReferenceRun(args.batch_size, args.workers, images, labels, base_cfg.train.seed)]
    variants += [GanforgeRun(prec, args.batch_size, dataset) for prec in args.precisions.split(",") if prec]
    samples: list[list[tuple[float, float]]] = [[] for _ in variants]
    for r in range(args.repeats):
        shift = r % len(variants)  # rotate the order so no variant always runs first
        for i in list(range(len(variants)))[shift:] + list(range(len(variants)))[:shift]:
            v = variants[i]
            ips, wait = v.run(args.warmup, args.steps)
            samples[i].append((ips, wait))
            print(f"  repeat {r + 1}/{args.repeats}  {v.name:<9} {v.precision:<4}  {ips:8.1f} img/s  "
                  f"(data wait {100 * wait:4.1f}%)", flush=True)
    for v in variants:
        v.close()

    rows = []
    for v, s in zip(variants, samples):
        rows.append({"name": v.name, "precision": v.precision, "data": v.data_desc,
                     "images_per_s": statistics.median(x[0] for x in s),
                     "data_wait_fraction": statistics.median(x[1] for x in s),
                     "images_per_s_all": [x[0] for x in s]})
    ref = rows[0]["images_per_s"]
    for row in rows:
        row["ratio_to_reference"] = row["images_per_s"] / ref
    elapsed = time.perf_counter() - t_start

    print()
    header = f"{'name':<10} {'precision':<9} {'data':<32} {'images/s':>9} {'ratio':>6} {'data wait':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['name']:<10} {row['precision']:<9} {row['data']:<32} {row['images_per_s']:9.1f} "
              f"{row['ratio_to_reference']:5.2f}x {100 * row['data_wait_fraction']:8.1f}%")
    print(f"\nmedian of {args.repeats}; {elapsed:.0f} s in all; target: ganforge (preset) >= 1.5x reference")

    if args.json:
        info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        out = {"preset": PRESET, "machine": info,
               "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "results": rows, "seconds": elapsed, "command": " ".join(sys.argv)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
