"""Registry-driven tests: every registered family (objective) gets these for free. For each one,
on the tiny config it provides (``example_config``): build, train, checkpoint, resume bit for
bit on CPU, round-trip its config, load it with ``ganforge.load`` and call each capability it
declares once; a capability it does not declare is a one-line error. Plus the seams the
families are built on: optimizers by declaration, config sections by registration, and runs
written before these seams existed."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import ganforge
from conftest import random_dataset, tiny_config
from ganforge import api
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import CAPABILITIES, OBJECTIVES, OptimizerSpec, Phase
from ganforge.objectives.unconditional import UnconditionalGAN
from ganforge.training import checkpoint as ckpt

FAMILIES = sorted(n for n, c in OBJECTIVES.items() if c.__module__.startswith("ganforge."))
LEGACY = Path(__file__).parent / "fixtures" / "legacy-runs"


def _call_sample(run):
    x = run.sample(2, seed=0)
    assert x.shape[0] == 2 and x.abs().max() <= 1
    assert torch.equal(x, run.sample(2, seed=0))  # reproducible for a seed


def _call_sample_labels(run):
    names = run.class_names
    x = run.sample(2, seed=0, labels=[0, names[-1]])
    assert x.shape[0] == 2


def _call_translate(run):
    c = run.objective.input_channels("AtoB")
    y = run.translate(torch.zeros(1, c, 8, 11))  # any size
    assert y.shape[0] == 1 and y.shape[-2:] == (8, 11)


def _call_upscale(run):
    y = run.upscale(np.zeros((6, 7, 3), np.uint8))
    s = run.objective.scale
    assert y.shape == (6 * s, 7 * s, 3) and y.dtype == np.uint8


def _call_truncation(run):
    x = run.sample(2, seed=0, truncation=0.5)
    assert x.shape[0] == 2 and not torch.equal(x, run.sample(2, seed=0))


def _call_levels(run):
    levels = run.sample(2, seed=0, return_levels=True)
    sizes = [x.shape[-1] for x in levels]
    assert len(levels) >= 2 and sizes == sorted(sizes) and sizes[-1] == run.config.data.resolution
    assert torch.equal(levels[-1], run.sample(2, seed=0))  # the last level is the sample


def _call_mix(run):
    grid = run.mix([1, 2], [3], "0-1")
    assert grid.shape[0] == (1 + 2) * (1 + 1) and grid.abs().max() <= 1
    assert torch.equal(grid, run.mix([1, 2], [3], [0, 1]))


def _call_interpolate(run):
    frames = run.interpolate([1, 2], 4)
    assert frames.shape[0] == 4 and frames.abs().max() <= 1


def _call_project(run):
    res = run.config.data.resolution
    out = run.project(np.full((res + 3, res, 3), 128, np.uint8), space="w+", steps=3)
    assert out["ws"].dim() == 2 and out["image"].shape == out["target"].shape
    assert out["notes"] and out["psnr"] > 0


def _call_edit(run):
    def brightness(x):  # a two-class "classifier": images brighter than the batch's median
        d = (x.flatten(1).mean(1) - x.flatten(1).mean(1).median()) * 100
        return torch.stack([-d, d], 1)

    out = run.edit("bright", [-2, 0, 2], n_train=64, classify=brightness, class_names=["dark", "bright"])
    assert out["images"].shape[0] == 3 and len(out["probability"]) == 3


def _call_vocode(run):
    n_mels, hop = run.config.audio.n_mels, run.config.audio.hop
    wave = run.vocode(torch.full((1, n_mels, 5), -5.0))
    assert wave.shape == (1, 5 * hop) and wave.abs().max() <= 1
    mel = run.analyze(wave[0])
    assert mel.shape == (1, n_mels, 5)


def _call_convert(run):
    n_mels = run.config.audio.n_mels
    mel = torch.linspace(-8, 1, n_mels)[None, :, None].repeat(1, 1, 7)
    for direction in ("AtoB", "BtoA"):
        out = run.convert(mel, direction=direction)
        assert out.shape == mel.shape and torch.isfinite(out).all()


CALLS = {"sample": _call_sample, "levels": _call_levels, "sample_labels": _call_sample_labels,
         "translate": _call_translate, "upscale": _call_upscale, "truncation": _call_truncation,
         "mix": _call_mix, "interpolate": _call_interpolate, "project": _call_project,
         "edit": _call_edit, "vocode": _call_vocode, "convert": _call_convert}


def test_every_capability_has_a_test_call_and_families_are_registered():
    assert set(CALLS) == set(CAPABILITIES)
    assert {"unconditional", "conditional", "pix2pix", "cyclegan", "superres"} <= set(FAMILIES)
    for name in FAMILIES:
        assert OBJECTIVES[name].capabilities <= set(CAPABILITIES), name


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt.find(run) / ckpt.WEIGHTS)


def _tensors(obj, prefix=""):
    """Every tensor in a nested state (optimizer states, pools), by path."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_family_trains_resumes_exactly_loads_and_serves_its_capabilities(name, tmp_path):
    fam = OBJECTIVES[name]
    raw = fam.example_config(tmp_path / "data")
    cfg = from_dict(raw)
    steps = cfg.train.steps
    assert steps >= 3 and cfg.train.checkpoint_every < steps

    once = tmp_path / "once"
    result = api.train(cfg, once, progress=False)
    assert result.step == steps
    assert (once / "samples").is_dir() and any((once / "samples").glob("step_*.png"))

    half = tmp_path / "half"
    api.train(from_dict(apply_overrides(raw, [f"train.steps={steps // 2}"])), half, progress=False)
    api.train(api.resume_config(half, [f"train.steps={steps}"]), half, progress=False, resume=True)
    a, b = _weights(once), _weights(half)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{name}: {key} differs after resume"
    _, state_a = ckpt.load(ckpt.find(once))
    _, state_b = ckpt.load(ckpt.find(half))
    ta, tb = _tensors(state_a["optimizers"]), _tensors(state_b["optimizers"])
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert state_a["step"] == state_b["step"] == steps

    # the saved config is the resolved config, sections included, and rebuilds it exactly
    saved = from_dict(yaml.safe_load((once / "config.yaml").read_text()))
    assert saved == cfg and saved.to_dict() == cfg.to_dict()
    assert set(fam.sections) <= set(saved.to_dict())

    run = ganforge.load(once)
    assert run.capabilities == fam.capabilities and run.step == steps
    for capability in sorted(fam.capabilities):
        CALLS[capability](run)
    for capability in sorted(set(CAPABILITIES) - fam.capabilities):
        with pytest.raises(ConfigError, match="cannot") as info:
            run.require(capability)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_sections_are_typed_and_misspelt_keys_get_a_hint(name, tmp_path):
    fam = OBJECTIVES[name]
    raw = fam.example_config(tmp_path)
    for section, cls in fam.sections.items():
        cfg = from_dict(raw)
        assert isinstance(getattr(cfg, section), cls)
        key = next(iter(cls.__dataclass_fields__))
        with pytest.raises(ConfigError, match=f"did you mean '{section}.{key}'"):
            apply_overrides(raw, [f"{section}.{key}x=1"])


# the families that apply neither the common reg.* nor augment.* settings (none applies one alone)
WITHOUT_REG = [n for n in FAMILIES if {"reg.", "augment."} & set(OBJECTIVES[n].unsupported_advice)]


@pytest.mark.parametrize("name", WITHOUT_REG)
def test_common_settings_a_family_never_applies_are_refused_and_left_out_of_the_advice(name, tmp_path):
    """pix2pix took reg.r1=10, recorded it, trained as without it, and its monitor advised it."""
    from ganforge.training.monitor import Monitor

    fam = OBJECTIVES[name]
    assert {"reg.", "augment."} <= set(fam.unsupported_advice)
    for override in ("reg.r1=1", "augment.diffaugment=color"):
        raw = apply_overrides(fam.example_config(tmp_path), [override])
        with pytest.raises(ConfigError, match=rf"^{override.replace('=1', '=1.0')}: objective={name} does not "
                                              rf"apply the {override[:override.index('.')]}\.\* settings; remove it$"):
            api.train(from_dict(raw), tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()
        api.build(from_dict(raw))  # a run trained with it before the check still loads and resumes
    monitor = Monitor()
    monitor.unsupported = fam.unsupported_advice
    assert monitor._advice("halve optim.d_lr to 1e-4; add R1: reg.r1=0.02; augment D's inputs: "
                           "augment.diffaugment=color,translation") == "halve optim.d_lr to 1e-4"


def test_a_section_of_another_family_is_refused_unless_it_holds_only_defaults():
    cfg = tiny_config()
    assert "sr" not in cfg.to_dict()
    with pytest.raises(AttributeError, match="belongs to objective superres"):
        cfg.sr  # noqa: B018
    with pytest.raises(ConfigError, match="section 'sr' configures objective superres"):
        from_dict({**cfg.to_dict(), "sr": {"scale": 2}})
    assert from_dict({**cfg.to_dict(), "sr": {"scale": 4}}) == cfg  # defaults: dropped
    with pytest.raises(ConfigError, match="unknown config section 'modle'.*did you mean 'model'"):
        apply_overrides(cfg.to_dict(), ["modle.z_dim=3"])


# ----------------------------------------------------------------------------- optimizers


def test_optimizer_spec_groups_parameters_by_prefix_multiplier():
    nets = {"G": torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))}
    spec = OptimizerSpec(["G"], lr=0.1, lr_mult={"G.0.": 0.01})
    groups = spec.param_groups(nets)
    assert sorted((round(g["lr"], 9), len(g["params"])) for g in groups) == [(0.001, 2), (0.1, 2)]
    assert groups[0]["params"][0] is nets["G"][0].weight


class _NamedOptimizers(UnconditionalGAN):
    """G's first layer at 0.1x learning rate, under optimizer names the Trainer has never seen."""

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        first = next(n for n, _ in self.nets["G"].named_parameters())
        self.optimizers = {"gen": OptimizerSpec(["G"], lr=1e-3, betas=(0.0, 0.99),
                                                lr_mult={f"G.{first}": 0.1}),
                           "critic": OptimizerSpec(["D"], lr=4e-3)}
        self.phases = [Phase("D", optimizer="critic"), Phase("G", optimizer="gen", fresh_batch=False)]


def test_trainer_builds_any_declared_optimizers_and_scales_each_group(tmp_path):
    cfg = tiny_config(**{"train.steps": 2})
    dataset = random_dataset()
    objective = _NamedOptimizers(cfg, _NamedOptimizers.data_info(cfg, dataset))
    trainer = api.Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")),
                          run_dir=None, device=torch.device("cpu"), progress=False)
    gen = trainer.optimizers["gen"]
    assert sorted(g["lr"] for g in gen.param_groups) == pytest.approx([1e-4, 1e-3])
    assert all(tuple(g["betas"]) == (0.0, 0.99) for g in gen.param_groups)
    assert [g["lr"] for g in trainer.optimizers["critic"].param_groups] == [4e-3]
    trainer.fit()
    trainer.lr_scale = 0.5  # as after a rollback: every group scales from its own base
    trainer._apply_lr_scale()
    assert sorted(g["lr"] for g in gen.param_groups) == pytest.approx([5e-5, 5e-4])


# ----------------------------------------------------------------------------- old runs


EXPECTED_CALLS = {
    "dcgan": lambda run, e: api.to_uint8_hwc(run.sample(4, seed=0)),
    "cgan": lambda run, e: api.to_uint8_hwc(run.sample(4, seed=0, labels=[0, 1, 1, 0])),
    "pix2pix": lambda run, e: api.to_uint8_hwc(run.translate(
        torch.from_numpy(e["input_translate"]).permute(0, 3, 1, 2).float() / 127.5 - 1)),
    "superres": lambda run, e: run.upscale(e["input_upscale"][0])[None],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CALLS))
def test_runs_written_before_families_declared_themselves_load_and_sample_identically(name):
    expected = np.load(LEGACY / "expected.npz")
    run = ganforge.load(LEGACY / name)
    np.testing.assert_array_equal(EXPECTED_CALLS[name](run, expected), expected[name])


def test_a_legacy_run_resumes(tmp_path):
    run = tmp_path / "dcgan"
    shutil.copytree(LEGACY / "dcgan", run)
    cfg = api.resume_config(run, ["train.steps=3"])
    assert "sr" not in cfg.to_dict()  # the old file's default sections of other families
    result = api.train(cfg, run, progress=False, resume=True,
                       dataset=random_dataset(n=16, resolution=8))
    assert result.step == 3 and ganforge.load(run).step == 3
