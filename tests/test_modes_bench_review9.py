"""Review 9: bench modes scores against --data's modes, so an override of data.name is refused
before anything is trained or written; a point run's refusals name points, not the objective;
modes.json's top-level summary says which configuration it is."""
from __future__ import annotations

import json

import pytest

from ganforge import api, cli
from ganforge.bench import modes
from ganforge.config import load_config
from ganforge.errors import ConfigError

TINY = ["model.g_width=8", "model.d_width=8", "model.g_depth=1", "model.d_depth=1", "model.z_dim=2",
        "train.batch_size=16", "train.log_every=5", "model.pac=1"]


def _cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# 1. data.name overridden: the runs had trained on one mixture and been scored on the other's modes
@pytest.mark.parametrize("argv, where, fix", [
    (["--data", "toy:grid25", "data.name=toy:ring8"], "the override", "--data toy:ring8"),
    (["--data", "toy:ring8", "--variant", "grid: data.name=toy:grid25"], "--variant 'grid'", "--data toy:grid25"),
])
def test_bench_modes_refuses_a_data_name_other_than_data(tmp_path, capsys, monkeypatch, argv, where, fix):
    def no_training(*args, **kwargs):
        raise AssertionError("trained a seed")

    monkeypatch.setattr(modes, "run_seed", no_training)
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "bench", "modes", "--seeds", "1", "--steps", "4", "--out", out, *argv, *TINY)
    assert code == 2 and err.count("\n") == 1, err
    assert where in err and f"use {fix} instead of overriding data.name" in err, err
    assert not out.exists()  # nothing trained or written
    # the same data.name as --data is what it trains on anyway: accepted
    variant = modes.Variant("v", "toy-ring8", ["data.name=toy:ring8"])
    modes.check_data(variant, "toy:ring8", [])
    with pytest.raises(ConfigError, match="use --data toy:ring8"):  # the Python path refuses too
        modes.run_benchmark([variant], "toy:grid25", [0], tmp_path / "py", extra=list(TINY))
    assert not (tmp_path / "py").exists()


# 3. the top-level summary is one configuration's: it says which
def test_modes_json_summary_names_its_configuration(tmp_path, monkeypatch):
    def fake_seed(variant, data, seed, run_dir, extra, threads=0):
        n = 3 if variant.label == "a" else 7
        return {"seed": seed, "modes": n, "hq": 0.5, "rkl": 0.1, "seconds": 1.0}

    monkeypatch.setattr(modes, "run_seed", fake_seed)
    monkeypatch.setattr(modes, "save_scatter", lambda *args: None)
    variants = [modes.Variant("a", "toy-ring8", ["loss.name=hinge"]),
                modes.Variant("b", "toy-ring8", ["loss.name=lsgan"])]
    result = modes.run_benchmark(variants, "toy:ring8", [0, 1], tmp_path / "out", log=lambda m: None)
    assert result["summary"]["config"] == "a" and result["summary"]["modes_mean"] == 3
    assert result["configs"][1]["summary"]["modes_mean"] == 7
    json.dumps(result)


# 2. a point run: the refusal names points (not objective=unconditional) and draws points
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    _, cfg = load_config("toy-ring8", ["train.steps=4", "train.log_every=2", "train.sample_every=4",
                                       "train.checkpoint_every=4", "train.device=cpu", *TINY])
    api.train(cfg, out, progress=False)
    return out


def test_interpolate_on_a_point_run_names_the_points(toy_run, tmp_path, capsys):
    code, _, err = _cli(capsys, "interpolate", toy_run, "--seeds", "1,2", "--out", tmp_path / "w.gif")
    assert code == 2 and err.count("\n") == 1, err
    assert "draws 2-D points (data.name=toy:ring8, model.name=mlp), not images, so it cannot walk" in err
    assert "objective=unconditional" not in err and "toy-" not in err  # no point preset offered
    assert "train an image preset that can, e.g. " in err
    assert err.rstrip().endswith("this run can: draw 2-D points from noise (ganforge sample)"), err
    assert not (tmp_path / "w.gif").exists()


def test_other_refusals_of_a_point_run_list_what_it_can(toy_run, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("L", (16, 16)).save(image)
    for argv in (["translate", toy_run, image, "--out", tmp_path / "t.png"],
                 ["upscale", toy_run, image, "--out", tmp_path / "u.png"],
                 ["mix", toy_run, "--rows", "1", "--cols", "2", "--out", tmp_path / "m.png"]):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert "(objective=unconditional) cannot" in err, err
        # the walk it lacks had been listed (the family's capabilities), and its samples as images
        assert err.rstrip().endswith("this run can: draw 2-D points from noise (ganforge sample)"), err
    assert _cli(capsys, "sample", toy_run, "--n", "10", "--out", tmp_path / "p.npz")[0] == 0


@pytest.mark.parametrize("args, said", [
    (["--real-fraction", "1"], "--real-fraction must be a fraction between 0 and 1, both excluded, got 1"),
    (["--test-n", "-5"], "--test-n must be 0 (the whole test split) or more, got -5"),
    (["--synthetic", "0"], "--synthetic must be a positive number, got 0"),
    (["--clf-steps", "-1"], "--clf-steps must be a positive number, got -1"),
])
def test_bench_augment_names_the_one_option_at_fault(tmp_path, capsys, args, said):
    """One line had listed all four rules for any of them."""
    code, _, err = _cli(capsys, "bench", "augment", "--out", tmp_path / "b", *args)
    assert code == 2 and err.strip() == f"ganforge: error: {said}", err
    assert not (tmp_path / "b").exists()


def test_an_unknown_toy_dataset_is_named_as_such(tmp_path, capsys):
    """It had said "unknown preset 'toy-ring9'", a preset the user never gave."""
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "bench", "modes", "--data", "toy:ring9", "--seeds", "1", "--out", out)
    assert code == 2 and err.count("\n") == 1, err
    assert "unknown toy dataset 'toy:ring9' (did you mean 'toy:ring8'?); --data takes toy:ring8, toy:grid25" in err
    assert not out.exists()
