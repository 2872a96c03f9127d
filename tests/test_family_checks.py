"""Checks across families: running out of memory in training, data paths saved absolute,
per-stage lists of progressive growing, edited latents, BigGAN's latent walk."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import ganforge
from ganforge import api, cli
from ganforge.config import from_dict
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.progan import ProgressiveConfig, plan
from ganforge.objectives.unconditional import UnconditionalGAN, write_image_folder

TINY = {"objective": "unconditional", "data": {"name": "folder:imgs", "resolution": 8, "channels": 1},
        "model": {"name": "dcgan", "z_dim": 4, "g_width": 4, "d_width": 4},
        "train": {"steps": 4, "batch_size": 4, "log_every": 2, "sample_every": 2, "checkpoint_every": 2,
                  "n_sample_grid": 4, "device": "cpu", "seed": 0}}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """tmp_path as the current directory, with imgs/ (8 tiny PNGs) and tiny.yaml in it."""
    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / "imgs", n=8, size=8, channels=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


def _main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- 1: out of memory


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 536870912 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError()])
@pytest.mark.parametrize("fail_at", [1, 3])  # the first step (nothing kept) or after step_0000002
def test_running_out_of_memory_in_training_is_one_line_with_the_fix_and_what_is_kept(
        workdir, capsys, monkeypatch, error, fail_at):
    calls = {"n": 0}
    loss = UnconditionalGAN.loss

    def failing(self, phase, batch):  # D and G: two calls per step
        calls["n"] += 1
        if calls["n"] > 2 * (fail_at - 1):
            raise error
        return loss(self, phase, batch)

    monkeypatch.setattr(UnconditionalGAN, "loss", failing)
    code, _, err = _main(capsys, "train", "tiny.yaml", "--out", "run", "--quiet")
    line = err.strip().splitlines()[-1]
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert line.startswith(f"ganforge: error: training ran out of memory in step {fail_at} "
                           f"(data.resolution=8, train.batch_size=4, on cpu); lower the batch (e.g. "
                           f"train.batch_size=2) or data.resolution; ")
    if fail_at == 1:  # nothing of value: cleared, so the same command runs again
        assert "nothing is kept" in line and not (workdir / "run").exists()
    else:
        assert ("run keeps checkpoint step_0000002: continue with a smaller batch: ganforge train --resume "
                "--out run train.batch_size=2, or start over with a lower data.resolution by adding --force" in line)
        assert (workdir / "run" / "checkpoints" / "step_0000002").is_dir()
        monkeypatch.setattr(UnconditionalGAN, "loss", loss)
        code, out, _ = _main(capsys, "train", "--resume", "--out", "run", "train.batch_size=2", "--quiet")
        assert code == 0 and "done at step 4" in out


@pytest.mark.parametrize("text", ["mat1 and mat2 shapes cannot be multiplied",
                                  "Expected tensor with out of memory layout"])  # mentions memory, is not
def test_other_runtime_errors_in_training_stay_tracebacks(workdir, monkeypatch, text):
    def failing(self, phase, batch):
        raise RuntimeError(text)

    monkeypatch.setattr(UnconditionalGAN, "loss", failing)
    with pytest.raises(RuntimeError, match=text):
        cli.main(["train", "tiny.yaml", "--out", "run", "--quiet"])


def test_out_of_memory_advice_of_a_progressive_run_halves_its_stage_batches_too():
    from types import SimpleNamespace

    from ganforge import api
    from ganforge.config import load_config

    _, cfg = load_config("progan-folder", ["data.resolution=16", "train.batch_size=64",
                                           "progressive.batch_sizes=[64,64,32]"])
    trainer = SimpleNamespace(step=2, device="cpu")
    line = str(api.out_of_memory_error(cfg, trainer, Path("nowhere"), removed=False))
    assert "lower the batch (e.g. train.batch_size=32 progressive.batch_sizes=[32,32,16])" in line
    assert "\n" not in line


# ----------------------------------------------------------------------------- 2: data paths


def test_path_data_names_are_made_absolute_and_others_left_alone(tmp_path, monkeypatch):
    from ganforge.data.base import absolute_data_name

    monkeypatch.chdir(tmp_path)
    assert absolute_data_name("folder:imgs") == f"folder:{tmp_path / 'imgs'}"
    assert absolute_data_name("audio:data/speech") == f"audio:{tmp_path / 'data' / 'speech'}"
    assert absolute_data_name("folder:~/imgs") == f"folder:{Path('~/imgs').expanduser()}"
    assert absolute_data_name("folder:../x/./imgs") == f"folder:{tmp_path.parent / 'x' / 'imgs'}"
    for name in ("fashion-mnist", "photos:test", "toy:ring8", "folder:", "folder:/abs/imgs"):
        assert absolute_data_name(name) == name


def test_relative_folder_is_saved_absolute_so_the_run_resumes_from_anywhere(workdir, capsys, monkeypatch):
    (workdir / "dd").mkdir()
    code, _, err = _main(capsys, "train", "tiny.yaml", "data.name=folder:imgs", "data.data_dir=dd", "train.steps=2",
                         "--out", "run", "--quiet")
    assert code == 0, err
    absolute = f"folder:{workdir / 'imgs'}"
    saved = yaml.safe_load((workdir / "run" / "config.yaml").read_text())["data"]
    assert saved["name"] == absolute and saved["data_dir"] == str(workdir / "dd")
    assert ganforge.load(workdir / "run").config.data.name == absolute  # the checkpoint's config too
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _main(capsys, "train", "--resume", "--out", workdir / "run", "train.steps=4", "--quiet")
    assert code == 0 and "done at step 4" in out, err
    monkeypatch.chdir(workdir)  # the first command's relative override again: no config change
    code, out, err = _main(capsys, "train", "--resume", "--out", "run", "data.name=folder:imgs", "--quiet")
    assert code == 0 and "data.name" not in out + err and "nothing to train" in out, out + err


# ----------------------------------------------------------------------------- 3: progressive lists


def test_per_stage_lists_longer_than_the_stages_use_their_first_values_with_a_note():
    p = ProgressiveConfig(batch_sizes=[64, 64, 64, 32, 32, 16], lr_mult=[1.0, 1.0, 1.0, 0.5, 0.5, 0.5],
                          stable_images=[10, 20, 30, 40, 50, 60], fade_images=[5, 6, 7, 8, 9])
    notes: list[str] = []
    stages = plan(p, 64, 64, notes)
    assert [s.batch for s in stages] == [64, 64, 64, 32, 32]
    assert [s.lr_mult for s in stages] == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert [s.stable for s in stages] == [10, 20, 30, 40, 50] and [s.fade for s in stages] == [0, 5, 6, 7, 8]
    assert "progressive.batch_sizes has 6 values for 5 stages (4 to 64 px): using the first 5, " \
           "[64,64,64,32,32]" in notes
    assert len(notes) == 4 and all("\n" not in n for n in notes)


@pytest.mark.parametrize("key,values,example", [
    ("batch_sizes", [64, 64, 32], "progressive.batch_sizes=[64,64,32,32,32]"),
    ("lr_mult", [1.0, 0.5], "progressive.lr_mult=[1,0.5,0.5,0.5,0.5]"),
    ("stable_images", [10, 20], "progressive.stable_images=[10,20,20,20,20]"),
    ("fade_images", [5, 6], "progressive.fade_images=[5,6,6,6]")])
def test_per_stage_lists_shorter_than_the_stages_are_an_error_with_an_example(key, values, example):
    with pytest.raises(ConfigError) as info:
        plan(ProgressiveConfig(**{key: values}), 64, 64)
    assert f"progressive.{key} has {len(values)} values for" in str(info.value)
    assert f"e.g. {example}" in str(info.value) and "\n" not in str(info.value)


def test_progressive_run_with_a_longer_list_trains_and_saves_the_list_it_used(tmp_path):
    raw = OBJECTIVES["progressive"].example_config(tmp_path / "data")  # 2 stages, 4 and 8
    raw["progressive"]["batch_sizes"] = [4, 2, 2, 2, 1, 1]
    with pytest.warns(UserWarning, match=r"batch_sizes has 6 values for 2 stages .*using the first 2, \[4,2\]"):
        api.train(from_dict(raw), tmp_path / "run", progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["progressive"]
    assert saved["batch_sizes"] == [4, 2]
    assert ganforge.load(tmp_path / "run").config.progressive.batch_sizes == [4, 2]


# ----------------------------------------------------------------------------- 4: edited latents


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg2")
    api.train(from_dict(OBJECTIVES["stylegan2"].example_config(root / "data")), root / "run", progress=False)
    return root / "run"


def _never(*_):
    raise AssertionError("the classifier ran before the latent was checked")


@pytest.mark.parametrize("latent,message", [
    ("nan", "the latent has 1 NaN or infinite values"),
    ("inf", "the latent has 1 NaN or infinite values"),
    ((10, 512), "the latent has shape (10, 512), this run's ws are"),
    ((1, 6, 8), "the latent has shape (1, 6, 8)"),
    ("text", "the latent holds <U1 values, not numbers")])
def test_a_bad_latent_is_refused_before_any_fitting(sg2_run, latent, message):
    run = ganforge.load(sg2_run)
    G = run.objective.nets["G"]
    if latent in ("nan", "inf"):
        array = np.zeros((G.num_ws, G.w_dim), np.float32)
        array[0, 0] = float(latent)
    elif latent == "text":
        array = np.full((G.num_ws, G.w_dim), "a")
    else:
        array = np.zeros(latent, np.float32)
    with pytest.raises(ConfigError, match=r"^" + re.escape(message)) as info:
        run.edit(0, [-1, 1], latent=array, n_train=10, classify=_never, class_names=["a", "b"])
    assert "\n" not in str(info.value)


def test_edit_command_refuses_a_nan_latent_in_one_line(sg2_run, tmp_path, capsys):
    run = ganforge.load(sg2_run)
    G = run.objective.nets["G"]
    bad = np.full((G.num_ws, G.w_dim), np.nan, np.float32)
    np.save(tmp_path / "bad.npy", bad)
    # the run's folder data has no classifier: that error came first, or a black image was written
    code, _, err = _main(capsys, "edit", sg2_run, "--latent", tmp_path / "bad.npy", "--attribute", "0",
                         "--out", tmp_path / "e.png")
    assert code == 2 and err.count("\n") == 1 and "NaN or infinite" in err
    assert not (tmp_path / "e.png").exists()


# ----------------------------------------------------------------------------- 5: BigGAN walks


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    api.train(from_dict(OBJECTIVES["biggan"].example_config(root / "data")), root / "run", progress=False)
    return ganforge.load(root / "run")


@pytest.mark.parametrize("truncation", [None, 0.7])
def test_biggan_walk_passes_through_the_seeds_own_samples(big_run, truncation):
    run = big_run
    assert "interpolate" in run.capabilities
    walk = run.interpolate([3, 4], 6, labels="b", truncation=truncation)
    ends = torch.cat([run.sample(1, seed=s, labels="b", truncation=truncation) for s in (3, 4)])
    assert walk.shape == (6, *ends.shape[1:])
    assert torch.allclose(walk[0], ends[0], atol=1e-5) and torch.allclose(walk[3], ends[1], atol=1e-5)
    assert (walk[1] - ends[0]).abs().max() > 1e-4 and (walk[1] - ends[1]).abs().max() > 1e-4
    other = run.interpolate([3, 4], 6, labels="a", truncation=truncation)
    assert (other[0] - walk[0]).abs().max() > 1e-4  # the class is kept along the walk
    with pytest.raises(ConfigError, match="use --space z"):
        run.interpolate([3, 4], 4, space="w")
    with pytest.raises(ConfigError, match="threshold > 0"):
        run.interpolate([3, 4], 4, truncation=-1.0)


def test_biggan_walk_is_served(big_run):
    from fastapi.testclient import TestClient

    from ganforge.serve.server import Settings, create_app, png_bytes

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data))).astype(int)

    run = big_run
    walk = run.interpolate([3, 4], 6, labels="b", truncation=1.0)
    with TestClient(create_app({"big": run}, Settings(batch_wait_ms=0))) as client:
        assert "interpolate" in client.get("/api/models").json()["models"][0]["capabilities"]
        r = client.post("/api/interpolate", json={"model": "big", "seed_a": 3, "seed_b": 4, "steps": 4,
                                                   "class": "b", "truncation": 1.0})
    assert r.status_code == 200, r.text
    # the served a -> b half of the walk (through the recorded generator call, batched): a BigGAN
    # pass differs from run.interpolate by at most one level of 255 (README)
    assert np.abs(decode(r.content) - decode(png_bytes(walk[:4], 4))).max() <= 1
