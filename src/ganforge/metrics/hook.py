"""Evaluation during training: a hook the Trainer calls every ``eval.every`` steps.

In one process the hook samples ``eval.n`` images from one seeded stream and scores them. Under
torchrun (a Trainer whose world has several ranks) the work is split: the ``eval.n`` samples are
cut into blocks of ``BLOCK``, block b drawn from its own stream seeded by (eval seed, b), so the
set of latents is the same on any number of ranks (but not the one process's single stream,
which stays as it was so that one process's numbers do not change). Rank r of W samples the
contiguous blocks [ceil(r*B/W), ceil((r+1)*B/W)) of the B blocks from the EMA nets (the Trainer
gives every rank rank 0's BatchNorm statistics first), extracts their features itself (every
rank builds the same extractor), and only the features (with the extractor's and, when it is
another net, the dataset classifier's logits) are gathered to rank 0, in block order, where the
metrics are computed as in one process. Metrics that need the generator itself (PPL) are not
computed during training, on any number of ranks; ``ganforge eval RUN`` computes them.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np
import torch

from ..labels import class_kwargs
from .errors import EvalError
from .evaluation import (METRICS, MIN_IMAGES, dataset_classifier, evaluate, evaluate_features, parse_metrics,
                         small_sample_warnings)
from .features import (CLASSIFIER_DATASETS, Features, InceptionWeightsMissing, classifier_weights, get_extractor,
                       to_uint8)

DEFAULT_METRICS = ("fid", "kid")
CHUNK = 500  # samples per call to the generator in one process
BLOCK = 100  # samples per independently seeded block when the ranks share the work


def training_extractor(dataset: str, inception_weights=None) -> str:
    """The cheap extractor first: the dataset's ganforge CNN where there is one, else inception."""
    if dataset in CLASSIFIER_DATASETS and classifier_weights(dataset) is not None:
        return f"{dataset}-cnn"
    return "inception"


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block``'s latent stream (a 63-bit hash of the two)."""
    digest = hashlib.blake2b(f"ganforge-eval:{seed}:{block}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def rank_blocks(n: int, rank: int, size: int) -> list[tuple[int, int]]:
    """(block index, number of samples) of rank ``rank``'s share of ``n`` samples among ``size``
    ranks: contiguous blocks, so the ranks' shares in rank order are the blocks in order; the
    first ranks take the extra blocks (rank 0 always has one)."""
    count = -(-n // BLOCK)
    first, last = -(-rank * count // size), -(-(rank + 1) * count // size)
    return [(b, min(BLOCK, n - b * BLOCK)) for b in range(first, last)]


@torch.no_grad()
def sample_blocks(objective, nets, n: int, *, seed: int, rank: int = 0, size: int = 1,
                  return_finite: bool = False):
    """Rank ``rank``'s blocks of the ``n`` block-seeded samples, uint8 [m, C, H, W] on the CPU
    (``rank=0, size=1``: all of them, as several ranks together draw them); with
    ``return_finite``, (images, whether every sample was finite before the uint8 conversion)."""
    chunks, finite = [], True
    for b, k in rank_blocks(n, rank, size):
        fake = objective.sample(k, generator=torch.Generator().manual_seed(block_seed(seed, b)), nets=nets,
                                **class_kwargs(objective, k, start=b * BLOCK))
        finite = finite and bool(torch.isfinite(fake).all())
        chunks.append(to_uint8(fake.cpu()))
    images = torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.uint8)
    return (images, finite) if return_finite else images


def sample_labels(objective, n: int) -> tuple[np.ndarray | None, list[str] | None]:
    """(labels [n], the run's class names) of the ``n`` samples the hook draws from a conditional
    family, None and None for one that draws no requested class. Chunks and blocks both ask for
    class i % K of sample i (``class_kwargs`` with their start), so these are the labels of the
    samples in order on any number of ranks; without them label_accuracy and intra_fid, which
    ``ganforge eval RUN`` computes, had refused the samples as unlabelled at the first evaluation."""
    labels = class_kwargs(objective, n).get("labels")
    if labels is None:
        return None, None
    names = getattr(objective, "class_names", None)
    return labels.numpy(), (list(names) if names else None)


def _eval_mode(objective):
    """Put the nets in eval mode; returns a function that restores their modes."""
    modes = {name: net.training for name, net in objective.nets.items()}
    for net in objective.nets.values():
        net.eval()

    def restore():
        for name, net in objective.nets.items():
            net.train(modes[name])

    return restore


# The hook's noise seed. `ganforge eval` draws with seed 0 against the test split; the hook draws
# other latents against the training split, so the `best` checkpoint it picks is never chosen on
# the very samples and held-out images that `ganforge eval --checkpoint best` then reports.
HOOK_SEED = 1


def training_hook(cfg, *, metrics: Sequence[str], n: int, split: str = "train", extractor=None,
                  seed: int = HOOK_SEED) -> Callable[[object, int], dict[str, float]]:
    """A ``hook(trainer, step) -> {"fid": ..., ...}`` that draws ``n`` samples (fixed noise,
    ``torch.Generator().manual_seed(seed)``) from the EMA nets, in chunks, and scores them against
    the cached features of ``n`` images of ``cfg.data``'s training split (model selection stays
    off the test split; folders have only the one). Samples that are not finite (a diverged
    generator) score NaN, not the black images uint8 would make of them. ``hook.protocol`` says
    what was measured (extractor and its hash, split, n, seed); the Trainer logs it with the values.

    The extractor is the dataset's ganforge CNN when it has one (fast on CPU), else inception;
    it is built here, so a missing extractor fails before training starts. The nets are put in
    eval mode while sampling and restored afterwards; no global RNG is touched.

    The hook has ``all_ranks = True``: under torchrun the Trainer calls it on every rank, each
    samples and extracts its share (module docstring), and rank 0 returns the values (the other
    ranks return {}). It needs ``trainer.world`` and ``trainer.gather_rows`` for that.

    The first evaluation that scores says, once, what ``n`` makes unreliable (the warnings
    ``ganforge eval`` prints at that size, with the advice in terms of ``eval.n``).
    """
    names = parse_metrics(list(metrics)) or list(DEFAULT_METRICS)
    if n < MIN_IMAGES:
        raise EvalError(f"eval.n must be at least {MIN_IMAGES}, got {n}")
    dataset = cfg.data.name
    try:
        ext = get_extractor(extractor or training_extractor(dataset))
    except InceptionWeightsMissing as exc:  # its fixes are eval's flags, which training does not take
        raise EvalError(f"eval.every={cfg.eval.every}: {exc.fixes(None, 'eval.extractor=fashion-mnist-cnn')}"
                        ) from None
    diverged = {k: float("nan") for k in names}
    warned = []

    def warn_small_n(trainer, result) -> None:
        """Once: the small-sample warnings of the first scored evaluation (rank 0's)."""
        protocol = getattr(result, "protocol", None) or {}
        if warned or "feature_dim" not in protocol:
            return
        warned.append(True)
        say = getattr(trainer, "warn", None) or (lambda text: print(text, flush=True))
        # intra_fid's per-class counts, as the evaluation matched the sampled labels (class i % K of
        # sample i) to the reference's classes: without them its warning had never been given here
        samples = (getattr(result, "details", None) or {}).get("intra_fid_samples") or {}
        classes = [int(c) for c in samples]
        labels = np.repeat(classes, [g for g, _ in samples.values()]) if samples else None
        ref_labels = np.repeat(classes, [r for _, r in samples.values()]) if samples else None
        for text in small_sample_warnings(result.values, n_fake=protocol["n_generated"],
                                          n_ref=protocol["n_reference"], dim=protocol["feature_dim"],
                                          option="eval.n", labels=labels, ref_labels=ref_labels):
            say(f"ganforge: eval.n={n}: {text}")

    def one_process(trainer) -> dict[str, float]:
        objective = trainer.objective
        gen = torch.Generator().manual_seed(seed)
        chunks = []
        restore = _eval_mode(objective)
        try:
            with torch.no_grad():
                for start in range(0, n, CHUNK):
                    m = min(CHUNK, n - start)
                    fake = objective.sample(m, generator=gen, nets=trainer.sample_nets(),
                                            **class_kwargs(objective, m, start=start))
                    if not torch.isfinite(fake).all():
                        return diverged
                    chunks.append(to_uint8(fake.cpu()))
        finally:
            restore()
        labels, class_names = sample_labels(objective, n)
        result = evaluate(torch.cat(chunks), ref=dataset, split=split, metrics=names, n_ref=n,
                          extractor=ext, data_dir=cfg.data.data_dir, labels=labels, class_names=class_names)
        warn_small_n(trainer, result)
        return {k: float(v) for k, v in result.values.items()}

    def shared(trainer, rank: int, size: int) -> dict[str, float]:
        restore = _eval_mode(trainer.objective)
        try:
            images, finite = sample_blocks(trainer.objective, trainer.sample_nets(), n, seed=seed, rank=rank,
                                           size=size, return_finite=True)
        finally:
            restore()
        # every rank's verdict, gathered first (a collective all ranks make): one diverged share
        # scores NaN, as in one process, instead of its black uint8 images
        verdicts = trainer.gather_rows(np.array([[0.0 if finite else 1.0]], np.float32))
        local = ext(images) if len(images) else Features(np.zeros((0, 0), np.float32), None)
        # The class metrics of a classifier other than the extractor need its logits too.
        classifier = dataset_classifier(dataset, ext) if any(
            "classifier" in METRICS.get(k).needs for k in names) else None
        class_logits = None
        if classifier is not None and classifier is not ext:
            class_logits = classifier(images).logits if len(images) else None
        features = trainer.gather_rows(local.features)
        logits = trainer.gather_rows(local.logits)
        class_logits = trainer.gather_rows(class_logits)
        if rank != 0:
            return {}
        if verdicts is not None and float(verdicts.max()) > 0:
            return dict(diverged)
        fake = Features(features, logits if logits is not None and len(logits) == len(features) else None)
        shape = tuple(images.shape[1:])  # rank 0 always holds the first block
        labels, class_names = sample_labels(trainer.objective, n)  # the gathered blocks' order
        result = evaluate_features(fake, shape=shape, ref=dataset, split=split, metrics=names, n_ref=n,
                                   extractor=ext, data_dir=cfg.data.data_dir, class_logits=class_logits,
                                   labels=labels, class_names=class_names)
        warn_small_n(trainer, result)
        return {k: float(v) for k, v in result.values.items()}

    def hook(trainer, step: int) -> dict[str, float]:
        world = getattr(trainer, "world", None)
        if world is None or world.size == 1:
            return one_process(trainer)
        return shared(trainer, world.rank, world.size)

    hook.all_ranks = True
    hook.protocol = {"extractor": ext.name, "extractor_sha256": ext.weights_sha256, "reference": dataset,
                     "split": split, "n": n, "seed": seed}
    return hook
