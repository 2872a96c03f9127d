"""Review fixes of intra_fid's warnings: the small-sample warning counts the reference's images of
a class too, the classes intra_fid leaves out are named, and the training hook warns as
``ganforge eval`` does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from test_metrics_eval import env  # noqa: F401 (fixture)

from ganforge.metrics.evaluation import small_sample_warnings


def test_intra_fid_warns_when_the_reference_has_few_images_of_a_class():
    """200 generated images of each of 2 classes against a reference of 40 a class (--n 400 of a
    10-class dataset): intra_fid had scored 14.78 instead of 2.44 with no warning."""
    labels = np.repeat([3, 1], 200)
    ref_labels = np.repeat(np.arange(10), 40)
    names = [f"c{i}" for i in range(10)]
    names[1], names[3] = "Trouser", "Dress"
    out = small_sample_warnings({"intra_fid": 14.78}, n_fake=400, n_ref=400, dim=128, labels=labels,
                                ref_labels=ref_labels, class_names=names, ref="fashion-mnist/test")
    assert len(out) == 1, out
    assert out[0].startswith("intra_fid from as few as 40 reference images of a class (Trouser: the reference "
                             "fashion-mnist/test has 400 images of 10 classes)"), out
    assert "use --n 1290 or more" in out[0]
    # enough of both: no warning; few generated: the generated side is named
    assert small_sample_warnings({"intra_fid": 1.0}, n_fake=400, n_ref=2000, dim=128, labels=labels,
                                 ref_labels=np.repeat(np.arange(10), 200)) == []
    few = small_sample_warnings({"intra_fid": 1.0}, n_fake=40, n_ref=2000, dim=128, labels=labels[::10],
                                ref_labels=np.repeat(np.arange(10), 200))
    assert len(few) == 1 and few[0].startswith("intra_fid from as few as 20 samples of a class against"), few


def test_intra_fid_names_the_classes_it_leaves_out(env):  # noqa: F811
    """A class with one generated image is left out of the mean: the details and the warnings say
    which, and the small-sample warning counts only the classes averaged (it had cited 'as few as
    1 samples of a class' from the dropped class)."""
    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate
    from ganforge.metrics.coverage import intra_fid

    train = load_dataset("fashion-mnist", split="train")
    pick = np.concatenate([np.flatnonzero(train.labels.numpy() == k)[:1 if k == 9 else 8] for k in range(10)])
    images, labels = train.images[pick], train.labels[pick].numpy()
    got = evaluate(images, labels=labels, ref="fashion-mnist", split="train", n_ref=600,
                   extractor="fashion-mnist-cnn", metrics="intra_fid")
    assert got.details["intra_fid_left_out"] == ["Ankle boot (1 generated image)"]
    assert set(got.details["intra_fid_per_class"]) == {str(k) for k in range(9)}
    warns = got.protocol["warnings"]
    assert any(w.startswith("intra_fid averages 9 of 10 classes; left out: Ankle boot (1 generated image)")
               for w in warns), warns
    assert any(w.startswith("intra_fid from as few as 8 samples of a class") for w in warns), warns
    assert not any("as few as 1 " in w for w in warns), warns
    # the value is unchanged: the mean over the 9 classes
    from ganforge.metrics.features import get_extractor
    from ganforge.metrics.reference import reference_features

    ext = get_extractor("fashion-mnist-cnn")
    ref = reference_features("fashion-mnist", ext, split="train", n=600, resolution=28, channels=1)
    mean, per_class = intra_fid(ext(images).features, labels, ref.features.features, ref.labels)
    assert got.values["intra_fid"] == pytest.approx(mean, rel=1e-9) and len(per_class) == 9


def test_training_hook_warns_about_intra_fid_at_small_eval_n(env):  # noqa: F811
    """eval.n=40 and eval.metrics=[intra_fid]: 4 samples a class against 128 dimensions, yet the
    hook (which picks eval.best on it) had never warned, while ganforge eval did."""
    from ganforge import api
    from ganforge.metrics import training_hook
    from ganforge.training.trainer import Trainer

    cfg = tiny_config(**{"objective": "conditional", "eval.extractor": "fashion-mnist-cnn"})
    objective, dataset = api.build(cfg)
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                      device=torch.device("cpu"), progress=False)
    said: list[str] = []
    trainer.warn = said.append
    hook = training_hook(cfg, metrics=["intra_fid"], n=40, extractor="fashion-mnist-cnn")
    assert np.isfinite(hook(trainer, 0)["intra_fid"])
    intra = [s for s in said if "intra_fid from as few as" in s]
    assert len(intra) == 1 and intra[0].startswith("ganforge: eval.n=40: intra_fid from as few as"), said
    # 4 generated a class; the 40 reference images hold even fewer of some class: that side is named
    assert "reference images of a class" in intra[0] and "use eval.n=1290 or more" in intra[0], intra
