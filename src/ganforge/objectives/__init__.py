"""GAN families. Each module of this package registers one or more objectives
(ganforge.objectives.base) with their config sections, data, optimizers, capabilities and a tiny
example config; importing the package imports every module in it (in name order), so
``OBJECTIVES`` and ganforge.config's sections are complete.

Adding a family is a model file, an objective file here, and a preset (CONTRIBUTING.md).
"""
import importlib
import pkgutil

from .base import (AUDIO_CAPABILITIES, CAPABILITIES, OBJECTIVES, Objective, OptimizerSpec, Phase,
                   build_objective, family, register_objective)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base" and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")  # registers its families

__all__ = ["AUDIO_CAPABILITIES", "CAPABILITIES", "OBJECTIVES", "Objective", "OptimizerSpec", "Phase", "build_objective",
           "family", "register_objective"]
