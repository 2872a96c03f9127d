"""What the benchmark scripts share on the command line: argparse types that refuse a nonsense
size (``--steps 0``, ``--threads -1``, ``--minutes -1``) before any work starts, a parser whose
errors are one line, and ``run``, which ends ganforge's own errors as one line with exit 2, as the
``ganforge`` command does (cli.main), instead of a traceback.

The scripts run as ``python benchmarks/NAME.py``: Python puts this folder first on sys.path, so
``from _common import ...`` finds this file whatever the working directory.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(text: str, convert, ok, what: str):
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, not '{text}'")
    return value


def positive_int(text: str) -> int:
    """A count that must be at least 1: steps, repeats, threads, samples, clients."""
    return _number(text, int, lambda v: v >= 1, "a whole number of 1 or more")


def nonnegative_int(text: str) -> int:
    """A count where 0 is meaningful: warm-up steps, or 0 for 'skip' or 'the default'."""
    return _number(text, int, lambda v: v >= 0, "a whole number of 0 or more")


def positive_float(text: str) -> float:
    """A finite duration above 0: minutes, seconds."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "a number above 0")


def positive_ints(text: str) -> list[int]:
    """A comma-separated list of counts of 1 or more (client counts, process counts)."""
    try:
        return [positive_int(item) for item in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be comma-separated whole numbers of 1 or more (e.g. 1,2), "
                                         f"not '{text}'") from None


def run_main(main) -> int:
    """``main()``'s exit code (0 for None). A ganforge error (a bad preset or override, a run that
    is missing) ends as one line "SCRIPT: error: MESSAGE" with exit 2, Ctrl-C as one line with
    exit 130: the message already names the problem and the fix, a traceback only hides it."""
    prog = os.path.basename(sys.argv[0])
    try:
        from ganforge.errors import GanforgeError
    except ImportError:  # ganforge not importable: main() says so with its own traceback
        GanforgeError = ()  # noqa: N806
    try:
        return main() or 0
    except GanforgeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # ganforge.TrainingInterrupted says where the checkpoint is
        print(f"{prog}: interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130
