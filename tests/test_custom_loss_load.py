"""A run trained with a loss its script registered loads in a process that lacks it: sampling
needs the generator, not the loss; training it still needs the loss."""
import pytest

import ganforge
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, LossPair, d_loss_hinge, g_loss_hinge


def test_run_with_an_unregistered_loss_samples_but_does_not_resume(tmp_path):
    LOSSES.register("test_only_hinge")(LossPair(d=d_loss_hinge, g=g_loss_hinge))
    try:
        _, cfg = ganforge.load_config("toy-ring8", ["loss.name=test_only_hinge", "train.steps=4",
                                                   "eval.every=0", "train.batch_size=16"])
        ganforge.train(cfg, tmp_path / "run", progress=False)
    finally:
        del LOSSES["test_only_hinge"]  # as in a new process without the training script
    run = ganforge.load(tmp_path / "run")
    assert run.sample(5).shape[0] == 5
    with pytest.raises(ConfigError, match="unknown loss 'test_only_hinge'"):
        ganforge.train(run.config, tmp_path / "run", resume=True, progress=False)
