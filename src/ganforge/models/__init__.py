"""Generator and discriminator architectures, looked up by name in ARCHITECTURES.

Generators map z [N, z_dim] to images [N, C, H, W] in [-1, 1] (or points [N, point_dim]) and expose
`z_dim`, `resolution`, `channels`. Discriminators map images [N, C, H, W] (or points) to raw
scores [N], higher meaning "more real". Models are float32 and device-agnostic; the Trainer owns
devices, precision and optimizers.

Architecture-specific options (``depth``, ``point_dim``, ``mbstd``) are passed as keyword
options; an architecture that does not take one raises a ConfigError naming it. Options that
apply to any architecture are wrappers: ``spectral_norm_`` and ``Packed`` (PacGAN).
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError
from .layers import ARCHITECTURES, Architecture, MinibatchStd, Packed, dcgan_init_, spectral_norm_
from . import dcgan, mlp  # noqa: F401  (importing registers the architectures)

__all__ = ["ARCHITECTURES", "Architecture", "MinibatchStd", "Packed", "build_generator",
           "build_discriminator", "check_plugin_shapes", "count_parameters", "dcgan_init_", "spectral_norm_"]

# What a config key means to a user, for the error when an architecture lacks the option.
_OPTION_KEYS = {"depth": "model.g_depth / model.d_depth", "point_dim": "2-D point data (toy:*)",
                "mbstd": "model.mbstd_group", "norm": "model.d_norm", "head": "model.g_head / model.d_head",
                "init": "model.init"}


def _options(name: str, builder, options: dict[str, Any]) -> dict[str, Any]:
    """Drop options that are None; ConfigError for one the architecture does not take."""
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(builder).parameters
    for key in sorted(options, key=lambda k: k != "point_dim"):  # the data mismatch first
        if key not in accepted:
            takers = sorted(n for n, a in ARCHITECTURES.items()
                            if key in inspect.signature(a.discriminator).parameters
                            or key in inspect.signature(a.generator).parameters)
            raise ConfigError(f"architecture '{name}' does not support {_OPTION_KEYS.get(key, key)}; "
                              f"use model.name={' or '.join(takers) or '...'}")
    return options


def build_generator(name: str, *, resolution: int, channels: int, z_dim: int, width: int,
                    **options: Any) -> nn.Module:
    builder = ARCHITECTURES.get(name).generator
    with _plugin_errors(name, builder, "generator", "resolution, channels, z_dim, width"):
        return builder(resolution=resolution, channels=channels, z_dim=z_dim, width=width,
                       **_options(name, builder, options))


def build_discriminator(name: str, *, resolution: int, channels: int, width: int,
                        **options: Any) -> nn.Module:
    builder = ARCHITECTURES.get(name).discriminator
    with _plugin_errors(name, builder, "discriminator", "resolution, channels, width"):
        return builder(resolution=resolution, channels=channels, width=width,
                       **_options(name, builder, options))


def _outside(fn) -> str | None:
    """The module of an architecture's builder registered outside ganforge (a plugin), or None."""
    module = getattr(fn, "__module__", "") or ""
    return None if module.startswith("ganforge.") else module or "?"


@contextlib.contextmanager
def _plugin_errors(name: str, builder, what: str, takes: str):
    """A plugin builder that does not keep the contract (a keyword it does not take, a failure of
    its own): one line naming it, not a traceback from inside it."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:
        module = _outside(builder)
        if module is None:
            raise
        raise ConfigError(f"architecture '{name}' (module {module}): building its {what} failed: "
                          f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}; its builder takes "
                          f"{takes} as keywords (ganforge.models.Architecture)") from exc


def check_plugin_shapes(name: str, G: nn.Module, D: nn.Module, *, z_dim: int, channels: int,
                        resolution: int, d_channels: int | None = None) -> None:
    """For an architecture registered outside ganforge: G maps 2 latents to images of the
    config's shape and D gives one score per image, checked once in eval mode (no statistic
    moves). A G of another size had trained silently, and sampled, scored and exported images the
    config does not describe. ``d_channels``: D's input channels (PacGAN packs model.pac images;
    default ``channels``)."""
    module = _outside(ARCHITECTURES.get(name).generator)
    if module is None:
        return
    want = [2, channels, resolution, resolution]
    modes = G.training, D.training
    G.eval()
    D.eval()
    try:
        with torch.no_grad():
            try:
                x = G(torch.zeros(2, z_dim))
                shape = list(getattr(x, "shape", []))
                if shape != want:
                    raise ConfigError(f"architecture '{name}' (module {module}): its generator gives {shape} for "
                                      f"2 latents; this config needs {want} (N, data.channels, data.resolution x "
                                      f"data.resolution)")
                scores = D(torch.zeros(2, d_channels or channels, resolution, resolution))
                if getattr(scores, "numel", lambda: 0)() != 2:
                    raise ConfigError(f"architecture '{name}' (module {module}): its discriminator gives "
                                      f"{list(getattr(scores, 'shape', []))} for 2 images; it must give one score "
                                      f"per image ([2])")
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"architecture '{name}' (module {module}): its networks fail on 2 inputs of "
                                  f"the config's shapes (z_dim {z_dim}, images {want}): {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:160]}") from exc
    finally:
        G.train(modes[0])
        D.train(modes[1])


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters())
