"""ganforge: train, evaluate and diagnose Generative Adversarial Networks with PyTorch."""
from .errors import GanforgeError, GanforgeWarning, TrainingInterrupted
from .version import __version__

__all__ = ["GanforgeError", "GanforgeWarning", "TrainingInterrupted", "load", "train", "load_config", "__version__"]
_LAZY = ("load", "train", "LoadedRun", "load_config")  # from api, on first use


def __getattr__(name):  # keep `import ganforge` light: torch loads on first use
    if name in _LAZY:
        from . import api  # imports the families first, so their config sections are known

        return getattr(api, name)
    if not name.startswith("_"):  # ganforge.metrics, ganforge.provenance, ...: the documented spelling
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")


def __dir__():
    """The lazy names too, so that tab completion offers ganforge.load, train and load_config
    (dir() had listed only GanforgeError and errors), and the subpackages (ganforge.metrics)."""
    import pkgutil

    modules = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(set(globals()) | set(_LAZY) | set(__all__) | set(modules))
