"""Name -> object registries filled by a decorator; an unknown name lists the valid ones."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")

# How to import a module registered outside ganforge, for the messages that suggest it.
PLUGIN_HINT = "in Python: import it; for the CLI: GANFORGE_PLUGINS=module"


def closest(name: str, choices) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def same_definition(a, b) -> bool:
    """True when ``b`` is ``a`` defined again: a notebook cell run twice, a reloaded module. A
    function or class: the same module and qualified name. An instance (a LossPair of two
    functions): of such a class, with its parts defined again (a re-run cell registering
    ``LossPair(d=d_my, g=g_my)`` had been refused as a duplicate)."""
    if a is b:
        return True
    if hasattr(a, "__qualname__") or hasattr(b, "__qualname__"):  # classes and functions
        return (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))
    if not same_definition(type(a), type(b)):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(same_definition, a, b))
    if hasattr(a, "__dict__") and hasattr(b, "__dict__"):
        parts_a, parts_b = vars(a), vars(b)
        return parts_a.keys() == parts_b.keys() and all(same_definition(parts_a[k], parts_b[k]) for k in parts_a)
    try:
        return bool(a == b)
    except Exception:  # a value with no plain equality (a tensor): not known to be the same
        return False


class DuplicateName(ConfigError, ValueError):
    """A name registered again with another definition (a ValueError too, as it had been)."""


class Registry(dict, Generic[T]):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def refuse_duplicate(self, name: str, obj: T) -> None:
        """DuplicateName when ``name`` holds another definition than ``obj``: callable before a
        registration's other effects (a family's config sections), so a refused one leaves none."""
        if name in self and not same_definition(self[name], obj):
            raise DuplicateName(f"{self.kind} '{name}' registered twice, with another definition than the "
                                f"one it has; register yours under another name")

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.refuse_duplicate(name, obj)
            self[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self:
            valid = ", ".join(sorted(self))
            # The plugin clause even after a "did you mean": a run trained with a plugin's 'tinymlp'
            # is close to 'mlp', and the hint alone hid the real cause.
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise ConfigError(f"unknown {self.kind} '{name}'{closest(name, self)}; valid: {valid}; {article} "
                              f"{self.kind} registered outside ganforge needs the module that registers it "
                              f"imported first ({PLUGIN_HINT})")
        return self[name]
