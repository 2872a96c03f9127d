"""``ganforge bench``: quality benchmarks.

    ganforge bench modes --data toy:grid25 --seeds 10 [--preset P] [--json OUT.json] [--out DIR]
                         [--variant 'label: key=value ...'] [--jobs N] [key=value ...]

``modes`` follows the PacGAN protocol (ganforge.bench.modes): every seed trains through
ganforge.api.train, then 2,500 samples are scored for modes captured, high-quality fraction and
reverse KL. It prints mean ± std over seeds per configuration, writes the JSON result and a
scatter plot of the samples over the true modes per configuration.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import ConfigError


def cmd_modes(args) -> int:
    from .. import api
    from ..bench import modes as bench
    from ..config import load_config

    if not args.data.startswith("toy:"):
        raise ConfigError(f"bench modes needs a toy dataset with known modes (toy:ring8, "
                          f"toy:grid25), got '{args.data}'")
    if args.seeds <= 0 or args.jobs <= 0:
        raise ConfigError("--seeds and --jobs must be positive")
    preset = args.preset or f"toy-{args.data.split(':', 1)[1]}"
    variants = [bench.parse_variant(v, preset) for v in args.variant] or [
        bench.Variant(preset, preset, [])]
    extra = list(args.overrides)
    if args.steps is not None:
        extra.append(f"train.steps={args.steps}")
    for v in variants:  # fail on a bad preset or override now, not after an hour of training
        _, cfg = load_config(v.preset, [f"data.name={args.data}", *extra, *v.overrides])
        api.build(cfg)
    out = Path(args.out) if args.out else Path("runs") / (
        f"bench-modes-{args.data.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    print(f"ganforge: bench modes on {args.data}, {len(variants)} configuration(s) x "
          f"{len(seeds)} seeds -> {out}", flush=True)
    result = bench.run_benchmark(variants, args.data, seeds, out, extra=extra, jobs=args.jobs,
                                 log=lambda s: print(s, flush=True))
    for c in result["configs"]:
        print(bench.format_summary(c["label"], c["summary"], result["num_modes"]))
        if c["scatter"]:
            print(f"  scatter: {c['scatter']}")
    json_path = Path(args.json) if args.json else out / "modes.json"
    bench.write_json(result, json_path)
    print(f"ganforge: results in {json_path}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("bench", help="quality benchmarks (mode collapse on toy data)")
    sub = s.add_subparsers(dest="bench_command", metavar="BENCHMARK", parser_class=parser_class)
    m = sub.add_parser("modes", help="PacGAN mode-collapse benchmark on toy:ring8 / toy:grid25",
                       description="Train each configuration for several seeds and report modes "
                                   "captured, high-quality samples and reverse KL (PacGAN "
                                   "protocol, 2,500 samples).")
    m.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every configuration")
    m.add_argument("--data", default="toy:grid25", help="toy:grid25 (default) or toy:ring8")
    m.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    m.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    m.add_argument("--preset", help="preset or YAML file (default toy-<dataset>, e.g. toy-grid25)")
    m.add_argument("--variant", action="append", default=[], metavar="'LABEL: key=value ...'",
                   help="a configuration on top of the preset; repeat for a matrix")
    m.add_argument("--steps", type=int, help="shorthand for train.steps=N")
    m.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    m.add_argument("--json", help="write the results here (default OUT/modes.json)")
    m.add_argument("--out", help="directory for runs and plots (default runs/bench-modes-...)")
    m.set_defaults(func=cmd_modes)
