"""Review fixes of the style commands: edit fits one direction per run whatever --seed (and refuses
--seed with --latent), SIGTERM in project keeps the latent so far as Ctrl-C does, and the one-line
errors of mix --rows/--layers and interpolate --seeds."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import cli, provenance
from ganforge.errors import ConfigError
from ganforge.objectives import _stylegan2_edit as editing
from ganforge.objectives import _stylegan2_project as projector
from ganforge.objectives import stylegan2 as sg2
from conftest import brightness_logits


def _edit(run, **kw):
    return run.edit("bright", [0, 2], n_train=100, classify=brightness_logits, class_names=["dark", "bright"], **kw)


def test_edit_fits_the_same_direction_whatever_the_seed(style_run, monkeypatch):
    """The direction had been fitted on latents of seed + 1000003: seeds 5 and 6 moved along two
    different directions, and a --latent edit changed with --seed."""
    normals = []
    find = editing.find_direction

    def recorded(*args, **kwargs):
        info, w = find(*args, **kwargs)
        normals.append(info["normal"])
        return info, w

    monkeypatch.setattr(editing, "find_direction", recorded)
    run = ganforge.load(style_run)
    five, six = _edit(run, seed=5), _edit(run, seed=6)
    assert torch.equal(normals[0], normals[1]) and five["sigma"] == six["sigma"]
    assert not torch.equal(five["images"], six["images"])  # the seed still picks the image
    assert five["direction_seed"] == sg2.EDIT_DIRECTION_SEED

    ws = run.objective.latents(1, torch.Generator().manual_seed(3), nets=run.ema_nets)[0][0].cpu().numpy()
    # from Python too, a seed with a latent is refused (it had been ignored without a word)
    with pytest.raises(ConfigError, match="seed picks a generated image and latent gives the image itself"):
        _edit(run, latent=ws, seed=1)
    assert _edit(run, latent=ws)["images"].shape[0] == 2


def test_python_interpolate_with_one_seed_names_the_fix(style_run):
    run = ganforge.load(style_run)
    with pytest.raises(ConfigError, match=r"needs at least 2, got \[1\]; add another, e\.g\. seeds=\[1, 2\]"):
        run.interpolate([1])
    with pytest.raises(ConfigError, match=r"frames=2 for 3 seeds; use frames >= 3"):
        run.interpolate([1, 2, 3], frames=2)


def test_edit_refuses_seed_with_latent_and_records_the_direction_seed(style_run, tmp_path, capsys,
                                                                      brightness_classifier):
    run = ganforge.load(style_run)
    ws = run.objective.latents(1, torch.Generator().manual_seed(3), nets=run.ema_nets)[0][0].cpu().numpy()
    np.save(tmp_path / "latent.npy", ws)
    edit = ["edit", str(style_run), "--attribute", "bright", "--strength", "0,1", "--n-train", "100"]
    code = cli.main([*edit, "--latent", str(tmp_path / "latent.npy"), "--seed", "1", "--out", str(tmp_path / "l.png")])
    err = capsys.readouterr().err
    assert code == 2 and "--seed picks a generated image to edit and --latent gives the image itself" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "l.png").exists()

    assert cli.main([*edit, "--latent", str(tmp_path / "latent.npy"), "--out", str(tmp_path / "l.png")]) == 0
    meta = provenance.read(tmp_path / "l.png")
    assert "seed" not in meta and meta["direction_seed"] == sg2.EDIT_DIRECTION_SEED
    assert cli.main([*edit, "--seed", "4", "--out", str(tmp_path / "s.png")]) == 0
    meta = provenance.read(tmp_path / "s.png")
    assert meta["seed"] == 4 and meta["direction_seed"] == sg2.EDIT_DIRECTION_SEED


def test_sigterm_in_project_keeps_the_latent_so_far_and_exits_143(style_run, tmp_path, monkeypatch, capsys):
    """SIGTERM (timeout, a job scheduler) had killed project with nothing written; now it saves as
    Ctrl-C does, exits 128 + 15, and the handler from before the projection is back afterwards."""
    calls = []
    regularization = projector.noise_regularization

    def terminated_at_step_12(maps):
        calls.append(1)
        if len(calls) == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return regularization(maps)

    def before(signum, frame):
        raise RuntimeError("SIGTERM reached the handler from before the projection")

    monkeypatch.setattr(projector, "noise_regularization", terminated_at_step_12)
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "t.png")
    old = signal.signal(signal.SIGTERM, before)
    try:
        code = cli.main(["project", str(style_run), str(tmp_path / "t.png"), "--steps", "1000", "--quiet",
                         "--out", str(tmp_path / "proj")])
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, old)
    err = capsys.readouterr().err
    assert code == 143 and "stopped by SIGTERM after 12 of 1000 steps" in err, err
    summary = json.loads((tmp_path / "proj" / "result.json").read_text())
    assert summary["steps"] == 12 and summary["interrupted"] is True
    assert {p.name for p in (tmp_path / "proj").iterdir()} == {"latent.npy", "noise.npz", "reconstruction.png",
                                                                "progress.png", "result.json"}
    G = ganforge.load(style_run).ema_nets["G"]
    assert np.load(tmp_path / "proj" / "latent.npy").shape == (G.num_ws, G.w_dim)


@pytest.mark.parametrize("args, message", [
    (["mix", "{run}", "--rows", "1,,2", "--cols", "3"], "--rows has an empty item in '1,,2'"),
    (["mix", "{run}", "--rows", "1", "--cols", "3,"], "--cols has an empty item in '3,'"),
    (["interpolate", "{run}", "--seeds", "1,,2"], "--seeds has an empty item"),
    (["mix", "{run}", "--rows", "1", "--cols", "3", "--layers", "4-5"],
     "this generator has layers 0-3 (0-3 coarse); write e.g. --layers 0-3"),
    (["interpolate", "{run}", "--seeds", "1"], "--seeds needs at least 2 seeds to walk between, got '1'; "
                                               "add another, e.g. --seeds 1,2"),
])
def test_style_commands_name_the_fix_in_one_line(style_run, tmp_path, capsys, args, message):
    out = tmp_path / ("o.gif" if args[0] == "interpolate" else "o.png")
    code = cli.main([a.format(run=style_run) for a in args] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_layer_groups_name_only_the_layers_a_generator_has():
    """'0-3 coarse, 4-7 middle, the rest fine' had been said to a 32 px run, whose layers end at 7."""
    assert sg2.layer_groups(8) == "0-3 coarse, 4-7 middle"
    assert sg2.layer_groups(6) == "0-3 coarse, 4-5 middle"
    assert sg2.layer_groups(12) == "0-3 coarse, 4-7 middle, 8-11 fine"
