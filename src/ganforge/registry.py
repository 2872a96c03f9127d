"""Name -> object registries filled by a decorator; an unknown name lists the valid ones."""
from __future__ import annotations

import difflib
import inspect
import sys
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


class WrongKind(ConfigError, TypeError):
    """An object registered that is not of the kind its registry holds (a function where a LossPair
    is expected): refused at registration, where it had been a traceback at its first use."""


def described(obj) -> str:
    """What was given to a registry, in a few words: 'a function', 'the class SRResNet', 'a tuple
    of (function, function)', 'a str', 'an instance of SGD'."""
    if obj is None:
        return "None"
    if inspect.isclass(obj):
        return f"the class {obj.__qualname__}"
    if inspect.isroutine(obj):
        return "a function"
    name = type(obj).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    if isinstance(obj, tuple):
        parts = ", ".join("function" if inspect.isroutine(p) else
                          f"class {p.__qualname__}" if inspect.isclass(p) else type(p).__name__ for p in obj)
        return f"{article} {name} of ({parts})"
    return f"{article} {name}" if type(obj).__module__ == "builtins" else f"an instance of {name}"


_ALL: list["Registry"] = []  # every registry, for plugin_modules()


def _origin(obj, caller) -> str:
    """The module a registration comes from: a class's or function's own module (a decorator
    such as register_objective passes it through ganforge's code), else the module that called
    ``register(name)(obj)``."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__module__
    return caller.f_globals.get("__name__", "") if caller is not None else ""


def is_plugin_module(module: str) -> bool:
    """A module outside ganforge that another process can import by name (not a script's
    ``__main__``, not a notebook's cell)."""
    return bool(module) and module.split(".")[0] != "ganforge" and module != "__main__" and not module.startswith("<")


def _names_in(config) -> set[str]:
    """Every name a config's values could refer to a registry by: each string, each item of a
    comma-separated one (eval.metrics), and the part before ':' (a dataset 'blobs:ARG')."""
    found: set[str] = set()
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, str):
            for item in (v.strip() for v in value.split(",")):
                found.update((item, item.split(":", 1)[0]))
    return found


def plugin_modules(config: dict | None = None, *, to_load: bool = False) -> list[str]:
    """The modules outside ganforge that registered a name in a registry (recorded in a run
    trained now, named when it cannot be resumed or loaded): with ``config`` (a config as plain
    data), only the names it uses (a module imported for something else, or a test module that
    registered a family, is not the run's); ``to_load``: only in the registries a run's networks
    are built from (families, architectures), what loading it needs (a loss, dataset or metric
    is needed to train it, not to load it)."""
    used = None if config is None else _names_in(config)
    return sorted({m for reg in _ALL if reg.loads or not to_load
                   for name, m in reg.origins.items()
                   if name in reg and is_plugin_module(m)
                   and (used is None or name in used or name.split(":", 1)[0] in used)})


def registered(kind: str) -> set[str]:
    """The names registered so far in every registry of ``kind`` ("objective", ...), plugins' too:
    for a module below the one that holds that registry (config knows objectives by name only)."""
    return {name for reg in _ALL if reg.kind == kind for name in reg}


def plugin_hint(modules: list[str]) -> str:
    """PLUGIN_HINT with the modules a run recorded filled in."""
    return f"in Python: import {', '.join(modules)}; for the CLI: GANFORGE_PLUGINS={','.join(modules)}"


class Registry(dict, Generic[T]):
    def __init__(self, kind: str, *, loads: bool = False, check: Callable[[object], bool] | None = None,
                 expects: str = ""):
        super().__init__()
        self.kind = kind
        self.loads = loads  # a loaded run's networks are built from its entries (plugin_modules)
        # ``check(obj)``: whether obj is of the kind held (only what its uses certainly need);
        # ``expects``: that kind in words, for WrongKind ("a ganforge.losses.LossPair(...) ...")
        self.check, self.expects = check, expects
        self.origins: dict[str, str] = {}  # name -> the module that registered it
        # names users type for a registered entry (a paper's or preset's name): the suggestion
        # that replaces difflib's "did you mean" for them
        self.hints: dict[str, str] = {}
        _ALL.append(self)

    def refuse(self, name: str, obj: T) -> None:
        """WrongKind when ``obj`` is not of the kind held, DuplicateName when ``name`` holds another
        definition than ``obj``: callable before a registration's other effects (a family's config
        sections), so a refused one leaves none."""
        if self.check is not None and not self.check(obj):
            raise WrongKind(f"{self.kind} '{name}': got {described(obj)}; register {self.expects}")
        if name in self and not same_definition(self[name], obj):
            raise DuplicateName(f"{self.kind} '{name}' registered twice, with another definition than the "
                                f"one it has; register yours under another name")

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.refuse(name, obj)
            self[name] = obj
            self.origins[name] = _origin(obj, sys._getframe(1))
            return obj

        return deco

    def get(self, name: str) -> T:  # type: ignore[override]
        if name not in self:
            valid = ", ".join(sorted(self))
            # The plugin clause even after a "did you mean": a run trained with a plugin's 'tinymlp'
            # is close to 'mlp', and the hint alone hid the real cause.
            article = "an" if self.kind[:1] in "aeiou" else "a"
            hint = self.hints.get(str(name).lower())
            did = f" (did you mean {hint}?)" if hint else closest(name, self)
            raise ConfigError(f"unknown {self.kind} '{name}'{did}; valid: {valid}; {article} "
                              f"{self.kind} registered outside ganforge needs the module that registers it "
                              f"imported first ({PLUGIN_HINT})")
        return self[name]
