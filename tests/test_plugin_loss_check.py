"""A loss registered outside ganforge is checked once, when a run looks it up: a d or g that
returns one value per image (no .mean()) or a Python float had trained into a traceback from
backward() at the first step; now it is one line naming the loss, its module and the contract."""
import textwrap

import pytest
import torch.nn.functional as F
from conftest import run_cli

from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, LossPair, for_inference, get_loss


def _d_ok(*, real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_ok(*, fake, real=None):
    return F.softplus(-fake).mean()


def _d_per_image(*, real, fake):
    return F.softplus(-real) + F.softplus(fake)


def _g_float(*, fake, real=None):
    return float(F.softplus(-fake).mean())


def _g_positional(fake):
    return fake.mean()


@pytest.fixture
def register():
    names = []

    def reg(name, pair):
        names.append(name)
        LOSSES.register(name)(pair)

    yield reg
    for name in names:
        LOSSES.pop(name, None)


@pytest.mark.parametrize("pair, said", [
    (LossPair(d=_d_per_image, g=_g_ok), r"its d returns a tensor of shape \[2\] for 2 scores; a loss returns one "
                                        r"0-d tensor"),
    (LossPair(d=_d_ok, g=_g_float), r"its g returns float for 2 scores"),
    (LossPair(d=_d_ok, g=_g_positional), r"its g fails on 2 scores: TypeError: .*called with the keywords fake "
                                         r"and real"),
])
def test_a_plugin_loss_that_breaks_the_contract_is_one_line(register, pair, said):
    register("gf-test-bad-loss", pair)
    with pytest.raises(ConfigError, match=rf"^loss 'gf-test-bad-loss' \(module test_plugin_loss_check\): {said}"):
        get_loss("gf-test-bad-loss")
    with for_inference():  # loading a trained run to sample does not call its loss
        assert get_loss("gf-test-bad-loss") is LOSSES["gf-test-bad-loss"]


def test_a_plugin_loss_that_keeps_the_contract_and_ganforges_own_pass(register):
    register("gf-test-good-loss", LossPair(d=_d_ok, g=_g_ok))
    assert get_loss("gf-test-good-loss") is LOSSES["gf-test-good-loss"]
    for name in ("nonsaturating", "ragan", "lsgan"):
        assert get_loss(name) is LOSSES[name]


def test_the_cli_stops_before_training_on_a_per_image_loss(tmp_path):
    (tmp_path / "gf_perimage_loss.py").write_text(textwrap.dedent("""
        import torch.nn.functional as F
        from ganforge.losses import LOSSES, LossPair

        def d(*, real, fake):
            return F.softplus(-real) + F.softplus(fake)

        def g(*, fake, real=None):
            return F.softplus(-fake).mean()

        LOSSES.register("perimage")(LossPair(d=d, g=g))
    """))
    proc = run_cli("train", "toy-ring8", "loss.name=perimage", "train.steps=2", "--out", tmp_path / "r",
                   env={"PYTHONPATH": str(tmp_path), "GANFORGE_PLUGINS": "gf_perimage_loss"}, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "loss 'perimage' (module gf_perimage_loss): its d returns a tensor of shape [2]" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r" / "checkpoints").exists()
