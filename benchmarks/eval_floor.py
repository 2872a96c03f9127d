"""Evaluation throughput of an extractor on CPU, and the floor every generator is measured against.

    python benchmarks/eval_floor.py                               # fashion-mnist-cnn, n = 10,000
    python benchmarks/eval_floor.py --threads 2 --json floor.json
    python benchmarks/eval_floor.py --extractor inception --n 2000 # needs the Inception weights

1. Throughput: images/s of the extractor alone (uint8 28x28 Fashion-MNIST test images in, features
   and logits out, in the extractor's own batches unless ``--batch-size``), the median of
   ``--repeats`` timed passes over ``--n`` images after one warm-up batch.
2. Floor: ``ganforge.metrics.evaluate`` on ``--n`` real *training* images (the first n of a seed-0
   permutation, with their true labels) against ``--n`` images of the *test* split, every metric.
   Two samples of the real distribution are as good as a generator can be, so these are the best
   values a generator can reach at this n: FID and KID are not 0 (finite-sample noise), precision
   and recall are not 1, memorization sits at its chance level (~0.01 by definition, see
   metrics/memorization.py; the training images are compared with the training set here, so it
   is measured on the held-out side instead: test images against the training set). The time of
   the whole evaluation (reference features cached beforehand) is reported too.

Record the numbers with the machine and ``uptime`` in BENCHMARKS.md: on 2 cores, any other busy
process slows torch's intra-op threads a lot.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

from _common import Parser, positive_int, run_main


def main(argv=None) -> int:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--extractor", default="fashion-mnist-cnn")
    p.add_argument("--inception-weights")
    p.add_argument("--n", type=positive_int, default=10_000)
    p.add_argument("--batch-size", type=positive_int, help="extractor batch (default: the extractor's own)")
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, help="torch.set_num_threads (default: all cores)")
    p.add_argument("--json", help="write settings and results here")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate, get_extractor
    from ganforge.metrics.evaluation import better

    if args.threads:
        torch.set_num_threads(args.threads)
    ext = get_extractor(args.extractor, inception_weights=args.inception_weights)
    ext.batch_size = args.batch_size or ext.batch_size
    train = load_dataset("fashion-mnist", split="train")
    test = load_dataset("fashion-mnist", split="test")
    images = test.images[: args.n]

    ext(images[: ext.batch_size])  # warm-up
    rates = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        ext(images)
        rates.append(len(images) / (time.perf_counter() - t0))
        print(f"throughput pass {i + 1}: {rates[-1]:.0f} images/s", flush=True)
    throughput = statistics.median(rates)

    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.n]
    log = lambda msg: print(f"  {msg}", flush=True)  # noqa: E731
    evaluate(train.images[idx[:8]], ref="fashion-mnist", extractor=ext, n_ref=args.n, log=log,
             metrics="fid,memorization")  # fills the reference caches so the timing below is the metrics
    t0 = time.perf_counter()
    floor = evaluate(train.images[idx], labels=train.labels[idx].numpy(), ref="fashion-mnist", split="test",
                     extractor=ext, n_ref=args.n, log=log)
    seconds = time.perf_counter() - t0
    # Memorization's chance level: held-out test images against the training set.
    held_out = evaluate(test.images[: args.n], ref="fashion-mnist", split="test", extractor=ext,
                        n_ref=args.n, metrics="memorization")
    floor.values["memorization"] = held_out.values["memorization"]

    print(f"\n{args.extractor}: {throughput:.0f} images/s (median of {args.repeats}, batch "
          f"{ext.batch_size}, {torch.get_num_threads()} threads)")
    print(f"floor: {args.n} fashion-mnist train images vs {floor.protocol['n_reference']} test images "
          f"(evaluation took {seconds:.1f} s with cached reference features)")
    for key, value in floor.values.items():
        print(f"  {key:<16} {value:10.4f}  {better(key)}")
    if args.json:
        record = {"machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                              "platform": platform.platform(), "cpus": os.cpu_count(),
                              "threads": torch.get_num_threads(),
                              "load": os.getloadavg() if hasattr(os, "getloadavg") else None},
                  "settings": vars(args), "throughput_images_per_s": throughput, "throughput_passes": rates,
                  "floor": floor.values, "floor_protocol": floor.protocol, "eval_seconds": seconds,
                  "details": floor.details}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
