"""ganforge: train, evaluate and diagnose Generative Adversarial Networks with PyTorch."""
from .errors import GanforgeError

__version__ = "0.1.0"

__all__ = ["GanforgeError", "load", "train", "load_config", "__version__"]


def __getattr__(name):  # keep `import ganforge` light: torch loads on first use
    if name in ("load", "train", "LoadedRun"):
        from . import api

        return getattr(api, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
