"""Core commands as a user meets them: a point run in eval, train and report; sample's --n with
--per-class; train's --out that is not a run; eval's folder reference; a preset's YAML; the
run-directory messages from Python. Tiny sizes, in process."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganforge import api, cli
from ganforge.config import load_config
from ganforge.errors import ConfigError

TOY = ["train.steps=4", "train.batch_size=16", "train.log_every=2", "train.sample_every=2",
       "train.checkpoint_every=4", "model.g_width=8", "model.d_width=8", "monitor.enabled=false"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    _, cfg = load_config("toy-grid25", TOY)
    api.train(cfg, out, progress=False)
    return out


def _error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("ganforge: error: "), err
    return err


def test_eval_refuses_a_point_run_before_sampling(toy_run, capsys, monkeypatch):
    from ganforge.metrics import targets

    def never(*a, **k):
        raise AssertionError("sampled a point run")

    monkeypatch.setattr(targets, "run_samples", never)
    err = _error(capsys, cli.main(["eval", str(toy_run), "--ref", "fashion-mnist", "--n", "500"]))
    assert "2-D points (toy:grid25)" in err and "image dataset" in err
    assert "ganforge bench modes --data toy:grid25" in err
    assert f"ganforge sample {toy_run} --n 1000 --out p.png" in err and "to_uint8" not in err


def test_sample_refuses_n_with_per_class_and_keeps_n_64_by_default(toy_run, tmp_path, capsys):
    err = _error(capsys, cli.main(["sample", str(tmp_path / "any"), "--per-class", "3", "--n", "5",
                                   "--out", str(tmp_path / "g.png")]))
    assert "--n and --per-class cannot be combined" in err
    assert not (tmp_path / "g.png").exists()
    assert cli.main(["sample", str(toy_run), "--out", str(tmp_path / "p.npz")]) == 0
    assert np.load(tmp_path / "p.npz")["points"].shape == (cli.SAMPLE_N, 2) == (64, 2)


def test_train_into_a_folder_that_is_not_a_run_offers_only_another_out(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("keep")
    err = _error(capsys, cli.main(["train", "toy-grid25", *TOY, "--out", str(mine), "--quiet"]))
    assert "not a ganforge run" in err and "a.txt" in err and "choose another --out" in err
    assert "--resume" not in err and "--force" not in err
    assert sorted(p.name for p in mine.iterdir()) == ["a.txt"]


def test_eval_names_the_split_a_folder_reference_uses(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("gen", "ref"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    ref = f"folder:{tmp_path / 'ref'}"
    code = cli.main(["eval", str(tmp_path / "gen"), "--ref", ref, "--n", "10", "--metrics", "fid",
                     "--extractor", "fashion-mnist-cnn"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0] == f"ganforge: evaluating 10 images from {tmp_path / 'gen'} against {ref}/all"
    assert f"{ref}/all images" in out and f"{ref}/test" not in out


def test_point_run_writes_scatter_previews_that_the_report_shows(tmp_path, capsys):
    run = tmp_path / "toy"
    assert cli.main(["train", "toy-grid25", *TOY, "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    pngs = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert pngs == ["step_0000002.png", "step_0000004.png"]  # every train.sample_every, and the last step
    assert f"samples:    {run / 'samples' / 'step_0000004.png'}" in out
    assert f"more samples: ganforge sample {run} --n 1000 --out points.png" in out
    pixels = np.asarray(Image.open(run / "samples" / "step_0000004.png").convert("RGB")).astype(int)
    blue = pixels[..., 2] - pixels[..., 0] > 50  # tab:blue points (alpha 0.6 on white)
    red = pixels[..., 0] - pixels[..., 2] > 80  # the modes' 3-sigma circles (tab:red)
    assert blue.sum() > 0 and red.sum() > 25 * 20  # an untrained G puts its points in one spot
    assert cli.main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "samples at step 2" in html and "samples at step 4" in html and "No sample grids" not in html


def test_presets_name_prints_yaml_that_trains_the_same_config(tmp_path, capsys, monkeypatch):
    assert cli.main(["presets", "dcgan-fashion-mnist"]) == 0
    mine = tmp_path / "my.yaml"
    mine.write_text(capsys.readouterr().out)
    assert load_config(str(mine))[1].to_dict() == load_config("dcgan-fashion-mnist")[1].to_dict()
    seen = {}
    monkeypatch.setattr(api, "train", lambda cfg, run_dir, **kw: seen.setdefault("cfg", cfg) and 1 / 0)
    with pytest.raises(ZeroDivisionError):  # stopped where training would start
        cli.main(["train", str(mine), "--out", str(tmp_path / "r"), "--quiet"])
    assert seen["cfg"].to_dict() == load_config("dcgan-fashion-mnist")[1].to_dict()
    err = _error(capsys, cli.main(["presets", "dcgan-fashion-mnis"]))
    assert "unknown preset 'dcgan-fashion-mnis'" in err and "dcgan-fashion-mnist" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [\n")
    with pytest.raises(ConfigError, match=r"start from a preset \(ganforge presets NAME > my.yaml\)"):
        load_config(str(bad))


def test_run_dir_messages_name_the_python_arguments_too(toy_run):
    _, cfg = load_config("toy-grid25", TOY)
    with pytest.raises(ConfigError) as info:
        api.train(cfg, toy_run, progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "--resume (Python: resume=True)" in msg and "--force (Python: force=True)" in msg
    assert "--out (Python: run_dir)" in msg
