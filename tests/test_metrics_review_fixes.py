"""Review fixes of the metrics: a module extractor's reference cache key follows what the module
computes (a plain attribute, an edited forward()), the small-sample advice names what limits n
when it is the generated set (an npz holding fewer than --n, translate-eval's held-out images),
and the unpaired translate-eval table says at what size and by which extractor it scored and
shows the untranslated KID. Tiny sizes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganforge import api
from ganforge.config import apply_overrides, from_dict
from ganforge.data import pairs
from ganforge.metrics import Extractor
from ganforge.metrics.evaluation import small_sample_warnings
from ganforge.metrics.features import ModuleExtractor
from ganforge.metrics.paired import evaluate_unpaired, format_translation
from ganforge.metrics.reference import reference_features

# ----------------------------------------------------------------------------- 1: module cache key


class Scaled(nn.Module):
    """No parameters and a repr without its scale: only the output tells two of them apart."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        return self.pool(x).flatten(1) * self.scale


def _edited(read_max: bool) -> nn.Module:
    """The same class name, repr and (empty) weights with another forward(), as after an edit."""
    class Net(nn.Module):
        def forward(self, x):
            return x.amax((2, 3)) if read_max else x.mean((2, 3))

    return Net()


def _folder(root, n: int, size: int = 12, seed: int = 0):
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / f"{i:02d}.png")
    return root


def test_module_extractors_differing_in_an_attribute_or_forward_do_not_share_cached_features(
        tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    ref = f"folder:{_folder(tmp_path / 'photos', 6)}"
    one = ModuleExtractor(Scaled(1.0), resolution=8, channels=1)
    ten = ModuleExtractor(Scaled(10.0), resolution=8, channels=1)
    assert one.weights_sha256 == ten.weights_sha256 and one.module_sha256 == ten.module_sha256
    first = reference_features(ref, one, split="all", n=None, resolution=8, channels=1)
    second = reference_features(ref, ten, split="all", n=None, resolution=8, channels=1)
    assert not second.info["cache_hit"]  # had been a hit: the scale-1 features scored for scale 10
    np.testing.assert_allclose(second.features.features, 10 * first.features.features, rtol=1e-5)
    # an edited forward() under the same class name and repr gets a key of its own
    mean, peak = (ModuleExtractor(_edited(m), resolution=8, channels=1) for m in (False, True))
    assert mean.module_sha256 == peak.module_sha256 and mean.describe() != peak.describe()
    # the same network, built again, keeps its cache
    again = ModuleExtractor(Scaled(10.0), resolution=8, channels=1)
    assert again.describe() == ten.describe()
    assert reference_features(ref, again, split="all", n=None, resolution=8, channels=1).info["cache_hit"]


def test_the_probe_runs_in_eval_mode_without_grad_and_leaves_the_module_and_rng_as_they_were():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Flatten())
    ext = ModuleExtractor(net, resolution=8, channels=1)
    net.train()  # dropout on: the probe must not depend on it
    state = torch.get_rng_state()
    key = ext.describe()["probe_sha256"]
    assert net.training and torch.equal(state, torch.get_rng_state())
    fresh = ModuleExtractor(net, resolution=8, channels=1)  # eval() in __init__
    assert fresh.describe()["probe_sha256"] == key


# ----------------------------------------------------------------------------- 2: generated-limited advice

VALUES = dict.fromkeys(("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "is"), 0.5)


def test_advice_names_how_to_get_more_samples_when_the_generated_set_limits_n():
    more = "write more samples to s.npz"
    short = small_sample_warnings(VALUES, n_fake=62, n_ref=10_000, dim=128, ref="fashion-mnist/test",
                                  more_samples=more)
    assert len(short) == 5  # fid, is, kid, precision/recall, density/coverage
    for warning in short:
        assert "use --n" not in warning, warning  # --n only lowers n here
        assert f"{more} (" in warning and "\n" not in warning, warning
    (kid,) = [w for w in short if w.startswith("kid from subsets of 31 samples")]
    assert kid.endswith("there are only 62 generated images, so kid stays unreliable at any --n; "
                        "write more samples to s.npz (2000 or more), and compare only at equal n")
    (pr,) = [w for w in short if w.startswith("precision and recall")]
    assert "precision and recall stay unreliable" in pr and f"{more} (300 or more, 100 x k)" in pr
    (is_,) = [w for w in short if w.startswith("is from 62 samples")]
    assert is_.endswith(f"{more} (1000 or more, 10 splits)")
    # a reference smaller still: it is what limits n, named as before
    ref_side = small_sample_warnings({"kid": 0.1}, n_fake=62, n_ref=40, dim=128, ref="folder:p", more_samples=more)
    assert "the reference folder:p has only 40 images" in ref_side[0] and more not in ref_side[0]
    # not given: the option's advice, as before
    assert "use --n 2000 or more" in small_sample_warnings({"kid": 0.1}, n_fake=62, n_ref=10_000, dim=128)[0]


def test_evaluate_passes_more_samples_to_its_warnings(tmp_path, monkeypatch):
    from ganforge.metrics import evaluate

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    ref = f"folder:{_folder(tmp_path / 'photos', 30, size=8)}"
    images = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ext = ModuleExtractor(Scaled(1.0), resolution=8, channels=1)
    result = evaluate(images, ref=ref, n_ref=30, extractor=ext, metrics=["kid"],
                      more_samples="write more samples to s.npz")
    (kid,) = result.protocol["warnings"]
    assert "there are only 20 generated images" in kid and "s.npz (2000 or more" in kid and "use --n" not in kid


# ----------------------------------------------------------------------------- 2, 3: translate-eval


class MeanColour(Extractor):
    """Features a test can afford: each image's per-channel mean and spread on [0, 1] (6-D)."""

    name, weights_sha256, resize_mode = "mean-colour", "feedfacecafe0123", "as given"

    def _forward(self, images):
        x = images.float().expand(-1, 3, -1, -1).flatten(2) / 255
        return torch.cat([x.mean(2), x.std(2)], 1), None


@pytest.fixture(scope="module")
def cyclegan_run(tmp_path_factory):
    """A one-step cyclegan on 16 px crops of images loaded at translate.load_size=20."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cyc")
    for k, side in enumerate(("trainA", "trainB", "testA", "testB")):
        folder = root / "data" / side
        folder.mkdir(parents=True)
        rng = np.random.default_rng(k)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    raw = {"objective": "cyclegan", "data": {"name": f"folder:{root / 'data'}", "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4}, "translate": {"d_layers": 1},
           "train": {"steps": 1, "batch_size": 2, "log_every": 1, "sample_every": 1, "checkpoint_every": 1,
                     "n_sample_grid": 2, "device": "cpu", "seed": 0, "ema_decay": 0.0}}
    cfg = from_dict(apply_overrides(raw, ["translate.task=unpaired", "translate.n_blocks=1", "loss.name=lsgan",
                                          "translate.load_size=20"]))
    api.train(cfg, root / "run", progress=False)
    run = api.load(root / "run")
    return run, pairs.load_pairs(run.config, evaluating=True)


def test_translate_eval_names_the_held_out_sets_not_n_when_every_image_is_used(cyclegan_run):
    run, data = cyclegan_run
    warnings = evaluate_unpaired(run, data, extractor=MeanColour())["warnings"]
    small = [w for w in warnings if w.startswith(("AtoB: ", "BtoA: "))]
    assert len(small) == 4  # fid and kid, each direction
    for w in small:
        assert "use --n" not in w and "add held-out images to the dataset's testA/ and testB/ (" in w, w
    # --n below the held-out sets: raising it helps, and the advice says so
    limited = evaluate_unpaired(run, data, extractor=MeanColour(), limit=2)["warnings"]
    assert any("use --n 2000 or more" in w for w in limited)


def test_unpaired_table_shows_the_size_scored_the_extractor_and_the_untranslated_kid(cyclegan_run):
    run, data = cyclegan_run
    result = evaluate_unpaired(run, data, extractor=MeanColour())
    assert result["size"] == [20, 20] and run.config.data.resolution == 16  # load_size, not the crop
    assert result["extractor"] == "mean-colour" and result["extractor_sha256"] == "feedfacecafe0123"
    assert result["resize_mode"] == "as given"
    json.dumps(result)  # the JSON keeps them
    lines = format_translation(result).splitlines()
    header, rows = lines[1], lines[2:4]
    assert header.rstrip().endswith("FID untranslated  KID untranslated")
    for direction, row in zip(("AtoB", "BtoA"), rows):
        assert len(row) == len(header)
        assert row.split()[-1] == f"{result[direction]['baseline_kid']:.4f}"
    assert "held-out images scored at 20x20; extractor mean-colour (feedfacecafe), as given" in lines
