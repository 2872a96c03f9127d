"""``ganforge augment RUN --per-class N --out DIR [--format folder|npz]``: export a labeled
synthetic dataset from a conditional run (ganforge.synthetic.export). The folder format reads
back as ``folder:DIR`` with the run's class indices."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from . import add_provenance_argument, add_run_arguments, seed


def cmd_augment(args) -> int:
    from .. import api
    from ..signals import Terminated, sigterm_interrupts
    from ..synthetic import export

    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    try:
        with sigterm_interrupts():  # the partial folder removed, the old one kept, as on Ctrl-C
            result = export(run, Path(args.out), per_class=args.per_class, fmt=args.format, seed=args.seed,
                            ema=not args.no_ema, force=args.force, provenance=not args.no_provenance,
                            log=lambda m: print(m, flush=True))
    except Terminated:  # Ctrl-C's message (ganforge.cli.main) and the shell's code for SIGTERM
        print("ganforge: interrupted (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    k = len(result["class_names"])
    print(f"ganforge: wrote {result['n']} images ({args.per_class} x {k} classes) from "
          f"{run.checkpoint} (step {run.step}) to {result['out']} ({args.format})")
    if args.format == "folder":
        print(f"  train on it: data.name=folder:{result['out']}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("augment", help="export a labeled synthetic dataset from a conditional run",
                              description="Generate N images of every class of a conditional run and "
                                          "write them as one folder per class (reads back as "
                                          "folder:DIR) or as one .npz (images, labels, class_names).")
    add_run_arguments(s, out={"required": True,
                              "help": "output folder (or .npz file with --format npz)"},
                      force="replace --out if it exists")
    s.add_argument("--per-class", type=int, required=True, metavar="N", help="images per class")
    s.add_argument("--format", default="folder", choices=["folder", "npz"], help="default: folder")
    s.add_argument("--seed", type=seed, default=0, help="noise seed: the same seed writes the same images (default 0)")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_augment)
