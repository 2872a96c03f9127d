"""Vocoders at equal wall-clock: each named run trains for the same minutes on the same corpus and
seed, then eval-audio measures it on the held-out utterances next to Griffin-Lim (mel L1, MCD,
PESQ, STOI, real-time factor). Issue 18's vocoder target: better MCD and PESQ than Griffin-Lim.

Runs train one after another (never side by side: the 2 cores would be shared), seed-major, each
stopped by SIGTERM after --minutes (the trainer checkpoints on it). A run is NAME=PRESET[,k=v...].

    python benchmarks/vocoders.py --corpus /work/bench/speech --minutes 12 --seeds 0 \\
        --out runs/bench-vocoders --json benchmarks/results/vocoders.json
    python benchmarks/vocoders.py --smoke      # seconds: a tiny corpus, checks the pipeline only
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import Parser, positive_float, positive_int, run_main

import torch

from ganforge import api
from ganforge.data.speech import benchmark_corpus
from ganforge.metrics.audio import evaluate_vocoder, format_table

RUNS = ["hifigan=hifigan-speech", "vocos=vocos-speech"]


def _train(preset: str, overrides: list[str], run_dir: Path, seconds: float, threads: int) -> dict:
    """Train in a subprocess, SIGTERM after ``seconds``; the wall-clock it took (steps: the run's)."""
    cmd = [sys.executable, "-m", "ganforge", "train", preset, "--out", str(run_dir), "--quiet", "--force",
           *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the trainer saves a checkpoint and exits
            proc.wait(timeout=600)
    if proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 143):
        raise SystemExit(f"bench: {preset} failed (exit {proc.returncode}); see {run_dir.parent / run_dir.name}.log")
    return {"seconds": time.perf_counter() - start}


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", help="a make-speech corpus (default: written under --out)")
    p.add_argument("--out", default="runs/bench-vocoders")
    p.add_argument("--runs", nargs="+", default=RUNS, help="NAME=PRESET[,key=value...]")
    p.add_argument("--minutes", type=positive_float, default=12.0, help="training wall-clock per run")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--limit", type=positive_int, default=None, help="held-out utterances to measure (default all)")
    p.add_argument("--reuse", action="store_true", help="evaluate runs already trained under --out")
    p.add_argument("--smoke", action="store_true", help="tiny corpus and seconds of training")
    p.add_argument("--json", help="write settings, machine and results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    corpus = benchmark_corpus(out, args.corpus, smoke=args.smoke)
    seconds = 20 if args.smoke else args.minutes * 60
    limit = 2 if args.smoke else args.limit
    extra = ["vocoder.vocos_dim=16", "vocoder.vocos_layers=1", "vocoder.g_width=16"] if args.smoke else []
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for spec in args.runs:
            name, _, rest = spec.partition("=")
            preset, *overrides = rest.split(",")
            run_dir = out / f"{name}-seed{seed}"
            overrides = [f"data.name=audio:{corpus}", f"train.seed={seed}", "train.steps=1000000",
                         "train.checkpoint_every=500", "train.sample_every=1000000", *extra, *overrides]
            if args.reuse and (run_dir / "checkpoints" / "latest").is_file():
                trained = {"seconds": None}
                print(f"bench: using the trained run {run_dir}", flush=True)
            else:
                print(f"bench: {name} ({preset} {' '.join(overrides[4:])}) seed {seed}, "
                      f"{seconds / 60:.1f} min -> {run_dir}", flush=True)
                trained = _train(preset, overrides, run_dir, seconds, args.threads)
            run = api.load(run_dir)
            start = time.perf_counter()
            ev = evaluate_vocoder(run, corpus, limit=limit, threads=args.threads)
            print("\n".join(format_table(ev)), f"\n{name} seed {seed}: step {run.step} "
                  f"(eval {time.perf_counter() - start:.0f} s)", flush=True)
            rows.append({"name": name, "preset": preset, "overrides": overrides, "seed": seed,
                         "step": run.step, "train": trained, **ev})
    print("\nrun, seed, step | " + " | ".join(f"{m} {k}" for m in ("vocoder", "griffin-lim")
                                               for k in ("mel_l1", "mcd", "pesq", "stoi")))
    for r in rows:
        vals = [r["results"][m].get(k, float("nan")) for m in ("vocoder", "griffin-lim")
                for k in ("mel_l1", "mcd", "pesq", "stoi")]
        print(f"{r['name']}, {r['seed']}, {r['step']} | " + " | ".join(f"{v:.3f}" for v in vals))
    if args.json:
        payload = {"smoke": args.smoke, "corpus": str(corpus), "minutes": seconds / 60, "threads": args.threads,
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                               "processor": platform.processor(), "torch": torch.__version__},
                   "runs": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
