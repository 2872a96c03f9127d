"""api.train whatever the caller's process-wide torch state: a notebook's no_grad, inference_mode
or float64 default dtype, a Ctrl-C inside torch's lazy import of torch._dynamo; and the bf16
emulation warning is a GanforgeWarning, as README says ganforge's warnings are."""
import contextlib
import os
import signal
import sys
import textwrap
import warnings

import pytest
import torch

from conftest import random_dataset, tiny_config
from ganforge import GanforgeWarning, api, signals
from ganforge.training import checkpoint as ckpt
from ganforge.training import precision


def _train(run, **overrides):
    return api.train(tiny_config(**{"train.steps": 2, **overrides}), run, progress=False,
                     dataset=random_dataset())


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "set_grad_enabled"])
def test_training_inside_a_no_grad_context_trains_and_leaves_it_as_it_was(tmp_path, mode):
    if mode == "set_grad_enabled":  # left off by an earlier notebook cell
        torch.set_grad_enabled(False)
        context = contextlib.nullcontext()
    else:
        context = getattr(torch, mode)()
    try:
        with context:
            result = _train(tmp_path / "run")
            assert not torch.is_grad_enabled()
            assert torch.is_inference_mode_enabled() == (mode == "inference_mode")
    finally:
        torch.set_grad_enabled(True)
    assert result.step == 2
    weights, _ = ckpt.load(ckpt.find(tmp_path / "run"))
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_float64_default_dtype_trains_in_float32_and_is_restored(tmp_path):
    torch.set_default_dtype(torch.float64)
    try:
        result = _train(tmp_path / "run")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    assert result.step == 2
    weights, _ = ckpt.load(ckpt.find(tmp_path / "run"))
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}


def test_the_toy_family_too(tmp_path):
    """A toy run had trained in float64 under a float64 default, its start line saying fp32."""
    from ganforge.config import load_config

    _, cfg = load_config("toy-ring8", ["train.steps=2", "train.log_every=1"])
    torch.set_default_dtype(torch.float64)
    try:
        api.train(cfg, tmp_path / "toy", progress=False)
    finally:
        torch.set_default_dtype(torch.float32)
    weights, _ = ckpt.load(ckpt.find(tmp_path / "toy"))
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}


def test_emulated_bf16_warns_with_a_ganforge_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(tmp_path / "run", **{"train.precision": "bf16"})
    ours = [w for w in caught if issubclass(w.category, GanforgeWarning) and "emulated" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert str(ours[0].message).startswith("train.precision=bf16 on a CPU without native bf16")
    assert ours[0].filename == __file__  # attributed to the caller's line
    assert "emulated" not in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:  # and filtering silences it
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=GanforgeWarning)
        _train(tmp_path / "run2", **{"train.precision": "bf16"})
    assert not [w for w in caught if "emulated" in str(w.message)]
    assert "emulated" not in capsys.readouterr().out


def test_a_ctrl_c_inside_the_import_lets_it_finish_and_arrives_after(tmp_path, monkeypatch):
    """import_uninterrupted holds SIGINT while the module imports (here one that is Ctrl-C'd
    half-way, as a notebook's Ctrl-C in torch._dynamo's import), then raises it."""
    (tmp_path / "slow_module_gf.py").write_text(textwrap.dedent("""
        import os, signal
        FIRST = 1
        os.kill(os.getpid(), signal.SIGINT)
        LAST = 2
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        signals.import_uninterrupted("slow_module_gf")
    module = sys.modules["slow_module_gf"]
    assert module.FIRST == 1 and module.LAST == 2  # the whole module, not half of it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    assert signals.import_uninterrupted("slow_module_gf") is module  # imported: nothing held again
    del sys.modules["slow_module_gf"]


def test_without_a_ctrl_c_it_is_a_plain_import(tmp_path, monkeypatch):
    (tmp_path / "plain_module_gf.py").write_text("VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert signals.import_uninterrupted("plain_module_gf").VALUE == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    del sys.modules["plain_module_gf"]
    assert os.getpid()  # the process was not signalled


def test_a_handler_set_outside_python_is_left_alone(tmp_path, monkeypatch):
    """signal.getsignal gives None for a handler installed by C code, which signal.signal cannot
    put back: the import is then a plain one, and nothing fails restoring it."""
    (tmp_path / "c_handler_module_gf.py").write_text("VALUE = 4\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    set_calls = []
    monkeypatch.setattr(signal, "signal", lambda *args: set_calls.append(args))
    assert signals.import_uninterrupted("c_handler_module_gf").VALUE == 4
    assert set_calls == []
    del sys.modules["c_handler_module_gf"]
