"""Name -> object registries filled by a decorator; an unknown name lists the valid ones."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def closest(name: str, choices) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def same_definition(a, b) -> bool:
    """True when ``b`` is ``a`` defined again: a notebook cell run twice, a reloaded module."""
    return a is b or (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))


class Registry(dict, Generic[T]):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self and not same_definition(self[name], obj):
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self:
            valid = ", ".join(sorted(self))
            hint = closest(name, self)
            plugin = "" if hint else (f" (a {self.kind} registered outside ganforge needs the module that "
                                      f"registers it imported first)")
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}; valid: {valid}{plugin}")
        return self[name]
