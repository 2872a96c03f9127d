"""A lever study at equal wall-clock, emulated in steps: each entry trains for the steps its own
images/s buys in the budget, so a busy machine (or several entries side by side, one thread
each) does not change the numbers.

    python benchmarks/lever_steps.py --seed 0 reference@5700 "dcgan-fashion-mnist@8700" \
        "dcgan-fashion-mnist:model.d_head=conv@11500"

ENTRY is ``reference@STEPS`` (quality_per_time.py's plain loop) or ``PRESET[:key=value,...]@STEPS``.
STEPS should be the entry's images/s measured alone on a quiet machine (2 threads) times the
budget's training seconds over the batch size (for 600 s: 590 s, since start-up takes about 10 s
of each timed run). Each entry is trained, sampled (10k, EMA generator for presets) and scored
with the shipped fashion-mnist-cnn extractor exactly as quality_per_time.py does; one JSON line
per entry is appended to ``--jsonl``. The timed run (quality_per_time.py) stays the verdict.
"""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from _common import Parser, nonnegative_int, run_main

HERE = Path(__file__).resolve().parent


def _quality_per_time():
    spec = importlib.util.spec_from_file_location("quality_per_time", HERE / "quality_per_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("entries", nargs="+", metavar="ENTRY@STEPS")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/lever-steps"))
    p.add_argument("--jsonl", type=Path, default=Path("runs/lever-steps/results.jsonl"))
    args = p.parse_args()
    for entry in args.entries:  # all of them before the first trains
        spec, _, steps = entry.rpartition("@")
        if not spec or not steps.isdigit() or int(steps) < 1:
            p.error(f"'{entry}' is not ENTRY@STEPS with STEPS of 1 or more (e.g. reference@5700)")
    q = _quality_per_time()
    for entry in args.entries:
        spec, _, steps = entry.rpartition("@")
        tag = spec.replace(":", "_").replace("=", "-").replace(",", "_")
        folder, t0 = args.out / f"{tag}-{steps}-{args.seed}", time.time()
        if spec == "reference":
            r = q.run_reference(0, args.seed, folder, int(steps))
        else:
            r = q.run_preset(spec, 0, args.seed, folder, int(steps))
        r["scores"] = q.score(r["samples"])
        r.update(spec=spec, seed=args.seed, target_steps=int(steps), wall=round(time.time() - t0, 1))
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with args.jsonl.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(spec, steps, {k: round(v, 3) for k, v in r["scores"].items()}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
