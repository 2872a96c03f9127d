"""`ganforge report RUN [--out report.html]`: the HTML training report of a run;
`ganforge report RUN1 RUN2 ... [--out compare.html]`: several runs compared on one page."""
from __future__ import annotations


def cmd_report(args) -> int:
    from ..report import write_comparison, write_report

    if len(args.run_dir) == 1:
        run_dir = args.run_dir[0]
        out = write_report(run_dir, args.out, force=args.force)
        print(f"ganforge: wrote the report of {run_dir} to {out}")
        return 0
    out = write_comparison(args.run_dir, args.out, force=args.force)
    print(f"ganforge: wrote the comparison of {len(args.run_dir)} runs to {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("report", help="write an HTML training report of a run, or compare runs",
                              description="Write one self-contained HTML page with the run's "
                                          "config, curves, diagnostic events and samples. With 2 "
                                          "to 8 RUNs, one page that compares them: steps, training "
                                          "time, how each ended, warnings and last metrics (the "
                                          "best marked), the config keys that differ, metrics "
                                          "against step and training time, losses, last samples; "
                                          "runs that are seeds of one config also as mean ± std.")
    s.add_argument("run_dir", metavar="RUN", nargs="+",
                   help="a training run directory (its --out); 2 to 8 of them to compare")
    s.add_argument("--out", help="HTML file to write (default RUN/report.html, regenerated each "
                                 "time; with several RUNs, compare.html in the current directory)")
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    s.set_defaults(func=cmd_report)
