"""SIGTERM the way Ctrl-C goes, for commands that keep or clean up their work on a Ctrl-C.

``kill``, ``timeout``, a scheduler or ``docker stop`` send SIGTERM, whose default kills the process
at once: a projection lost every step, an export left its hidden partial folder. Inside
``sigterm_interrupts()`` SIGTERM raises ``Terminated``, a KeyboardInterrupt, so the code that
handles Ctrl-C handles it too; ``Terminated`` tells the two apart (exit 143, not 130).
"""
from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading


# A signal that repeats the one before within this many seconds is the same stop, not a second
# Ctrl-C: GNU timeout sends it to the command and then to its process group, and a person's
# second Ctrl-C comes after the line the first one printed.
REPEAT_SECONDS = 0.5


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt."""


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM raises Terminated inside (in the main thread, where Python handles signals;
    elsewhere nothing changes); the previous handler after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def import_uninterrupted(name: str):
    """Import module ``name`` with Ctrl-C held until the import is done, then delivered to the
    handler that was in place (in the main thread; elsewhere a plain import). A Ctrl-C inside
    torch's lazy ``import torch._dynamo`` (the optimizers' constructors import it) had left sympy
    half-imported, and every later ``api.train`` in that notebook failed with "module 'sympy' has
    no attribute 'logic'" until the kernel was restarted."""
    if (name in sys.modules or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):  # None: a handler set outside Python, not ours to restore
        return importlib.import_module(name)
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        module = importlib.import_module(name)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)
    return module


def before_first_optimizer() -> None:
    """torch's optimizers import ``torch._dynamo`` when the first one of a process is built (several
    seconds): import it here with Ctrl-C held, so a Ctrl-C then cannot break it for the process.
    Call it before building an optimizer in code a notebook can run (training, projection, the
    edit directions' fit, the detector's and the classifier's training)."""
    import_uninterrupted("torch._dynamo")
