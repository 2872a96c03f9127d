"""BigGAN on Fashion-MNIST against the AC-GAN and cGAN presets at equal wall-clock, its truncation
curve, ablations (orthogonal regularization, self-attention) and training images/s.

    python benchmarks/biggan.py --minutes 10 --seeds 0 --json biggan.json \\
        --figure docs/biggan-truncation.png --grid docs/biggan-samples.png      # the BENCHMARKS.md run
    python benchmarks/biggan.py --minutes 10 --runs biggan --ablation ortho,attn --json ablation.json
    python benchmarks/biggan.py --speed 32,128 --device cuda                      # images/s only
    python benchmarks/biggan.py --minutes 0.5 --per-class 20 --truncation 0.5,1  # a quick look

Protocol. Each run trains its preset alone (one after another, ``--threads`` torch threads) with
``train.seed`` = the seed and no step limit, and stops after ``--minutes`` of wall-clock counted
from the start of training (data loading included), through the Trainer's stop flag (what Ctrl-C
sets: the run ends with a checkpoint). The EMA generator then draws ``--per-class`` samples of
each of the 10 classes (seed 0) and ``ganforge.metrics.evaluate`` scores them against the 10k
Fashion-MNIST test images with the shipped ``fashion-mnist-cnn`` extractor: FID, precision/recall
(k=3), classes covered, label accuracy (share of samples requested as class k that the
classifier assigns to k) and intra-FID (FID within each class, averaged). BigGAN trains at 32x32:
the reference images are resized to the samples' size and the extractor resizes both to 28x28,
so BigGAN's samples and its reference go through the same resizing.

The truncation curve samples the same BigGAN runs at each ``--truncation`` threshold (latent
values beyond it resampled) and adds IS. Training images/s is the median of the ``img_per_s``
the Trainer logs (real images per second, D steps counted). ``--speed`` only times training
steps of biggan-fashion-mnist's networks on random 10-class data at each resolution (RGB), on
``--device``.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_float, positive_int, run_main

import numpy as np
import torch

import ganforge
from ganforge import api
from ganforge.atomic import atomic_path, atomic_write_json
from ganforge.config import load_config
from ganforge.metrics import evaluate

RUNS = {  # name -> (preset, overrides)
    "biggan": ("biggan-fashion-mnist", []),
    "acgan": ("acgan-fashion-mnist", []),
    "cgan": ("cgan-fashion-mnist", []),
}
ABLATIONS = {  # --ablation name -> the BigGAN variant (the preset has neither ortho nor attention)
    "ortho": ("biggan-ortho", ("biggan-fashion-mnist", ["reg.ortho=1e-4"])),
    "attn": ("biggan-attn", ("biggan-fashion-mnist", ["biggan.attn_res=16"])),
    "channels_last": ("biggan-channels-last", ("biggan-fashion-mnist", ["train.channels_last=true"])),
}
METRICS = ["fid", "precision", "recall", "classes_covered", "label_accuracy", "intra_fid"]
CURVE_METRICS = ["fid", "precision", "recall", "is", "label_accuracy"]
EXTRACTOR = "fashion-mnist-cnn"


def time_limit(minutes: float):
    """A Trainer hook that stops the run once ``minutes`` of wall-clock have passed."""
    start = time.perf_counter()

    def hook(trainer, step):
        if time.perf_counter() - start > minutes * 60:
            trainer._stop_signal = "time budget"  # the Trainer's stop flag: ends with a checkpoint
        return {}

    return hook


def train(preset: str, overrides: list[str], run_dir: Path, seed: int, minutes: float) -> dict:
    _, cfg = load_config(preset, [*overrides, f"train.seed={seed}", "train.steps=100000000",
                                  "eval.every=5"])
    start = time.perf_counter()
    result = api.train(cfg, run_dir, name=preset, force=True, progress=False,
                       hooks=[time_limit(minutes)])
    wall = time.perf_counter() - start
    log = run_dir / "metrics.jsonl"  # absent when stopped before the first log interval
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    rates = [r["img_per_s"] for r in records if "img_per_s" in r][1:]  # the first holds warm-up
    return {"steps": result.step, "wall_s": round(wall, 1),
            "img_per_s": round(statistics.median(rates), 1) if rates else None}


def score(run_dir: Path, per_class: int, metrics: list[str], truncation: float | None = None) -> dict:
    run = ganforge.load(run_dir)
    k = len(run.class_names)
    labels = np.repeat(np.arange(k), per_class)
    images = run.sample_uint8(len(labels), seed=0, labels=labels.tolist(), truncation=truncation)
    result = evaluate(images.transpose(0, 3, 1, 2), ref="fashion-mnist", split="test", labels=labels,
                      metrics=metrics, extractor=EXTRACTOR)
    return {key: round(float(v), 5) for key, v in result.values.items()}


def speed(resolutions: list[int], steps: int, device: str) -> list[dict]:
    from ganforge.data import ImageDataset
    from ganforge.training.precision import resolve_device
    from ganforge.training.trainer import Trainer

    out = []
    for res in resolutions:
        attn = max(r for r in (8, 16, 32, 64) if r <= res // 2)
        _, cfg = load_config("biggan-fashion-mnist", [f"data.resolution={res}", "data.channels=3",
                                                      f"biggan.attn_res={attn}", f"train.device={device}",
                                                      "monitor.enabled=false"])
        g = torch.Generator().manual_seed(0)
        n = 4 * cfg.train.batch_size
        data = ImageDataset(images=torch.randint(0, 256, (n, 3, res, res), generator=g, dtype=torch.uint8),
                            labels=torch.arange(n) % 10, class_names=[str(i) for i in range(10)],
                            source="random", name="random")
        dev = resolve_device(device)
        objective, _ = api.build(cfg, data)
        trainer = Trainer(cfg, objective, objective.make_batches(data, cfg, dev), run_dir=None, device=dev,
                          progress=False)
        for _ in range(3):
            trainer.train_step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        images = steps * cfg.train.batch_size * cfg.train.n_critic
        out.append({"resolution": res, "device": str(dev), "precision": cfg.train.precision,
                    "batch_size": cfg.train.batch_size, "steps": steps,
                    "img_per_s": round(images / seconds, 1)})
        print(f"speed: {res}x{res} on {dev}: {out[-1]['img_per_s']} real images/s", flush=True)
    return out


def curve_figure(curve: dict[str, list[dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [float(t) for t in curve]
    mean = {m: [np.mean([s[m] for s in curve[t]]) for t in curve] for m in CURVE_METRICS}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for m, style in (("precision", "o-"), ("recall", "s-"), ("label_accuracy", "^-")):
        a.plot(ts, mean[m], style, label=m.replace("_", " "))
    a.set_xlabel("truncation threshold")
    a.set_ylim(0, 1.02)
    a.legend()
    b.plot(ts, mean["fid"], "o-", color="C3")
    b.set_xlabel("truncation threshold")
    b.set_ylabel("FID (fashion-mnist-cnn)")
    fig.suptitle("biggan-fashion-mnist: quality / diversity against the truncation threshold")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)


def sample_grid(run_dir: Path, out: Path, per_class: int = 10) -> None:
    from ganforge.synthetic import balanced_labels, labeled_grid

    run = ganforge.load(run_dir)
    y = balanced_labels(per_class, len(run.class_names))
    images = run.sample(len(y), seed=0, labels=y)
    with atomic_path(out) as tmp:
        labeled_grid(images, y, run.class_names, per_class).save(tmp, format="PNG")


def summary(rows: list[dict]) -> dict:
    out = {}
    for name in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == name]
        keys = [k for k in mine[0] if isinstance(mine[0][k], (int, float)) and k != "seed"]
        out[name] = {k: (round(float(np.mean([r[k] for r in mine])), 5),
                         round(float(np.std([r[k] for r in mine])), 5)) for k in keys}
    return out


def main() -> None:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=positive_float, default=10.0, help="training wall-clock per run")
    p.add_argument("--seeds", default="0", help="comma-separated train.seed values")
    p.add_argument("--runs", default="biggan,acgan,cgan", help=f"of {', '.join(RUNS)}")
    p.add_argument("--ablation", default="", help=f"BigGAN variants to add: {', '.join(ABLATIONS)}")
    p.add_argument("--biggan-overrides", default="",
                   help="key=value overrides for every BigGAN run, e.g. 'model.g_width=8 train.n_critic=1'")
    p.add_argument("--truncation", default="0.25,0.5,0.75,1.0,1.5,2.0",
                   help="thresholds of the BigGAN truncation curve ('' skips it)")
    p.add_argument("--curve-run", default="biggan",
                   help="the run (of --runs/--ablation) whose truncation curve is drawn")
    p.add_argument("--per-class", type=positive_int, default=1000, help="samples per class for each evaluation")
    p.add_argument("--out", default="runs/bench-biggan", help="folder of the run directories")
    p.add_argument("--reuse", action="store_true", help="evaluate existing runs instead of training")
    p.add_argument("--threads", type=nonnegative_int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="write settings and every number here")
    p.add_argument("--figure", help="the truncation curve plot (.png)")
    p.add_argument("--grid", help="a per-class sample grid of the first BigGAN run (.png)")
    p.add_argument("--speed", default="", help="only time training at these resolutions, e.g. 32,128")
    p.add_argument("--speed-steps", type=positive_int, default=20)
    p.add_argument("--device", default="cpu", help="for --speed: cpu, cuda, auto")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = {"command": "python benchmarks/biggan.py " + " ".join(map(shlex.quote, sys.argv[1:])),
            "machine": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.speed:
        result = {**info, "speed": speed([int(r) for r in args.speed.split(",")], args.speed_steps, args.device)}
        if args.json:
            atomic_write_json(args.json, result)
        return

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = {n: RUNS[n] for n in args.runs.split(",") if n.strip()}
    runs.update(dict(ABLATIONS[a] for a in args.ablation.split(",") if a.strip()))
    extra = shlex.split(args.biggan_overrides)
    runs = {n: (preset, [*overrides, *extra]) if preset.startswith("biggan") else (preset, overrides)
            for n, (preset, overrides) in runs.items()}
    thresholds = [float(t) for t in args.truncation.split(",") if t.strip()]
    rows, curve = [], {str(t): [] for t in thresholds}
    for seed in seeds:
        for name, (preset, overrides) in runs.items():
            run_dir = Path(args.out) / f"{name}-s{seed}"
            row = {"run": name, "seed": seed, "preset": preset, "overrides": overrides}
            if not args.reuse:
                print(f"training {name} (seed {seed}) for {args.minutes:g} min -> {run_dir}", flush=True)
                row.update(train(preset, overrides, run_dir, seed, args.minutes))
            row.update(score(run_dir, args.per_class, METRICS))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if name == args.curve_run:
                for t in thresholds:
                    point = score(run_dir, args.per_class, CURVE_METRICS, truncation=t)
                    curve[str(t)].append(point)
                    print(f"  truncation {t:g}: {json.dumps(point)}", flush=True)
    result = {**info, "settings": vars(args), "runs": rows, "summary": summary(rows),
              "truncation": {t: {"per_seed": pts, "mean": {m: round(float(np.mean([s[m] for s in pts])), 5)
                                                           for m in CURVE_METRICS}}
                             for t, pts in curve.items() if pts}}
    print("\nrun              " + "  ".join(f"{m:>14}" for m in ["steps", "img_per_s", *METRICS]))
    for name, values in result["summary"].items():
        cells = [f"{values[m][0]:>8.4g}±{values[m][1]:<5.2g}" if m in values else f"{'':>14}"
                 for m in ["steps", "img_per_s", *METRICS]]
        print(f"{name:<16} " + "  ".join(cells))
    for t, point in result["truncation"].items():
        print(f"truncation {t:>5}: " + "  ".join(f"{m}={v:.4g}" for m, v in point["mean"].items()))
    if args.json:
        atomic_write_json(args.json, result)
    if args.figure and result["truncation"]:
        curve_figure({t: v["per_seed"] for t, v in result["truncation"].items()}, Path(args.figure))
    if args.grid and "biggan" in runs:
        sample_grid(Path(args.out) / f"biggan-s{seeds[0]}", Path(args.grid))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
