"""GAN families. Each module registers one or more objectives (ganforge.objectives.base) with
their config sections, data, optimizers, capabilities and a tiny example config; importing this
package registers them all, so ``OBJECTIVES`` and ganforge.config's sections are complete.

Adding a family is a model file, an objective file imported below, and a preset (CONTRIBUTING.md).
"""
from .base import (CAPABILITIES, OBJECTIVES, Objective, OptimizerSpec, Phase, build_objective,
                   family, register_objective)
from . import unconditional, conditional, pix2pix, cyclegan, superres  # noqa: E402,F401  (register)

__all__ = ["CAPABILITIES", "OBJECTIVES", "Objective", "OptimizerSpec", "Phase", "build_objective",
           "family", "register_objective"]
