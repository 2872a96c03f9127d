"""Extractors, cached reference features, ``evaluate`` end to end and the training hook, on a
tiny Fashion-MNIST look-alike written here (no network, no real dataset needed)."""
from __future__ import annotations

import gzip
import math
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import random_dataset, tiny_config
from ganforge.metrics import EvalError, evaluate, get_extractor, training_hook
from ganforge.metrics import features as F
from ganforge.metrics.classifier import sha256_file
from ganforge.metrics.reference import reference_features

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def write_fake_fashion_mnist(folder: Path, n_train: int = 120, n_test: int = 60) -> Path:
    """IDX files with class-dependent blobs, so the images are neither constant nor pure noise."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def images(n):
        labels = np.arange(n) % 10
        yy, xx = np.mgrid[:28, :28]
        out = np.empty((n, 28, 28), np.uint8)
        for i, c in enumerate(labels):
            cy, cx = 6 + 2 * c, 8 + c
            blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (8 + 4 * (c % 3)))
            out[i] = np.clip(blob + rng.normal(0, 20, (28, 28)), 0, 255).astype(np.uint8)
        return out, labels.astype(np.uint8)

    def idx(array):
        code = 0x08
        return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = images(n)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(x)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(y)))
    return folder


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fake fashion-mnist in GANFORGE_DATA, an empty cache, and no reachable network."""
    data = write_fake_fashion_mnist(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("GANFORGE_DATA", str(data))
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


# ---------------------------------------------------------------- extractors


def test_cnn_extractor_accepts_gray_rgb_and_any_size():
    ext = get_extractor("fashion-mnist-cnn")
    gray = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = ext(gray)
    assert out.features.shape == (5, 128) and out.logits.shape == (5, 10)
    assert out.features.dtype == np.float32
    rgb = ext(gray.repeat(1, 3, 1, 1))  # replicated gray -> BT.601 luma gives the same image back
    np.testing.assert_array_equal(rgb.features, out.features)
    assert ext(torch.zeros(3, 3, 40, 33, dtype=torch.uint8)).features.shape == (3, 128)
    assert ext(np.zeros((2, 1, 7, 7), np.uint8)).logits.shape == (2, 10)
    assert "28x28" in ext.resize_mode and "luma" in ext.resize_mode
    assert ext.weights_sha256 == sha256_file(ext.path) and len(ext.weights_sha256) == 64
    with pytest.raises(EvalError, match=r"uint8 \[N, C, H, W\]"):
        ext(torch.zeros(2, 1, 28, 28))  # float
    with pytest.raises(EvalError, match="C = 1 or 3"):
        ext(torch.zeros(2, 2, 28, 28, dtype=torch.uint8))


def test_shipped_classifier_metadata():
    path = F.classifier_weights("fashion-mnist")
    assert path is not None and path.parent == F.packaged_weights_dir()
    import json

    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(path)
    assert meta["test_accuracy"] >= 0.93
    assert path.stat().st_size < 1_000_000
    assert meta["recipe"]["epochs"] > 0 and len(meta["class_names"]) == 10


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_shipped_classifier_accuracy_on_real_test_images():
    from ganforge.data import load_dataset

    test = load_dataset("fashion-mnist", split="test", data_dir=FMNIST_DIR)
    out = get_extractor("fashion-mnist-cnn")(test.images[:1000])
    assert (out.logits.argmax(1) == test.labels[:1000].numpy()).mean() > 0.92


def test_missing_mnist_classifier_says_how_to_train_it(env):
    if F.classifier_weights("mnist") is not None:
        pytest.skip("mnist-cnn weights are present")
    with pytest.raises(EvalError, match="ganforge train-classifier mnist") as err:
        get_extractor("mnist-cnn")
    assert "\n" not in str(err.value)


def test_module_extractor_with_and_without_logits():
    feats_only = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(128, 6))

    class WithLogits(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 5)), nn.Linear(5, 4)

        def forward(self, x):  # float [-1, 1]
            assert x.min() >= -1 and x.max() <= 1 and x.shape[1:] == (3, 8, 8)
            h = self.body(x)
            return h, self.head(h)

    a = F.ModuleExtractor(feats_only, resolution=8, channels=1)
    out = a(torch.zeros(4, 3, 20, 20, dtype=torch.uint8))
    assert out.features.shape == (4, 6) and out.logits is None and not a.has_logits
    b = F.ModuleExtractor(WithLogits(), resolution=8, channels=3, name="mine")
    out = b(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    assert out.features.shape == (4, 5) and out.logits.shape == (4, 4) and b.has_logits
    assert a.weights_sha256 != b.weights_sha256


def test_unknown_extractor_lists_valid_ones():
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown extractor 'incepton'.*did you mean 'inception'"):
        get_extractor("incepton")


def test_inception_offline_error_names_file_and_option(env, monkeypatch):
    monkeypatch.setattr(F, "INCEPTION_URL", closed_port_url())
    monkeypatch.setattr(F, "DOWNLOAD_TIMEOUT", 2.0)
    with pytest.raises(EvalError) as err:
        get_extractor("inception")
    msg = str(err.value)
    assert "\n" not in msg
    assert F.INCEPTION_FILE in msg and "--inception-weights PATH" in msg and "download failed" in msg
    assert "measure offline with --extractor fashion-mnist-cnn" in msg  # the way that works here
    assert str(env / "cache" / "weights") in msg
    assert not list((env / "cache" / "weights").glob("*"))  # no partial file left behind
    with pytest.raises(EvalError, match="--inception-weights .*nope.pth not found"):
        get_extractor("inception", inception_weights=env / "nope.pth")


def test_inception_download_is_checked_against_its_published_hash(env, monkeypatch, http_root):
    """The real download path against a local server: a file whose sha256 does not match the
    name's prefix is refused and nothing is left in the cache; the matching file is kept."""
    root, url = http_root
    (root / "w.pth").write_bytes(b"stand-in weights" * 64)
    monkeypatch.setattr(F, "INCEPTION_URL", url + "w.pth")
    dest = env / "cache" / "weights" / F.INCEPTION_FILE
    with pytest.raises(EvalError, match="not the published file"):
        F.resolve_inception_weights(None)
    assert not dest.exists() and not list(dest.parent.glob("*"))
    monkeypatch.setattr(F, "INCEPTION_SHA256_PREFIX", sha256_file(root / "w.pth")[:8])
    assert F.resolve_inception_weights(None) == dest and dest.read_bytes() == (root / "w.pth").read_bytes()


def test_a_bad_cached_inception_file_does_not_hide_a_good_one(env, monkeypatch):
    bad = env / "cache" / "weights" / F.INCEPTION_FILE
    good = env / "torch" / "hub" / "checkpoints" / F.INCEPTION_FILE
    for path, text in ((bad, b"truncated"), (good, b"the published bytes")):
        path.parent.mkdir(parents=True)
        path.write_bytes(text)
    monkeypatch.setattr(F, "INCEPTION_SHA256_PREFIX", sha256_file(good)[:8])
    assert F.find_inception_weights() == good and F.inception_available()
    assert F.resolve_inception_weights(None) == good


def test_inception_extractor_from_local_weights(env, monkeypatch):
    """The torch-fidelity network, loaded from a local file (random weights of the right shapes:
    the real ones cannot be downloaded here)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    with monkeypatch.context() as m:  # build the network once without any weights
        m.setattr(tfi, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = env / "cache" / "weights" / F.INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    from ganforge.metrics.evaluation import default_extractor

    # random weights are not the published file: refused, never labelled "inception"
    assert not F.inception_available()
    with pytest.warns(UserWarning, match="not the published Inception file"):
        assert default_extractor("fashion-mnist") == "fashion-mnist-cnn"
    with pytest.raises(EvalError, match=r"not the published file \(sha256 .*expected 6726825d"):
        get_extractor("inception")
    with pytest.raises(EvalError, match="not the published file"):
        get_extractor("inception", inception_weights=path)
    (env / "junk.pth").write_bytes(b"\x00not a zip" * 100)
    with pytest.raises(EvalError, match="not the published file"):
        get_extractor("inception", inception_weights=env / "junk.pth")

    # with the expected hash made the stand-in's, the same file is found, checked and used
    monkeypatch.setattr(F, "INCEPTION_SHA256_PREFIX", sha256_file(path)[:8])
    assert F.inception_available() and evaluate.__module__  # found in the cache, so it is the default
    assert default_extractor("fashion-mnist") == "inception"
    ext = get_extractor("inception")
    out = ext(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    assert out.features.shape == (2, 2048) and out.logits.shape == (2, 1008)
    assert ext.weights_sha256 == sha256_file(path) and "299" in ext.resize_mode
    torch.save({"not": torch.zeros(1)}, env / "wrong.pth")
    monkeypatch.setattr(F, "INCEPTION_SHA256_PREFIX", sha256_file(env / "wrong.pth")[:8])
    with pytest.raises(EvalError, match="does not hold FID Inception-v3 weights"):
        get_extractor("inception", inception_weights=env / "wrong.pth")
    (env / "junk.pth").write_bytes(b"\x00not a zip" * 101)
    monkeypatch.setattr(F, "INCEPTION_SHA256_PREFIX", sha256_file(env / "junk.pth")[:8])
    with pytest.raises(EvalError, match="not a torch tensor file"):
        get_extractor("inception", inception_weights=env / "junk.pth")


# ---------------------------------------------------------------- reference features and evaluate


def test_reference_features_are_cached_by_everything_that_matters(env):
    ext = get_extractor("fashion-mnist-cnn")
    first = reference_features("fashion-mnist", ext, split="test", n=40)
    again = reference_features("fashion-mnist", ext, split="test", n=40)
    assert not first.info["cache_hit"] and again.info["cache_hit"]
    assert Path(again.info["cache"]).parent == env / "cache" / "eval"  # GANFORGE_CACHE
    np.testing.assert_array_equal(first.features.features, again.features.features)
    np.testing.assert_array_equal(first.features.logits, again.features.logits)
    keys = {first.info["cache_key"],
            reference_features("fashion-mnist", ext, split="test", n=30).info["cache_key"],
            reference_features("fashion-mnist", ext, split="train", n=40).info["cache_key"],
            reference_features("fashion-mnist", ext, split="test", n=40, resolution=16).info["cache_key"],
            reference_features("fashion-mnist", ext, split="test", n=40, channels=3).info["cache_key"],
            reference_features("fashion-mnist", F.ModuleExtractor(nn.Flatten(), resolution=4, channels=1),
                               split="test", n=40).info["cache_key"]}
    assert len(keys) == 6
    assert first.labels is not None and len(first.labels) == 40


def test_evaluate_all_metrics_with_labels(env):
    from ganforge.data import load_dataset

    train = load_dataset("fashion-mnist", split="train")
    test = load_dataset("fashion-mnist", split="test")
    # "Generated" = training images with their labels: good classes, and every one a copy.
    torch.manual_seed(5)
    result = evaluate(train.images[:60], labels=train.labels[:60].numpy(), ref="fashion-mnist",
                      extractor="fashion-mnist-cnn")
    after = torch.randn(2)
    torch.manual_seed(5)
    assert torch.equal(after, torch.randn(2))  # building the extractor left the caller's stream alone
    v, p = result.values, result.protocol
    assert set(v) == {"fid", "kid", "kid_std", "is", "precision", "recall", "density", "coverage",
                      "classes_covered", "class_kl", "memorization", "label_accuracy", "intra_fid"}
    assert p["kid_subset_size"] == 30 and p["is_splits"] == 1  # 60 samples: half-size KID subsets
    assert any("fid from 60 samples of 128-dimensional" in w for w in p["warnings"])
    assert any("is from 60 samples in one split" in w for w in p["warnings"])
    assert v["memorization"] == 1.0
    assert all(math.isfinite(x) for x in v.values())
    assert p["n_generated"] == 60 and p["n_reference"] == 60 and p["split"] == "test"
    assert p["extractor"] == p["classifier"] == "fashion-mnist-cnn" and len(p["extractor_sha256"]) == 64
    assert p["reference_resolution"] == 28 and p["pr_k"] == 3 and p["dc_k"] == 5
    assert "28x28" in p["resize_mode"]
    assert len(result.details["class_histogram"]) == 10
    # The test split against itself: FID ~0, precision = recall = coverage = 1.
    same = evaluate(test.images, ref="fashion-mnist", extractor="fashion-mnist-cnn",
                    metrics="fid,precision,recall,coverage,memorization")
    assert same.values["fid"] == pytest.approx(0, abs=1e-4)
    assert same.values["precision"] == same.values["recall"] == same.values["coverage"] == 1.0
    assert same.values["memorization"] < 0.2  # held-out images are not copies
    assert set(same.values) == {"fid", "precision", "recall", "coverage", "memorization"}


def test_evaluate_rejects_metrics_that_do_not_apply(env):
    images = torch.zeros(10, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(EvalError, match="'label_accuracy' does not apply: the samples have no labels"):
        evaluate(images, ref="fashion-mnist", extractor="fashion-mnist-cnn", metrics=["label_accuracy"])
    module = F.ModuleExtractor(nn.Flatten(), resolution=8, channels=1)
    with pytest.raises(EvalError, match="'is' does not apply: extractor custom has no logits"):
        evaluate(images, ref="fashion-mnist", extractor=module, metrics="is")
    # Without --metrics, what does not apply is left out quietly.
    result = evaluate(images, ref="fashion-mnist", extractor=module, metrics=None)
    assert "is" not in result.values and "fid" in result.values and "classes_covered" in result.values
    from ganforge.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown metric 'fdi'"):
        evaluate(images, ref="fashion-mnist", metrics="fdi")
    with pytest.raises(EvalError, match="at least 6 generated images"):
        evaluate(images[:3], ref="fashion-mnist", extractor="fashion-mnist-cnn")


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")
def test_class_coverage_flags_a_one_class_generator_end_to_end(env):
    from ganforge.data import load_dataset

    test = load_dataset("fashion-mnist", split="test", data_dir=FMNIST_DIR)
    trousers = test.images[test.labels == 1][:200]  # a generator that only draws trousers
    result = evaluate(trousers, ref="fashion-mnist", extractor="fashion-mnist-cnn", n_ref=1000,
                      metrics="classes_covered,class_kl", data_dir=FMNIST_DIR)
    assert result.values["classes_covered"] == 1
    assert result.values["class_kl"] == pytest.approx(math.log(10), abs=0.1)
    varied = evaluate(test.images[:200], ref="fashion-mnist", extractor="fashion-mnist-cnn", n_ref=1000,
                      metrics="classes_covered,class_kl", data_dir=FMNIST_DIR)
    assert varied.values["classes_covered"] == 10 and varied.values["class_kl"] < 0.1


# ---------------------------------------------------------------- during training


def test_training_hook(env):
    from ganforge import api
    from ganforge.training.trainer import Trainer

    cfg = tiny_config()
    objective, dataset = api.build(cfg, random_dataset(n=64, resolution=16))
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                      device=torch.device("cpu"), progress=False)
    G = objective.nets["G"]
    G.train()
    buffers = [b.clone() for b in G.buffers()]
    hook = training_hook(cfg, metrics=["fid", "kid"], n=24)
    first = hook(trainer, 0)
    assert {"fid", "kid"} <= set(first) and all(isinstance(v, float) and math.isfinite(v) for v in first.values())
    assert G.training and all(torch.equal(a, b) for a, b in zip(buffers, G.buffers()))
    assert hook(trainer, 0) == first  # fixed noise, cached reference: same numbers
    with pytest.raises(EvalError):
        training_hook(cfg, metrics=["fid"], n=3)


def _hook_trainer(cfg):
    from ganforge import api
    from ganforge.training.trainer import Trainer

    objective, dataset = api.build(cfg, random_dataset(n=64, resolution=16))
    return Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                   device=torch.device("cpu"), progress=False)


def test_training_hook_in_one_process_scores_one_stream_of_chunks(env):
    """One process: the hook scores what it scored before the ranks could share the work, bit for
    bit: one stream seeded with the eval seed, drawn in chunks of 500, evaluated at once."""
    from ganforge.metrics import hook as hook_module

    cfg = tiny_config()
    trainer = _hook_trainer(cfg)
    G = trainer.objective.nets["G"]
    hook = training_hook(cfg, metrics=["fid", "kid"], n=520)
    got = hook(trainer, 0)
    gen = torch.Generator().manual_seed(hook_module.HOOK_SEED)
    G.eval()
    with torch.no_grad():
        images = torch.cat([F.to_uint8(trainer.objective.sample(k, generator=gen, nets=trainer.sample_nets()))
                            for k in (hook_module.CHUNK, 520 - hook_module.CHUNK)])
    G.train()
    # against the training split: the `best` checkpoint is never picked on the test split
    want = evaluate(images, ref="fashion-mnist", split="train", metrics=["fid", "kid"], n_ref=520,
                    extractor="fashion-mnist-cnn")
    assert got == {k: float(v) for k, v in want.values.items()} and set(got) == {"fid", "kid", "kid_std"}
    assert hook.protocol == {"extractor": "fashion-mnist-cnn", "extractor_sha256": want.protocol["extractor_sha256"],
                             "reference": "fashion-mnist", "split": "train", "n": 520, "seed": hook_module.HOOK_SEED}
    assert hook_module.HOOK_SEED != 0  # ganforge eval's default seed
    with torch.no_grad():  # a diverged generator scores NaN, not the black images uint8 makes of NaN
        for p in G.parameters():
            p.fill_(float("nan"))
        for p in trainer.sample_nets()["G"].parameters():
            p.fill_(float("nan"))
    assert all(math.isnan(v) for v in hook(trainer, 0).values())


def test_eval_blocks_are_the_same_latents_on_any_number_of_ranks(env):
    from ganforge.metrics.hook import BLOCK, rank_blocks, sample_blocks

    for n in (6, 99, 100, 250, 1001):
        everything = rank_blocks(n, 0, 1)
        assert sum(k for _, k in everything) == n and [b for b, _ in everything] == list(range(len(everything)))
        for size in (2, 3, 5, 16):
            shares = [rank_blocks(n, r, size) for r in range(size)]
            assert [b for share in shares for b in share] == everything and shares[0]
    trainer = _hook_trainer(tiny_config())
    nets = trainer.sample_nets()
    one = sample_blocks(trainer.objective, nets, 250, seed=4)
    three = [sample_blocks(trainer.objective, nets, 250, seed=4, rank=r, size=3) for r in range(3)]
    assert one.shape == (250, 1, 16, 16) and [len(t) for t in three] == [BLOCK, BLOCK, 50]
    assert torch.equal(torch.cat(three), one)
    assert not torch.equal(one[:BLOCK], one[BLOCK:2 * BLOCK])  # blocks draw different latents


class _RankView:
    """What the hook sees of a Trainer on rank ``rank`` of 2, with the collective played out in
    one process: rank 1 runs first and leaves its rows; rank 0 gathers them after its own."""

    def __init__(self, trainer, rank: int, sent: list):
        from ganforge.training.distributed import World

        self.world, self.objective, self.sample_nets = World(rank=rank, size=2), trainer.objective, trainer.sample_nets
        self._sent = sent

    def gather_rows(self, rows):
        if self.world.rank == 1:
            self._sent.append(rows)
            return None
        parts = [r for r in (rows, self._sent.pop(0)) if r is not None and len(r)]
        return np.concatenate(parts) if parts else None


def test_shared_hook_scores_the_gathered_features_of_every_block(env):
    """The hook's share on each of 2 ranks, gathered: the metrics of all 250 block-seeded samples
    in one process, with an extractor that is not the classifier (its logits and the classifier's
    logits are gathered too)."""
    from ganforge.metrics.hook import sample_blocks

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Sequential(nn.Flatten(), nn.Linear(256, 6)), nn.Linear(6, 4)

        def forward(self, x):
            h = self.body(x)
            return h, self.head(h)

    torch.manual_seed(0)
    ext = F.ModuleExtractor(Embed(), resolution=16, channels=1)
    cfg = tiny_config()
    trainer = _hook_trainer(cfg)
    names = ["fid", "is", "classes_covered"]
    hook = training_hook(cfg, metrics=names, n=250, extractor=ext, seed=5)
    sent: list = []
    assert hook(_RankView(trainer, 1, sent), 0) == {} and len(sent) == 4  # finite, features, logits, class logits
    assert [len(rows) for rows in sent] == [1, 50, 50, 50]  # rank 1: block 2 of 0-2
    got = hook(_RankView(trainer, 0, sent), 0)
    images = sample_blocks(trainer.objective, trainer.sample_nets(), 250, seed=5)
    want = evaluate(images, ref="fashion-mnist", split="train", metrics=names, n_ref=250, extractor=ext)
    assert set(got) == {"fid", "is", "is_std", "classes_covered"}
    assert got == pytest.approx({k: float(v) for k, v in want.values.items()}, rel=1e-5)
    # a diverged generator scores NaN on any number of ranks (its black uint8 images scored FID 482)
    with torch.no_grad():
        for net in trainer.sample_nets().values():
            for p in net.parameters():
                p.fill_(float("nan"))
    sent = []
    assert hook(_RankView(trainer, 1, sent), 0) == {}
    assert all(math.isnan(v) for v in hook(_RankView(trainer, 0, sent), 0).values())


def test_labels_are_matched_to_the_references_classes_by_name(tmp_path, monkeypatch):
    """Samples of Bag, Sneaker and Trouser labelled 0, 1, 2 (a folder or npz of three classes):
    label 0 is not Fashion-MNIST's class 0 (T-shirt/top). Compared by index, correctly labelled
    real images had scored label_accuracy 0.003 and intra_fid 748; matched by name they are
    compared with the reference's own Bags, Sneakers and Trousers."""
    from ganforge.data import load_dataset
    from ganforge.metrics.evaluation import match_classes

    data = write_fake_fashion_mnist(tmp_path / "fm", n_train=600, n_test=600)
    monkeypatch.setenv("GANFORGE_DATA", str(data))
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    train = load_dataset("fashion-mnist", split="train")
    names = list(train.class_names)
    mine = ["Bag", "sneaker ", "Trouser"]  # case and spaces as a folder may spell them
    keep = torch.isin(train.labels, torch.tensor([names.index(n) for n in ("Bag", "Sneaker", "Trouser")]))
    images = train.images[keep][:150]
    own = np.array([["Bag", "Sneaker", "Trouser"].index(names[k]) for k in train.labels[keep][:150]])
    assert match_classes(np.array([0, 1, 2, 0]), mine, names, "fashion-mnist")[0].tolist() == [8, 7, 1, 8]

    kw = dict(ref="fashion-mnist", extractor="fashion-mnist-cnn", metrics="intra_fid")
    matched = evaluate(images, labels=own, class_names=mine, **kw)
    by_index = evaluate(images, labels=own, **kw)  # no names: indices, as before
    assert matched.values["intra_fid"] < 0.5 * by_index.values["intra_fid"], (matched.values, by_index.values)
    assert set(matched.details["intra_fid_per_class"]) == {"1", "7", "8"}
    assert any("intra_fid from as few as" in w for w in matched.protocol["warnings"])  # 50 per class

    with pytest.raises(EvalError, match=r"^the samples' classes Cat are not classes of fashion-mnist "
                                        r"\(T-shirt/top, Trouser, Pullover, Dress, \.\.\.\): intra_fid need"):
        evaluate(images, labels=own % 2, class_names=["Bag", "Cat"], **kw)
    quiet = evaluate(images, labels=own % 2, class_names=["Bag", "Cat"], ref="fashion-mnist",
                     extractor="fashion-mnist-cnn", metrics=None)
    assert "intra_fid" not in quiet.values and "label_accuracy" not in quiet.values
    assert any("the label metrics are left out" in w for w in quiet.protocol["warnings"])


def test_eval_of_part_of_a_per_class_npz_takes_every_class(tmp_path):
    """sample --per-class writes the classes in order: eval --n 150 of 30 per class had scored
    classes 0-4 of 10 against a 10-class reference."""
    from ganforge.metrics.targets import load_target

    labels = np.repeat(np.arange(10), 30)
    images = np.stack([np.full((8, 8, 1), k, np.uint8) for k in labels])
    np.savez(tmp_path / "s.npz", images=images, labels=labels, class_names=np.array([f"c{k}" for k in range(10)]))
    got, got_labels, desc = load_target(tmp_path / "s.npz", n=150)
    assert np.bincount(got_labels).tolist() == [15] * 10
    assert torch.equal(got[:, 0, 0, 0].long(), torch.from_numpy(got_labels))  # images follow their labels
    assert desc["class_names"][0] == "c0" and len(load_target(tmp_path / "s.npz", n=None)[0]) == 300
