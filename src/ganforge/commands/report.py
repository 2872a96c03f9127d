"""`ganforge report RUN_DIR [--out report.html]`: the HTML training report of a run."""
from __future__ import annotations


def cmd_report(args) -> int:
    from ..report import write_report

    out = write_report(args.run_dir, args.out, force=args.force)
    print(f"ganforge: wrote the report of {args.run_dir} to {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("report", help="write an HTML training report of a run",
                              description="Write one self-contained HTML page with the run's "
                                          "config, curves, diagnostic events and samples.")
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html, regenerated "
                                 "each time)")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    s.set_defaults(func=cmd_report)
