"""A reference smaller than the samples: the small-sample warnings name it (no --n can raise it),
a folder's memorization set is the folder read once, the truncation plot says how many reference
images it used; check_reference's list and its refusal of a reference that is not a name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import ConfigError
from test_metrics_eval import env  # noqa: F401 (fixture)

VALUES = dict.fromkeys(("fid", "kid", "kid_std", "precision", "recall", "density", "coverage"), 0.5)


def _folder(root, n: int, seed: int = 0):
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_a_reference_smaller_than_the_samples_is_named_instead_of_the_option():
    from ganforge.metrics.evaluation import small_sample_warnings

    short = small_sample_warnings(VALUES, n_fake=2000, n_ref=62, dim=128, ref="folder:photos")
    assert len(short) == 4  # fid, kid, precision/recall, density/coverage
    for warning in short:
        assert "the reference folder:photos has only 62 images" in warning, warning
        assert "unreliable at any --n" in warning and "use --n" not in warning, warning
        assert "compare only at equal n" in warning and "\n" not in warning
    (kid,) = [w for w in short if w.startswith("kid from subsets of 31 samples")]
    assert "kid stays unreliable" in kid and "(2000 or more)" in kid
    (pr,) = [w for w in short if w.startswith("precision and recall from 62 samples")]
    assert "precision and recall stay unreliable" in pr and "(300 or more, 100 x k)" in pr
    # --n below the size too: the advice asks for both
    both = small_sample_warnings({"kid": 0.1}, n_fake=100, n_ref=62, dim=128, ref="folder:photos")
    assert "(2000 or more, with --n at least as large)" in both[0]
    # the generated side smaller (or equal): the option's advice, as before
    fake_side = small_sample_warnings(VALUES, n_fake=62, n_ref=2000, dim=128, ref="folder:photos")
    assert len(fake_side) == 4 and all("has only" not in w for w in fake_side)
    assert any("use --n 2000 or more" in w for w in fake_side)
    assert any("use --n 300 or more (100 x k)" in w for w in fake_side)
    # during training (no name given): the reference is still named as the limit, with eval.n
    trained = small_sample_warnings({"kid": 0.1}, n_fake=500, n_ref=62, dim=128, option="eval.n")
    assert trained[0].endswith("the reference has only 62 images, so kid stays unreliable at any eval.n; add "
                               "images to it or use a larger reference (2000 or more, with eval.n at least as large), "
                               "and compare only at equal n")


def test_evaluate_against_a_small_folder_reads_it_once_and_names_it(env, tmp_path):  # noqa: F811
    from ganforge.metrics import evaluate
    from ganforge.metrics.reference import cache_dir

    photos = _folder(tmp_path / "photos", 12)
    logs: list[str] = []
    result = evaluate(_images(40), ref=f"folder:{photos}", n_ref=40, extractor="fashion-mnist-cnn",
                      metrics=["kid", "precision", "recall", "memorization"], log=logs.append)
    assert result.protocol["n_reference"] == 12 and result.details["memorization_n_train"] == 12
    assert 0 <= result.values["memorization"] <= 1
    # one features pass over the folder, one cache file: it had also been read as ".../train"
    computing = [line for line in logs if line.startswith("computing")]
    assert len(computing) == 1 and f"folder:{photos}/all" in computing[0], logs
    features = sorted(p.name for p in cache_dir().glob("*.npz") if not p.name.startswith("value-"))
    assert len(features) == 1 and "-all-12-" in features[0], features
    warnings = result.protocol["warnings"]
    assert len(warnings) == 2 and all(f"the reference folder:{photos} has only 12 images" in w for w in warnings)
    assert not any("use --n" in w for w in warnings)

    # a reference subset of the folder: the memorization set is still the whole folder
    subset = evaluate(_images(8), ref=f"folder:{photos}", extractor="fashion-mnist-cnn",
                      metrics=["memorization"])
    assert subset.protocol["n_reference"] == 8 and subset.details["memorization_n_train"] == 12


def test_bench_truncation_plot_title_says_how_many_reference_images(tmp_path, monkeypatch):
    import matplotlib.axes

    from ganforge.bench import truncation

    titles: list[str] = []
    original = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda self, label, *a, **k: (titles.append(label), original(self, label, *a, **k))[1])
    rows = [{"truncation": t, "fid": 10.0 + t, "precision": 0.5, "recall": 0.4} for t in (0.5, 1.0)]
    result = {"run": str(tmp_path / "run"), "objective": "stylegan2", "step": 3, "n": 200, "results": rows,
              "protocol": {"extractor": "fashion-mnist-cnn", "n_reference": 62}}
    truncation.plot(result, tmp_path / "a.png")
    result["protocol"]["n_reference"] = 200
    truncation.plot(result, tmp_path / "b.png")
    assert titles == ["run (stylegan2, step 3, n=200 vs 62 reference)", "run (stylegan2, step 3, n=200)"]
    assert (tmp_path / "a.png").stat().st_size > 0


def test_an_unknown_reference_lists_folder_path_once():
    from ganforge.metrics import evaluate
    from ganforge.metrics.evaluation import check_reference

    with pytest.raises(ConfigError, match=r"unknown reference dataset 'fashion-mnst' \(did you mean "
                                          r"'fashion-mnist'") as caught:
        check_reference("fashion-mnst")
    message = str(caught.value)
    assert message.count("folder:PATH") == 1 and "\n" not in message
    assert "use one of fashion-mnist, mnist, cifar10, folder:PATH (" in message
    with pytest.raises(ConfigError) as from_evaluate:
        evaluate(_images(8), ref="fashion-mnst")
    assert str(from_evaluate.value).count("folder:PATH") == 1


@pytest.mark.parametrize("ref", [None, 5])
def test_a_reference_that_is_not_a_name_is_a_config_error(ref):
    from ganforge.metrics import evaluate

    with pytest.raises(ConfigError) as caught:
        evaluate(_images(8), ref=ref)
    message = str(caught.value)
    assert message.startswith(f"ref must be the name of a reference dataset (fashion-mnist, mnist, cifar10, "
                              f"folder:PATH), got {ref!r}") and "\n" not in message
