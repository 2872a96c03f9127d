"""The GPU fast path, measured: training images/s of ganforge's DCGAN, StyleGAN2 and BigGAN
presets at 32, 64 and 128 px with each lever on and off, against the plain PyTorch reference
loop in the same run, plus a profiler count of host synchronizations per step.

    python benchmarks/throughput.py --device cuda                       # the full table
    python benchmarks/throughput.py --device cuda --families dcgan --resolutions 64 --steps 30
    python benchmarks/throughput.py --device cpu --levers --families dcgan --resolutions 32 \\
        --steps 3 --warmup 1 --levers-list channels_last,bf16          # smoke test of the harness

Levers (``--levers-list``; each is timed alone on the fp32 baseline, then all together):

* ``tf32``: TF32 matmuls and convolutions (``train.tf32``);
* ``channels_last``: NHWC memory format for the nets (``train.channels_last``);
* ``bf16``: bf16 autocast (``train.precision=bf16``); ``fp16``: fp16 autocast with the grad
  scaler (``train.precision=fp16``; CUDA only; "all" uses bf16);
* ``compile``: ``torch.compile`` of every net (``train.compile``), timed after its warm-up.

Always on in ganforge, so not levers: the in-memory dataset kept on the GPU (one gather and a
cast per batch), the monitor's statistics kept on the device and read once per log interval
(``--profile`` counts per ``train_step`` the host reads of tensor values and the CUDA stream
synchronizations in a torch.profiler trace; on CPU the reads include the fused Adam kernel
reading its CPU step counter, which is no device synchronization; on CUDA the synchronization
count is the number to look at. StyleGAN2's style-mixing draw reads one scalar per G pass).

The reference (DCGAN only; the other families have no plain loop to compare with, so their
levers are compared with ganforge's fp32 baseline): the pytorch/examples DCGAN loop with
ganforge's DCGAN nets at the same resolution, width and batch: a shuffled DataLoader of float
tensors (2 workers, no pinned memory) copied to the GPU each step, sigmoid + BCELoss, fp32, and
the example's ``.item()`` reads every step. Target (issue 16): ganforge with its levers >= 3x it.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_int, run_main

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganforge import api, models
from ganforge.config import load_config
from ganforge.objectives.unconditional import write_image_folder
from ganforge.training.trainer import Trainer

PRESETS = {"dcgan": "dcgan-folder", "stylegan2": "stylegan2-folder", "biggan": "biggan-folder"}
LEVERS = {"tf32": ["train.tf32=true"], "channels_last": ["train.channels_last=true"],
          "bf16": ["train.precision=bf16"], "fp16": ["train.precision=fp16"],
          "compile": ["train.compile=true"]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _overrides(family: str, res: int, folder: Path, batch: int, device: str) -> list[str]:
    out = [f"data.name=folder:{folder}", f"data.resolution={res}", "data.channels=3",
           f"train.batch_size={batch}", f"train.device={device}", "monitor.enabled=true"]
    if family == "biggan":
        out.append(f"biggan.attn_res={res // 2}")
    return out


class GanforgeRun:
    def __init__(self, family: str, res: int, folder: Path, batch: int, device: torch.device,
                 levers: list[str]):
        extra = [o for lever in levers for o in LEVERS[lever]]
        _, cfg = load_config(PRESETS[family], _overrides(family, res, folder, batch, device.type) + extra)
        objective, dataset = api.build(cfg)
        batches = objective.make_batches(dataset, cfg, device)
        self.trainer = Trainer(cfg, objective, batches, run_dir=None, device=device, progress=False)
        self.batch, self.device = batch, device

    def step(self) -> None:
        self.trainer.train_step()

    def flush(self) -> None:  # what one log interval reads from the device
        self.trainer.logger.flush_means()


class ReferenceRun:
    """pytorch/examples dcgan/main.py's loop with ganforge's DCGAN nets."""

    def __init__(self, res: int, images: torch.Tensor, batch: int, device: torch.device, seed: int = 0):
        torch.manual_seed(seed)
        self.nz, self.device, self.batch = 100, device, batch
        self.netG = models.build_generator("dcgan", resolution=res, channels=3, z_dim=self.nz, width=64).to(device)
        self.netD = nn.Sequential(models.build_discriminator("dcgan", resolution=res, channels=3, width=64),
                                  nn.Sigmoid()).to(device)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        data = TensorDataset(images.float().div(127.5).sub(1), torch.zeros(len(images)))
        self.loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
        self._it = None

    def _next(self):
        if self._it is None:
            self._it = iter(self.loader)
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)

    def step(self) -> None:
        real = self._next()[0].to(self.device)
        n = real.shape[0]
        self.netD.zero_grad()
        label = torch.full((n,), 1.0, device=self.device)
        out = self.netD(real).view(-1)
        err_real = self.criterion(out, label)
        err_real.backward()
        out.mean().item()
        fake = self.netG(torch.randn(n, self.nz, 1, 1, device=self.device))
        label.fill_(0.0)
        out = self.netD(fake.detach()).view(-1)
        self.criterion(out, label).backward()
        out.mean().item()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        out = self.netD(fake).view(-1)
        self.criterion(out, label).backward()
        out.mean().item()
        self.optG.step()

    def flush(self) -> None:
        pass


def timed(run, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        run.step()
    run.flush()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        run.step()
    run.flush()
    _sync(device)
    return run.batch * steps / (time.perf_counter() - t0)


def host_syncs(run, steps: int) -> dict[str, float]:
    """Host reads of device values per ``step`` (and per log interval's flush) from a profile."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    names = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize")
    with profile(activities=activities) as prof:
        for _ in range(steps):
            run.step()
    counts = {n: 0 for n in names}
    for event in prof.key_averages():
        if event.key in counts:
            counts[event.key] += event.count
    with profile(activities=activities) as prof:
        run.flush()
    flush = sum(e.count for e in prof.key_averages() if e.key in names)
    return {**{k: v / steps for k, v in counts.items()}, "per_log_interval_flush": flush}


def variants(levers: list[str], device: torch.device) -> list[tuple[str, list[str]]]:
    usable = [lv for lv in levers if not (lv == "fp16" and device.type != "cuda")]
    out = [("fp32 baseline", [])] + [(f"+{lv}", [lv]) for lv in usable]
    together = [lv for lv in usable if lv != "fp16"]
    if len(together) > 1:
        out.append(("all (" + ",".join(together) + ")", together))
    return out


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--levers", action="store_true", help="(accepted for the cpu smoke run)")
    p.add_argument("--families", default="dcgan,stylegan2,biggan")
    p.add_argument("--resolutions", default="32,64,128")
    p.add_argument("--levers-list", default=",".join(LEVERS))
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=50)
    p.add_argument("--warmup", type=nonnegative_int, default=15)
    p.add_argument("--repeats", type=positive_int, default=1)
    p.add_argument("--images", type=positive_int, default=1024, help="images in the generated folder")
    p.add_argument("--profile", action="store_true", help="also count host syncs per step")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible: run with --device cpu --levers for a smoke test", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name} | torch {torch.__version__} | batch {args.batch_size} | warmup {args.warmup} + "
          f"steps {args.steps} x {args.repeats}", flush=True)
    levers = [lv for lv in args.levers_list.split(",") if lv]
    rows, t_start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for res in map(int, args.resolutions.split(",")):
            folder = write_image_folder(Path(tmp) / f"img{res}", n=args.images // 2, size=res,
                                        classes=("a", "b"))
            ref_ips = None
            for family in args.families.split(","):
                if family == "dcgan":
                    _, cfg = load_config(PRESETS["dcgan"], _overrides("dcgan", res, folder, args.batch_size, "cpu"))
                    images = api.load_data(cfg).images
                    ref = ReferenceRun(res, images, args.batch_size, device)
                    ref_ips = statistics.median(timed(ref, args.warmup, args.steps, device)
                                                for _ in range(args.repeats))
                    rows.append({"family": "reference (dcgan)", "resolution": res, "variant": "plain loop",
                                 "images_per_s": ref_ips, "ratio_to_reference": 1.0})
                    print(f"  {res:>3}px reference dcgan   plain loop            {ref_ips:9.1f} img/s", flush=True)
                base = None
                for label, on in variants(levers, device):
                    torch.set_float32_matmul_precision("highest")
                    torch.backends.cudnn.allow_tf32 = False
                    run = GanforgeRun(family, res, folder, args.batch_size, device, on)
                    ips = statistics.median(timed(run, args.warmup, args.steps, device)
                                            for _ in range(args.repeats))
                    base = base or ips
                    row = {"family": family, "resolution": res, "variant": label, "images_per_s": ips,
                           "speedup_vs_baseline": ips / base,
                           "ratio_to_reference": ips / ref_ips if family == "dcgan" and ref_ips else None}
                    if args.profile and label == "fp32 baseline":
                        row["host_syncs_per_step"] = host_syncs(run, 10)
                    rows.append(row)
                    ratio = f"{row['ratio_to_reference']:5.2f}x ref" if row["ratio_to_reference"] else ""
                    print(f"  {res:>3}px {family:<10} {label:<40} {ips:9.1f} img/s  "
                          f"{ips / base:5.2f}x base  {ratio}", flush=True)
                    if "host_syncs_per_step" in row:
                        print(f"        host syncs: {row['host_syncs_per_step']}", flush=True)
                    del run
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    elapsed = time.perf_counter() - t_start
    print(f"\n{elapsed:.0f} s in all; target: ganforge dcgan with its levers >= 3x the reference")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                         "settings": {k: str(v) for k, v in vars(args).items()},
                                         "results": rows, "seconds": elapsed}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
