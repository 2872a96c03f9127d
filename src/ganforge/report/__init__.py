"""The HTML training report of a run directory: config summary, curves of losses, D outputs,
gradient norms and metrics with diagnostic events marked, a timeline of sample grids, the events
with their evidence and suggestions, and the final samples; one self-contained page.

    from ganforge.report import write_report
    write_report("runs/mine")                # -> runs/mine/report.html
    write_comparison(["runs/a", "runs/b"], "compare.html")   # 2 to 8 runs side by side
"""
from .compare import build_comparison, write_comparison
from .page import build_html, write_report
from .run import Run, load_run

__all__ = ["Run", "build_comparison", "build_html", "load_run", "write_comparison", "write_report"]
