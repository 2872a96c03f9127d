"""The Python API as a notebook user meets it: a Config edited in Python is checked like an
override, documented submodules are reachable from `import ganforge`, bad arguments are one clear
GanforgeError (not a deep torch error), and training leaves the caller's random stream alone."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import ganforge
from conftest import random_dataset, tiny_config
from ganforge import api, inference
from ganforge.errors import ConfigError, GanforgeError


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny unconditional run, a tiny conditional one and the model folder of the first."""
    root = tmp_path_factory.mktemp("api")
    api.train(tiny_config(), root / "plain", progress=False, dataset=random_dataset(n=64, resolution=16))
    api.train(tiny_config(**{"objective": "conditional"}), root / "cond", progress=False,
              dataset=random_dataset(n=64, resolution=16, labels=True))
    from ganforge.serve.export import export_folder

    export_folder(ganforge.load(root / "plain"), root / "folder")
    return root


@pytest.mark.parametrize("key, value, message", [
    ("steps", -3, "train.steps must be > 0, got -3"),
    ("batch_size", 0, "train.batch_size must be > 0, got 0"),
    ("steps", "5", "train.steps must be a whole number, got '5'"),
])
def test_a_config_edited_in_python_is_checked_before_anything_is_written(tmp_path, key, value, message):
    cfg = tiny_config()
    cfg.train = dataclasses.replace(cfg.train, **{key: value})
    with pytest.raises(ConfigError, match=message):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))
    assert not (tmp_path / "run").exists()
    cfg = tiny_config()
    cfg.optim.g_lr = float("nan")
    with pytest.raises(ConfigError, match="optim.g_lr"):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))


@pytest.mark.parametrize("edit, message", [
    (lambda cfg: setattr(cfg.optim, "lr", 1e-5), r"unknown config key 'optim.lr' \(did you mean 'optim.g_lr'\?\)"),
    (lambda cfg: setattr(cfg.train, "step", 2), r"unknown config key 'train.step' \(did you mean 'train.steps'\?\)"),
    (lambda cfg: setattr(cfg, "stepz", 2), r"unknown config key 'stepz'"),
])
def test_a_misspelt_attribute_set_in_python_is_refused_not_dropped(tmp_path, edit, message):
    """to_dict keeps declared fields only: the misspelt setting had been dropped and the run
    trained with the preset's value."""
    cfg = tiny_config()
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        api.train(cfg, tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("given", ["dcgan-fashion-mnist", {"train": {"steps": 2}}, None])
def test_train_takes_a_config_and_says_how_to_make_one(tmp_path, given):
    with pytest.raises(ConfigError, match=r"expected a ganforge Config, got \w+; build one with "
                                          r"ganforge.load_config"):
        api.train(given, tmp_path / "run", progress=False)


def test_documented_submodules_are_reachable_from_the_package():
    assert callable(ganforge.metrics.evaluate) and callable(ganforge.provenance.read)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ganforge.nothing  # noqa: B018


def test_training_leaves_the_callers_random_stream_alone(tmp_path):
    torch.manual_seed(123)
    want = torch.randn(3)
    torch.manual_seed(123)
    api.train(tiny_config(), tmp_path / "run", progress=False, dataset=random_dataset(n=16, resolution=16))
    assert torch.equal(torch.randn(3), want)


def test_loading_a_run_leaves_the_callers_random_stream_alone(runs):
    """Building the networks draws from torch's global generator: a notebook's torch.randn after
    ganforge.load had given other numbers than before it."""
    for path in (runs / "plain", runs / "folder"):
        torch.manual_seed(7)
        want = torch.randn(3)
        torch.manual_seed(7)
        ganforge.load(path)
        assert torch.equal(torch.randn(3), want), path


def test_sample_arguments(runs):
    run = ganforge.load(runs / "plain")
    empty = run.sample(0)
    assert empty.shape == (0, 1, 16, 16) and run.sample_uint8(0).shape == (0, 16, 16, 1)
    for kwargs, message in (({"n": -1}, "n must be an integer >= 0"), ({"n": True}, "n must be an integer"),
                            ({"n": 2.0}, "n must be an integer"), ({"n": 2, "batch_size": 0}, "batch_size"),
                            ({"n": 2, "seed": None}, "seed must be an integer")):
        with pytest.raises(ConfigError, match=message):
            run.sample(**kwargs)
    assert torch.equal(run.sample(np.int64(3), seed=np.int64(2)), run.sample(3, seed=2))


def test_one_class_given_as_a_scalar_tensor_or_numpy_integer(runs):
    run = ganforge.load(runs / "cond")
    want = run.sample(2, labels=1)
    assert torch.equal(run.sample(2, labels=torch.tensor(1)), want)
    assert torch.equal(run.sample(2, labels=np.int64(1)), want)
    assert torch.equal(run.sample(2, labels=np.array([1, 1])), want)
    assert torch.equal(run.sample(2, labels=list(np.array([1, 1]))), want)  # numpy integers in a list
    assert torch.equal(run.sample(2, labels=(c for c in (1, 1))), want)  # any iterable
    with pytest.raises(ConfigError, match="labels must be one class"):
        run.sample(2, labels=1.0)
    with pytest.raises(ConfigError, match="labels must be one class"):
        run.sample(2, labels=[1.5, 2])


def test_a_model_folder_refuses_what_it_cannot_do(runs):
    folder = ganforge.load(runs / "folder")
    assert torch.equal(folder.sample(2), ganforge.load(runs / "plain").sample(2))
    with pytest.raises(ConfigError, match="holds one set of weights .*ema=False needs the run directory"):
        folder.sample(2, ema=False)  # gave the EMA images silently
    with pytest.raises(GanforgeError, match="is a model folder.*checkpoint='best' applies to run directories"):
        ganforge.load(runs / "folder", checkpoint="best")


def test_float_inputs_are_checked():
    from ganforge.inference import _float_tensor

    x = _float_tensor(np.zeros((1, 3, 4, 4), np.float64), "translate", "images")
    assert x.dtype == torch.float32 and x.shape == (1, 3, 4, 4)
    with pytest.raises(ConfigError, match=r"translate takes images as floats, got torch.uint8; .*127.5"):
        _float_tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "translate", "images")
    with pytest.raises(ConfigError, match="as a float tensor or numpy array, got list"):
        _float_tensor([0.0], "vocode", "log-mel")


def test_a_family_defined_again_registers_again_and_an_unknown_section_says_why():
    from ganforge.config import from_dict
    from ganforge.registry import Registry

    reg = Registry("thing")

    def make():
        class Thing:  # the same definition, run twice (a notebook cell)
            pass
        return Thing

    reg.register("t")(make())
    reg.register("t")(make())
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("t")(type("Other", (), {}))
    with pytest.raises(ConfigError, match="unknown config key 'myfam'.*'scaled-gan' here.*registers it imported"):
        from_dict({"objective": "scaled-gan", "myfam": {"scale": 2}})


def test_wrong_arguments_are_one_line_errors(runs, tmp_path):
    from ganforge.config import load_config

    with pytest.raises(ConfigError, match=r"overrides must be a list .*pass \['train.steps=5'\]"):
        load_config("dcgan-fashion-mnist", "train.steps=5")  # was read one character at a time
    with pytest.raises(GanforgeError, match="checkpoint must be 'latest', 'best' or a step_XXXXXXX name, got 10"):
        ganforge.load(runs / "plain", checkpoint=10)
    with pytest.raises(ConfigError, match="unknown capability 'bogus'; valid: convert"):
        ganforge.load(runs / "plain", require="bogus")
    run = ganforge.load(runs / "plain")
    for seeds in ("17", iter([1, 7])):  # a string walked seeds 1 and 7
        with pytest.raises(ConfigError, match="seeds must be a list of integers"):
            run.interpolate(seeds, 4)
    for seeds, frames, message in (([1.5, 7], 4, r"seeds\[0\] must be an integer >= 0, got 1.5"),  # was seed 1
                                   ([1, -7], 4, r"seeds\[1\] must be an integer >= 0"),
                                   ([True, False], 4, "seeds\\[0\\] must be an integer"),
                                   (["a", "b"], 4, "seeds\\[0\\] must be an integer"),
                                   ([1, 7], 30.0, "frames must be an integer >= 2, got 30.0")):
        with pytest.raises(ConfigError, match=message):
            run.interpolate(seeds, frames)
    with pytest.raises(ConfigError, match=r"overrides must be 'key=value' strings, got 5 \(int\)"):
        load_config("dcgan-fashion-mnist", [5])
    with pytest.raises(ConfigError, match=r"overrides must be a list .*pass \['train.steps=5'\]"):
        api.resume_config(runs / "plain", "train.steps=5")
    with pytest.raises(ConfigError, match=r"--device 'None' \(device= in Python\) is not a device"):
        ganforge.load(runs / "plain", device=None)
    with pytest.raises(ConfigError, match=r"truncation must be a number, got '0.5' \(str\)"):
        run.sample(2, truncation="0.5")
    cond = ganforge.load(runs / "cond")
    assert cond.sample(0, labels=[]).shape[0] == 0  # no labels for no samples (was '0 labels for 1 samples')
    with pytest.raises(ConfigError, match="translate takes images .* in \\[-1, 1\\]; this one reaches 200"):
        cond.translate(torch.full((1, 1, 8, 8), 200.0)) if "translate" in cond.capabilities else \
            inference._float_tensor(torch.full((1, 1, 8, 8), 200.0), "translate", "images [N, C, H, W] in [-1, 1]",
                              images=True)
    images = run.sample_uint8(8)
    from ganforge.metrics import EvalError, evaluate

    with pytest.raises(EvalError, match="n_ref must be a positive number"):
        evaluate(torch.from_numpy(images).permute(0, 3, 1, 2), ref="fashion-mnist", n_ref=-5)
    with pytest.raises(EvalError, match="needs the generator of a style-based run"):
        evaluate(torch.from_numpy(images).permute(0, 3, 1, 2), ref="fashion-mnist", metrics=["ppl_w"],
                 generator=run, extractor="fashion-mnist-cnn")


def test_provenance_reads_a_samples_npz_as_the_cli_does(runs, tmp_path):
    from ganforge import cli

    out = tmp_path / "s.npz"
    assert cli.main(["sample", str(runs / "plain"), "--n", "4", "--out", str(out)]) == 0
    meta = ganforge.provenance.read(out)
    assert meta["operation"] == "sample" and meta["generated_by"].startswith("generated by ganforge")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        ganforge.provenance.read(tmp_path / "bad.npz")


def test_one_path_spelt_two_ways_is_not_a_change(tmp_path, monkeypatch):
    """ESRGAN saves sr.init_from absolute; a resume repeating it relative logged a false
    config_change. `ganforge eval --ref folder:./imgs` of a run trained on folder:imgs is warned."""
    from ganforge.api import _same_value
    from ganforge.commands.eval import _same_folder

    (tmp_path / "psnr").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _same_value(str(tmp_path / "psnr"), "psnr") and _same_value("psnr", "./psnr")
    assert not _same_value("psnr", "other") and not _same_value(1, 2) and _same_value(None, None)
    assert _same_folder("folder:./psnr", "folder:psnr") and _same_folder(f"folder:{tmp_path}/psnr", "folder:psnr")
    assert not _same_folder("fashion-mnist", "fashion-mnist") and not _same_folder("folder:a", "folder:psnr")


def test_hooks_need_eval_every_and_then_run_in_place_of_the_metrics_hook(tmp_path):
    """With eval.every=0 (the default) the hooks had never run, silently."""
    calls = []

    def hook(trainer, step):
        calls.append(step)
        return {"mine": float(step)}

    with pytest.raises(ConfigError, match=r"hooks run every eval.every steps, and eval.every=0 never runs them; "
                                          r"set eval.every"):
        api.train(tiny_config(), tmp_path / "a", progress=False, hooks=[hook],
                  dataset=random_dataset(n=16, resolution=16))
    assert not (tmp_path / "a").exists()
    api.train(tiny_config(**{"eval.every": 2, "train.steps": 4}), tmp_path / "b", progress=False, hooks=[hook],
              dataset=random_dataset(n=16, resolution=16))
    assert calls == [2, 4]


@pytest.mark.parametrize("given", [torch.zeros(4, 1, 16, 16, dtype=torch.uint8), np.zeros((4, 16, 16, 1), np.uint8),
                                   "some/folder", torch.utils.data.TensorDataset(torch.zeros(4, 1, 16, 16))])
def test_a_dataset_that_is_not_a_ganforge_dataset_is_one_line(tmp_path, given):
    with pytest.raises(ConfigError, match=r"dataset must be a ganforge dataset, got \w+; wrap uint8 images "
                                          r"\[N, C, H, W\] as ganforge.data.ImageDataset"):
        api.train(tiny_config(), tmp_path / "run", progress=False, dataset=given)
    assert not (tmp_path / "run").exists()


def test_an_image_dataset_of_another_size_is_adapted_as_a_folder_is(tmp_path):
    """32x32 RGB images under data.resolution=16, data.channels=1: D had been fed 32x32 reals
    against 16x16 fakes (or the first step failed on the channels)."""
    big = random_dataset(n=16, resolution=32, channels=3)
    before = big.images.clone()
    with pytest.warns(UserWarning, match=r"images \(3, 32, 32\) adapted to data.channels=1 and data.resolution=16"):
        objective, dataset = api.build(tiny_config(), big)
    assert dataset.images.shape == (16, 1, 16, 16) and torch.equal(big.images, before)  # the caller's is kept
    api.train(tiny_config(**{"train.steps": 2}), tmp_path / "run", progress=False, dataset=big)


def test_sample_refuses_a_count_that_cannot_fit_and_a_seed_torch_cannot_take(runs, monkeypatch):
    """sample(10**9) had run until killed (the CLI refused it); seed=2**64 was a raw OverflowError."""
    from ganforge import config

    run = ganforge.load(runs / "plain")
    monkeypatch.setattr(config, "available_memory", lambda: 10_000_000)
    with pytest.raises(ConfigError, match=r"^n=1000000000 needs about .* of memory for the samples"):
        run.sample(10**9)
    with pytest.raises(ConfigError, match=r"seed must be an integer from 0 to 9223372036854775807, "
                                          r"got 18446744073709551616"):
        run.sample(2, seed=2**64)
    assert run.sample(2, seed=2**63 - 1).shape[0] == 2


@pytest.mark.parametrize("overrides, message", [
    ({"eval.best": "fdi"}, r"eval.best: unknown metric 'fdi' \(did you mean 'fid'\?\)"),
    ({"eval.metrics": ["fid"], "eval.best": "precision"},
     r"eval.best=precision is not among the metrics computed during training \(fid\)"),
    ({"eval.metrics": ["label_accuracy"]}, r"eval.metrics: 'label_accuracy' needs labelled samples"),
    ({"eval.metrics": ["ppl_w"]}, r"eval.metrics: 'ppl_w' needs the generator itself"),
])
def test_training_metrics_are_checked_before_training(tmp_path, overrides, message):
    """A typo in eval.best trained to the end without a 'best' checkpoint; a metric that does not
    apply failed at the first evaluation, after eval.every steps."""
    with pytest.raises(ConfigError, match=message):
        api.train(tiny_config(**{"eval.every": 2, **overrides}), tmp_path / "run", progress=False,
                  dataset=random_dataset(n=16, resolution=16))
    assert not (tmp_path / "run").exists()
