"""Where and in what precision training runs: the device named by ``train.device`` and the
autocast that ``train.precision`` asks for on it (bf16 only where it is native, since emulated
bf16 is far slower than fp32 on CPUs without it)."""
from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):  # TypeError: not a string (None)
        raise ConfigError(f"train.device '{name}' is not a device; use auto, cpu, cuda, cuda:N "
                          f"or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA GPU is visible; use train.device=auto")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise ConfigError("train.device is mps but this machine has no usable Apple GPU; use train.device=auto")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"train.device '{name}' is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs on native bf16 kernels on ``device``: a CUDA GPU that supports
    bf16, or a CPU with AVX512-BF16 or AMX. Elsewhere torch emulates bf16, which is slower than
    fp32 (DCGAN on an AVX2-only AMD EPYC: 17 images/s in bf16 against 340 in fp32, BENCHMARKS.md)."""
    if device.type == "cuda":  # by default torch also counts GPUs that emulate bf16 (before Ampere)
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":  # torch.cpu's CPU-feature checks are private; absent ones count as no
        return any(getattr(torch.cpu, check, lambda: False)()
                   for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


WARNING = "ganforge: warning: "  # resolve_precision's note that is a warning (the trainer warns with it)


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str | None]:
    """``train.precision`` as it runs on ``device`` ("auto": bf16 where it is native, else fp32),
    and a line for the user when the choice depends on this machine or costs time here. fp16
    is refused off CUDA (its GradScaler and kernels are CUDA's)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA GPU; use train.precision=auto on CPU")
    if precision == "auto":
        where = {"cpu": "CPU", "cuda": "GPU"}.get(device.type, device.type)
        if native_bf16(device):
            return "bf16", f"ganforge: train.precision=auto -> bf16 (native bf16 on this {where})"
        return "fp32", (f"ganforge: train.precision=auto -> fp32 (this {where} has no native bf16; "
                        f"emulated bf16 would be slower)")
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        return "bf16", (f"{WARNING}train.precision=bf16 on a CPU without native bf16 "
                        "(AVX512-BF16 or AMX) is emulated and can be 20x slower than fp32; "
                        "use train.precision=auto or fp32")
    return precision, None


def autocast_context(device: torch.device, precision: str):
    """A zero-argument factory of the autocast context for ``precision`` (fp32, bf16, fp16; not
    auto: see resolve_precision) on ``device``."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)
