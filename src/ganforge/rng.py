"""The caller's random stream: calls that build networks (torch's layer init draws from the
global generator) or draw noise must not move it, so that a notebook's own ``torch.randn``
after ``ganforge.load`` gives what it gave before (training already forks it, see api.train)."""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

F = TypeVar("F", bound=Callable)


def keeps_random_state(fn: F) -> F:
    """``fn`` with torch's global CPU generator saved before the call and restored after it
    (CUDA generators are not touched: networks are built on the CPU, and sampling uses its
    own generators)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
