"""Evaluation: generated images + a reference dataset + an extractor -> metrics and the protocol
that produced them.

    from ganforge import metrics
    result = metrics.evaluate(images_uint8_nchw, ref="fashion-mnist", split="test")
    result.values     # {"fid": ..., "kid": ..., "precision": ..., ...}
    result.protocol   # n generated, n reference, split, extractor and weights hash, resize mode, ...

Metric names are registry entries (``METRICS``); each needs some of: the extractor's logits,
the reference dataset's classifier, the samples' labels, the training split. "All that apply"
is the default; asking for one that does not apply is an EvalError saying why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..version import __version__
from ..registry import Registry
from ..rng import keeps_random_state
from . import coverage, memorization as memo, prdc
from ..errors import warn
from .errors import EvalError
from .features import (CLASSIFIER_DATASETS, ClassifierExtractor, Extractor, Features, as_uint8_nchw,
                       INCEPTION_SHA256_PREFIX, classifier_weights, find_inception_weights,
                       get_extractor, inception_available)
from .fid import fid
from .inception_score import MIN_PER_SPLIT, inception_score, is_splits
from .kid import kid, subset_m
from .reference import SUBSET_RULE, Reference, cached_value, reference_features

KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
PR_K, DC_K = 3, 5
IS_SPLITS = 10
MIN_IMAGES = DC_K + 1  # the k-NN metrics need more than k samples
# Below KNN_N_PER_K x k samples a k-NN ball holds over 1% of its set and the k-NN metrics drift:
# on fashion-mnist-cnn features, samples of 5 of the 10 classes scored coverage 1.00 at n=20,
# 0.66 at 50, 0.60 at 500 and 0.55 at 5000 (recall 0.65, 0.52, 0.50, 0.48).
KNN_N_PER_K = 100


@dataclass(frozen=True)
class Metric:
    """A group of values computed together (precision and recall share their k-NN balls)."""

    keys: tuple[str, ...]  # the names it reports (JSON keys)
    needs: tuple[str, ...]  # of "logits", "classifier", "labels", "ref_labels", "train", "generator"
    compute: Callable[["_Context"], dict[str, float]]
    better: dict[str, str]  # key -> "lower" / "higher" / "1" (closer to 1 is better)
    doc: str = ""


def _is_metric(obj) -> bool:
    """What evaluate() and better() read of every metric: needs, better and compute(ctx)."""
    return hasattr(obj, "needs") and hasattr(obj, "better") and callable(getattr(obj, "compute", None))


METRICS: Registry[Metric] = Registry(
    "metric", check=_is_metric,
    expects="a ganforge.metrics.evaluation.Metric(keys, needs, compute, better) "
            "(CONTRIBUTING.md, 'Other extension points')")


def _metric(keys: tuple[str, ...], *, needs=(), better: dict[str, str], doc: str = ""):
    def deco(fn):
        m = Metric(keys, tuple(needs), fn, better, doc)
        for key in keys:
            METRICS.register(key)(m)
        return fn

    return deco


@dataclass
class EvalResult:
    values: dict[str, float]
    protocol: dict
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"metrics": self.values, "protocol": self.protocol, "details": self.details}


class _Context:
    """Lazily computed inputs shared by the metrics of one evaluation."""

    def __init__(self, *, fake: Features, ref: Reference, labels, extractor: Extractor,
                 classifier: ClassifierExtractor | None, images: torch.Tensor | None,
                 train: Callable[[], Reference], cache: bool, generator=None,
                 class_logits: np.ndarray | None = None, data_dir=None):
        self.fake, self.ref, self.labels, self.extractor = fake, ref, labels, extractor
        self.classifier, self.images, self._train, self.cache = classifier, images, train, cache
        self.generator = generator  # metrics that need the generator: an object with path_pairs(...)
        self._class_logits = class_logits  # the classifier's logits of the samples, when given
        self.data_dir = data_dir  # where the reference was read: the class metrics read it there too
        self.details: dict = {}

    @cached_property
    def fake_class_logits(self) -> np.ndarray:
        if self.classifier is self.extractor:
            return self.fake.logits
        if self._class_logits is not None:
            return self._class_logits
        if self.images is None:
            raise EvalError(f"the class metrics need {self.classifier.name}'s logits of the samples; "
                            f"pass class_logits")
        return self.classifier(self.images).logits

    @cached_property
    def ref_class_logits(self) -> np.ndarray:
        if self.classifier is self.extractor:
            return self.ref.features.logits
        ref = reference_features(self.ref.info["dataset"], self.classifier, split=self.ref.info["split"],
                                 n=self.ref.info["n"], resolution=self.ref.info["resolution"],
                                 channels=self.ref.info["channels"], data_dir=self.data_dir, cache=self.cache)
        return ref.features.logits

    @cached_property
    def train(self) -> Reference:
        return self._train()


@_metric(("fid",), better={"fid": "lower"}, doc="Frechet distance of feature Gaussians")
def _fid(ctx: _Context):
    return {"fid": fid(ctx.fake.features, ctx.ref.features.features)}


@_metric(("kid",), better={"kid": "lower"}, doc="unbiased polynomial-kernel MMD^2 (mean over subsets)")
def _kid(ctx: _Context):
    mean, std = kid(ctx.fake.features, ctx.ref.features.features, n_subsets=KID_SUBSETS,
                    subset_size=KID_SUBSET_SIZE)
    return {"kid": mean, "kid_std": std}


@_metric(("is",), needs=("logits",), better={"is": "higher"}, doc="Inception Score of the extractor's logits")
def _is(ctx: _Context):
    mean, std = inception_score(ctx.fake.logits, splits=IS_SPLITS)
    return {"is": mean, "is_std": std} if np.isfinite(std) else {"is": mean}  # one split: no spread


@_metric(("precision", "recall"), better={"precision": "higher", "recall": "higher"},
         doc="k=3 manifold precision (fidelity) and recall (diversity)")
def _pr(ctx: _Context):
    p, r = prdc.precision_recall(ctx.ref.features.features, ctx.fake.features, k=PR_K)
    return {"precision": p, "recall": r}


@_metric(("density", "coverage"), better={"density": "1", "coverage": "higher"},
         doc="k=5 density (about 1 is right) and coverage")
def _dc(ctx: _Context):
    d, c = prdc.density_coverage(ctx.ref.features.features, ctx.fake.features, k=DC_K)
    return {"density": d, "coverage": c}


@_metric(("classes_covered", "class_kl"), needs=("classifier",),
         better={"classes_covered": "higher", "class_kl": "lower"},
         doc="classes with >= 1/4 of their reference share; KL of class histograms (mode collapse)")
def _classes(ctx: _Context):
    out = coverage.class_coverage(ctx.fake_class_logits, ctx.ref_class_logits)
    k = ctx.ref_class_logits.shape[1]
    ctx.details["class_histogram"] = coverage.class_histogram(ctx.fake_class_logits, k).round(5).tolist()
    ctx.details["class_names"] = ctx.classifier.class_names
    return out


@_metric(("memorization",), needs=("train",), better={"memorization": "lower"},
         doc="share of samples closer to a training image than 99% of training images are to each other")
def _memorization(ctx: _Context):
    train = ctx.train
    fields = {"what": "memorization_tau", "train": train.info["cache_key"], "quantile": memo.QUANTILE,
              "n_threshold": memo.N_THRESHOLD}
    tau = cached_value(fields, lambda: memo.memorization_threshold(train.features.features), cache=ctx.cache)
    out = memo.memorization(ctx.fake.features, train.features.features, threshold=tau)
    ctx.details["memorization_tau"] = out.pop("memorization_tau")
    ctx.details["memorization_n_train"] = train.info["n"]
    return out


@_metric(("label_accuracy",), needs=("labels", "classifier"), better={"label_accuracy": "higher"},
         doc="share of labeled samples the classifier assigns to their label")
def _label_accuracy(ctx: _Context):
    return {"label_accuracy": coverage.label_accuracy(ctx.fake_class_logits, ctx.labels)}


@_metric(("intra_fid",), needs=("labels", "ref_labels"), better={"intra_fid": "lower"},
         doc="FID within each class, averaged over classes")
def _intra_fid(ctx: _Context):
    mean, per_class = coverage.intra_fid(ctx.fake.features, ctx.labels, ctx.ref.features.features,
                                         ctx.ref.labels)
    ctx.details["intra_fid_per_class"] = {str(k): round(v, 5) for k, v in per_class.items()}
    included, left_out = coverage.intra_fid_classes(ctx.labels, ctx.ref.labels)
    # {class: [generated, reference]}: what the small-sample warnings read (the hook's too)
    ctx.details["intra_fid_samples"] = {str(c): list(n) for c, n in sorted({**included, **left_out}.items())}
    if left_out:
        ctx.details["intra_fid_left_out"] = _left_out(left_out, ctx.ref.class_names)
    return {"intra_fid": mean}


def _ppl(space: str):
    def compute(ctx: _Context):
        from .ppl import perceptual_path_length

        value, info = perceptual_path_length(ctx.generator.path_pairs, ctx.classifier, space=space,
                                             n=min(len(ctx.fake), PPL_N_MAX))
        ctx.details[f"ppl_{space}"] = info
        return {f"ppl_{space}": value}

    return compute


PPL_N_MAX = 5000  # latent pairs (the paper: 100,000 with LPIPS on a GPU)
for _space in ("w", "z"):  # metrics that take the generator, not only its samples (ganforge.metrics.ppl)
    _metric((f"ppl_{_space}",), needs=("generator", "classifier"), better={f"ppl_{_space}": "lower"},
            doc=f"perceptual path length in {_space.upper()} (end points, classifier features)")(_ppl(_space))


def _class_name(c: int, class_names) -> str:
    return str(class_names[c]) if class_names is not None and 0 <= c < len(class_names) else f"class {c}"


def _left_out(left_out: dict, class_names) -> list[str]:
    """["Ankle boot (1 generated image)", ...] of ``coverage.intra_fid_classes``'s left-out classes."""
    def count(k: int, what: str) -> str:
        return f"{k} {what} image{'' if k == 1 else 's'}"

    out = []
    for c, (f, r) in sorted(left_out.items()):
        sides = [count(f, "generated")] if f < 2 or r is None or r >= 2 else []
        sides += [count(r, "reference")] if r is not None and r < 2 else []
        out.append(f"{_class_name(c, class_names)} ({', '.join(sides)})")
    return out


def better(key: str) -> str:
    """'lower', 'higher' or '1' for a reported value (e.g. 'kid_std' -> '')."""
    for m in METRICS.values():
        if key in m.better:
            return m.better[key]
    return ""


# ----------------------------------------------------------------------------- choosing extractors


def default_extractor(ref: str, inception_weights=None) -> str:
    """inception when it works offline (torch-fidelity and cached weights), else the reference
    dataset's ganforge classifier; numbers from different extractors are never comparable.
    Weights passed explicitly mean inception (a wrong path is then an error, not a fallback)."""
    if inception_weights is not None or inception_available():
        return "inception"
    cached = find_inception_weights()
    if cached is not None:  # present but not the published file: say so rather than fall back silently
        warn(f"{cached} is not the published Inception file (its sha256 does not start with "
                      f"{INCEPTION_SHA256_PREFIX}) and is not used; delete it to download it again")
    base = ref.split(":")[0]
    if base in CLASSIFIER_DATASETS:
        if classifier_weights(base) is not None:
            return f"{base}-cnn"
        raise EvalError(f"no extractor available offline for {ref}: Inception weights are not cached and "
                        f"{base}-cnn is not trained; run 'ganforge train-classifier {base}' or pass "
                        f"--inception-weights PATH")
    return "inception"  # downloads the weights when online, else says how to get them


def dataset_classifier(ref: str, extractor: Extractor) -> ClassifierExtractor | None:
    """The classifier behind the class-based metrics: the reference dataset's CNN, if any."""
    if isinstance(extractor, ClassifierExtractor) and extractor.dataset == ref:
        return extractor
    if ref in CLASSIFIER_DATASETS and classifier_weights(ref) is not None:
        return ClassifierExtractor(ref)
    return None


# ----------------------------------------------------------------------------- evaluate


def _missing(needs, *, extractor, classifier, labels, ref, generator=None) -> str | None:
    """Why a metric with these needs cannot be computed, or None when it can."""
    checks = {  # need -> (test, reason); tests are lazy: has_logits may run the network
        "logits": (lambda: extractor.has_logits, f"extractor {extractor.name} has no logits"),
        "classifier": (lambda: classifier is not None,
                       f"{ref.info['dataset']} has no ganforge classifier (fashion-mnist and mnist do)"),
        "labels": (lambda: labels is not None, "the samples have no labels"),
        "ref_labels": (lambda: ref.labels is not None, f"{ref.info['dataset']} has no labels"),
        "train": (lambda: True, ""),
        "generator": (lambda: generator is not None and hasattr(generator, "path_pairs")
                      and "mix" in getattr(generator, "capabilities", {"mix"}),  # a LoadedRun: style-based
                      _not_style_based(generator)),
    }
    for need in needs:
        ok, why = checks[need]
        if not ok():
            return why
    return None


def _not_style_based(generator) -> str:
    """Why a metric that needs a style-based generator (PPL) cannot take ``generator``: a run of
    another family, or none (samples from files, or a run the caller did not pass because it is
    not style-based: evaluating the run directory would not help then)."""
    config = getattr(generator, "config", None)
    if generator is not None and config is not None:  # a loaded run of another family
        return (f"it needs the generator of a style-based run; {getattr(generator, 'run_dir', 'this run')} is not "
                f"one (objective '{config.objective}'; path lengths need a StyleGAN2 run)")
    return ("it needs the generator of a style-based run: evaluate a StyleGAN2 run directory (a run of "
            "another family, a samples .npz or an image folder has none)")


def parse_metrics(metrics: str | Sequence[str] | None) -> list[str] | None:
    """'fid,kid' or ['fid', 'kid'] -> checked names; None or 'all' -> None (all that apply). A list
    that names nothing ('', ',') is refused: it had computed every metric, the opposite of asking
    for none."""
    if metrics is None:
        return None
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    if not names:
        from ..errors import ConfigError

        raise ConfigError(f"--metrics {metrics if isinstance(metrics, str) else list(metrics)!r} names no "
                          f"metric; name some (e.g. --metrics fid,kid), or leave --metrics out for every "
                          f"metric that applies")
    if names == ["all"]:
        return None
    for name in names:
        METRICS.get(name)  # unknown: ConfigError listing the valid names
    return names


def check_reference(ref: str) -> None:
    """A one-line ConfigError for a reference that names no dataset (before any slow work)."""
    from ..data import dataset_names
    from ..errors import ConfigError
    from ..registry import PLUGIN_HINT, closest

    valid = [n for n in dataset_names() if not n.startswith("toy:")]  # read now: a plugin's dataset too
    # dataset_names() holds folder:PATH already: adding it again had listed it twice
    choices = ", ".join(valid + ([] if "folder:PATH" in valid else ["folder:PATH"]))
    if not isinstance(ref, str):  # None or a number had failed on ref.startswith with an AttributeError
        raise ConfigError(f"ref must be the name of a reference dataset ({choices}), got {ref!r}")
    if not (ref.startswith("folder:") or ref in valid):
        raise ConfigError(f"unknown reference dataset '{ref}'{closest(ref, valid)}; use one of "
                          f"{choices} (a dataset registered outside ganforge needs its "
                          f"module imported first: {PLUGIN_HINT})")
    if ref.startswith("folder:") and not Path(ref[len("folder:"):]).expanduser().is_dir():
        raise ConfigError(f"--ref {ref}: {ref[len('folder:'):]} is not a folder; pass folder:PATH of "
                          f"real images")


def _more_images(more_samples: str | None) -> str:
    """The fix for too few generated images: ``more_samples`` when they are all there are (an npz
    or folder: --n adds none to it), otherwise more samples drawn."""
    if more_samples is not None:
        return f"{more_samples} ({MIN_IMAGES} or more)"
    return "pass more images (--n on the command line)"


def _check_labels(labels, n: int):
    if labels is None:
        return None
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != n:
        raise EvalError(f"{len(labels)} labels for {n} images; they must match")
    return labels


@keeps_random_state  # building an extractor draws from torch's global generator
def evaluate(images, *, ref: str, split: str = "test", labels=None, metrics=None, n_ref: int | None = None,
             extractor: str | Extractor | torch.nn.Module | None = None, inception_weights=None,
             data_dir=None, cache: bool = True, log: Callable[[str], None] | None = None,
             generator=None, class_names: Sequence[str] | None = None,
             more_samples: str | None = None) -> EvalResult:
    """Metrics of generated uint8 images [N, C, H, W] (optional int labels [N]) against
    ``n_ref`` images (default: as many as generated) of dataset ``ref``/``split``. ``generator``:
    what the metrics that need the generator call (a loaded run with ``path_pairs``: PPL).
    ``class_names``: the labels' class names, matched to the reference's by name.
    ``more_samples``: how to get more images when these are all there are (an npz or folder
    holding fewer than --n), for the small-sample advice (see ``small_sample_warnings``)."""
    check_reference(ref)
    images = as_uint8_nchw(images)
    if len(images) < MIN_IMAGES:
        raise EvalError(f"need at least {MIN_IMAGES} generated images, got {len(images)}; "
                        f"{_more_images(more_samples)}")
    labels = _check_labels(labels, len(images))
    parse_metrics(metrics)  # an unknown name fails before the slow work
    name = extractor if extractor is not None else default_extractor(ref, inception_weights)
    ext = get_extractor(name, inception_weights=inception_weights)
    if log:
        log(f"extracting {ext.name} features of {len(images)} generated images")
    fake = ext(images)
    return evaluate_features(fake, shape=tuple(images.shape[1:]), ref=ref, split=split, labels=labels,
                             metrics=metrics, n_ref=n_ref, extractor=ext, data_dir=data_dir, cache=cache,
                             log=log, generator=generator, images=images, class_names=class_names,
                             more_samples=more_samples)


@keeps_random_state  # building an extractor draws from torch's global generator
def match_classes(labels: np.ndarray, names: Sequence[str], ref_names: Sequence[str],
                  ref: str) -> tuple[np.ndarray | None, str | None]:
    """The samples' ``labels`` (indices into their own class ``names``) as indices into the
    reference's classes, matched by name (case and spaces ignored); (None, why) when some name
    is not a class of the reference: index 0 of a Bag/Sneaker/Trouser folder is not
    Fashion-MNIST's T-shirt, and comparing indices had scored correctly labelled real images at
    label_accuracy 0.003."""
    key = {str(n).strip().lower(): i for i, n in enumerate(ref_names)}
    own = [str(n).strip().lower() for n in names]
    missing = [n for n, k in zip(names, own) if k not in key]
    if missing:
        return None, (f"the samples' classes {', '.join(map(str, missing[:4]))}"
                      f"{' ...' if len(missing) > 4 else ''} are not classes of {ref} "
                      f"({', '.join(map(str, ref_names[:4]))}, ...)")
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise EvalError(f"labels must be in 0..{len(names) - 1} (the samples' {len(names)} class names), "
                        f"got {labels.min()}..{labels.max()}")
    return np.asarray([key[k] for k in own], np.int64)[labels], None


def evaluate_features(fake: Features, *, shape, ref: str, extractor: str | Extractor | torch.nn.Module,
                      split: str = "test", labels=None, metrics=None, n_ref: int | None = None,
                      inception_weights=None, data_dir=None, cache: bool = True,
                      log: Callable[[str], None] | None = None, generator=None, images=None,
                      class_logits: np.ndarray | None = None,
                      class_names: Sequence[str] | None = None, more_samples: str | None = None) -> EvalResult:
    """``evaluate`` of samples already turned into ``extractor``'s features (``fake`` [N, D], e.g.
    gathered from several processes) of images of ``shape`` [C, H, W]. The class metrics of a
    classifier that is not the extractor need the ``images`` or that classifier's
    ``class_logits`` [N, K] of them. ``class_names``: the names of the ``labels``' classes, when
    known (a run's, an npz's, a labelled folder's): labels are matched to the reference's classes
    by name. ``more_samples``: as for ``evaluate``."""
    check_reference(ref)
    if len(fake) < MIN_IMAGES:
        raise EvalError(f"need at least {MIN_IMAGES} generated images, got {len(fake)}; "
                        f"{_more_images(more_samples)}")
    if n_ref is not None and (isinstance(n_ref, bool) or not isinstance(n_ref, (int, np.integer)) or n_ref < 1):
        raise EvalError(f"n_ref must be a positive number of reference images (or None: as many as "
                        f"generated), got {n_ref!r}")
    if ref.startswith("folder:"):
        split = "all"  # a folder has one set of images, whatever split was asked for: say so
    labels = _check_labels(labels, len(fake))
    wanted = parse_metrics(metrics)
    ext = get_extractor(extractor, inception_weights=inception_weights)
    classifier = dataset_classifier(ref, ext)
    channels, h, w = (int(s) for s in shape)
    resolution = h if h == w else None  # the reference is compared at the samples' size
    n_ref = len(fake) if n_ref is None else n_ref
    reference = reference_features(ref, ext, split=split, n=n_ref, resolution=resolution, channels=channels,
                                   data_dir=data_dir, cache=cache, log=log)
    if len(reference.features) < MIN_IMAGES:
        raise EvalError(f"{ref}/{split} has {len(reference.features)} images; need at least {MIN_IMAGES}")
    k = len(reference.class_names or [])
    class_note = None
    if labels is not None and class_names is not None and k:
        labels, class_note = match_classes(labels, class_names, reference.class_names, ref)
        label_metrics = [m for m in wanted or [] if "labels" in METRICS.get(m).needs]
        if class_note and label_metrics:
            raise EvalError(f"{class_note}: {', '.join(label_metrics)} need(s) samples of the reference's "
                            f"classes; leave it out of --metrics, or evaluate against a reference with "
                            f"these classes (--ref folder:PATH with one subfolder per class)")
    if labels is not None and k and (labels.min() < 0 or labels.max() >= k):
        raise EvalError(f"labels must be in 0..{k - 1} (the classes of {ref}), "
                        f"got {labels.min()}..{labels.max()}")

    def train_features() -> Reference:
        if ref.startswith("folder:"):
            # A folder has no splits: its training set is the folder itself. Fewer images than asked
            # means the reference already holds all of them (one pass, one cache name); had it been
            # read again as "train", the same files were extracted and cached twice.
            if len(reference.features) < n_ref:
                return reference
            return reference_features(ref, ext, split=split, n=None, resolution=resolution, channels=channels,
                                      data_dir=data_dir, cache=cache, log=log)
        return reference_features(ref, ext, split="train", n=None, resolution=resolution, channels=channels,
                                  data_dir=data_dir, cache=cache, log=log)

    ctx = _Context(fake=fake, ref=reference, labels=labels, extractor=ext, classifier=classifier,
                   images=images, train=train_features, cache=cache, generator=generator,
                   class_logits=class_logits, data_dir=data_dir)
    groups: list[Metric] = []
    for key in wanted or list(METRICS):
        m = METRICS.get(key)
        why = _missing(m.needs, extractor=ext, classifier=classifier, labels=labels, ref=reference,
                       generator=generator)
        if why is not None:
            if wanted is not None:
                raise EvalError(f"metric '{key}' does not apply: {why}; leave it out of --metrics")
            continue
        if m not in groups:
            groups.append(m)
    values: dict[str, float] = {}
    for m in groups:
        out = m.compute(ctx)
        keep = [k for k in out if wanted is None or k in wanted or k.removesuffix("_std") in wanted]
        values.update({k: out[k] for k in keep})
    protocol = {
        "n_generated": len(fake), "n_reference": reference.info["n"], "reference": ref, "split": split,
        "reference_subset": SUBSET_RULE, "reference_resolution": reference.info["resolution"],
        "reference_channels": reference.info["channels"],
        "generated_shape": [channels, h, w],
        **ext.describe(),
        "classifier": classifier.name if classifier else None,
        "classifier_sha256": classifier.weights_sha256 if classifier else None,
        "kid_subsets": KID_SUBSETS, "kid_subset_size": subset_m(KID_SUBSET_SIZE, len(fake), reference.info["n"]),
        "pr_k": PR_K, "dc_k": DC_K, "is_splits": is_splits(IS_SPLITS, len(fake)),
        "memorization_quantile": memo.QUANTILE, "class_share_ratio": coverage.MIN_SHARE_RATIO,
        "reference_cache_key": reference.info["cache_key"], "ganforge": __version__,
        "feature_dim": int(fake.features.shape[1]),
        "warnings": small_sample_warnings(values, n_fake=len(fake), n_ref=reference.info["n"],
                                          dim=fake.features.shape[1], labels=labels,
                                          ref_labels=reference.labels, class_names=reference.class_names,
                                          ref=ref if ref.startswith("folder:") else f"{ref}/{split}",
                                          more_samples=more_samples)
        + ([f"{class_note}: the label metrics are left out"] if class_note else []),
    }
    return EvalResult(values, protocol, ctx.details)


def small_sample_warnings(values: dict, *, n_fake: int, n_ref: int, dim: int, labels=None,
                          option: str = "--n", ref: str | None = None,
                          more_samples: str | None = None, ref_labels=None,
                          class_names: Sequence[str] | None = None) -> list[str]:
    """What the sample sizes make unreliable, in words (the CLI prints them; the JSON keeps them).
    ``option``: what sets the number of samples, named in the advice (``eval.n`` during training).
    ``ref``: the reference's name (``folder:photos``, ``fashion-mnist/test``): when it holds fewer
    images than were generated, it is what limits n, and the advice says so instead of naming
    ``option``, which cannot change it. ``more_samples``: given when the generated images are all
    there are (an npz or folder holding fewer than asked; translate-eval's held-out images), how
    to get more (``write more samples to s.npz``, ``add held-out images to testA/ and testB/``):
    the advice names it instead of ``option``, which only lowers n (it had said "use --n 2000").
    ``labels``, ``ref_labels``: the generated and the reference images' classes, for intra_fid:
    the classes it leaves out, and the fewest images of a class it averages, on either side
    (``class_names``: the reference's, to name them)."""
    out = []
    n = min(n_fake, n_ref)
    short_ref = n_ref < n_fake  # the reference limits n: no value of the option raises it
    short_fake = more_samples is not None and not short_ref  # nor, here, the generated set

    def use(size: int) -> str:  # "--n 2000", "eval.n=2000"
        return f"{option}{'=' if '.' in option else ' '}{size}"

    def limited(metric: str, enough: str, fake_ok: bool) -> str:
        """The advice when the reference is the smaller side (``enough``: how many it needs)."""
        more = "" if fake_ok else f", with {option} at least as large"
        return (f"the reference {ref + ' ' if ref else ''}has only {n_ref} images, so {metric} "
                f"stay{'' if ' and ' in metric else 's'} unreliable at any {option}; add images to it or use a "
                f"larger reference ({enough}{more}), and compare only at equal n")

    def fixed(metric: str, enough: str) -> str:
        """The advice when the generated images are all there are (``enough``: how many it needs).
        ``more_samples`` says all it takes: the option may not be what caps the reference (the
        held-out sets of translate-eval), so it is not named as a fix."""
        return (f"there are only {n_fake} generated images, so {metric} "
                f"stay{'' if ' and ' in metric else 's'} unreliable at any {option}; {more_samples} "
                f"({enough}), and compare only at equal n")

    def advise(metric: str, enough: str, size: int, otherwise: str) -> str:
        """The advice for ``metric``, which needs ``size`` images a side (``enough`` in words)."""
        if short_ref:
            return limited(metric, enough, n_fake >= size)
        return fixed(metric, enough) if short_fake else otherwise

    if "fid" in values and n <= dim:
        advice = advise("fid", f"more than {dim}, thousands", dim + 1,
                        f"use {option} above {dim} (thousands) and compare FIDs only at equal n")
        out.append(f"fid from {n} samples of {dim}-dimensional features: the covariance is singular and "
                   f"FID is strongly biased upward at small n (Chong & Forsyth 2020); {advice}")
    if "intra_fid" in values and labels is not None and len(labels):
        out += _intra_fid_warnings(labels, ref_labels, dim=dim, option=option, ref=ref, n_ref=n_ref,
                                   short_ref=short_ref, class_names=class_names)
    if "is" in values and "is_std" not in values:
        size = IS_SPLITS * MIN_PER_SPLIT  # IS reads the generated images only
        advice = (f"{more_samples} ({size} or more, {IS_SPLITS} splits)" if more_samples is not None else
                  f"use {use(size)} or more ({IS_SPLITS} splits)")
        out.append(f"is from {n_fake} samples in one split (each split needs {MIN_PER_SPLIT}): no "
                   f"standard deviation; {advice}")
    m = subset_m(KID_SUBSET_SIZE, n_fake, n_ref)
    if "kid" in values and m < KID_SUBSET_SIZE:
        size = 2 * KID_SUBSET_SIZE
        advice = advise("kid", f"{size} or more", size, f"use {use(size)} or more and compare KIDs only at equal n")
        out.append(f"kid from subsets of {m} samples (the standard is {KID_SUBSET_SIZE}, from "
                   f"{size} samples): its mean stays unbiased but is noisy at small n and "
                   f"kid_std is measured at that subset size; {advice}")
    for keys, k in ((("precision", "recall"), PR_K), (("density", "coverage"), DC_K)):
        named = [key for key in keys if key in values]
        size = KNN_N_PER_K * k
        if named and n < size:
            what = " and ".join(named)
            advice = advise(what, f"{size} or more, {KNN_N_PER_K} x k", size,
                            f"use {use(size)} or more ({KNN_N_PER_K} x k) and compare only at equal n")
            out.append(f"{what} from {n} samples with k={k}: each k-nearest-neighbour ball "
                       f"holds {_share(k / n)} of its set (over 1%), so the balls are coarse and the values "
                       f"biased; {advice}")
    return out


def _share(fraction: float) -> str:
    """A share over 1% as a percentage that reads as over it: 3 of 250 is "1.2%", not "1%"."""
    return f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"


def _intra_fid_warnings(labels, ref_labels, *, dim: int, option: str, ref: str | None, n_ref: int,
                        short_ref: bool, class_names) -> list[str]:
    """intra_fid's part of ``small_sample_warnings``: the classes it leaves out, and a class with
    too few images for its covariance on the smaller side, over the classes it averages (a
    reference of 40 images a class had scored 14.78 instead of 2.44 with no warning, which
    counted only the generated images)."""
    out = []
    included, left_out = coverage.intra_fid_classes(labels, ref_labels)
    if left_out:
        out.append(f"intra_fid averages {len(included)} of {len(included) + len(left_out)} classes; left out: "
                   f"{', '.join(_left_out(left_out, class_names))} (a class needs 2 images on each side)")
    if not included:
        return out
    fewest_fake = min(f for f, _ in included.values())
    real = {c: r for c, (_, r) in included.items() if r is not None}
    thin = min(real, key=real.get) if real else None
    what = "each class's covariance is singular and its FID biased upward"
    if thin is not None and real[thin] < fewest_fake and real[thin] <= dim:
        k = len(class_names) if class_names else len(np.unique(np.asarray(ref_labels)))
        name = f"the reference {ref + ' ' if ref else ''}"
        fix = ("add images of each class to it or use a larger reference" if short_ref else
               f"use {option}{'=' if '.' in option else ' '}{dim * k + k} or more (more than {dim} "
               f"reference images of each of its {k} classes)")
        out.append(f"intra_fid from as few as {real[thin]} reference images of a class "
                   f"({_class_name(thin, class_names)}: {name}has {n_ref} images of {k} classes) against "
                   f"{dim}-dimensional features: {what}; {fix}, and compare only at equal n")
    elif fewest_fake <= dim:
        more = (f"eval RUN --n above {dim} x the classes, or ganforge sample --per-class" if option == "--n" else
                f"{option} above {dim} x the classes")
        out.append(f"intra_fid from as few as {fewest_fake} samples of a class against {dim}-dimensional "
                   f"features: {what}; use more than {dim} samples per class ({more}) and compare only at "
                   f"equal n")
    return out
