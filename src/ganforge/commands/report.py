"""`ganforge report RUN_DIR [--out report.html]`: the HTML training report of a run."""
from __future__ import annotations

from . import add_run_arguments


def cmd_report(args) -> int:
    from ..report import write_report

    out = write_report(args.run_dir, args.out, force=args.force)
    print(f"ganforge: wrote the report of {args.run_dir} to {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("report", help="write an HTML training report of a run",
                              description="Write one self-contained HTML page with the run's "
                                          "config, curves, diagnostic events and samples.")
    add_run_arguments(s, checkpoint=False, ema=False,
                      out={"help": "HTML file to write (default RUN/report.html, regenerated each "
                                   "time)"},
                      force="overwrite --out if it exists")
    s.set_defaults(func=cmd_report)
