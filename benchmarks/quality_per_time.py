"""Sample quality per CPU-minute: ganforge presets against a plain DCGAN loop at equal wall-clock.

    python benchmarks/quality_per_time.py                       # 600 s each, seeds 0,1,2
    python benchmarks/quality_per_time.py --seconds 150         # a quick look
    python benchmarks/quality_per_time.py --presets dcgan-fashion-mnist,dcgan-fashion-mnist:model.g_width=96

For each seed, one after the other (never in parallel: two trainings on 2 cores ruin both):

* the reference: the plain loop below, written as a user would after the classic PyTorch DCGAN
  example (G: Linear z -> 256x7x7, BatchNorm, ConvTranspose 256 -> 128 -> 64, a 3x3 conv to one
  channel, tanh; D: conv 64 -> 128 -> 256 with BatchNorm, a linear layer to one logit; Adam 2e-4
  (0.5, 0.999), batch 64, non-saturating loss, bf16 autocast where the CPU has native bf16, as
  the presets' ``train.precision: auto``, fp32 elsewhere), in its own process;
* each preset: ``ganforge train PRESET`` in its own process, stopped by SIGTERM (which saves a
  checkpoint, as Ctrl-C would) when the budget is spent.

Both budgets count from the start of the process, so start-up, data loading and everything the
tool does besides training (logging, the monitor, sample grids, checkpoints) count against it.
Then 10,000 samples of each (G in eval mode for the reference, ganforge's EMA generator) are
scored against the Fashion-MNIST test split with the shipped fashion-mnist-cnn extractor: FID,
KID, precision, recall, coverage and classes covered. The table gives mean and spread over the
seeds and the ratio of each preset's FID to the reference's.

A preset name may carry overrides after a colon, separated by commas, to measure a lever:
``dcgan-fashion-mnist:train.batch_size=128,optim.g_lr=4e-4``.

``--steps N`` trains every entry (the reference too) for N generator steps instead of a time
budget: the quality half of a lever study, which a busy machine does not distort (set
OMP_NUM_THREADS=1 there). FID at equal wall-clock then follows from each entry's images/s,
measured alone; the equal-wall-clock run stays the verdict.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_float, run_main

HERE = Path(__file__).resolve()
METRICS = ["fid", "kid", "precision", "recall", "coverage", "classes_covered"]


# ----------------------------------------------------------------------------- the reference loop


def reference_loop(seconds: float, seed: int, out: Path, t_start: float, max_steps: int = 0) -> dict:
    """The plain 40-line DCGAN loop, trained until ``seconds`` after ``t_start`` (or for
    ``max_steps`` steps when that is set); writes ``out`` (samples.npz: 10,000 uint8 images from
    G in eval mode)."""
    import numpy as np
    import torch
    from torch import nn

    from ganforge.data import load_dataset
    from ganforge.training.precision import native_bf16

    torch.manual_seed(seed)
    bf16 = native_bf16(torch.device("cpu"))  # emulated bf16 is 20x slower than fp32 (BENCHMARKS.md)
    data = load_dataset("fashion-mnist").images.float().div(127.5).sub(1)  # [60000, 1, 28, 28]
    G = nn.Sequential(nn.Linear(100, 256 * 7 * 7), nn.Unflatten(1, (256, 7, 7)), nn.BatchNorm2d(256),
                      nn.ReLU(), nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
                      nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.Conv2d(64, 1, 3, 1, 1), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2),
                      nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
                      nn.Conv2d(128, 256, 3, 2, 1), nn.BatchNorm2d(256), nn.LeakyReLU(0.2),
                      nn.Flatten(), nn.Linear(256 * 4 * 4, 1))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    softplus = nn.functional.softplus
    steps = 0
    while (steps < max_steps) if max_steps else (time.time() - t_start < seconds):
        real = data[torch.randint(len(data), (64,))]
        z = torch.randn(64, 100)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake = G(z)
            d_loss = softplus(-D(real)).mean() + softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            g_loss = softplus(-D(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        steps += 1
    G.eval()
    with torch.no_grad():
        x = torch.cat([G(torch.randn(500, 100)) for _ in range(20)]).float().clamp(-1, 1)
    images = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez_compressed(out, images=images)
    return {"steps": steps, "images_per_s": 64 * steps / (time.time() - t_start)}


# ----------------------------------------------------------------------------- one measurement


def run_reference(seconds: float, seed: int, folder: Path, steps: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    budget = ["--steps", str(steps)] if steps else ["--seconds", str(seconds)]  # a step count ignores seconds
    cmd = [sys.executable, str(HERE), "--_reference", *budget, "--seed", str(seed),
           "--out", str(folder / "samples.npz")]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"reference loop failed:\n{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**info, "wall_s": round(time.time() - t0, 1), "samples": str(folder / "samples.npz")}


def run_preset(spec: str, seconds: float, seed: int, folder: Path, steps: int = 0) -> dict:
    """``ganforge train`` for ``seconds`` of wall-clock (then SIGTERM), or for ``steps`` steps when
    that is set, then 10k EMA samples."""
    preset, _, extra = spec.partition(":")
    overrides = [o for o in extra.split(",") if o]
    run = folder / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", preset, "--out", str(run), "--force", "--quiet",
           f"train.steps={steps or 100000000}", f"train.seed={seed}", *overrides]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=None if steps else seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # saves a checkpoint and exits
        proc.wait(timeout=120)
    if proc.returncode not in (0, 143):
        raise SystemExit(f"{spec} failed ({proc.returncode}):\n{proc.stderr.read()[-2000:]}")
    wall = time.time() - t0
    samples = folder / "samples.npz"
    subprocess.run([sys.executable, "-m", "ganforge", "sample", str(run), "--n", "10000", "--out",
                    str(samples), "--force", "--seed", str(seed)], check=True, capture_output=True)
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in lines if "img_per_s" in r]
    step = records[-1]["step"] if records else 0
    ips = statistics.median(r["img_per_s"] for r in records) if records else float("nan")
    return {"steps": step, "images_per_s": ips, "wall_s": round(wall, 1), "samples": str(samples)}


def score(samples: str) -> dict:
    import numpy as np
    import torch

    from ganforge.metrics import evaluate

    with np.load(samples) as f:
        images = torch.from_numpy(f["images"]).permute(0, 3, 1, 2).contiguous()
    result = evaluate(images, ref="fashion-mnist", split="test", metrics=METRICS, n_ref=10_000,
                      extractor="fashion-mnist-cnn")
    return {k: float(v) for k, v in result.values.items()}


# ----------------------------------------------------------------------------- report


def summarize(results: dict) -> str:
    def stats(values):
        m = statistics.mean(values)
        s = statistics.stdev(values) if len(values) > 1 else 0.0
        return m, s

    # without the reference loop the ratio is to the first entry
    ref_fid = [r["scores"]["fid"] for r in next(iter(results.values()))]
    ratio_to = "FID/ref" if "reference" in results else "FID/1st"
    lines = [f"{'':<40}{'FID':>16}{ratio_to:>9}{'precision':>11}{'recall':>9}{'coverage':>10}"
             f"{'classes':>9}{'img/s':>8}"]
    for name, runs in results.items():
        fid = [r["scores"]["fid"] for r in runs]
        ratio = [f / rf for f, rf in zip(fid, ref_fid)]
        cells = []
        for key in ("precision", "recall", "coverage", "classes_covered"):
            m, _ = stats([r["scores"][key] for r in runs])
            cells.append(m)
        fm, fs = stats(fid)
        rm, _ = stats(ratio)
        ips = statistics.mean(r["images_per_s"] for r in runs)
        lines.append(f"{name:<40}{fm:9.2f} ± {fs:4.2f}{rm:8.2f}x{cells[0]:11.3f}{cells[1]:9.3f}"
                     f"{cells[2]:10.3f}{cells[3]:9.1f}{ips:8.0f}")
        per_seed = ", ".join(f"{f:.2f}" for f in fid)
        lines.append(f"{'':<40}per seed FID: {per_seed}")
    return "\n".join(lines)


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=positive_float, default=600.0, help="wall-clock budget of each training")
    p.add_argument("--steps", type=nonnegative_int, default=0,
                   help="train every entry for this many steps instead of --seconds (quality per step)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--presets", default="dcgan-fashion-mnist",
                   help="comma-free list separated by ';', each PRESET[:key=value,...]")
    p.add_argument("--out", type=Path, default=Path("runs/quality-per-time"))
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the plain loop: compare the presets with each other only")
    p.add_argument("--_reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=nonnegative_int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._reference:  # the child process that runs the plain loop
        t_start = time.time()
        print(json.dumps(reference_loop(args.seconds, args.seed, args.out, t_start, args.steps)))
        return 0

    seeds = [int(s) for s in args.seeds.split(",")]
    specs = [s for s in args.presets.split(";") if s]
    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:.0f} s"
    print(f"quality per time: {budget} each, seeds {seeds}, {'' if args.no_reference else 'reference + '}{specs}, "
          f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}", flush=True)
    results: dict[str, list] = {} if args.no_reference else {"reference": []}
    for spec in specs:
        results[spec] = []
    for seed in seeds:
        if not args.no_reference:
            ref = run_reference(args.seconds, seed, args.out / f"reference-{seed}", args.steps)
            ref["scores"] = score(ref["samples"])
            results["reference"].append({"seed": seed, **ref})
            print(f"  seed {seed} reference: {ref['steps']} steps, FID {ref['scores']['fid']:.2f}", flush=True)
        for spec in specs:
            tag = spec.replace(":", "_").replace("=", "-").replace(",", "_")
            r = run_preset(spec, args.seconds, seed, args.out / f"{tag}-{seed}", args.steps)
            r["scores"] = score(r["samples"])
            results[spec].append({"seed": seed, **r})
            print(f"  seed {seed} {spec}: {r['steps']} steps, FID {r['scores']['fid']:.2f}", flush=True)
    print(summarize(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seconds": args.seconds, "steps": args.steps, "seeds": seeds,
                                         "results": results},
                                        indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
