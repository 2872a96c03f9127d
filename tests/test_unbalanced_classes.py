"""A class-conditional run names a class with under a tenth of the largest class's images (a
folder of 500, 20 and 3 images a class had trained without a word); balanced data and
unconditional runs are not told."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import torch

from ganforge.config import load_config
from ganforge.objectives import family


def _said(preset: str, counts: list[int]) -> list[str]:
    _, cfg = load_config(preset)
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    data = SimpleNamespace(name="folder:mine", labels=labels, class_names=[f"c{k}" for k in range(len(counts))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        family(cfg).data_info(cfg, data)
    return [str(w.message) for w in caught if "unbalanced" in str(w.message)]


def test_a_rare_class_of_a_conditional_run_is_named():
    said = _said("acgan-fashion-mnist", [500, 20, 3])
    assert said == ["the classes of folder:mine are unbalanced: 'c2' has 3 images against 500 of 'c0' (0.6% of "
                    "the data), so a class-conditional generator sees it in about that share of its batches and "
                    "learns it least; add images of the rare classes or leave some of the common ones out"]


def test_balanced_enough_or_unconditional_is_not_told():
    assert _said("cgan-fashion-mnist", [80, 30, 10]) == []  # 1/8 of the largest: within a tenth
    assert _said("dcgan-fashion-mnist", [500, 20, 3]) == []  # the labels are not used
