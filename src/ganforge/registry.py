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


class Registry(dict, Generic[T]):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self:
            valid = ", ".join(sorted(self))
            raise ConfigError(f"unknown {self.kind} '{name}'{closest(name, self)}; valid: {valid}")
        return self[name]
