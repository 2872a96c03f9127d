"""What the EMA generator's own BatchNorm statistics are worth: one run, the same weights, the
same latents, three ways of normalizing.

    python benchmarks/ema_bn_stats.py RUN [RUN ...]

For each run: 10,000 samples from the EMA generator (a) with the statistics stored in its
checkpoint, (b) with statistics recomputed from 10,240 of its own samples (what the Trainer does
before each checkpoint since ``train.ema_bn_samples``; runs trained before that store the live
G's statistics), (c) with batch statistics at sampling (train mode, batches of 500). Each is
scored against the Fashion-MNIST test split with the shipped fashion-mnist-cnn extractor: FID,
precision, recall.
"""
from __future__ import annotations

import json

from _common import Parser, positive_int, run_main

import torch

import ganforge
from ganforge.metrics import evaluate
from ganforge.models.layers import accumulating_bn_stats


def score(x: torch.Tensor) -> dict:
    images = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    r = evaluate(images, ref="fashion-mnist", split="test", metrics=["fid", "precision", "recall"],
                 n_ref=10_000, extractor="fashion-mnist-cnn")
    return {k: round(float(v), 3) for k, v in r.values.items()}


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--threads", type=positive_int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for path in args.runs:
        run = ganforge.load(path)
        G = run.ema_nets["G"]
        out = {"step": run.step, "stored": score(run.sample(10_000, seed=1))}
        with accumulating_bn_stats(G):
            run.sample(10_240, seed=999, batch_size=256)
        out["recomputed"] = score(run.sample(10_000, seed=1))
        G.train()
        out["batch_statistics"] = score(run.sample(10_000, seed=1))
        G.eval()
        results[path] = out
        print(json.dumps({path: out}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
