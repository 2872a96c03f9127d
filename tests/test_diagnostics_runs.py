"""Each detector fires on a real (tiny) training run built to fail that way, and none fires on a
healthy one. Data: smooth random 16x16 images, which a tiny DCGAN learns in a few hundred steps."""
import json
from pathlib import Path

import pytest
import torch

from ganforge import api
from ganforge.data import ImageDataset
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.unconditional import UnconditionalGAN

from conftest import tiny_config

COMMON = {"train.log_every": 10, "train.checkpoint_every": 50, "train.sample_every": 1000,
          "monitor.warmup_steps": 100, "model.g_width": 16, "model.d_width": 16}


def smooth_images(n=512, res=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(res, res), mode="bilinear", align_corners=False)
    return ImageDataset(images=(img * 255).round().to(torch.uint8), labels=None, class_names=None,
                        source="generated", name="smooth")


if "ignores-z" not in OBJECTIVES:
    @OBJECTIVES.register("ignores-z")
    class IgnoresZ(UnconditionalGAN):
        """A generator whose output does not depend on z: complete mode collapse."""

        def _z(self, n, generator):
            return super()._z(n, generator) * 0.0


def _run(tmp_path, **over):
    run = tmp_path / "run"
    api.train(tiny_config(**{**COMMON, **over}), run, progress=False, dataset=smooth_images())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the trainer's closing {"event": "end"} record says how the run ended: no diagnostic
    return ([r for r in records if "event" in r and r["event"] != "end"],
            [r for r in records if "event" not in r])


def test_healthy_run_fires_nothing(tmp_path):
    events, records = _run(tmp_path, **{"train.steps": 300})
    assert events == []
    last = records[-1]
    assert last["diversity"] > 0.5 * last["diversity_real"]
    assert {"d_acc_real", "d_acc_fake", "g_grad_norm", "d_grad_norm"} <= set(last)


def test_vanishing_gradients_with_minimax_and_strong_d(tmp_path):
    events, _ = _run(tmp_path, **{"train.steps": 100, "loss.name": "minimax",
                                  "optim.d_lr": 0.002, "train.n_critic": 3})
    vanishing = [e for e in events if e["event"] == "vanishing_gradients"]
    assert vanishing, events
    assert "loss.name=nonsaturating" in vanishing[0]["suggestion"]
    assert vanishing[0]["evidence"]["d_fake"] < 0.05


def test_mode_collapse_when_g_ignores_z(tmp_path):
    events, _ = _run(tmp_path, **{"train.steps": 150, "objective": "ignores-z"})
    collapse = [e for e in events if e["event"] == "mode_collapse"]
    assert collapse, events
    assert collapse[0]["evidence"]["ratio"] < 0.3


def test_divergence_rolls_back_and_training_continues(tmp_path):
    events, records = _run(tmp_path, **{"train.steps": 150, "optim.g_lr": 10.0,
                                        "optim.d_lr": 10.0, "train.rollback_lr_factor": 0.001})
    kinds = [e["event"] for e in events]
    assert "divergence" in kinds and "rollback" in kinds
    rollback = next(e for e in events if e["event"] == "rollback")
    assert rollback["evidence"]["lr_scale"] == pytest.approx(0.001)
    assert records[-1]["step"] == 150  # went on to the end
    from ganforge.training import checkpoint as ckpt

    weights, state = ckpt.load(ckpt.find(tmp_path / "run"))
    assert state["step"] == 150 and state["rollbacks"] >= 1
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_oscillation_with_high_lr_and_momentum(tmp_path):
    events, _ = _run(tmp_path, **{"train.steps": 250, "optim.g_lr": 0.01, "optim.d_lr": 0.01,
                                  "optim.betas": [0.9, 0.999]})
    osc = [e for e in events if e["event"] == "oscillation"]
    assert osc, events
    assert "optim.d_lr" in osc[0]["suggestion"]


FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (FMNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed (Debian package dataset-fashion-mnist)")
def test_mode_collapse_when_samples_cover_one_class(tmp_path):
    """A generator stuck on one class keeps much of the pixel diversity (so the diversity rule
    stays quiet) but the shipped fashion-mnist-cnn counts one class in the probe against the real
    probe's many: the coverage rule fires, with both counts as evidence."""
    from ganforge.data import load_dataset

    real = load_dataset("fashion-mnist", data_dir=FMNIST_DIR, resolution=16)
    subset = ImageDataset(images=real.images[:512], labels=None, class_names=None,
                          source="test", name="fashion-mnist")
    trousers = real.images[real.labels == 1][:64].float() / 127.5 - 1  # class 1: "Trouser"

    if "one-class" not in OBJECTIVES:
        @OBJECTIVES.register("one-class")
        class OneClass(UnconditionalGAN):
            """Samples are real trousers picked by z: diverse pixels, one class."""

            def sample(self, n, *, generator, nets=None):
                pick = torch.randint(0, len(trousers), (n,), generator=generator)
                return trousers[pick].to(self.device)

    run = tmp_path / "run"
    api.train(tiny_config(**{**COMMON, "train.steps": 150, "objective": "one-class"}), run,
              progress=False, dataset=subset)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "probe_classes" in r]
    assert logged and all(r["probe_classes"] == 1 and r["probe_classes_real"] >= 8 for r in logged)
    assert all(r["diversity"] > 0.3 * r["diversity_real"] for r in logged)  # pixels look fine
    assert all(r["diversity_features"] > 0 for r in logged)
    collapse = [r for r in records if r.get("event") == "mode_collapse"]
    assert collapse, [r for r in records if "event" in r]
    assert collapse[0]["step"] >= 100  # COMMON's warmup_steps: not before
    assert collapse[0]["evidence"]["probe_classes"] == 1
    assert collapse[0]["evidence"]["probe_classes_real"] >= 8
