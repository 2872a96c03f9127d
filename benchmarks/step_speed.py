"""Training images/s of one preset through the public Trainer, for comparing code or config
changes one against another on the same machine (run it alone: a busy core slows it).

    python benchmarks/step_speed.py stylegan2-fashion-mnist
    python benchmarks/step_speed.py stylegan2-fashion-mnist train.channels_last=false --repeats 3

Builds the preset (plus ``key=value`` overrides) with the monitor off, runs ``--warmup`` steps
untimed, then times ``--steps`` steps ``--repeats`` times and prints each rate and the median.
Images counted as in benchmarks/stylegan2.py: batch size x the phases that draw a fresh batch.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_int, run_main

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def main(argv=None) -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*", default=[], help="key=value config overrides")
    p.add_argument("--steps", type=positive_int, default=64, help="timed steps per repeat (default 64)")
    p.add_argument("--warmup", type=nonnegative_int, default=20, help="untimed steps first (default 20)")
    p.add_argument("--repeats", type=positive_int, default=1, help="timed repeats; the median is printed")
    args = p.parse_args(argv)

    import torch

    from ganforge import api
    from ganforge.config import load_config
    from ganforge.training.precision import resolve_device
    from ganforge.training.trainer import Trainer

    _, cfg = load_config(args.preset, [*args.overrides, "train.steps=100000000", "monitor.enabled=false"])
    device = resolve_device(cfg.train.device)
    objective, dataset = api.build(cfg)
    batches = objective.make_batches(dataset, cfg, device)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        api.prepare_run_dir(run_dir, cfg, resume=False, force=True)
        trainer = Trainer(cfg, objective, batches, run_dir=run_dir, device=device, progress=False)
        per_step = cfg.train.batch_size * sum(ph.repeat for ph in objective.phases if ph.fresh_batch)
        for _ in range(args.warmup):
            trainer.train_step()
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step()
            rates.append(per_step * args.steps / (time.perf_counter() - t0))
            print(f"{args.preset} {' '.join(args.overrides)}: {rates[-1]:.1f} img/s", flush=True)
    print(f"median {statistics.median(rates):.1f} img/s over {args.repeats} x {args.steps} steps "
          f"({torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
