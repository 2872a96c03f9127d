"""The HTML training report of a run directory: config summary, curves of losses, D outputs,
gradient norms and metrics with diagnostic events marked, a timeline of sample grids, the events
with their evidence and suggestions, and the final samples; one self-contained page.

    from ganforge.report import write_report
    write_report("runs/mine")                # -> runs/mine/report.html
"""
from .page import build_html, write_report
from .run import Run, load_run

__all__ = ["Run", "build_html", "load_run", "write_report"]
