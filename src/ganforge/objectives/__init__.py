"""What is trained: an objective owns its networks and says how each phase computes its loss.

The Trainer only schedules phases and steps optimizers; it never names an architecture or a loss.
A phase names the optimizer it steps, how often it repeats (n_critic) and how often it runs at all
(lazy regularization, as in StyleGAN2's "Dreg" every 16 steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..registry import Registry


@dataclass(frozen=True)
class Phase:
    name: str  # "D", "G", "Dreg", ...; passed back to Objective.loss
    optimizer: str  # key of Objective.optimizers whose parameters this phase updates
    repeat: int = 1  # consecutive repetitions per iteration (n_critic for a critic phase)
    every: int = 1  # run only on iterations where step % every == 0 (lazy regularization)
    fresh_batch: bool = True  # draw a new batch; False reuses the batch of the phase before


class Objective:
    """Base class: subclasses fill ``nets``, ``optimizers``, ``phases`` and implement ``loss``.

    ``optimizers`` maps an optimizer name to the nets it updates, e.g. {"G": ["G"], "D": ["D"]};
    a CycleGAN maps "G" to both generators. ``ema`` lists the nets the Trainer keeps an
    exponential moving average of. Batches are dicts of tensors already on the device
    (``real`` float NCHW in [-1, 1], ``labels`` int64 [N] or None).
    """

    nets: dict[str, nn.Module]
    optimizers: dict[str, list[str]]
    phases: list[Phase]
    ema: list[str] = []

    def bind(self, *, device: torch.device, rng: torch.Generator) -> None:
        """Called by the Trainer once: where tensors live and the generator all noise comes from."""
        self.device = device
        self.rng = rng

    def loss(self, phase: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Return {"loss": scalar to minimize, other named scalars to log}."""
        raise NotImplementedError

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None) -> Tensor:
        """n outputs in [-1, 1]; ``nets`` replaces entries of self.nets (the EMA generator)."""
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Called after each optimizer step of ``phase`` (e.g. WGAN weight clipping)."""

    def extra_state(self) -> dict[str, Any]:
        """State outside the nets that must survive resume (an augmentation probability, ...)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


OBJECTIVES: Registry = Registry("objective")


def build_objective(cfg, data_info: Mapping[str, Any]) -> Objective:
    """Build the objective named by ``cfg.objective`` from the config and the dataset's properties."""
    from . import unconditional  # noqa: F401  (fills the registry)
    from . import conditional  # noqa: F401
    from . import cyclegan, pix2pix  # noqa: F401  (image-to-image translation)
    from . import superres  # noqa: F401  (super-resolution)

    return OBJECTIVES.get(cfg.objective)(cfg, data_info)
