"""The network behind a capability, as a pure tensor function: what ONNX export writes and what
the server batches.

A family declares capabilities (``sample``, ``translate``, ``upscale``, ...) and implements them
as methods that draw noise, pick a network and post-process its output. To export or batch we
need the one network call in the middle and its tensor inputs (z, labels, an image, StyleGAN
noise, ...). Rather than ask every family to describe it (and name families here), we run the
capability's method with a forward pre-hook on each of the run's networks that records the
first call's arguments and stops it (``GeneratorCall``): the family itself draws z from the
seed, resolves the classes and checks truncation, and nothing is computed. ``InferenceGraph``
then replays that call on any batch of inputs. The recorded graph is checked against the
family's own method before it is used (``verify``), so a family whose capability does more
than one network call plus clamping is detected, not silently mis-served.

A family whose sampler chains networks (LAPGAN's levels, StyleGAN2's mapping, truncation and
synthesis with per-layer noise) declares ``export_module(nets)``: one module, the same instance
for the same networks, whose forward takes tensors only and which its ``sample`` calls once with
everything drawn from the seed. Recording a ``sample`` then hooks that module alone (not the
networks inside it, nor what the family runs before it), so the chain is one graph.

An export module whose state belongs to one truncation (standing BatchNorm statistics that the
family's ``sample`` recomputes for each truncation before the call) says so in its attribute
``truncation_state``: its graph is recorded at the truncation asked for (``build_graph(...,
truncation=T)``), is right for that truncation only (``InferenceGraph.truncation``), and
whoever replays it for another truncation first calls ``set_truncation(run, T)``.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# What each exportable capability maps: noise -> images, or an image -> an image.
IMAGE_CAPABILITIES = ("translate", "upscale")
EXPORTABLE = ("sample", *IMAGE_CAPABILITIES)
TRUNCATION_PROBE = 0.61803  # an unlikely value, to find where truncation enters the network call


class _Stop(Exception):
    """Raised by the pre-hook: the call was recorded and must not run."""

    def __init__(self, name: str, net: nn.Module, args: tuple, kwargs: dict):
        super().__init__(name)
        self.name, self.net, self.args, self.kwargs = name, net, args, kwargs


@dataclass
class GeneratorCall:
    """The first network call a capability makes: which net, and its arguments by parameter
    name (tensors are the graph's inputs; everything else is a constant of the call)."""

    name: str  # the net's key in the run's nets ("G", "G_AB", ...)
    net: nn.Module
    arguments: dict[str, Any]  # parameter name -> value, in the order of forward's signature

    @property
    def tensors(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.arguments.items() if isinstance(v, Tensor)}

    def constants(self) -> dict[str, Any]:
        return {k: v for k, v in self.arguments.items() if not isinstance(v, Tensor)}


def truncation_state(run) -> str | None:
    """What the run's sample export module holds for one truncation only (None: nothing)."""
    export_module = getattr(run.objective, "export_module", None)
    return None if export_module is None else getattr(export_module(run.ema_nets), "truncation_state", None)


def set_truncation(run, truncation: float | None) -> None:
    """Bring the state of a graph fixed to one truncation to ``truncation``: the family prepares a
    sample of it (its standing statistics) up to the network call, which is not run."""
    record_sample(run, 1, truncation=truncation)


def _hooked(run, sample: bool) -> list[tuple[str, nn.Module]]:
    """What a recording stops at: a ``sample``'s declared export module, else any run network."""
    export_module = getattr(run.objective, "export_module", None)
    if sample and export_module is not None:
        return [("sampler", export_module(run.ema_nets)), ("sampler", export_module({}))]
    return [*run.ema_nets.items(), *run.objective.nets.items()]


@contextlib.contextmanager
def _intercept(run, sample: bool = False) -> Iterator[None]:
    seen, handles = set(), []
    owner = threading.get_ident()  # other threads using the same nets meanwhile run normally
    for name, net in _hooked(run, sample):
        if id(net) in seen:
            continue
        seen.add(id(net))

        def hook(module, args, kwargs, _name=name):
            if threading.get_ident() == owner:
                raise _Stop(_name, module, args, kwargs)

        handles.append(net.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


_SIGNATURES: dict[Any, inspect.Signature] = {}


def _signature(net: nn.Module) -> inspect.Signature:
    """The signature of ``net.forward``, computed once per forward function: the server records
    a call for every request, and inspect.signature took about 30 of a recording's 56 us."""
    fn = getattr(net.forward, "__func__", None)
    if fn is None:  # not a plain method: nothing stable to remember it by
        return inspect.signature(net.forward)
    if fn not in _SIGNATURES:
        _SIGNATURES[fn] = inspect.signature(net.forward)
    return _SIGNATURES[fn]


def record(run, call: Callable[[], Any], *, sample: bool = False) -> GeneratorCall | None:
    """Run ``call`` (a capability method of ``run``; ``sample``: a sample) up to its first
    network call and return that call; None when it made none. Errors the family raises before
    (a bad class, a truncation out of range) propagate."""
    try:
        with _intercept(run, sample):
            call()
    except _Stop as stop:
        bound = _signature(stop.net).bind(*stop.args, **stop.kwargs)
        return GeneratorCall(stop.name, stop.net, dict(bound.arguments))
    return None


def record_sample(run, n: int, *, seed: int = 0, labels=None,
                  truncation: float | None = None) -> GeneratorCall | None:
    """The generator call behind ``run.sample(n, seed=seed, labels=labels, truncation=truncation)``,
    recorded and not run: its ``.arguments`` are the network's inputs by parameter name (z, labels,
    ...), drawn by the family from the seed; None when the sample made no network call. ``run``: a
    loaded run (``ganforge.load``), or a run directory or model folder (str or Path), loaded here."""
    if isinstance(run, (str, os.PathLike)):  # the README's record_sample(run, ...) with a path had
        from ..api import load  # crashed: 'str' object has no attribute 'objective'

        run = load(run)
    return record(run, lambda: run.sample(n, seed=seed, labels=labels, truncation=truncation), sample=True)


def example_image(run, capability: str, direction: str = "AtoB", *, n: int = 1,
                  size: tuple[int, int] | None = None) -> Tensor:
    """A float image batch [n, C, H, W] in [-1, 1] of the shape ``capability`` takes (H, W at
    least the stride, so reflection padding applies)."""
    channels = run.objective.input_channels(direction) if capability == "translate" else 3
    s = max(int(run.objective.stride), 1)
    h, w = size or (max(2 * s, 8), max(2 * s, 8) + s // 2 + 1)
    # whole uint8 steps, so the uint8 path of ``upscale`` sees exactly the same input
    x = torch.randint(0, 256, (n, channels, h, w), generator=torch.Generator().manual_seed(1))
    return x.float() / 127.5 - 1


def run_image(run, capability: str, x: Tensor, direction: str = "AtoB") -> Tensor:
    """The family's own method on a float batch [n, C, H, W]: the reference for the graph."""
    if capability == "translate":
        return run.translate(x, direction=direction)
    ims = [run.upscale(to_uint8_hwc(im[None])[0], tile=0) for im in x]
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 127.5 - 1 for a in ims])


def to_uint8_hwc(x: Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def record_image(run, capability: str, direction: str = "AtoB") -> GeneratorCall | None:
    x = example_image(run, capability, direction)
    return record(run, lambda: run_image(run, capability, x, direction))


class InferenceGraph(nn.Module):
    """Replays a recorded network call on new tensor inputs (by parameter name, in signature
    order): ``sample`` graphs return net(...) as float, clamped to [-1, 1] for images;
    ``translate`` / ``upscale`` graphs take one image [N, C, H, W] of any size, pad it (reflect)
    to a multiple of the family's stride, run the net and crop to ``scale`` x the input size.
    ``float_inputs`` lists non-tensor arguments made inputs (truncation). ``input_walk``:
    whether the family's interpolation is the slerp of these inputs (False when an export module
    says otherwise), so the server may batch it through the graph. ``truncation_state``: what
    the network holds for one truncation (None: nothing), and ``truncation`` the one it was
    recorded at."""

    def __init__(self, call: GeneratorCall, *, capability: str, stride: int = 1, scale: int = 1,
                 float_inputs: tuple[str, ...] = (), truncation: float | None = None):
        super().__init__()
        self.net = call.net
        self.capability, self.stride, self.scale = capability, stride, scale
        self.signature = inspect.signature(call.net.forward)
        self.input_names = [k for k in call.arguments if k in call.tensors or k in float_inputs]
        self.fixed = {k: v for k, v in call.constants().items() if k not in float_inputs}
        self.float_inputs = tuple(float_inputs)
        self.input_walk = bool(getattr(call.net, "input_walk", True))
        self.truncation_state: str | None = getattr(call.net, "truncation_state", None)
        self.truncation = truncation if self.truncation_state else None

    def forward(self, *inputs: Tensor) -> Tensor:
        arguments = {**self.fixed, **dict(zip(self.input_names, inputs))}
        arguments = {k: arguments[k] for k in self.signature.parameters if k in arguments}
        bound = inspect.BoundArguments(self.signature, arguments)
        if self.capability not in IMAGE_CAPABILITIES:
            out = self.net(*bound.args, **bound.kwargs).float()
            return out.clamp(-1, 1) if out.dim() == 4 else out
        x = inputs[0]
        h, w = x.shape[-2], x.shape[-1]
        if self.stride > 1:
            ph, pw = (self.stride - h % self.stride) % self.stride, (self.stride - w % self.stride) % self.stride
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        y = self.net(x).float()
        if self.stride > 1:
            y = y[..., :h * self.scale, :w * self.scale]
        return y.clamp(-1, 1)


def build_graph(run, capability: str, direction: str = "AtoB",
                truncation: float | None = None) -> tuple[InferenceGraph, dict[str, Tensor]] | None:
    """(graph, example inputs by name) for ``capability`` of ``run``; None when the capability
    made no network call to record. ``truncation``: a graph fixed to one truncation (see
    ``truncation_state``) is recorded at it (None: the family's default, no truncation); other
    families with that capability get it as a float input when it reaches the network call as
    a number, and ``truncation`` is its example value."""
    run.require(capability)
    if capability == "sample":
        fixed = truncation_state(run) is not None
        probe = TRUNCATION_PROBE if "truncation" in run.capabilities and not fixed else None
        call = record_sample(run, 2, truncation=truncation if fixed else probe)
        if call is None:
            return None
        floats = tuple(k for k, v in call.constants().items()
                       if probe is not None and isinstance(v, float) and v == probe)
        graph = InferenceGraph(call, capability=capability, float_inputs=floats,
                               truncation=truncation if fixed else None)
        args = {k: v for k, v in call.arguments.items() if k in graph.input_names}
        for k in floats:
            args[k] = torch.tensor(float(truncation if truncation is not None else 1.0))
        return graph.eval(), args
    call = record_image(run, capability, direction)
    if call is None:
        return None
    x = next(iter(call.tensors.values()))
    with torch.no_grad():
        y = call.net(x)
    scale = y.shape[-1] // x.shape[-1]
    graph = InferenceGraph(call, capability=capability, stride=max(int(run.objective.stride), 1),
                           scale=scale)
    return graph.eval(), {"image": example_image(run, capability, direction)}


@torch.inference_mode()
def verify(run, graph: InferenceGraph, capability: str, direction: str = "AtoB") -> float:
    """Largest difference between the graph and the family's own method on a fresh input
    (sample: 3 images of seed 5, at the graph's truncation where it is fixed to one; images: an
    input not a multiple of the stride). A fixed graph's state is its truncation's afterwards."""
    if capability == "sample":
        t = TRUNCATION_PROBE if graph.float_inputs or "truncation" in graph.input_names else None
        t = graph.truncation if graph.truncation_state else t
        call = record_sample(run, 3, seed=5, truncation=t)
        if call is None:
            return float("inf")
        ref = run.sample(3, seed=5, truncation=t)
        got = graph(*[torch.as_tensor(call.arguments[k]) for k in graph.input_names])
        return float((ref - got).abs().max()) if ref.shape == got.shape else float("inf")
    x = example_image(run, capability, direction, n=2)
    ref = run_image(run, capability, x, direction)
    got = graph(x)
    if capability == "upscale":  # the reference went through uint8
        got = torch.from_numpy(to_uint8_hwc(got)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return float((ref - got).abs().max()) if ref.shape == got.shape else float("inf")
