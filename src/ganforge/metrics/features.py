"""Feature extractors: the one protocol every metric sits on.

An extractor takes uint8 images [N, C, H, W] of any size with C in {1, 3} and returns
``Features``: float32 ``features`` [N, D] and, when it is a classifier, ``logits`` [N, K].
Each extractor adapts the images to its input itself and names how in ``resize_mode``:

- ``inception``: the FID Inception-v3 (TensorFlow weights of 2015-12-05 ported by torch-fidelity,
  the network pytorch-fid, torch-fidelity and clean-fid share; Szegedy et al. 2016, Heusel et al.
  2017). Grayscale is replicated to RGB; torch-fidelity resizes to 299x299 with TensorFlow 1.x's
  bilinear interpolation (no antialiasing), the legacy protocol published numbers use. Features:
  the 2048-d pool3 activation; logits: the 1008 unbiased ImageNet logits (Inception Score).
- ``fashion-mnist-cnn``, ``mnist-cnn``: ganforge's SmallCNN (classifier.py). Images go to
  28x28 by antialiased bilinear resizing, rounded to uint8 (``ganforge.data``'s adapt_images, the
  same resizing the training data gets), and RGB to gray by ITU-R BT.601 luma. Features: the
  128-d penultimate activation; logits: the 10 classes.
- any ``torch.nn.Module``: ``ModuleExtractor(module, resolution=..., channels=...)``.

Named extractors live in the ``EXTRACTORS`` registry: ``get_extractor(name)``.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from .errors import EvalError


def _is_extractor_factory(obj) -> bool:
    """Called with keyword arguments only (get_extractor): an Extractor itself takes images."""
    return callable(obj) and not (isinstance(obj, Extractor) and type(obj).__call__ is Extractor.__call__)


EXTRACTORS: Registry[Callable[..., "Extractor"]] = Registry(
    "extractor", check=_is_extractor_factory,
    expects="a function taking keyword arguments and returning an Extractor, e.g. "
            "lambda **_: ModuleExtractor(net) (CONTRIBUTING.md, 'Other extension points')")

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
# The leading hex digits of the published file's sha256, carried in its name (torch hub's
# check_hash convention); any other file would give numbers that do not compare with papers.
INCEPTION_SHA256_PREFIX = INCEPTION_FILE.rsplit("-", 1)[1].split(".")[0]
DOWNLOAD_TIMEOUT = 30.0  # seconds of silence before a download is given up
PROBE_STEPS = 1000  # a module's probe output is hashed in thousandths of its largest value


@dataclass
class Features:
    features: np.ndarray  # float32 [N, D]
    logits: np.ndarray | None  # float32 [N, K] for classifiers

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, index) -> "Features":
        return Features(self.features[index], None if self.logits is None else self.logits[index])


class Extractor:
    """Base class: subclasses set the attributes and implement ``_forward``."""

    name: str = "extractor"
    weights_sha256: str | None = None  # identifies the weights in the protocol and the cache key
    resize_mode: str = ""
    class_names: list[str] | None = None  # set for classifiers of a dataset's classes
    batch_size: int = 500
    device: torch.device = torch.device("cpu")

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 [B, C, H, W] on the CPU (C in {1, 3}) -> (features [B, D], logits [B, K] or None)."""
        raise NotImplementedError

    @property
    def has_logits(self) -> bool:
        return True

    @torch.no_grad()
    def __call__(self, images, *, progress: Callable[[int], None] | None = None) -> Features:
        """Features of uint8 images [N, C, H, W] (a tensor or an array), in batches."""
        images = as_uint8_nchw(images)
        feats, logits = [], []
        for start in range(0, len(images), self.batch_size):
            f, lg = self._forward(images[start:start + self.batch_size])
            feats.append(f.float().cpu().numpy())
            if lg is not None:
                logits.append(lg.float().cpu().numpy())
            if progress is not None:
                progress(min(start + self.batch_size, len(images)))
        d = feats[0].shape[1] if feats else 0
        return Features(np.concatenate(feats) if feats else np.zeros((0, d), np.float32),
                        np.concatenate(logits) if logits else None)

    def describe(self) -> dict:
        return {"extractor": self.name, "extractor_sha256": self.weights_sha256,
                "resize_mode": self.resize_mode}


def as_uint8_nchw(images) -> torch.Tensor:
    """Check and convert the protocol's input: uint8 [N, C, H, W] with C in {1, 3}. uint8
    [N, H, W, C] (samples.npz, ``sample_uint8``) is taken too (copied to NCHW) where the
    layout is unambiguous: 1 or 3 channels last and not in dim 1 (README's own
    ``evaluate(g.sample_uint8(300), ...)`` had been refused, pointing at to_uint8, which passes
    uint8 through)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4 \
            and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.permute(0, 3, 1, 2).contiguous()  # NHWC, the file-boundary layout
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        dtype = getattr(images, "dtype", None)
        fix = ("convert float [-1, 1] images with ganforge.metrics.to_uint8" if dtype != torch.uint8 else
               "give 1 or 3 channels, in dim 1 (NCHW) or last (NHWC)")
        raise EvalError(f"images must be uint8 [N, C, H, W] (or [N, H, W, C]) with C = 1 or 3, got {dtype} "
                        f"{shape}; {fix}")
    return images


def to_uint8(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """float NCHW in [-1, 1] -> uint8 NCHW, rounded as samples.npz files are written.

    A numpy array is converted to a tensor first. uint8 input is already converted and passes
    through unchanged (it had been clamped to [-1, 1]: all 255s); any other dtype (ints, bool)
    is refused in one line, since its range is unknown."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise EvalError(f"to_uint8 takes float images in [-1, 1] (a tensor or numpy array), got "
                        f"{type(images).__name__}")
    if images.dtype == torch.uint8:
        return images
    if not images.dtype.is_floating_point:
        raise EvalError(f"to_uint8 takes float images in [-1, 1] (or uint8, passed through), got "
                        f"{images.dtype}; scale them to [-1, 1] floats first")
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _resize_uint8(images: torch.Tensor, resolution: int | None, channels: int) -> torch.Tensor:
    """uint8 [B, C, H, W] -> uint8 [B, channels, resolution, resolution] (None: keep the size),
    exactly as ganforge.data adapts training images."""
    from ..data.base import adapt_images

    return adapt_images(images, resolution, channels)


def tensor_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names, shapes, dtypes and values (for modules without a file)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- user modules


class ModuleExtractor(Extractor):
    """Any nn.Module as an extractor (the Python API's way to plug in your own network).

    The module receives float images in [-1, 1], [B, channels, resolution, resolution] (resized
    as the CNN extractors do; ``resolution=None`` keeps the input size), and returns features
    [B, D] or a tuple (features [B, D], logits [B, K]).
    """

    def __init__(self, module: nn.Module, *, name: str = "custom", resolution: int | None = None,
                 channels: int = 3, class_names: list[str] | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 256):
        self.module = module.eval().to(device)
        self.name, self.resolution, self.channels = name, resolution, channels
        self.class_names = class_names
        self.device, self.batch_size = torch.device(device), batch_size
        self.weights_sha256 = tensor_sha256(module.state_dict())
        # the code as well as the weights: two modules without parameters (pooling feature maps),
        # or one network read at another layer, had shared a cache key, and the second was scored
        # against the first one's cached reference features (FID 6.57 for 0.81)
        kind = type(module)
        self.module_sha256 = hashlib.sha256(f"{kind.__module__}.{kind.__qualname__}\n{module!r}".encode()).hexdigest()
        size = f"{resolution}x{resolution}" if resolution else "input size"
        self.resize_mode = (f"bilinear-antialias to {size} (uint8), "
                            f"{'gray->RGB replicate' if channels == 3 else 'RGB->gray BT.601 luma'}, "
                            f"then x/127.5 - 1")
        self._has_logits: bool | None = None
        self._probe_sha256: str | None = None

    def describe(self) -> dict:
        return {**super().describe(), "module_sha256": self.module_sha256, "probe_sha256": self.probe_sha256}

    PROBE_IMAGES = 2  # enough to tell modules apart; a forward pass of two images costs little

    @property
    def probe_sha256(self) -> str:
        """A hash of the module's output on fixed images (once per extractor): the class, repr and
        weights miss a plain attribute (a scale, a layer index) and an edited forward(), and two
        such modules had shared a cache key, the second scored against the first one's reference
        features (FID 17.85 for 179.4). Rounded to a thousandth of the largest value, so that
        another thread count, which moves the last bits, keeps the cache (another device may not)."""
        if self._probe_sha256 is None:
            size = self.resolution or 32
            gen = torch.Generator().manual_seed(0)  # its own stream: the caller's RNG is untouched
            images = torch.randint(0, 256, (self.PROBE_IMAGES, self.channels, size, size), generator=gen,
                                   dtype=torch.uint8)
            h = hashlib.sha256(f"probe {tuple(images.shape)};".encode())
            training = self.module.training
            self.module.eval()
            try:
                with torch.no_grad():
                    outs = self._forward(images)
            except Exception as exc:  # a module that takes only its own input size (resolution=None)
                h.update(f"no probe: {type(exc).__name__}".encode())
                outs = ()
            finally:
                self.module.train(training)
            for out in outs:
                if out is None:
                    h.update(b"none;")
                    continue
                values = np.nan_to_num(out.detach().double().cpu().numpy())
                scale = float(np.abs(values).max(initial=0.0)) or 1.0
                h.update(f"{values.shape} {scale:.3g};".encode())
                h.update(np.round(values / scale * PROBE_STEPS).astype(np.int64).tobytes())
            self._probe_sha256 = h.hexdigest()
        return self._probe_sha256

    @property
    def has_logits(self) -> bool:
        if self._has_logits is None:  # find out with one tiny batch
            size = self.resolution or 32
            with torch.no_grad():
                self._forward(torch.zeros(2, self.channels, size, size, dtype=torch.uint8))
        return bool(self._has_logits)

    def _forward(self, images):
        images = _resize_uint8(images, self.resolution, self.channels)
        out = self.module(images.to(self.device).float() / 127.5 - 1)
        feats, logits = (out if isinstance(out, (tuple, list)) else (out, None))[:2]
        self._has_logits = logits is not None
        return feats.flatten(1), logits


# ----------------------------------------------------------------------------- ganforge CNNs


def packaged_weights_dir() -> Path:
    return Path(str(resources.files("ganforge.metrics") / "weights"))


def user_weights_dir() -> Path:
    from ..data.download import cache_root

    return cache_root() / "weights"


def classifier_weights(dataset: str) -> Path | None:
    """The weights of ``<dataset>-cnn``: shipped in the package first, then the user cache."""
    for folder in (packaged_weights_dir(), user_weights_dir()):
        path = folder / f"{dataset}-cnn.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    return None


class ClassifierExtractor(Extractor):
    """A ganforge SmallCNN: 128-d penultimate features and class logits."""

    resize_mode = ("bilinear-antialias to 28x28 (uint8, as ganforge.data resizes), "
                   "RGB->gray BT.601 luma, then x/127.5 - 1")

    def __init__(self, dataset: str, path: Path | None = None, *, device: str | torch.device = "cpu",
                 batch_size: int = 256):
        from . import classifier

        path = Path(path) if path is not None else classifier_weights(dataset)
        if path is None or not path.is_file():
            where = f"{packaged_weights_dir()} or {user_weights_dir()}"
            raise EvalError(f"no {dataset}-cnn weights in {where}; train them with "
                            f"'ganforge train-classifier {dataset}' (a few minutes on CPU)")
        self.model, self.meta = classifier.load(path)
        # channels_last: about 1.7x faster convolutions on CPU (oneDNN), same results.
        self.model.to(device, memory_format=torch.channels_last)
        self.name = f"{dataset}-cnn"
        self.dataset, self.path = dataset, path
        self.class_names = list(self.meta["class_names"])
        self.weights_sha256 = classifier.sha256_file(path)
        self.device, self.batch_size = torch.device(device), batch_size
        self.resolution, self.channels = 28, self.model.in_channels

    def _forward(self, images):
        x = _resize_uint8(images, self.resolution, self.channels).to(self.device)
        return self.model.embed(x.contiguous(memory_format=torch.channels_last))


def _classifier_factory(dataset: str):
    def make(*, device="cpu", **_) -> ClassifierExtractor:
        return ClassifierExtractor(dataset, device=device)

    return make


# Datasets with a classifier recipe (``ganforge train-classifier NAME``).
CLASSIFIER_DATASETS = ("fashion-mnist", "mnist")
for _dataset in CLASSIFIER_DATASETS:
    EXTRACTORS.register(f"{_dataset}-cnn")(_classifier_factory(_dataset))


# ----------------------------------------------------------------------------- inception


def inception_search_paths() -> list[Path]:
    """Where Inception weights are looked for: the ganforge cache, then torch hub's cache
    (where torch-fidelity and torchmetrics put them)."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    return [user_weights_dir() / INCEPTION_FILE, hub / "hub" / "checkpoints" / INCEPTION_FILE]


def find_inception_weights() -> Path | None:
    """The first search path holding the published file; else the first holding any file of
    that name (which ``check_inception_weights`` then refuses, naming it); else None."""
    present = [p for p in inception_search_paths() if p.is_file()]
    return next((p for p in present if inception_weights_ok(p)), present[0] if present else None)


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, hashed once


def _file_sha256(path: Path) -> str:
    from .classifier import sha256_file

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


def inception_weights_ok(path: Path) -> bool:
    """True when ``path`` is the published FID Inception file (its sha256 starts with the
    prefix in its name)."""
    return _file_sha256(path).startswith(INCEPTION_SHA256_PREFIX)


def check_inception_weights(path: Path, *, given: bool = False) -> None:
    """Refuse a file that is not the published weights: a truncated download, a random-weights
    stand-in or another network would be labelled 'inception' and give meaningless FIDs.
    ``given``: the user named the file (--inception-weights), which is theirs, not ours to have
    them delete."""
    if not inception_weights_ok(path):
        fix = (f"pass the published file ({INCEPTION_FILE}, from {INCEPTION_URL})" if given else
               f"delete it and download {INCEPTION_URL} again")
        raise EvalError(f"Inception weights {path} are not the published file (sha256 "
                        f"{_file_sha256(path)[:12]}..., expected {INCEPTION_SHA256_PREFIX}...); {fix}, "
                        f"or use --extractor with another extractor")


def _download_inception(dest: Path) -> None:
    """Fetch the weights to ``dest`` through a temporary file (no partial file is ever left)."""
    from ..atomic import atomic_path

    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(INCEPTION_URL, timeout=DOWNLOAD_TIMEOUT) as resp, open(tmp, "wb") as f:
            for block in iter(lambda: resp.read(1 << 20), b""):
                f.write(block)
        check_inception_weights(tmp)  # a truncated or wrong file fails here, before the rename


def _load_inception_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except Exception:
        raise EvalError(f"Inception weights {path} are not a torch tensor file (corrupt or the wrong "
                        f"file); download {INCEPTION_URL} again") from None


def resolve_inception_weights(path: str | Path | None, *, download: bool = True) -> Path:
    """The weights file to use: ``path`` if given, else a cached copy, else a download."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise EvalError(f"--inception-weights {path} not found; pass the path of {INCEPTION_FILE}")
        check_inception_weights(path, given=True)
        return path
    found = find_inception_weights()
    if found is not None:
        check_inception_weights(found)
        return found
    dest = user_weights_dir() / INCEPTION_FILE
    if download:
        try:
            _download_inception(dest)
            return dest
        except OSError as exc:  # offline, DNS, refused, timeout: all URLError/OSError
            reason = " ".join(str(getattr(exc, "reason", exc)).split())[:80]
            raise InceptionWeightsMissing(dest, f" and the download failed ({reason})") from None
    raise InceptionWeightsMissing(dest)


class InceptionWeightsMissing(EvalError):
    """No Inception weights here, and none could be downloaded. The fixes it names are the
    eval commands' flags; ``fixes(...)`` says them another way (training's config keys)."""

    def __init__(self, dest: Path, failed: str = ""):
        self.dest, self.failed = dest, failed
        super().__init__(self.fixes("pass --inception-weights PATH", "--extractor fashion-mnist-cnn"))

    def fixes(self, weights: str | None, offline: str) -> str:
        """The message, with ``weights`` (another way to give the file, if any) and ``offline``
        (how to choose another extractor) as the caller takes them."""
        also = f", {weights}," if weights else ""
        return (f"Inception weights {INCEPTION_FILE} not found in {self.dest.parent}{self.failed}; download "
                f"{INCEPTION_URL} to {self.dest}{also} or measure offline with {offline} (its "
                f"numbers compare only with its own)")


class InceptionExtractor(Extractor):
    resize_mode = "gray->RGB replicate, TF1-compatible bilinear to 299x299 (torch-fidelity)"

    def __init__(self, weights: str | Path | None = None, *, device: str | torch.device = "cpu",
                 batch_size: int = 64, download: bool = True):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise EvalError("the inception extractor needs torch-fidelity; pip install torch-fidelity, "
                            "or use --extractor fashion-mnist-cnn") from None
        path = resolve_inception_weights(weights, download=download)
        _load_inception_state(path)  # proves the file holds only tensors before torch-fidelity loads it
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                                   feature_extractor_weights_path=str(path))
        except RuntimeError as exc:
            raise EvalError(f"{path} does not hold FID Inception-v3 weights "
                            f"({str(exc).splitlines()[0][:100]}); use {INCEPTION_URL}") from None
        self.name = "inception"
        self.path = path
        self.weights_sha256 = _file_sha256(path)
        self.device, self.batch_size = torch.device(device), batch_size
        self.net.to(self.device)

    def _forward(self, images):
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.net(images.contiguous().to(self.device))


@EXTRACTORS.register("inception")
def _inception(*, inception_weights=None, device="cpu", **_) -> InceptionExtractor:
    return InceptionExtractor(inception_weights, device=device)


def inception_available(weights: str | Path | None = None) -> bool:
    """True when the inception extractor would work without a download."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return False
    path = Path(weights).expanduser() if weights else find_inception_weights()
    return path is not None and path.is_file() and inception_weights_ok(path)


def get_extractor(name: str | Extractor | nn.Module, **kwargs) -> Extractor:
    """An extractor by registry name (``inception``, ``fashion-mnist-cnn``, ...); an Extractor
    passes through and a bare nn.Module is wrapped in ModuleExtractor."""
    if isinstance(name, Extractor):
        return name
    if isinstance(name, nn.Module):
        return ModuleExtractor(name)
    return EXTRACTORS.get(name)(**kwargs)
