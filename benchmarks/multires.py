"""Multi-resolution GANs against DCGAN on Fashion-MNIST at 32x32, at equal wall-clock.

    python benchmarks/multires.py                                  # 10 minutes each, seeds 0,1,2
    python benchmarks/multires.py --minutes 1 --seeds 0 --eval-n 500   # does it run end to end?
    python benchmarks/multires.py --replot multires.json --figure docs/multires-fid.png  # redraw

For each seed, one run after the other (never in parallel: two trainings on 2 cores ruin both),
each of ``progan-fashion-mnist``, ``lapgan-fashion-mnist`` and ``dcgan-fashion-mnist`` at
data.resolution=32 is trained by ``ganforge train`` in its own process and stopped by SIGTERM
(which saves a checkpoint) when ``--minutes`` of wall-clock are spent; start-up, data loading,
logging, the monitor, grids, checkpoints and the in-training evaluation count against the budget
of every run alike. During training ``eval.every`` (``--eval-every`` steps, ``--eval-n`` samples)
writes FID and KID to metrics.jsonl: the curve of FID against minutes of training comes from
those records (time = the Trainer's elapsed training seconds at that step). After training,
10,000 samples of the EMA generator are scored against the Fashion-MNIST test split with the
shipped fashion-mnist-cnn extractor, which resizes the 32x32 samples to its 28x28 input
(bilinear with antialias, as ganforge.data resizes; the JSON protocol says so): FID, KID,
precision, recall, coverage, classes covered. Training images/s is the median of the logged
``img_per_s`` (real images drawn per second; LAPGAN's levels all train on the same batch).

A progressive run stopped before its schedule reaches 32x32 is scored at its current stage,
upsampled: the table says which stage each run reached.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from _common import Parser, positive_float, positive_int, run_main

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
import quality_per_time as qpt  # noqa: E402  (the shared run-and-score helpers)

SPECS = ("progan-fashion-mnist", "lapgan-fashion-mnist", "dcgan-fashion-mnist:data.resolution=32")


def fid_curve(run: Path) -> list[tuple[float, float]]:
    """(minutes of training, FID) from a run's metrics.jsonl."""
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    times = {r["step"]: r["time"] for r in lines if "time" in r and "event" not in r}
    out = []
    for r in lines:
        if "fid" in r and r["step"] in times:
            out.append((round(times[r["step"]] / 60, 2), round(float(r["fid"]), 2)))
    return out


def stage_reached(run: Path) -> str:
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    stages = [r["evidence"] for r in lines if r.get("event") == "stage"]
    if not stages:
        return "-"
    last = stages[-1]
    return f"{last['resolution']}px {'fading' if last['phase'] == 'fade_in' else 'stable'}"


def plot(data: dict, path: Path) -> None:
    """FID against minutes of training, one line per preset and seed (the in-training FIDs)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for spec, runs in data["results"].items():
        for r in runs:
            if r["curve"]:
                minutes, fids = zip(*r["curve"])
                ax.plot(minutes, fids, marker="o", ms=3, label=f"{spec.split(':')[0]} (seed {r['seed']})")
    ax.set_xlabel("minutes of training (wall-clock)")
    ax.set_ylabel(f"FID during training ({data.get('eval_n', 'eval.n')} samples)")
    ax.set_title(f"Fashion-MNIST 32x32, {data['minutes']:g} min each, fashion-mnist-cnn features")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=positive_float, default=10.0, help="wall-clock budget of each run")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--eval-every", type=positive_int, default=500, help="steps between in-training FIDs")
    p.add_argument("--eval-n", type=positive_int, default=2000, help="samples per in-training FID")
    p.add_argument("--specs", default=";".join(SPECS), help="';'-separated PRESET[:key=value,...]")
    p.add_argument("--out", type=Path, default=Path("runs/multires"))
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--figure", type=Path, help="draw the FID curves into this PNG")
    p.add_argument("--replot", type=Path, metavar="JSON",
                   help="only draw --figure from a JSON an earlier run wrote (no training)")
    args = p.parse_args()
    if args.replot:
        if not args.figure:
            p.error("--replot needs --figure PATH")
        plot(json.loads(args.replot.read_text()), args.figure)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    specs = [s for s in args.specs.split(";") if s]
    # eval.metrics default: fid and kid. A log record at every evaluated step gives its time.
    extra = (f"eval.every={args.eval_every},eval.n={args.eval_n},"
             f"train.log_every={math.gcd(args.eval_every, 50)}")
    print(f"multires: {args.minutes:g} min each, seeds {seeds}, {specs}", flush=True)
    results: dict[str, list] = {s: [] for s in specs}
    for seed in seeds:
        for spec in specs:
            full = spec + ("," if ":" in spec else ":") + extra
            tag = spec.split(":")[0]
            folder = args.out / f"{tag}-{seed}"
            r = qpt.run_preset(full, args.minutes * 60, seed, folder)
            r.update(scores=qpt.score(r["samples"]), curve=fid_curve(folder / "run"),
                     stage=stage_reached(folder / "run"), seed=seed)
            results[spec].append(r)
            print(f"  seed {seed} {tag}: {r['steps']} steps, {r['images_per_s']:.0f} img/s, "
                  f"FID {r['scores']['fid']:.2f}, stage {r['stage']}, curve {r['curve']}", flush=True)
    print(f"\n{'':<28}{'FID':>15}{'KID':>9}{'prec':>7}{'recall':>7}{'cover':>7}{'img/s':>7}  stage")
    for spec, runs in results.items():
        def mean(key, runs=runs):
            return statistics.mean(r["scores"][key] for r in runs)
        fids = [r["scores"]["fid"] for r in runs]
        spread = statistics.stdev(fids) if len(fids) > 1 else 0.0
        print(f"{spec.split(':')[0]:<28}{statistics.mean(fids):8.2f} ± {spread:4.2f}{mean('kid'):9.4f}"
              f"{mean('precision'):7.3f}{mean('recall'):7.3f}{mean('coverage'):7.3f}"
              f"{statistics.mean(r['images_per_s'] for r in runs):7.0f}  "
              f"{', '.join(r['stage'] for r in runs)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"minutes": args.minutes, "seeds": seeds, "eval_n": args.eval_n,
                                         "results": results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.figure:
        plot({"minutes": args.minutes, "eval_n": args.eval_n, "results": results}, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
