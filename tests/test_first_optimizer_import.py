"""Every place a notebook can build an optimizer first imports torch._dynamo with Ctrl-C held
(signals.before_first_optimizer): the optimizers' constructors import it at their first use in a
process, and a Ctrl-C inside that import had broken it until a kernel restart. api.train did this
already; projection, the edit directions' fit, the detector's and the classifier's training did
not."""
from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge import detect, signals
from ganforge.metrics import classifier
from ganforge.objectives import _stylegan2_edit as editing


@pytest.fixture
def order(monkeypatch):
    """What happened, in order: the held imports ("import torch._dynamo") and the optimizers built."""
    seen: list[str] = []
    monkeypatch.setattr(signals, "import_uninterrupted", lambda name: seen.append(f"import {name}"))
    built = torch.optim.Optimizer.__init__

    def init(self, *args, **kwargs):
        seen.append("optimizer")
        built(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", init)
    return seen


def test_the_edit_directions_fit(order):
    w = torch.randn(60, 8, generator=torch.Generator().manual_seed(0))
    editing.fit_direction(w, torch.arange(60) % 2 == 0)
    assert order[:2] == ["import torch._dynamo", "optimizer"], order


def test_the_detectors_training(order):
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    detect.train(images[:8], images[8:], detect.Recipe(steps=1, batch_size=4, width=2, depth=1))
    assert order[:2] == ["import torch._dynamo", "optimizer"], order


def test_the_classifiers_training(order):
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 2
    classifier.train(images, labels, num_classes=2, log=lambda line: None,
                     recipe=classifier.Recipe(widths=(4, 4, 4), embed_dim=4, epochs=1, batch_size=8))
    assert order[:2] == ["import torch._dynamo", "optimizer"], order


def test_projection(style_run, order):
    run = ganforge.load(style_run)
    size = run.config.data.resolution
    run.project(torch.zeros(size, size, dtype=torch.uint8).numpy(), steps=1)
    assert order[:2] == ["import torch._dynamo", "optimizer"], order
