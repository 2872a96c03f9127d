"""Dynamic batching: one worker thread per model runs all of its inference, off the event loop,
under ``torch.inference_mode``; requests that queue up while a forward pass runs (or, with
``wait_ms`` > 0, within that time of the first) are merged into the next forward pass of up to
``max_batch`` images.

Sample and interpolation requests share the recorded generator call (ganforge.serve.graph):
each request's inputs (z drawn from its seed by the family itself, its class labels) are
recorded without running the network, concatenated along the batch, run once and split, so a
batched request returns the images ``LoadedRun.sample`` gives for its seed. Translation requests
of the same image size and direction are concatenated likewise. Upscale, vocode and convert
requests, and families whose sample graph did not verify, run one at a time. A graph whose
network holds state for one truncation (``InferenceGraph.truncation_state``: standing BatchNorm
statistics) takes requests of one truncation per forward pass, after the family has set that
state for it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from ..latents import slerp, walk_fractions
from .graph import InferenceGraph, build_graph, record_sample, set_truncation, verify

VERIFY_TOL = 1e-5


@dataclass
class Job:
    kind: str  # sample | interpolate | translate | upscale | vocode | convert
    params: dict[str, Any]
    future: concurrent.futures.Future | asyncio.Future | None = None
    loop: asyncio.AbstractEventLoop | None = None  # set: ``future`` is that loop's (submit_async)
    key: Any = None  # jobs with equal keys may share a forward pass
    inputs: list[Tensor] | None = None
    images: int = 1


def to_pixels(images: Tensor) -> Tensor:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, C, H, W] by torchvision's ``save_image(...,
    normalize=True, value_range=(-1, 1))`` arithmetic, operation for operation (so the same
    rounding): elementwise, so a whole batch converted at once gives each image's own pixels."""
    return images.clamp(-1, 1).add(1).div_(2).mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def _settle(done: list[tuple[Job, Any, BaseException | None]]) -> None:
    """Sets each job's result or exception; a future whose request went away is left alone."""
    for job, value, exc in done:
        if job.future.done():
            continue
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(value)


class ModelWorker:
    """All inference of one loaded run, on one thread. ``submit`` returns a Future of a float
    tensor [n, C, H, W] in [-1, 1], or with ``pixels=True`` its ``to_pixels`` (upscale: uint8
    [H, W, 3]; vocode: a waveform [L]; convert: a log-mel [1, n_mels, T], or with
    griffin_lim=True its waveform [L]); ``submit_async``, from an event loop, an awaitable
    future of that loop, all of a forward pass's futures set in one call onto the loop."""

    def __init__(self, name: str, run, *, max_batch: int = 32, wait_ms: float = 0.0,
                 on_batch: Callable[[str, int], None] | None = None):
        self.name, self.run = name, run
        self.max_batch, self.wait = max(1, max_batch), wait_ms / 1000
        self.on_batch = on_batch or (lambda model, images: None)
        self.graph: InferenceGraph | None = None
        if "sample" in run.capabilities:
            built = build_graph(run, "sample")
            if built is not None and verify(run, built[0], "sample") <= VERIFY_TOL:
                self.graph = built[0]  # else: unbatched run.sample per request
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"ganforge-serve-{name}", daemon=True)
        self.thread.start()

    def submit(self, kind: str, **params) -> concurrent.futures.Future:
        job = Job(kind, params, future=concurrent.futures.Future(), images=self._images(params))
        self.queue.put(job)
        return job.future

    def submit_async(self, kind: str, **params) -> asyncio.Future:
        """``submit`` for a caller on an event loop: a future of that loop, without the
        thread-safe Future that ``asyncio.wrap_future`` would chain to it. A forward pass's
        results reach the loop in one call (one wake-up of the loop, not one per request)."""
        loop = asyncio.get_running_loop()
        job = Job(kind, params, future=loop.create_future(), loop=loop, images=self._images(params))
        self.queue.put(job)
        return job.future

    @staticmethod
    def _images(params: dict[str, Any]) -> int:
        return int(params.get("n") or params.get("steps") or 1)

    def close(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    # ------------------------------------------------------------------ worker thread

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            job = self.queue.get()
            if job is None:
                return
            jobs, stop = [job], False
            deadline = time.monotonic() + self.wait
            while self.max_batch > 1 and sum(j.images for j in jobs) < self.max_batch:
                # wait_ms 0 (the default): what queued up while the last batch ran joins at once
                # and nothing waits, so a lone request is never delayed and batches grow with load
                left = deadline - time.monotonic()
                try:
                    nxt = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._run(jobs)
            if stop:
                return

    def _run(self, jobs: list[Job]) -> None:
        with torch.inference_mode():
            ready, failed = [], []
            for job in jobs:
                if job.future.done():  # cancelled: its client went away while it waited
                    continue
                try:
                    self._prepare(job)
                    ready.append(job)
                except Exception as exc:  # a bad class or truncation: that request's error only
                    failed.append((job, None, exc))
            self._deliver(failed)
            groups: dict[Any, list[Job]] = {}
            for job in ready:
                groups.setdefault(job.key if job.key is not None else id(job), []).append(job)
            for group in groups.values():
                for chunk in self._chunks(group):
                    try:
                        done = self._forward(chunk)
                    except Exception as exc:
                        done = [(job, None, exc) for job in chunk]
                    self._deliver(done)

    @staticmethod
    def _deliver(done: list[tuple[Job, Any, BaseException | None]]) -> None:
        """Settles the jobs' futures: thread-safe ones here, each event loop's in one call onto it."""
        by_loop: dict[Any, list] = {}
        for item in done:
            by_loop.setdefault(item[0].loop, []).append(item)
        for loop, items in by_loop.items():
            if loop is None:
                _settle(items)
                continue
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # the loop has closed: the server is shutting down, nobody waits
                pass

    def _chunks(self, group: list[Job]):
        chunk, size = [], 0
        for job in group:
            if chunk and size + job.images > self.max_batch:
                yield chunk
                chunk, size = [], 0
            chunk.append(job)
            size += job.images
        if chunk:
            yield chunk

    def _prepare(self, job: Job) -> None:
        """The job's network inputs, recorded without running the network, and its batch key."""
        p, run = job.params, self.run
        graph_kinds = ("sample", "interpolate") if self.graph is not None and self.graph.input_walk else ("sample",)
        if job.kind in graph_kinds and self.graph is not None:
            if job.kind == "sample":
                call = record_sample(run, p["n"], seed=p["seed"], labels=p.get("labels"),
                                     truncation=p.get("truncation"))
                job.inputs = [call.arguments[k] for k in self.graph.input_names]
            else:
                a = record_sample(run, 1, seed=p["seed_a"], labels=p.get("labels"), truncation=p.get("truncation"))
                b = record_sample(run, 1, seed=p["seed_b"], labels=p.get("labels"), truncation=p.get("truncation"))
                t = walk_fractions(2, 2 * (p["steps"] - 1))[2][:p["steps"]]  # as run.interpolate's
                t[-1] = 1.0  # frame steps - 1 is seed b: fraction 0 of the way back
                job.inputs = []
                for k in self.graph.input_names:
                    va, vb = a.arguments[k], b.arguments[k]
                    if isinstance(va, Tensor) and va.is_floating_point() and not torch.equal(va, vb):
                        job.inputs.append(slerp(va, vb, t))
                    elif isinstance(va, Tensor) and va.dim() > 0:
                        job.inputs.append(va.expand(p["steps"], *va.shape[1:]))
                    else:
                        job.inputs.append(va)
            # float inputs (truncation) are one value per forward pass: part of the key; so is
            # the truncation of a network whose state belongs to one
            fixed = ((p.get("truncation"),) if self.graph.truncation_state else ())
            job.key = ("graph", tuple(float(v) for v in job.inputs if not isinstance(v, Tensor)), *fixed)
            job.inputs = [torch.as_tensor(v) for v in job.inputs]
        elif job.kind == "translate":
            job.key = ("translate", p["direction"], tuple(p["image"].shape))

    def _forward(self, jobs: list[Job]) -> list[tuple[Job, Any, None]]:
        run, kind = self.run, jobs[0].kind
        if jobs[0].key is not None and jobs[0].key[0] == "graph":
            cat = [torch.cat([j.inputs[i] for j in jobs]) if jobs[0].inputs[i].dim() > 0 else jobs[0].inputs[i]
                   for i in range(len(jobs[0].inputs))]
            if self.graph.truncation_state:  # the state of the last request prepared may be another's
                set_truncation(run, jobs[0].params.get("truncation"))
            out = self.graph(*cat).cpu()
            sizes = [len(j.inputs[0]) for j in jobs]
        elif kind == "translate":
            x = torch.cat([j.params["image"] for j in jobs])
            out = run.translate(x, direction=jobs[0].params["direction"])
            sizes = [1] * len(jobs)
        elif kind == "sample":
            p = jobs[0].params
            out = run.sample(p["n"], seed=p["seed"], labels=p.get("labels"), truncation=p.get("truncation"))
            sizes = [p["n"]]
        elif kind == "interpolate":  # the family's own walk a -> b -> a; its first half is a -> b
            p = jobs[0].params
            out = run.interpolate([p["seed_a"], p["seed_b"]], 2 * (p["steps"] - 1), labels=p.get("labels"),
                                  truncation=p.get("truncation"))[:p["steps"]]
            sizes = [p["steps"]]
        elif kind == "vocode":  # one recording (or a converted mel) at a time, of its own length
            p = jobs[0].params
            mel = p["mel"] if "mel" in p else run.analyze(p["wave"])
            out = [run.vocode(mel)[0, :p.get("length") or len(p["wave"])]]
            sizes = [1]
        elif kind == "convert":  # -> the other voice's log-mel [1, n_mels, T], or its Griffin-Lim waveform
            p = jobs[0].params
            converted = run.convert(run.analyze(p["wave"]), direction=p["direction"])
            if p.get("griffin_lim"):
                from ..metrics.audio import Synthesizer

                converted = Synthesizer(run.config.audio)(converted)[0, :len(p["wave"])]
            out = [converted]
            sizes = [1]
        else:  # upscale: one image at a time, tiled to bound memory
            out = [run.upscale(jobs[0].params["image"])]
            sizes = [1]
        self.on_batch(self.name, sum(sizes))
        parts = out.split(sizes) if isinstance(out, Tensor) else out
        if isinstance(out, Tensor) and any(j.params.get("pixels") for j in jobs):
            # once per forward pass here, not once per request on the event loop: every torch
            # call there hands the GIL over to this thread and waits to get it back
            pixels = to_pixels(out).split(sizes)
            parts = [px if j.params.get("pixels") else part for j, part, px in zip(jobs, parts, pixels)]
        return [(job, part, None) for job, part in zip(jobs, parts)]


