"""Review 9 of the style commands: edit --class of a conditional run (it had always edited class
0, unsaid), edit --latent of another run's projection refused by its result.json, open layer
ranges ('4-' had been layer 4 alone), interpolate's PNG grid and --fps, project --steps and
--seed, edit --strength '1,,2'."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import api, cli, provenance
from ganforge.commands.style import strength_list
from ganforge.errors import ConfigError

from conftest import cli_result


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")).astype(int)


def test_edit_of_a_conditional_run_edits_the_class_asked_and_names_it(cond_style_run, style_run, tmp_path, capsys,
                                                                       brightness_classifier):
    edit = ["edit", cond_style_run, "--seed", "3", "--attribute", "bright", "--strength", "0", "--n-train", "50"]
    code, out, err = cli_result(capsys, *edit, "--out", tmp_path / "a.png")
    assert code == 0, err
    assert "wrote 1 edit of seed 3, class a (the default; choose another with --class) to" in out, out
    assert provenance.read(tmp_path / "a.png")["class"] == "a"
    code, out, err = cli_result(capsys, *edit, "--class", "b", "--out", tmp_path / "b.png")
    assert code == 0, err
    assert "wrote 1 edit of seed 3, class b to" in out, out
    assert provenance.read(tmp_path / "b.png")["class"] == "b"

    run = ganforge.load(cond_style_run)  # strength 0 is the seed's image of the class asked (const noise)
    obj, nets = run.objective, run.ema_nets
    expected = {k: api.to_uint8_hwc(obj.synthesize(obj.latents(1, torch.Generator().manual_seed(3),
                                                                torch.tensor([k]), nets=nets)[0],
                                                    nets=nets, noise="const"))[0, ..., 0].astype(int)
                for k in (0, 1)}
    assert not np.array_equal(expected[0], expected[1])
    assert np.abs(_pixels(tmp_path / "a.png") - expected[0]).max() <= 1
    assert np.abs(_pixels(tmp_path / "b.png") - expected[1]).max() <= 1

    code, _, err = cli_result(capsys, *edit, "--class", "z", "--out", tmp_path / "z.png")
    assert code == 2 and "z" in err and err.count("\n") == 1, err
    code, _, err = cli_result(capsys, "edit", style_run, "--seed", "3", "--attribute", "bright", "--n-train", "50",
                         "--class", "0", "--out", tmp_path / "u.png")
    assert code == 2 and "is unconditional" in err and err.count("\n") == 1, err
    code, _, err = cli_result(capsys, "edit", cond_style_run, "--latent", tmp_path / "l.npy", "--class", "b",
                         "--attribute", "bright", "--out", tmp_path / "l.png")
    assert code == 2 and "--class picks the class of a generated image" in err, err
    assert not any((tmp_path / n).exists() for n in ("z.png", "u.png", "l.png"))


def test_edit_refuses_a_latent_projected_on_another_run(style_run, cond_style_run, tmp_path, capsys,
                                                        brightness_classifier):
    run = ganforge.load(style_run)
    Image.fromarray(api.to_uint8_hwc(run.sample(1, seed=9))[0, ..., 0]).save(tmp_path / "t.png")
    proj = tmp_path / "proj"
    assert cli_result(capsys, "project", style_run, tmp_path / "t.png", "--steps", "5", "--quiet",
                      "--out", proj)[0] == 0

    def edit(target, *extra, out):
        return cli_result(capsys, "edit", target, "--latent", proj / "latent.npy", "--attribute", "bright",
                     "--strength", "0", "--n-train", "50", *extra, "--out", tmp_path / out)

    code, _, err = edit(cond_style_run, out="x.png")  # same shape: it had been edited (exit 0)
    assert code == 2 and err.count("\n") == 1, err
    assert f"was projected on run {style_run.resolve()} (its result.json), not on {cond_style_run}" in err, err
    assert not (tmp_path / "x.png").exists()
    record = json.loads((proj / "result.json").read_text())
    assert record["run_path"] == str(style_run.resolve()) and record["step"] == run.step

    code, out, err = edit(style_run, out="ok.png")
    assert code == 0 and "warning" not in out, err + out
    moved = tmp_path / "moved"  # the same run elsewhere (its config hash): accepted
    shutil.copytree(style_run, moved)
    code, out, err = edit(moved, out="moved.png")
    assert code == 0 and "warning" not in out, err + out
    code, out, err = edit(style_run, "--checkpoint", "step_0000002", out="old.png")  # another checkpoint: a warning
    assert code == 0, err
    assert f"warning: --latent was projected on checkpoint {record['checkpoint']} (step {run.step})" in out, out

    # a result.json from before run_path: "run" as typed where project ran
    old = {k: v for k, v in record.items() if k not in ("run_path", "config_hash", "step")}
    (proj / "result.json").write_text(json.dumps({**old, "run": f"../{cond_style_run.parent.name}/run"}))
    code, _, err = edit(style_run, out="y.png")  # .../style*/run is not .../cond*/run
    assert code == 2 and f"was projected on run ../{cond_style_run.parent.name}/run (its" in err, err
    code, _, err = edit(cond_style_run, out="c.png")
    assert code == 0, err
    (proj / "result.json").unlink()  # no record: not checked, as before
    code, _, err = edit(cond_style_run, out="c2.png")
    assert code == 0, err


def test_open_layer_ranges_run_to_the_last_or_from_the_first_layer(style_run, tmp_path, capsys):
    run = ganforge.load(style_run)
    num_ws = run.objective.nets["G"].num_ws
    assert num_ws == 4
    parse = run.objective.parse_layers
    assert parse("2-") == [2, 3] and parse(" 1 - ") == [1, 2, 3]
    assert parse("-1") == [0, 1] and parse("0,3-") == [0, 3]
    for bad in ("-", "4-", "-9", "3-1", "x-"):
        with pytest.raises(ConfigError, match=f"unknown layer range '{bad}'"):
            parse(bad)
    assert torch.equal(run.mix([1], [2], "2-"), run.mix([1], [2], "2-3"))
    code, out, err = cli_result(capsys, "mix", style_run, "--rows", "1", "--cols", "2", "--layers", "2-",
                           "--out", tmp_path / "m.png")
    assert code == 0 and "except layers 2-3 (2 of 4)" in out, err + out
    assert provenance.read(tmp_path / "m.png")["layers"] == "2-3"
    code, out, err = cli_result(capsys, "mix", style_run, "--rows", "1", "--cols", "2", "--layers", "-1",
                           "--out", tmp_path / "m2.png")
    assert code == 0 and "except layers 0-1 (2 of 4)" in out, err + out


def test_interpolate_png_is_a_grid_and_fps_is_said_unused(style_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["interpolate", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert ".png grid of the frames, 10 frames a row" in helptext and "strip" not in helptext
    assert "not used for a .png grid" in helptext
    walk = ["interpolate", style_run, "--seeds", "1,2", "--frames", "12"]
    code, out, err = cli_result(capsys, *walk, "--fps", "5", "--out", tmp_path / "w.png")
    assert code == 0 and "note: --fps sets a GIF's frame rate" in out and "--fps 5 is not used" in out, err + out
    assert Image.open(tmp_path / "w.png").size == (2 + 10 * 10, 2 + 2 * 10)  # 10 frames a row, padding 2
    code, out, err = cli_result(capsys, *walk, "--out", tmp_path / "w2.png")
    assert code == 0 and "--fps" not in out, err + out
    code, out, err = cli_result(capsys, *walk, "--fps", "5", "--out", tmp_path / "w.gif")
    assert code == 0 and "--fps" not in out and "5 fps" in out, err + out


def test_project_steps_error_names_the_option(style_run, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "t.png")
    code, _, err = cli_result(capsys, "project", style_run, tmp_path / "t.png", "--steps", "0",
                         "--out", tmp_path / "p")
    assert code == 2 and err.startswith("ganforge: error: --steps must be an integer >= 1") and \
        err.count("\n") == 1, err
    assert not (tmp_path / "p").exists()


def test_project_seed_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["project", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "--seed SEED seed of the start" in helptext


def test_edit_strength_refuses_empty_items_as_seeds_do(style_run, tmp_path, capsys):
    for bad in ("1,,2", "1,2,", ",1"):
        with pytest.raises(ConfigError, match=f"--strength has an empty item in '{bad}'"):
            strength_list(bad)
    assert strength_list("-1, 0,2") == [-1.0, 0.0, 2.0] and strength_list("-1:1:3") == [-1.0, 0.0, 1.0]
    code, _, err = cli_result(capsys, "edit", style_run, "--attribute", "bright", "--strength", "1,,2",
                         "--out", tmp_path / "e.png")
    assert code == 2 and "--strength has an empty item in '1,,2'" in err, err
